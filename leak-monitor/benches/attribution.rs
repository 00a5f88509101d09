//! What stack attribution costs the target: a Python loop's throughput while leak-monitor follows
//! it with attribution off (procfs only) and on (stack probe armed by growth), side by side in
//! one run, in alternating phases so drift of the machine's load cancels out.
//!
//! Two workloads: `steady` (allocation-heavy, no growth: the probe stays asleep) and `leaking`
//! (the same loop keeping 4 KiB per request: the probe reads stacks all the time, the worst case).
//!
//! `cargo bench -p leak-monitor --bench attribution` (needs python3, and root for ptrace).

use leak_monitor::monitor::{Attribution, TargetMonitor};
use leak_monitor::targets;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WORKLOAD: &str = r#"
import json, sys, time
keep = []
leak = int(sys.argv[1])
def handle(i):
    rows = [{"id": j, "name": f"user-{i}-{j}"} for j in range(200)]
    body = json.loads(json.dumps(rows))
    if leak:
        keep.append(bytearray(leak))
    return len(body)
n = 0
last = time.monotonic()
print("READY", flush=True)
while True:
    handle(n)
    n += 1
    now = time.monotonic()
    if now - last >= 0.05:
        print(n, flush=True)
        last = now
"#;

const PHASE: Duration = Duration::from_secs(3);
const ROUNDS: usize = 6;
const INTERVAL: Duration = Duration::from_millis(500);
/// Longer than the probe stays armed after its last tick (3 ticks, at least 1 s).
const SETTLE: Duration = Duration::from_millis(2000);

struct Workload {
    child: Child,
    count: Arc<AtomicU64>,
}

impl Workload {
    fn start(script: &std::path::Path, leak_bytes: u64) -> Result<Workload, String> {
        let mut child = Command::new("python3")
            .arg(script)
            .arg(leak_bytes.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|err| format!("cannot start python3: {err}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let count = Arc::new(AtomicU64::new(0));
        let sink = Arc::clone(&count);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == "READY" {
                    let _ = ready_tx.send(());
                } else if let Ok(n) = line.trim().parse() {
                    sink.store(n, Ordering::Relaxed);
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| "the workload printed no READY".to_string())?;
        Ok(Workload { child, count })
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap_or(0)
    }

    /// Requests per second over `PHASE`, while `monitor` ticks every `INTERVAL`; measured after
    /// `SETTLE`, so the other monitor's probe, armed in the previous phase, has gone to sleep.
    fn throughput(&self, monitor: &mut TargetMonitor) -> f64 {
        let tick_for = |how_long: Duration, monitor: &mut TargetMonitor| {
            let started = Instant::now();
            while started.elapsed() < how_long {
                std::thread::sleep(INTERVAL);
                let _ = monitor.tick(Instant::now());
            }
        };
        tick_for(SETTLE, monitor);
        let started = Instant::now();
        let first = self.count.load(Ordering::Relaxed);
        tick_for(PHASE, monitor);
        let done = self.count.load(Ordering::Relaxed).saturating_sub(first);
        done as f64 / started.elapsed().as_secs_f64()
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn measure(script: &std::path::Path, name: &str, leak_bytes: u64) -> Result<(), String> {
    let workload = Workload::start(script, leak_bytes)?;
    let info = targets::identify(workload.pid(), None).map_err(|e| e.to_string())?;
    let procfs_only = Attribution {
        stacks: false,
        heap_census: false,
    };
    let mut off = TargetMonitor::attach_with(info.clone(), INTERVAL, procfs_only)
        .map_err(|e| e.to_string())?;
    let mut on = TargetMonitor::attach_with(info, INTERVAL, Attribution::default())
        .map_err(|e| e.to_string())?;
    // Let both settle (first highs, interpreter warm-up).
    workload.throughput(&mut off);
    let (mut off_sum, mut on_sum) = (0.0, 0.0);
    let mut ratios = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let off_rate = workload.throughput(&mut off);
        let on_rate = workload.throughput(&mut on);
        off_sum += off_rate;
        on_sum += on_rate;
        ratios.push(on_rate / off_rate);
    }
    ratios.sort_by(f64::total_cmp);
    let (off_rate, on_rate) = (off_sum / ROUNDS as f64, on_sum / ROUNDS as f64);
    let stats = on.probe().map(|p| p.stats()).unwrap_or_default();
    println!(
        "{name:<8} attribution off {off_rate:>7.0} req/s   on {on_rate:>7.0} req/s   \
         on/off {:.3} (per round {:.3}..{:.3})   probe reads {} ({:.0} ms reading)   stacks {:?}",
        on_rate / off_rate,
        ratios.first().copied().unwrap_or(f64::NAN),
        ratios.last().copied().unwrap_or(f64::NAN),
        stats.reads,
        stats.read_time.as_secs_f64() * 1e3,
        on.stacks_status(),
    );
    Ok(())
}

fn main() {
    let mut script = match tempfile::NamedTempFile::new() {
        Ok(file) => file,
        Err(err) => {
            eprintln!("cannot create the workload file: {err}");
            std::process::exit(1);
        }
    };
    if let Err(err) = script.write_all(WORKLOAD.as_bytes()) {
        eprintln!("cannot write the workload: {err}");
        std::process::exit(1);
    }
    println!(
        "target throughput, {ROUNDS} alternating phases of {PHASE:?} each, monitor tick {INTERVAL:?}"
    );
    for (name, leak) in [("steady", 0), ("leaking", 4096)] {
        if let Err(err) = measure(script.path(), name, leak) {
            eprintln!("{name}: {err}");
            std::process::exit(1);
        }
    }
}

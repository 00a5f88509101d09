//! Cost of the heap census on heaps of 100k, 1M and 5M GC objects (half lists, half class
//! instances), from outside the target: wall time and this thread's CPU time per census, reads
//! and bytes read, and the bench's peak RSS above its baseline; then the target's throughput
//! (a dict-and-list loop in a second thread of the target) in interleaved rounds without
//! censuses, with censuses at the daemon's pace, and with censuses back to back. Prints figures;
//! asserts nothing. Goals (issue 13): 1M objects in <= 1 s of CPU, target >= 0.98x at the
//! daemon's pace, <= 32 MiB above the baseline.
//!
//! Run: `cargo bench -p leak-monitor --bench census` (root, or the target's owner with ptrace
//! access); `-- --sizes 100000,1000000` to choose the heaps, `--rounds N` (default 4).

mod support;

use leak_monitor::pyheap::census::Bounds;
use leak_monitor::pyheap::HeapSource;
use std::time::{Duration, Instant};
use support::{median, Python};

const TARGET: &str = r#"
import sys, threading
n = int(sys.argv[1])
class Rec:
    def __init__(self, i):
        self.i = i
keep = [[i] for i in range(n // 2)] + [Rec(i) for i in range(n // 2)]
count = 0
def work():
    global count
    while True:
        d = {}
        for j in range(100):
            d[j] = [j]
        count += 1
threading.Thread(target=work, daemon=True).start()
print("READY", flush=True)
for line in sys.stdin:
    print(count, flush=True)
"#;

/// The daemon's pacing: a census is followed by at least 20x its duration, and 2 s.
const PACE: u32 = 20;
const MIN_GAP: Duration = Duration::from_secs(2);
const ROUND: Duration = Duration::from_secs(4);

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// VmRSS and VmHWM of this process, in MiB.
fn own_memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn user_file(file: &str) -> bool {
    !file.contains("/lib/python") && !file.starts_with('<')
}

fn count(python: &mut Python) -> u64 {
    python.send("count");
    python.read_line().trim().parse().expect("a count")
}

/// Iterations per second of the target over one round, censuses taken as `mode` says.
fn round(python: &mut Python, source: &HeapSource, mode: &str) -> f64 {
    let start = count(python);
    let began = Instant::now();
    let mut next = began;
    while began.elapsed() < ROUND {
        if mode != "none" && Instant::now() >= next {
            let t = Instant::now();
            let _ = source.census(Bounds::default(), &user_file);
            next = match mode {
                "paced" => Instant::now() + (t.elapsed() * PACE).max(MIN_GAP),
                _ => Instant::now(),
            };
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (count(python) - start) as f64 / began.elapsed().as_secs_f64()
}

fn main() {
    let sizes: Vec<u64> = arg("--sizes")
        .unwrap_or_else(|| "100000,1000000,5000000".into())
        .split(',')
        .map(|s| s.parse().expect("sizes: numbers separated by commas"))
        .collect();
    let rounds: usize = arg("--rounds").map_or(4, |r| r.parse().expect("a number"));
    println!(
        "| objects | census wall (median) | census CPU (median) | reads | MiB read | bench peak RSS above baseline | target: paced | target: back to back |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for n in sizes {
        let mut python = Python::start(&["-c", TARGET, &n.to_string()]);
        let (baseline, _) = own_memory();
        let runtime = leak_monitor::targets::runtime::discover(python.pid()).expect("CPython");
        let source = HeapSource::attach(&runtime).expect("attaching the heap census");
        let mut walls = Vec::new();
        let mut cpus = Vec::new();
        let mut objects = 0;
        let mut reads = 0;
        let mut bytes = 0;
        for _ in 0..3 {
            let (wall, cpu) = (Instant::now(), thread_cpu());
            let (census, _) = source
                .census(Bounds::default(), &user_file)
                .expect("a census");
            walls.push(wall.elapsed().as_secs_f64());
            cpus.push((thread_cpu() - cpu).as_secs_f64());
            objects = census.objects;
            reads = census.reads.reads;
            bytes = census.reads.bytes;
        }
        let (_, peak) = own_memory();
        let mut ratios: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for r in 0..rounds {
            // Rotate the order so no mode always runs first.
            let modes = if r % 2 == 0 {
                ["none", "paced", "busy"]
            } else {
                ["busy", "paced", "none"]
            };
            let mut rates = std::collections::HashMap::new();
            for mode in modes {
                rates.insert(mode, round(&mut python, &source, mode));
            }
            ratios[0].push(rates["paced"] / rates["none"]);
            ratios[1].push(rates["busy"] / rates["none"]);
        }
        let range = |v: &[f64]| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            format!("{:.2}x ({lo:.2}..{hi:.2})", median(v))
        };
        println!(
            "| {objects} | {:.0} ms | {:.0} ms | {reads} | {:.0} | {:.1} MiB | {} | {} |",
            median(&walls) * 1000.0,
            median(&cpus) * 1000.0,
            bytes as f64 / (1024.0 * 1024.0),
            peak - baseline,
            range(&ratios[0]),
            range(&ratios[1]),
        );
    }
}

//! The target's slowdown under each monitoring mode, side by side in one run: unmonitored;
//! the monitor as `run` and `serve` follow a target by default (a `TargetMonitor` ticking at
//! 1 Hz with eBPF tracing, its syscall and page-fault programs attached while the target grows:
//! `--kernel-tracing on-growth`); the eBPF tracer attached throughout (`Tracer::start` +
//! `follow`: `--kernel-tracing always`); that tracer attached for another process only (what
//! it costs every process of the machine); and procfs-only sampling at 1 Hz (a `Sampler`). Two
//! workloads from `tests/python/`: an fd churn loop (operations per second over fixed windows;
//! goal: the default monitor's slowdown < 2%) and a 1 GiB memory touch, one page fault per 4 KiB
//! page (seconds; goal: < 5%).
//!
//! One workload process serves every measurement (each mode attaches to it, measures, and lets
//! go), so the differences between processes stay out of the ratios. Runs are interleaved in
//! rounds (the order rotates each round) so machine noise hits every mode; each round gives one
//! ratio per monitored mode, the median of the rounds is the figure.
//! Prints the events the tracer received and dropped, and says loudly when the ring buffer
//! overflowed. Asserts nothing.
//!
//! Run: `cargo bench -p leak-monitor --bench ebpf_overhead` (`-- --pairs N`, `-- --only fd`,
//! `-- --only memory`, `-- --mib N`). The eBPF column needs root (or CAP_BPF + CAP_PERFMON).

mod support;

use leak_monitor::capabilities::Privileges;
use leak_monitor::events::{Engagement, EventStats, GateStats, Tracer};
use leak_monitor::monitor::{TargetMonitor, Tracing};
use leak_monitor::sampling::Sampler;
use leak_monitor::targets;
use std::collections::BTreeMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{median, workload, Python};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Unmonitored,
    /// The default monitor: `TargetMonitor` + tracing on growth.
    Monitor,
    /// The tracer attached throughout.
    Ebpf,
    /// The tracer attached throughout, following no process: the workload is a bystander.
    Bystander,
    Procfs,
}

const MODES: [Mode; 5] = [
    Mode::Unmonitored,
    Mode::Monitor,
    Mode::Ebpf,
    Mode::Bystander,
    Mode::Procfs,
];
const MONITORED: [Mode; 4] = [Mode::Monitor, Mode::Ebpf, Mode::Bystander, Mode::Procfs];

/// One benchmark program and how to read its result.
struct Workload {
    title: String,
    script: &'static str,
    args: Vec<String>,
    /// Unit of the figure the program prints.
    unit: &'static str,
    /// True when the figure is a rate (higher is faster), false when it is a duration.
    rate: bool,
    goal_percent: f64,
}

impl Workload {
    /// Time per unit of work, whatever the program reports, so that ratios > 1 mean slower.
    fn cost(&self, figure: f64) -> f64 {
        if self.rate {
            1.0 / figure
        } else {
            figure
        }
    }
}

/// What one run measured.
struct Run {
    figure: f64,
    /// eBPF runs: what the tracer saw. Procfs runs: ticks taken.
    events: Option<EventStats>,
    ticks: u32,
    /// eBPF runs: CPU seconds the tracer's draining thread used during the run.
    drainer_cpu: f64,
    /// eBPF runs: times the draining thread was woken during the run.
    drainer_wakeups: u64,
    /// Monitor runs: how long the gated programs were attached.
    gate: Option<GateStats>,
}

fn flag<T: std::str::FromStr>(name: &str) -> Option<T> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    let value = args.get(i + 1).expect("a value after the flag");
    Some(value.parse().ok().expect("a valid value after the flag"))
}

fn main() {
    let pairs: usize = flag("--pairs").unwrap_or(5);
    let mib: u64 = flag("--mib").unwrap_or(1024);
    let only: Option<String> = flag("--only");
    let ebpf = match Tracer::start(Privileges::current()) {
        Ok(tracer) => {
            drop(tracer);
            true
        }
        Err(err) => {
            println!("eBPF column skipped: {err}");
            false
        }
    };

    let mut workloads = Vec::new();
    if only.as_deref().is_none_or(|o| o == "fd") {
        workloads.push(Workload {
            title: "fd churn: os.close(os.open(path, O_RDONLY)) loop, 4 windows x 0.5 s".into(),
            script: "bench_fd_churn.py",
            args: vec![
                "--windows".into(),
                "4".into(),
                "--window".into(),
                "0.5".into(),
            ],
            unit: "ops/s",
            rate: true,
            goal_percent: 2.0,
        });
    }
    if only.as_deref().is_none_or(|o| o == "memory") {
        workloads.push(Workload {
            title: format!("memory touch: {mib} MiB of new memory, one write per 4 KiB page"),
            script: "bench_touch_memory.py",
            args: vec!["--mib".into(), mib.to_string()],
            unit: "s",
            rate: false,
            goal_percent: 5.0,
        });
    }
    for w in &workloads {
        bench(w, pairs, ebpf);
    }
}

fn bench(w: &Workload, rounds: usize, ebpf: bool) {
    println!();
    println!("{} ({rounds} rounds, order rotating):", w.title);
    let header: Vec<String> = MONITORED
        .iter()
        .map(|&mode| {
            format!(
                "{:>12} {:>7}",
                format!("{} {}", short(mode), w.unit),
                "ratio"
            )
        })
        .collect();
    println!(
        "  round  {:>12}  {}",
        format!("none {}", w.unit),
        header.join("  ")
    );
    let script = workload(w.script);
    let mut args = vec![script.to_string_lossy().into_owned()];
    args.extend(w.args.iter().cloned());
    let mut python = Python::start(&args);
    let mut ratios: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut received: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut dropped: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut overflowed_rounds = Vec::new();
    let mut ticks = 0;
    let mut drainer_cpu = 0.0;
    let mut drainer_wakeups = 0;
    let mut engagements = 0;
    let mut engaged_seconds = 0.0;
    for round in 0..rounds {
        let mut figures: BTreeMap<&str, f64> = BTreeMap::new();
        for k in 0..MODES.len() {
            let mode = MODES[(round + k) % MODES.len()];
            if matches!(mode, Mode::Ebpf | Mode::Monitor | Mode::Bystander) && !ebpf {
                continue;
            }
            let run = run_once(&mut python, mode);
            figures.insert(name(mode), run.figure);
            ticks += run.ticks;
            drainer_cpu += run.drainer_cpu;
            drainer_wakeups += run.drainer_wakeups;
            if let Some(gate) = run.gate {
                engagements += gate.engagements;
                engaged_seconds += gate.attached_seconds;
            }
            if let Some(stats) = run.events {
                for (kind, n) in &stats.received {
                    *received.entry(kind).or_default() += n;
                }
                let lost: u64 = stats.dropped.values().sum();
                if lost > 0 {
                    overflowed_rounds.push((round + 1, lost));
                }
                for (kind, n) in &stats.dropped {
                    *dropped.entry(kind).or_default() += n;
                }
            }
        }
        let base = figures[name(Mode::Unmonitored)];
        let cell = |mode: Mode, ratios: &mut BTreeMap<&str, Vec<f64>>| match figures.get(name(mode))
        {
            Some(&figure) => {
                let ratio = w.cost(figure) / w.cost(base);
                ratios.entry(name(mode)).or_default().push(ratio);
                format!("{figure:>12.3} {ratio:>7.3}")
            }
            None => format!("{:>12} {:>7}", "-", "-"),
        };
        let cells: Vec<String> = MONITORED
            .iter()
            .map(|&mode| cell(mode, &mut ratios))
            .collect();
        println!("  {:>5}  {base:>12.3}  {}", round + 1, cells.join("  "));
    }
    for mode in MONITORED {
        let Some(r) = ratios.get(name(mode)) else {
            continue;
        };
        let ratio = median(r);
        let slowdown = (ratio - 1.0) * 100.0;
        let goal = if mode == Mode::Monitor {
            let meets = if slowdown < w.goal_percent {
                "meets"
            } else {
                "MISSES"
            };
            format!("   goal < {}%: {meets}", w.goal_percent)
        } else {
            String::new()
        };
        println!(
            "  median ratio, {:<11} {ratio:.3}  (slowdown {slowdown:+.1}%){goal}",
            format!("{}:", name(mode))
        );
    }
    if ebpf {
        println!(
            "  monitor: syscall and page-fault programs engaged {engagements} times, {engaged_seconds:.1} s \
             in all (all monitor runs)"
        );
        println!(
            "  events received by the tracer (all eBPF runs): {}",
            list(&received)
        );
        println!(
            "  events dropped (ring buffer full):             {}",
            if dropped.is_empty() {
                "none".into()
            } else {
                list(&dropped)
            }
        );
        println!(
            "  tracer's draining thread (all eBPF runs): {drainer_cpu:.2} s CPU, woken {drainer_wakeups} \
             times ({:.1} events per wake-up)",
            received.values().sum::<u64>() as f64 / drainer_wakeups.max(1) as f64
        );
        for (round, lost) in &overflowed_rounds {
            println!(
                "  !! RING BUFFER OVERFLOW in round {round}: {lost} events lost; the ledgers \
                 were re-read from procfs, and per-site attribution of those events is gone"
            );
        }
    }
    println!("  procfs ticks taken (all procfs runs): {ticks}");
    python.wait();
}

fn name(mode: Mode) -> &'static str {
    match mode {
        Mode::Unmonitored => "none",
        Mode::Monitor => "monitor",
        Mode::Ebpf => "always",
        Mode::Bystander => "bystander",
        Mode::Procfs => "procfs 1 Hz",
    }
}

/// Column headings.
fn short(mode: Mode) -> &'static str {
    match mode {
        Mode::Procfs => "procfs",
        other => name(other),
    }
}

fn list(counts: &BTreeMap<&'static str, u64>) -> String {
    counts
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Attaches the mode's monitor to the waiting program, has it measure once, returns its figure.
fn run_once(python: &mut Python, mode: Mode) -> Run {
    let pid = python.pid();
    let mut run = Run {
        figure: 0.0,
        events: None,
        ticks: 0,
        drainer_cpu: 0.0,
        drainer_wakeups: 0,
        gate: None,
    };
    match mode {
        Mode::Unmonitored => {
            run.figure = measure(python);
        }
        Mode::Ebpf | Mode::Bystander => {
            let tracer = Tracer::start(Privileges::current()).expect("starting the tracer");
            if mode == Mode::Ebpf {
                tracer.follow(pid).expect("following the target");
            }
            with_drainer_usage(&mut run, || measure(python));
            run.events = Some(tracer.stats());
        }
        Mode::Monitor => {
            let tracing = Arc::new(
                Tracing::start(Privileges::current(), false, Engagement::OnGrowth)
                    .expect("starting the tracer"),
            );
            let info = targets::identify(pid, None).expect("identifying the target");
            let mut monitor =
                TargetMonitor::attach(info, Duration::from_secs(1)).expect("attaching a monitor");
            monitor
                .trace_with(Arc::clone(&tracing))
                .expect("following the target");
            let ticking = EverySecond::start(monitor, |monitor| {
                let _ = monitor.tick(Instant::now());
            });
            with_drainer_usage(&mut run, || measure(python));
            drop(ticking.stop());
            run.events = Some(tracing.tracer.stats());
            run.gate = Some(tracing.tracer.gate_stats());
        }
        Mode::Procfs => {
            let sampler = Sampler::attach(pid).expect("attaching a Sampler");
            let ticking = EverySecond::start((sampler, 0u32), |(sampler, ticks)| {
                if sampler.sample().is_ok() {
                    *ticks += 1;
                }
            });
            run.figure = measure(python);
            run.ticks = ticking.stop().1;
        }
    }
    run
}

/// Runs `figure` and records in `run` the CPU and wake-ups of the tracer's draining thread meanwhile
/// (with a pause after, for it to empty the ring buffer and read the drop counters).
fn with_drainer_usage(run: &mut Run, figure: impl FnOnce() -> f64) {
    let (cpu0, wakeups0) = drainer_usage();
    run.figure = figure();
    std::thread::sleep(Duration::from_millis(300));
    let (cpu1, wakeups1) = drainer_usage();
    run.drainer_cpu = cpu1 - cpu0;
    run.drainer_wakeups = wakeups1 - wakeups0;
}

/// A thread calling `tick` on its state once a second, as a monitor ticks, until stopped.
struct EverySecond<T> {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<T>,
}

impl<T: Send + 'static> EverySecond<T> {
    fn start(mut state: T, mut tick: impl FnMut(&mut T) + Send + 'static) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut next = Instant::now();
            loop {
                tick(&mut state);
                next += Duration::from_secs(1);
                match stopped.recv_timeout(next.saturating_duration_since(Instant::now())) {
                    Err(RecvTimeoutError::Timeout) => continue,
                    _ => return state,
                }
            }
        });
        EverySecond { stop, thread }
    }

    /// Stops the thread and gives the state back.
    fn stop(self) -> T {
        let _ = self.stop.send(());
        self.thread.join().expect("ticking thread")
    }
}

/// The tracer's draining thread so far: CPU seconds used and times it went to sleep (each
/// voluntary context switch is one wake-up by the ring buffer or the poll timeout). Zeros when
/// it is not running.
fn drainer_usage() -> (f64, u64) {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (0.0, 0);
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        // The kernel keeps 15 bytes of a thread name.
        if !"leak-monitor-events".starts_with(comm.trim()) || comm.trim().len() < 15 {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
            .sum();
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let switches = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        // USER_HZ is 100 on every Linux ABI.
        return (ticks / 100.0, switches);
    }
    (0.0, 0)
}

/// Tells the program to go and reads its `RESULT` line: one figure, or the mean of its windows.
fn measure(python: &mut Python) -> f64 {
    python.send("go");
    let line = python.read_line();
    let values: Vec<f64> = line
        .strip_prefix("RESULT ")
        .unwrap_or_else(|| panic!("expected RESULT, got {line:?}"))
        .split_whitespace()
        .map(|v| v.parse().expect("a number in RESULT"))
        .collect();
    assert!(!values.is_empty(), "empty RESULT");
    values.iter().sum::<f64>() / values.len() as f64
}

//! `cargo xtask bench-daemon`: the daemon's own cost while it follows a fleet of Python
//! processes at 1 Hz: N idle ones plus a few growing ones (one leaking memory, one leaking
//! fds, ...), with and without eBPF, and then its memory over a long run with leaking targets
//! and after they exit. Prints a table; asserts nothing (goals are printed beside the figures).
//!
//! The per-target sampling cost is measured by `cargo bench -p leak-monitor --bench sampling`.

use crate::children::{cpu_seconds, die_with_parent, status_field, Reaped};
use crate::workspace_root;
use anyhow::{bail, Context};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Options {
    /// Idle Python targets per row of the sweep (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "0,50,200,500")]
    pub targets: Vec<usize>,
    /// Growing targets beside the idle ones (alternately leaking memory and fds, 1 Hz).
    #[arg(long, default_value_t = 2)]
    pub growing: usize,
    /// Seconds of measurement per row, after the settling time.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Seconds between starting the daemon and the measurement.
    #[arg(long, default_value_t = 15)]
    pub settle: u64,
    /// Rows without eBPF only (`--no-ebpf`), or with only (default: both).
    #[arg(long, value_enum)]
    pub only: Option<Mode>,
    /// Minutes of the memory check: the growing targets leak for this long (at `--leak-rate`
    /// times the sweep's rate), the daemon's RSS is sampled, then they exit. 0 skips it.
    #[arg(long, default_value_t = 0.0)]
    pub memory_minutes: f64,
    /// Speed-up of the memory check's leaks (time compression: 60 = an hour of a 1/s leak in a
    /// minute).
    #[arg(long, default_value_t = 10)]
    pub leak_rate: u32,
    /// The leak-monitor binary to measure (default: build and use target/release/leak-monitor).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Milliseconds each growing target computes (pure Python, holding the GIL) after each leak
    /// before it sleeps: 0 leaks and sleeps; 500 keeps it busy half the time.
    #[arg(long, default_value_t = 0)]
    pub busy_ms: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Ebpf,
    NoEbpf,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Ebpf => "eBPF on growth",
            Mode::NoEbpf => "--no-ebpf",
        }
    }
}

/// What one daemon measurement found.
pub struct DaemonFigures {
    pub idle: usize,
    pub growing: usize,
    pub mode: Mode,
    pub rss_kib: u64,
    pub peak_kib: u64,
    pub cpu_percent: f64,
    /// CPU of the stack probe's thread (Python stacks sampled without eBPF), per growing
    /// target, in % of a core.
    pub probe_percent_per_growing: f64,
    pub threads: u64,
    pub fds: usize,
    pub series: Option<usize>,
}

impl DaemonFigures {
    /// The goal of the issue for this many targets, if it sets one.
    fn goal(&self) -> Option<(f64, u64)> {
        let total = self.idle + self.growing;
        if total <= 52 {
            Some((1.0, 20))
        } else if total <= 502 {
            Some((5.0, 64))
        } else {
            None
        }
    }

    fn row(&self) -> String {
        let verdict = match self.goal() {
            Some((cpu, mib)) => {
                let meets = self.cpu_percent <= cpu && self.rss_kib <= mib * 1024;
                format!(
                    "≤ {cpu} % and ≤ {mib} MiB: {}",
                    if meets { "meets" } else { "MISSES" }
                )
            }
            None => "-".into(),
        };
        format!(
            "| {} | {} | {} | {:.2} % | {:.2} % | {:.1} MiB | {:.1} MiB | {} | {} | {} | {} |",
            self.idle,
            self.growing,
            self.mode.label(),
            self.cpu_percent,
            self.probe_percent_per_growing,
            self.rss_kib as f64 / 1024.0,
            self.peak_kib as f64 / 1024.0,
            self.threads,
            self.fds,
            self.series.map_or("-".into(), |s| s.to_string()),
            verdict
        )
    }
}

const TABLE_HEAD: [&str; 2] = [
    "| idle | growing | tracing | daemon CPU | stack probe CPU per growing target | RSS | peak RSS | threads | fds | /metrics series | goal |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
];

pub fn run(options: &Options) -> anyhow::Result<()> {
    let binary = match &options.binary {
        Some(path) => path.clone(),
        None => build()?,
    };
    let modes: Vec<Mode> = match options.only {
        Some(mode) => vec![mode],
        None => vec![Mode::Ebpf, Mode::NoEbpf],
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "bench-daemon: {} s per row after {} s settling, {} growing targets (busy {} ms a second); load average before: {}",
        options.seconds,
        options.settle,
        options.growing,
        options.busy_ms,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    for line in TABLE_HEAD {
        println!("{line}");
    }
    for &idle in &options.targets {
        for &mode in &modes {
            let figures = measure(&binary, idle, options.growing, mode, options)?;
            println!("{}", figures.row());
        }
    }
    if options.memory_minutes > 0.0 {
        for &mode in &modes {
            memory_check(&binary, mode, options)?;
        }
    }
    Ok(())
}

fn build() -> anyhow::Result<PathBuf> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "leak-monitor"])
        .status()
        .context("building leak-monitor")?;
    if !status.success() {
        bail!("build failed");
    }
    Ok(workspace_root().join("target/release/leak-monitor"))
}

/// The Python program of a growing target: the `index`th leaks memory when even, fds when odd,
/// `rate` times a second.
/// After each leak it computes for `busy_ms` (capped at the period), then sleeps the rest.
fn growing_program(index: usize, rate: u32, busy_ms: u32) -> String {
    let period = 1.0 / f64::from(rate.max(1));
    let busy = (f64::from(busy_ms) / 1000.0).min(period);
    let leak = if index.is_multiple_of(2) {
        "kept.append(bytearray(64 * 1024))"
    } else {
        "kept.append(os.open('/dev/null', os.O_RDONLY))"
    };
    format!(
        "import os, time\nkept = []\nwhile True:\n    start = time.monotonic()\n    {leak}\n    \
         n = 0\n    while time.monotonic() - start < {busy}:\n        n = (n * 31 + 7) % 1000003\n    \
         time.sleep(max(0.0, {period} - (time.monotonic() - start)))\n"
    )
}

/// Starts the targets: `idle` sleeping ones and `growing` leaking ones, each carrying `marker`.
fn start_targets(
    marker: &str,
    idle: usize,
    growing: usize,
    rate: u32,
    busy_ms: u32,
) -> anyhow::Result<(Vec<Reaped>, Vec<Reaped>)> {
    // Each target says when its interpreter is up: the daemon then meets initialised targets,
    // and the figures are its steady cost, not its retries on half-started interpreters.
    let spawn = |program: &str| -> anyhow::Result<Reaped> {
        let program = format!("import sys\nsys.stdout.write('r')\nsys.stdout.flush()\n{program}");
        Ok(Reaped(
            die_with_parent(Command::new("python3").args(["-c", &program, marker]))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .context("starting python3")?,
        ))
    };
    let mut idle = (0..idle)
        .map(|_| spawn("import time\nwhile True: time.sleep(60)"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut growing = (0..growing)
        .map(|i| spawn(&growing_program(i, rate, busy_ms)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for target in idle.iter_mut().chain(growing.iter_mut()) {
        let mut ready = [0u8; 1];
        target
            .0
            .stdout
            .as_mut()
            .context("a target's stdout")?
            .read_exact(&mut ready)
            .context("waiting for a target to start")?;
    }
    Ok((idle, growing))
}

/// A free local port for the daemon's metrics endpoint.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start_daemon(binary: &Path, marker: &str, mode: Mode, port: u16) -> anyhow::Result<Reaped> {
    let listen = format!("127.0.0.1:{port}");
    let mut command = Command::new(binary);
    command.args(["serve", "--match", marker, "--listen", &listen]);
    if mode == Mode::NoEbpf {
        command.arg("--no-ebpf");
    }
    Ok(Reaped(
        die_with_parent(&mut command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting leak-monitor serve")?,
    ))
}

/// The number of series the daemon's /metrics serves (non-comment lines).
fn series(port: u16) -> Option<usize> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    let (_, body) = body.split_once("\r\n\r\n")?;
    Some(
        body.lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count(),
    )
}

/// Starts `idle` + `growing` targets and `leak-monitor serve` following them, and reads the
/// daemon's CPU over `seconds` after the settling time, then its RSS, threads and fds.
fn measure(
    binary: &Path,
    idle: usize,
    growing: usize,
    mode: Mode,
    options: &Options,
) -> anyhow::Result<DaemonFigures> {
    // A marker in the command line that only these processes have, for --match.
    let marker = format!("leak_monitor_bench_{}_{idle}", std::process::id());
    let targets = start_targets(&marker, idle, growing, 1, options.busy_ms)?;
    let port = free_port()?;
    let mut daemon = start_daemon(binary, &marker, mode, port)?;
    let pid = daemon.0.id();
    // Let it discover everything and fill its series before measuring.
    std::thread::sleep(Duration::from_secs(options.settle));
    if let Ok(Some(status)) = daemon.0.try_wait() {
        bail!("leak-monitor serve exited early ({status})");
    }
    let (cpu0, probe0, t0) = (cpu_seconds(pid)?, probe_cpu_seconds(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(options.seconds));
    let (cpu1, probe1) = (cpu_seconds(pid)?, probe_cpu_seconds(pid));
    let elapsed = t0.elapsed().as_secs_f64();
    let figures = DaemonFigures {
        idle,
        growing,
        mode,
        rss_kib: status_field(pid, "VmRSS:")?,
        peak_kib: status_field(pid, "VmHWM:")?,
        cpu_percent: 100.0 * (cpu1 - cpu0) / elapsed,
        probe_percent_per_growing: 100.0 * (probe1 - probe0) / elapsed / growing.max(1) as f64,
        threads: status_field(pid, "Threads:")?,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))?.count(),
        series: series(port),
    };
    // Dropping the guards kills and reaps the daemon, then the targets.
    drop(daemon);
    drop(targets);
    Ok(figures)
}

/// CPU seconds of the daemon's stack probe thread (`leak-monitor-stacks`, shown as
/// `leak-monitor-st`), from its schedstat (nanoseconds); 0 when it has not started.
fn probe_cpu_seconds(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    tasks
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|comm| comm.starts_with("leak-monitor-st"))
        })
        .filter_map(|task| {
            let schedstat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            schedstat.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum::<f64>()
        / 1e9
}

/// The memory check: the growing targets leak `leak_rate` times faster than in the sweep for
/// `memory_minutes`; the daemon's RSS is printed every tenth of the run, then again 30 s after
/// the leaking targets were killed.
fn memory_check(binary: &Path, mode: Mode, options: &Options) -> anyhow::Result<()> {
    let marker = format!("leak_monitor_bench_mem_{}", std::process::id());
    let (idle, growing) = start_targets(
        &marker,
        10,
        options.growing,
        options.leak_rate,
        options.busy_ms,
    )?;
    let port = free_port()?;
    let mut daemon = start_daemon(binary, &marker, mode, port)?;
    let pid = daemon.0.id();
    std::thread::sleep(Duration::from_secs(options.settle));
    if let Ok(Some(status)) = daemon.0.try_wait() {
        bail!("leak-monitor serve exited early ({status})");
    }
    let run = Duration::from_secs_f64(options.memory_minutes * 60.0);
    println!(
        "memory check ({}): 10 idle + {} growing targets leaking {}/s for {:.1} min \
         (= {:.0} min of a 1/s leak)",
        mode.label(),
        options.growing,
        options.leak_rate,
        options.memory_minutes,
        options.memory_minutes * f64::from(options.leak_rate)
    );
    let (cpu0, t0) = (cpu_seconds(pid)?, Instant::now());
    let baseline = status_field(pid, "VmRSS:")?;
    println!("  t = 0 s: RSS {:.1} MiB", baseline as f64 / 1024.0);
    let step = run / 10;
    for i in 1..=10 {
        std::thread::sleep(step);
        println!(
            "  t = {:.0} s: RSS {:.1} MiB",
            (step * i).as_secs_f64(),
            status_field(pid, "VmRSS:")? as f64 / 1024.0
        );
    }
    let cpu = 100.0 * (cpu_seconds(pid)? - cpu0) / t0.elapsed().as_secs_f64();
    let leaking = status_field(pid, "VmRSS:")?;
    drop(growing);
    std::thread::sleep(Duration::from_secs(30));
    let after = status_field(pid, "VmRSS:")?;
    println!(
        "  while leaking: {:+.0} KiB/s ({:.2} % CPU); 30 s after the growing targets exit: RSS {:.1} MiB ({:+.1} MiB from t = 0)",
        (leaking as f64 - baseline as f64) / run.as_secs_f64(),
        cpu,
        after as f64 / 1024.0,
        (after as f64 - baseline as f64) / 1024.0
    );
    drop(daemon);
    drop(idle);
    Ok(())
}

/// One row of the sweep (`targets` idle + 2 growing, eBPF on growth) with its table head, for
/// `cargo xtask bench`.
pub fn summary_lines(targets: usize, seconds: u64) -> anyhow::Result<Vec<String>> {
    let options = Options {
        targets: vec![targets],
        growing: 2,
        seconds,
        settle: 10,
        only: Some(Mode::Ebpf),
        memory_minutes: 0.0,
        leak_rate: 10,
        binary: None,
        busy_ms: 0,
    };
    let binary = build()?;
    let figures = measure(&binary, targets, options.growing, Mode::Ebpf, &options)?;
    let mut lines = vec![format!(
        "leak-monitor serve following {targets} idle + 2 growing Python processes at 1 Hz for {seconds} s:"
    )];
    lines.extend(TABLE_HEAD.iter().map(|l| l.to_string()));
    lines.push(figures.row());
    Ok(lines)
}

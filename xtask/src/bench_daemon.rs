//! `cargo xtask bench-daemon`: the daemon's own cost while following many idle Python
//! processes at 1 Hz. Prints its RSS and CPU use; goal: under 20 MB RSS.
//!
//! The per-target sampling cost is measured by `cargo bench -p leak-monitor --bench sampling`.

use crate::children::{cpu_seconds, die_with_parent, status_field, Reaped};
use crate::workspace_root;
use anyhow::{bail, Context};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one daemon measurement found.
pub struct DaemonFigures {
    pub targets: usize,
    pub seconds: u64,
    pub rss_kib: u64,
    pub peak_kib: u64,
    pub cpu_percent: f64,
    pub fds: usize,
}

impl DaemonFigures {
    /// The figures, one per line, as `cargo xtask bench-daemon` prints them.
    pub fn lines(&self) -> Vec<String> {
        vec![
            format!(
                "leak-monitor serve following {} idle Python processes at 1 Hz for {} s:",
                self.targets, self.seconds
            ),
            format!(
                "  RSS      {:.1} MiB (peak {:.1} MiB)   goal < 20 MB: {}",
                self.rss_kib as f64 / 1024.0,
                self.peak_kib as f64 / 1024.0,
                if self.rss_kib * 1024 < 20_000_000 {
                    "meets"
                } else {
                    "MISSES"
                }
            ),
            format!(
                "  CPU      {:.2}% of one core ({:.3} ms per target tick)",
                self.cpu_percent,
                10.0 * self.cpu_percent / self.targets.max(1) as f64
            ),
            format!("  open fds {}", self.fds),
        ]
    }
}

pub fn run(targets: usize, seconds: u64) -> anyhow::Result<()> {
    for line in measure(targets, seconds)?.lines() {
        println!("{line}");
    }
    Ok(())
}

/// Builds the release binary, starts `targets` idle Python processes and `leak-monitor serve`
/// following them, and reads the daemon's RSS and CPU over `seconds` after a settling time.
pub fn measure(targets: usize, seconds: u64) -> anyhow::Result<DaemonFigures> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "leak-monitor"])
        .status()
        .context("building leak-monitor")?;
    if !status.success() {
        bail!("build failed");
    }
    let binary = workspace_root().join("target/release/leak-monitor");
    // A marker in the command line that only these processes have, for --match.
    let marker = format!("leak_monitor_bench_{}", std::process::id());
    let mut idle = Vec::with_capacity(targets);
    for _ in 0..targets {
        idle.push(Reaped(
            die_with_parent(Command::new("python3").args([
                "-c",
                "import time\nwhile True: time.sleep(60)",
                &marker,
            ]))
            .stdin(Stdio::null())
            .spawn()
            .context("starting python3")?,
        ));
    }
    let mut daemon = Reaped(
        die_with_parent(&mut Command::new(&binary))
            .args(["serve", "--match", &marker, "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting leak-monitor serve")?,
    );
    let pid = daemon.0.id();
    // Let it discover everything and fill its series before measuring.
    std::thread::sleep(Duration::from_secs(5));
    if let Ok(Some(status)) = daemon.0.try_wait() {
        bail!("leak-monitor serve exited early ({status})");
    }
    let (cpu0, t0) = (cpu_seconds(pid)?, Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let (cpu1, elapsed) = (cpu_seconds(pid)?, t0.elapsed().as_secs_f64());
    let rss_kib = status_field(pid, "VmRSS:")?;
    let peak_kib = status_field(pid, "VmHWM:")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    // Dropping the guard kills and reaps the daemon (clearing the Vec would only detach it).
    drop(daemon);
    Ok(DaemonFigures {
        targets,
        seconds,
        rss_kib,
        peak_kib,
        cpu_percent: 100.0 * (cpu1 - cpu0) / elapsed,
        fds,
    })
}

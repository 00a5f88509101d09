//! `cargo xtask soak [--minutes N]`: the daemon's own health over a long run with churn.
//!
//! Runs `leak-monitor serve --match <marker>` while short-lived matching Python processes are
//! started and killed continuously (some leak fds, memory or threads, some are steady), scrapes
//! `/metrics` and samples the daemon's RSS and open fds every 10 s, then prints the first and
//! last values and the least-squares slope (bytes/min, fds/min), over the whole run and over its
//! second half (after warm-up). A daemon that leaks itself shows a positive second-half slope.
//! Not part of the test suite.

use crate::children::{status_field, Reaped};
use anyhow::{bail, Context};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How often the daemon is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// How many matching workers are alive at any time.
const WORKERS: usize = 6;

/// The workers: each prints nothing, lives until killed, and carries the marker in argv.
const WORKLOADS: [(&str, &str); 4] = [
    (
        "fd-leak",
        "import time\nkeep=[]\nwhile True:\n    keep.append(open('/dev/null'))\n    time.sleep(0.05)",
    ),
    (
        "rss-leak",
        "import time\nkeep=[]\nwhile True:\n    keep.append(bytearray(65536))\n    time.sleep(0.05)",
    ),
    (
        "thread-leak",
        "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n    time.sleep(0.2)",
    ),
    ("steady", "import time\nwhile True:\n    time.sleep(1)"),
];

/// A matching worker and when it is to be killed.
struct Worker {
    // Killed and reaped when the worker is dropped.
    _child: Reaped,
    dies_at: Instant,
}

/// One observation of the daemon.
struct Point {
    minutes: f64,
    rss_bytes: f64,
    fds: f64,
}

pub fn run(minutes: f64) -> anyhow::Result<()> {
    if !(minutes.is_finite() && minutes > 0.0) {
        bail!("--minutes must be positive");
    }
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "leak-monitor"])
        .status()
        .context("building leak-monitor")?;
    if !status.success() {
        bail!("build failed");
    }
    let binary = crate::workspace_root().join("target/release/leak-monitor");
    let marker = format!("leak_monitor_soak_{}", std::process::id());
    let log_path = std::env::temp_dir().join(format!("{marker}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let daemon = Reaped(
        Command::new(&binary)
            .args(["serve", "--match"])
            .arg(format!("soak={marker}"))
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting leak-monitor serve")?,
    );
    let pid = daemon.0.id();
    let addr = wait_for_listen_addr(&log_path)?;
    println!(
        "soak: daemon pid {pid} on {addr}, marker {marker}, log {}",
        log_path.display()
    );

    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(minutes * 60.0);
    let mut workers: Vec<Worker> = Vec::with_capacity(WORKERS);
    let mut rng = Lcg(u64::from(std::process::id()) | 1);
    let (mut spawned, mut scrapes_ok, mut scrapes_failed) = (0u64, 0u64, 0u64);
    let mut points = Vec::new();
    let mut next_sample = started;
    while Instant::now() < deadline {
        let now = Instant::now();
        workers.retain(|w| w.dies_at > now);
        while workers.len() < WORKERS {
            let (_, program) = WORKLOADS[rng.below(WORKLOADS.len() as u64) as usize];
            let child = Command::new("python3")
                .args(["-c", program, &marker])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting python3")?;
            let lifetime = Duration::from_millis(2_000 + rng.below(18_000));
            workers.push(Worker {
                _child: Reaped(child),
                dies_at: now + lifetime,
            });
            spawned += 1;
        }
        if now >= next_sample {
            if daemon_exited(pid) {
                bail!("the daemon exited; see {}", log_path.display());
            }
            match scrape(addr) {
                Ok(()) => scrapes_ok += 1,
                Err(_) => scrapes_failed += 1,
            }
            let point = Point {
                minutes: now.duration_since(started).as_secs_f64() / 60.0,
                rss_bytes: status_field(pid, "VmRSS:")? as f64 * 1024.0,
                fds: std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as f64,
            };
            println!(
                "soak: {:6.1} min  rss {:8.2} MiB  fds {:4}  workers spawned {spawned}",
                point.minutes,
                point.rss_bytes / 1_048_576.0,
                point.fds
            );
            points.push(point);
            next_sample += SAMPLE_EVERY;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(workers);
    let exited = daemon_exited(pid);
    drop(daemon);
    print_summary(&points, spawned, scrapes_ok, scrapes_failed);
    if exited {
        bail!(
            "the daemon exited during the soak; see {}",
            log_path.display()
        );
    }
    if scrapes_failed > 0 {
        bail!("{scrapes_failed} scrapes of /metrics failed");
    }
    Ok(())
}

fn print_summary(points: &[Point], spawned: u64, scrapes_ok: u64, scrapes_failed: u64) {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        println!("soak: no samples");
        return;
    };
    let second_half = &points[points.len() / 2..];
    println!("soak summary ({:.1} min, {spawned} workers started and killed, {scrapes_ok} scrapes ok, {scrapes_failed} failed):", last.minutes);
    println!(
        "  rss  first {:.2} MiB  last {:.2} MiB  slope {:+.0} bytes/min (second half {:+.0} bytes/min)",
        first.rss_bytes / 1_048_576.0,
        last.rss_bytes / 1_048_576.0,
        slope(points, |p| p.rss_bytes),
        slope(second_half, |p| p.rss_bytes)
    );
    println!(
        "  fds  first {}  last {}  slope {:+.3} fds/min (second half {:+.3} fds/min)",
        first.fds,
        last.fds,
        slope(points, |p| p.fds),
        slope(second_half, |p| p.fds)
    );
}

/// Least-squares slope per minute; 0 with fewer than two points.
fn slope(points: &[Point], value: impl Fn(&Point) -> f64) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_t = points.iter().map(|p| p.minutes).sum::<f64>() / n;
    let mean_v = points.iter().map(&value).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for p in points {
        num += (p.minutes - mean_t) * (value(p) - mean_v);
        den += (p.minutes - mean_t).powi(2);
    }
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// Reads the address from the daemon's `serving metrics on http://ADDR/metrics` log line.
fn wait_for_listen_addr(log: &std::path::Path) -> anyhow::Result<SocketAddr> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(addr) = text
            .lines()
            .find_map(|l| l.split_once("serving metrics on http://"))
            .and_then(|(_, rest)| rest.strip_suffix("/metrics"))
            .and_then(|addr| addr.parse().ok())
        {
            return Ok(addr);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "the daemon logged no metrics address; see {}",
        log.display()
    )
}

fn scrape(addr: SocketAddr) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    if response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(std::io::Error::other("not 200"))
    }
}

fn daemon_exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
        })
        .unwrap_or(true)
}

/// A small deterministic generator for worker kinds and lifetimes (no dependency needed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound.max(1)
    }
}

//! `cargo xtask bench`: every benchmark in one go. Runs the `sampling` and `ebpf_overhead`
//! benches (their output streamed as it comes), then the daemon bench, and ends with a summary
//! of the figures that have goals. The comparison with other tools is `cargo xtask bench-peers`
//! (too long to run here).

use anyhow::{bail, Context};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Lines of the benches' output that belong in the summary.
fn is_summary(line: &str) -> bool {
    let trimmed = line.trim_start();
    trimmed.starts_with("per target tick")
        || trimmed.starts_with("median ratio")
        || trimmed.starts_with("events dropped")
        || trimmed.starts_with("!!")
        || trimmed.starts_with("eBPF column skipped")
        || (!line.starts_with(' ') && line.ends_with(':') && !line.starts_with("Running"))
}

pub fn run(targets: usize, seconds: u64) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(cargo)
        .args([
            "bench",
            "-p",
            "leak-monitor",
            "--bench",
            "sampling",
            "--bench",
            "ebpf_overhead",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .context("running cargo bench")?;
    let stdout = child.stdout.take().context("cargo bench stdout")?;
    let mut summary = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo bench output")?;
        println!("{line}");
        if is_summary(&line) {
            summary.push(line);
        }
    }
    let status = child.wait().context("waiting for cargo bench")?;
    if !status.success() {
        bail!("cargo bench failed ({status})");
    }

    println!();
    let daemon = super::bench_daemon::summary_lines(targets, seconds)?;
    for line in &daemon {
        println!("{line}");
    }

    println!();
    println!("== summary");
    for line in summary.iter().chain(&daemon) {
        println!("{line}");
    }
    println!(
        "leak-monitor against py-spy, memray, Austin and BCC memleak: `cargo xtask bench-peers` \
         (about 10 minutes, not run here; figures in docs/benchmarks.md)"
    );
    Ok(())
}

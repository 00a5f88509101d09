//! `cargo xtask fuzz [--seconds N]`: runs every cargo-fuzz target of `fuzz/` for N seconds each
//! (nightly + cargo-fuzz, installed when missing). Crashes are left in `fuzz/artifacts/TARGET/`.

use anyhow::{bail, Context};
use std::process::Command;

pub fn run(seconds: u64) -> anyhow::Result<()> {
    let fuzz_dir = crate::workspace_root().join("fuzz");
    ensure_cargo_fuzz()?;
    let output = Command::new("cargo")
        .args(["+nightly", "fuzz", "list"])
        .current_dir(&fuzz_dir)
        .output()
        .context("running cargo fuzz list")?;
    if !output.status.success() {
        bail!(
            "cargo fuzz list failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let targets: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    let mut failed = Vec::new();
    for target in &targets {
        println!("fuzz: {target} for {seconds} s");
        let status = Command::new("cargo")
            .args(["+nightly", "fuzz", "run", target, "--"])
            .arg(format!("-max_total_time={seconds}"))
            .current_dir(&fuzz_dir)
            .status()
            .with_context(|| format!("running fuzz target {target}"))?;
        if !status.success() {
            failed.push(target.clone());
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzz targets found crashes (see fuzz/artifacts/): {}",
            failed.join(", ")
        );
    }
    println!(
        "fuzz: {} targets, {seconds} s each, no crash",
        targets.len()
    );
    Ok(())
}

fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    let present = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    let status = Command::new("cargo")
        .args(["install", "cargo-fuzz"])
        .status()
        .context("installing cargo-fuzz")?;
    if !status.success() {
        bail!("cargo install cargo-fuzz failed");
    }
    Ok(())
}

//! `cargo xtask test`: the one command that runs every test, as CI does.
//!
//! The privileged tests (ptrace, eBPF) must run, not skip: without root this fails and says so,
//! unless LEAK_MONITOR_SKIP_PRIVILEGED=1 is set deliberately.

use anyhow::{bail, Context};
use std::process::Command;

pub fn run(cargo_args: &[String]) -> anyhow::Result<()> {
    super::setup::run()?;
    let skip_privileged = std::env::var("LEAK_MONITOR_SKIP_PRIVILEGED").is_ok_and(|v| v == "1");
    if !super::setup::is_root() && !skip_privileged {
        bail!(
            "the privileged tests need root (ptrace and eBPF); run as root, or set \
             LEAK_MONITOR_SKIP_PRIVILEGED=1 to skip them knowingly"
        );
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["test", "--workspace", "--release"])
        .args(cargo_args)
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("tests failed ({status})");
    }
    Ok(())
}

//! `cargo xtask build-ebpf [--check]`: builds the kernel programs (`leak-monitor-ebpf`) with the
//! nightly toolchain and bpf-linker, and installs the object where leak-monitor embeds it.
//! `--check` builds into a scratch directory and fails when the committed object differs, so a
//! change to the programs cannot land without its object.
//!
//! The toolchain recipe (DESIGN.md): nightly + rust-src, and bpf-linker 0.13.0 built against the
//! nightly's own LLVM 22 through a folder whose `lib/libLLVM.so` links to it.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Command;

const NIGHTLY: &str = "nightly";
const BPF_LINKER_VERSION: &str = "0.13.0";
/// Where the committed object lives, relative to the workspace root.
pub const OBJECT: &str = "leak-monitor/src/events/leak-monitor.bpf.o";

pub fn run(check: bool) -> anyhow::Result<()> {
    let root = crate::workspace_root();
    ensure_toolchain()?;
    let target_dir = if check {
        std::env::temp_dir().join("leak-monitor-ebpf-check")
    } else {
        root.join("leak-monitor-ebpf/target")
    };
    let built = build(&root, &target_dir)?;
    let committed = root.join(OBJECT);
    if check {
        let fresh =
            std::fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
        let old = std::fs::read(&committed)
            .with_context(|| format!("reading {}", committed.display()))?;
        if fresh != old {
            bail!(
                "{OBJECT} is stale: the eBPF sources changed without it; run `cargo xtask build-ebpf` and commit the object"
            );
        }
        eprintln!(
            "xtask: {OBJECT} matches its sources ({} bytes)",
            fresh.len()
        );
    } else {
        std::fs::copy(&built, &committed)
            .with_context(|| format!("copying the object to {}", committed.display()))?;
        eprintln!("xtask: wrote {OBJECT}");
    }
    Ok(())
}

fn build(root: &Path, target_dir: &Path) -> anyhow::Result<PathBuf> {
    let status = Command::new("cargo")
        .arg(format!("+{NIGHTLY}"))
        .args(["build", "--release", "--locked"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(root.join("leak-monitor-ebpf"))
        // The outer cargo's settings (xtask's own target, rustc wrapper) must not leak in.
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .status()
        .context("running cargo +nightly build for leak-monitor-ebpf")?;
    if !status.success() {
        bail!("building leak-monitor-ebpf failed ({status})");
    }
    Ok(target_dir.join("bpfel-unknown-none/release/leak-monitor"))
}

/// Installs what building the programs needs: the nightly's rust-src and bpf-linker.
pub fn ensure_toolchain() -> anyhow::Result<()> {
    let rustup = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new("rustup")
            .args(args)
            .output()
            .context("running rustup")?;
        if !out.status.success() {
            bail!(
                "rustup {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let toolchains = rustup(&["toolchain", "list"])?;
    if !toolchains.lines().any(|l| l.starts_with(NIGHTLY)) {
        bail!("the eBPF build needs a nightly toolchain: `rustup toolchain install nightly`");
    }
    let components = rustup(&["component", "list", "--installed", "--toolchain", NIGHTLY])?;
    if !components.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("xtask: adding rust-src to the nightly toolchain");
        rustup(&["component", "add", "rust-src", "--toolchain", NIGHTLY])?;
    }
    if !super::setup::have("bpf-linker") {
        install_bpf_linker()?;
    }
    Ok(())
}

fn install_bpf_linker() -> anyhow::Result<()> {
    let sysroot = Command::new("rustc")
        .args([&format!("+{NIGHTLY}"), "--print", "sysroot"])
        .output()
        .context("asking the nightly for its sysroot")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    let lib = sysroot.join("lib");
    let llvm = std::fs::read_dir(&lib)
        .with_context(|| format!("listing {}", lib.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so."))
        })
        .with_context(|| format!("no libLLVM.so.* in {}", lib.display()))?;
    let prefix = std::env::temp_dir().join("leak-monitor-llvm-prefix");
    std::fs::create_dir_all(prefix.join("lib"))?;
    let link = prefix.join("lib/libLLVM.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&llvm, &link)
        .with_context(|| format!("linking {} to {}", link.display(), llvm.display()))?;
    eprintln!(
        "xtask: installing bpf-linker {BPF_LINKER_VERSION} against {}",
        llvm.display()
    );
    let status = Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--locked",
            "--version",
            BPF_LINKER_VERSION,
        ])
        .args(["--no-default-features", "--features", "llvm-22"])
        .env("LLVM_PREFIX", &prefix)
        .status()
        .context("running cargo install bpf-linker")?;
    if !status.success() {
        bail!("installing bpf-linker failed ({status})");
    }
    Ok(())
}

//! Installs what the tests need and a fresh machine lacks (Debian packages, PyPI modules,
//! CPython 3.14 and 3.15). Each step checks first, so running it again is cheap.

use anyhow::{bail, Context};
use std::process::Command;

/// Debian packages and the command each provides: promtool and prometheus (rule tests, the
/// end-to-end alerting test), chromium (the HTML report in a browser), systemd-analyze (verify
/// the unit file), tmux (`cargo xtask screenshots` captures `watch` in it).
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("promtool", "prometheus"),
    ("prometheus", "prometheus"),
    ("chromium", "chromium"),
    ("systemd-analyze", "systemd"),
    ("tmux", "tmux"),
];

/// Debian packages that provide no command, and a file each installs: a font, so Chromium's
/// screenshots show text; Debian's own static CPython 3.11 (`cargo xtask matrix`'s `3.11
/// debian` rows).
const DEBIAN_FILES: &[(&str, &str)] = &[
    (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "fonts-dejavu-core",
    ),
    ("/usr/bin/python3.11", "python3.11"),
];

pub fn run() -> anyhow::Result<()> {
    if !have("python3") {
        bail!("python3 is required (the tests run real Python processes)");
    }
    let mut missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .filter(|(command, _)| !have(command))
        .map(|(_, package)| *package)
        .chain(
            DEBIAN_FILES
                .iter()
                .filter(|(path, _)| !std::path::Path::new(path).exists())
                .map(|(_, package)| *package),
        )
        .collect();
    missing.dedup();
    if !missing.is_empty() {
        install_debian(&missing)?;
    }
    install_python_modules()?;
    install_newer_pythons()
}

/// CPython releases newer than pyenv has here, which the tests run under: unpacked from
/// Debian unstable's packages into /opt/newer-python by `xtask/newer-python.sh`, each with
/// Debian's non-PIE build of it beside it (`python3.14-nopie`).
const NEWER_PYTHONS: &[&str] = &["3.14", "3.15"];

pub(crate) fn install_newer_pythons() -> anyhow::Result<()> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/newer-python.sh");
    for version in NEWER_PYTHONS {
        let python = format!("/opt/newer-python/{version}/usr/bin/python{version}");
        // The matrix runs 3.14's non-PIE build too (`python3.14-nopie`, unpacked beside it;
        // `.no-nopie` marks a version Debian has none of).
        let exists = |path: String| std::path::Path::new(&path).exists();
        let nopie = exists(format!("{python}-nopie"))
            || exists(format!("/opt/newer-python/{version}/.no-nopie"));
        if exists(python) && nopie {
            continue;
        }
        if !is_root() {
            bail!("installing CPython {version} needs root: run `sudo bash {script} {version}`");
        }
        eprintln!(
            "xtask: installing CPython {version} from Debian unstable into /opt/newer-python"
        );
        run_quiet(Command::new("bash").arg(script).arg(version))
            .with_context(|| format!("installing CPython {version}"))?;
    }
    Ok(())
}

/// PyPI packages the tests use: numpy (a leak in C-extension-backed objects), gunicorn and
/// flask (a pool that recycles its workers, `tests/integration/pools.rs`).
const PYTHON_MODULES: &[&str] = &["numpy", "gunicorn", "flask"];

fn install_python_modules() -> anyhow::Result<()> {
    for module in PYTHON_MODULES {
        let present = Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !present {
            eprintln!("xtask: installing the Python module {module}");
            run_quiet(Command::new("python3").args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--root-user-action=ignore",
                module,
            ]))?;
        }
    }
    Ok(())
}

pub fn have(command: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {command} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn install_debian(packages: &[&str]) -> anyhow::Result<()> {
    eprintln!("xtask: installing {}", packages.join(" "));
    if !is_root() {
        bail!(
            "installing {} needs root: run `sudo apt-get install -y {}`",
            packages.join(" "),
            packages.join(" ")
        );
    }
    run_quiet(Command::new("apt-get").arg("update").arg("-qq"))?;
    run_quiet(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

fn run_quiet(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

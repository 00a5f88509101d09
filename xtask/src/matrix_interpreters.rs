//! The interpreters of `cargo xtask matrix`, as users start them, each named by a key that
//! stays the same across patch releases (`3.12 pyenv venv`): pyenv's builds (shared
//! `libpython`, PIE executable), Debian's (static, non-PIE executable: `/usr/bin/python3.11`
//! and 3.14/3.15 unpacked into /opt/newer-python), Debian's `python3.X-nopie` package, a venv
//! (`python -m venv`: a symlink to the base interpreter, or with `--copies` a copy of its
//! executable) and uWSGI (an embedded interpreter: `libpython` linked into the `uwsgi`
//! executable). A key whose interpreter is missing is an error that says how to get it: the
//! matrix fails rather than skips it.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's own build of CPython 3.11 (this Debian release's `python3`).
const DEBIAN_311: &str = "/usr/bin/python3.11";

/// One interpreter, ready to start a workload.
#[derive(Clone, Debug)]
pub struct Interpreter {
    /// `3.12.1 pyenv venv`: the full version, as the interpreter says it, and how it is run.
    pub label: String,
    /// The full version (`3.12.1`), which the report's `target.python_version` must name.
    pub version: String,
    /// The python to run a script with, or the `uwsgi` that embeds one.
    pub program: PathBuf,
    pub embedded: bool,
}

/// How a key is made: `<major.minor> <build> [venv|venv-copies|uwsgi]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Build {
    Pyenv,
    Debian,
    DebianNopie,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    Direct,
    /// `python -m venv`: bin/python is a symlink to the base interpreter.
    Venv,
    /// `python -m venv --copies`: bin/python is a copy of the base executable.
    VenvCopies,
    /// uWSGI from PyPI, built against the base interpreter, in a venv of it.
    Uwsgi,
}

/// Finds (or makes, for a venv or uWSGI, under `scratch`) the interpreter a key names.
pub fn resolve(key: &str, scratch: &Path) -> anyhow::Result<Interpreter> {
    let mut words = key.split_whitespace();
    let minor = words.next().context("empty interpreter key")?;
    let build = match words.next() {
        Some("pyenv") => Build::Pyenv,
        Some("debian") => Build::Debian,
        Some("debian-nopie") => Build::DebianNopie,
        other => bail!("interpreter key {key:?}: unknown build {other:?}"),
    };
    let start = match words.next() {
        None => Start::Direct,
        Some("venv") => Start::Venv,
        Some("venv-copies") => Start::VenvCopies,
        Some("uwsgi") => Start::Uwsgi,
        Some(other) => bail!("interpreter key {key:?}: unknown start {other:?}"),
    };
    let base = base_python(minor, build)?;
    let (program, embedded) = match start {
        Start::Direct => (base.clone(), false),
        Start::Venv | Start::VenvCopies => (
            venv(&base, &scratch.join(key.replace(' ', "-")), start)?.join("bin/python3"),
            false,
        ),
        Start::Uwsgi => (uwsgi(&base, &scratch.join(key.replace(' ', "-")))?, true),
    };
    let version = python_version(&base)?;
    let how = key.split_once(' ').map_or("", |(_, rest)| rest);
    Ok(Interpreter {
        label: format!("{version} {how}"),
        version,
        program,
        embedded,
    })
}

fn base_python(minor: &str, build: Build) -> anyhow::Result<PathBuf> {
    let path = match build {
        Build::Pyenv => return pyenv_python(minor),
        Build::Debian if minor == "3.11" => PathBuf::from(DEBIAN_311),
        Build::Debian => format!("/opt/newer-python/{minor}/usr/bin/python{minor}").into(),
        Build::DebianNopie => {
            format!("/opt/newer-python/{minor}/usr/bin/python{minor}-nopie").into()
        }
    };
    if !path.exists() {
        let how = if minor == "3.11" {
            "cargo xtask setup, or apt-get install python3.11"
        } else {
            "cargo xtask setup"
        };
        bail!("{} is missing (install it: {how})", path.display());
    }
    Ok(path)
}

/// pyenv's newest build of `minor` (`3.12` -> ~/.pyenv/versions/3.12.1/bin/python3).
fn pyenv_python(minor: &str) -> anyhow::Result<PathBuf> {
    let versions = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pyenv")))
        .context("PYENV_ROOT or HOME")?
        .join("versions");
    let prefix = format!("{minor}.");
    let newest = std::fs::read_dir(&versions)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n[prefix.len()..].parse::<u32>().is_ok())
        })
        .max_by_key(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n[prefix.len()..].parse::<u32>().ok())
        });
    match newest {
        Some(dir) => Ok(dir.join("bin/python3")),
        None => bail!(
            "pyenv has no CPython {minor} under {} (install it: pyenv install {minor})",
            versions.display()
        ),
    }
}

fn python_version(python: &Path) -> anyhow::Result<String> {
    let out = Command::new(python)
        .args(["-c", "import platform; print(platform.python_version())"])
        .output()
        .with_context(|| python.display().to_string())?;
    if !out.status.success() {
        bail!("{} does not run", python.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A fresh venv of `base` at `dir` (made once per matrix run).
fn venv(base: &Path, dir: &Path, start: Start) -> anyhow::Result<PathBuf> {
    if dir.join("bin/python3").exists() {
        return Ok(dir.to_path_buf());
    }
    let mut command = Command::new(base);
    command.args(["-m", "venv", "--without-pip"]);
    if start == Start::VenvCopies {
        command.arg("--copies");
    }
    run(command.arg(dir)).with_context(|| format!("making a venv of {}", base.display()))?;
    Ok(dir.to_path_buf())
}

/// uWSGI from PyPI (`pip install uwsgi` builds it against `base`'s `libpython`), in a venv of
/// `base` at `dir`. The build takes a minute or two; pip's wheel cache makes the next one quick.
fn uwsgi(base: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let uwsgi = dir.join("bin/uwsgi");
    if uwsgi.exists() {
        return Ok(uwsgi);
    }
    run(Command::new(base).args(["-m", "venv"]).arg(dir))
        .with_context(|| format!("making a venv of {}", base.display()))?;
    run(Command::new(dir.join("bin/python3")).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "uwsgi",
    ]))
    .context("pip install uwsgi (needs a C compiler and the network)")?;
    Ok(uwsgi)
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let out = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

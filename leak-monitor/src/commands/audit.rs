//! `leak-monitor audit PATH...`: the pattern catalog run statically over Python sources.
//! Findings go to stdout (`file:line: pattern: message`, or a JSON array); a one-line
//! summary goes to stderr.

use super::UsageError;
use crate::attribution::catalog::{first_syntax_error, scan};
use crate::attribution::source::read_capped;
use crate::attribution::LeakType;
use crate::cli::AuditArgs;
use anyhow::Context;
use serde::Serialize;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit status when `--fail-on-finding` finds something (as `run --fail-on-leak`).
const EXIT_FINDINGS: u8 = 3;
/// Larger files are not audited: no hand-written Python module is this big.
const MAX_AUDIT_BYTES: u64 = 16 * 1024 * 1024;
/// Directory names never walked: VCS data, bytecode caches, virtualenvs and tool caches.
const SKIPPED_DIRS: &[&str] = &[
    ".git",
    ".hg",
    "__pycache__",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    "site-packages",
    "node_modules",
    ".mypy_cache",
    ".pytest_cache",
];

/// One finding, as `--json` prints it.
#[derive(Debug, Serialize)]
struct AuditFinding {
    file: String,
    line: u32,
    pattern: &'static str,
    leak_type: LeakType,
    message: String,
}

pub fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    // A path that cannot be audited does not stop the others: they are all scanned, and the
    // run ends with one line naming every failure (exit 2).
    let mut failures = Vec::new();
    let mut files = Vec::new();
    for path in &args.paths {
        if let Err(err) = collect(path, true, &mut files) {
            failures.push(err.0);
        }
    }
    files.sort();
    files.dedup();
    let mut findings = Vec::new();
    let mut audited = 0;
    for file in &files {
        let source = match read_capped(file, MAX_AUDIT_BYTES) {
            Ok(source) => source,
            Err(err) => {
                failures.push(format!("cannot read {}: {err}", file.display()));
                continue;
            }
        };
        let name = file.display().to_string();
        if is_binary(&source) {
            note(&format!("{name}: not Python source (binary data), skipped"));
            continue;
        }
        if let Some(line) = first_syntax_error(&source) {
            note(&format!(
                "{name}: syntax error at line {line}; scanned as far as it parses"
            ));
        }
        audited += 1;
        findings.extend(scan(&source).into_iter().map(|f| AuditFinding {
            file: name.clone(),
            line: f.line,
            pattern: f.pattern,
            leak_type: f.leak_type,
            message: f.message,
        }));
    }
    findings.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    print_findings(&findings, args.json)?;
    if !failures.is_empty() {
        return Err(UsageError(failures.join("; ")).into());
    }
    note(&format!(
        "{} finding(s) in {audited} file(s)",
        findings.len()
    ));
    Ok(if args.fail_on_finding && !findings.is_empty() {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}

/// One line on stderr, beside the findings on stdout.
fn note(message: &str) {
    eprintln!("leak-monitor audit: {message}");
}

/// Binary data, not source: a NUL byte in the first 8 KiB (Python source never has one; the
/// heuristic of git and ripgrep).
fn is_binary(source: &str) -> bool {
    source.bytes().take(8192).any(|b| b == 0)
}

fn print_findings(findings: &[AuditFinding], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, findings).context("writing JSON findings")?;
        writeln!(out).context("writing JSON findings")?;
    } else {
        for f in findings {
            // One finding per line, even if a message quotes a multi-line statement.
            let message = f.message.replace('\n', " ");
            writeln!(out, "{}:{}: {}: {message}", f.file, f.line, f.pattern)
                .context("writing findings")?;
        }
    }
    out.flush().context("writing findings")
}

/// Adds `path` to `files`: a file given by name is audited whatever its extension, a
/// directory is walked for `*.py`. Symlinked directories are not followed (no loops).
fn collect(path: &Path, named: bool, files: &mut Vec<PathBuf>) -> Result<(), UsageError> {
    let meta = if named {
        fs::metadata(path)
    } else {
        fs::symlink_metadata(path)
    }
    .map_err(|err| UsageError(format!("cannot audit {}: {err}", path.display())))?;
    if meta.is_file() {
        if named || path.extension().is_some_and(|e| e == "py") {
            files.push(path.to_path_buf());
        }
        return Ok(());
    }
    if !meta.is_dir() || (!named && skipped(path)) {
        return Ok(());
    }
    let entries = fs::read_dir(path)
        .map_err(|err| UsageError(format!("cannot read directory {}: {err}", path.display())))?;
    let mut children = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| {
            UsageError(format!("cannot read directory {}: {err}", path.display()))
        })?;
        children.push(entry.path());
    }
    children.sort();
    for child in children {
        collect(&child, false, files)?;
    }
    Ok(())
}

/// Directories not worth auditing: named in `SKIPPED_DIRS`, or a virtualenv (`pyvenv.cfg`).
fn skipped(dir: &Path) -> bool {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    SKIPPED_DIRS.contains(&name) || dir.join("pyvenv.cfg").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_python_files_and_skips_caches_and_venvs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for path in [
            "a.py",
            "notes.txt",
            "pkg/b.py",
            "__pycache__/c.py",
            ".git/d.py",
            "env/pyvenv.cfg",
            "env/lib/e.py",
        ] {
            let full = root.join(path);
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            fs::write(&full, "x = 1\n").unwrap();
        }
        let mut files = Vec::new();
        collect(root, true, &mut files).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a.py", "pkg/b.py"]);
    }

    #[test]
    fn binaries_are_told_apart_from_source() {
        assert!(is_binary("\u{7f}ELF\u{2}\u{1}\u{1}\0\0"));
        assert!(!is_binary("x = 1\n"));
    }

    #[test]
    fn the_first_syntax_error_is_located() {
        assert_eq!(first_syntax_error("x = 1\n"), None);
        assert_eq!(first_syntax_error("x = 1\n\ndef f(:\n    pass\n"), Some(3));
    }

    #[test]
    fn missing_path_is_a_usage_error() {
        let mut files = Vec::new();
        let err = collect(Path::new("/no/such/dir"), true, &mut files).unwrap_err();
        assert!(err.0.contains("/no/such/dir"), "{err}");
    }
}

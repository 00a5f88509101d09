//! `leak-monitor diff OLD.json NEW.json` and `diff --report-dir DIR`: what changed between two
//! reports of one program, or between the last two processes of every program in a report
//! directory. Markdown (or `--json`) on stdout; a report that cannot be read is the user's to
//! fix (exit 2).

use super::UsageError;
use crate::cli::DiffArgs;
use crate::outputs::diff::{diff as compare, releases, render_markdown, ReportDiff};
use crate::outputs::report::Report;
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit status of `--fail-on-new-leak` when there is one (as `run --fail-on-leak`).
const EXIT_NEW_LEAK: u8 = 3;

pub fn diff(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let diffs = match (&args.report_dir, &args.old, &args.new) {
        (Some(dir), _, _) => diff_directory(dir)?,
        (None, Some(old), Some(new)) => vec![diff_files(old, new)?],
        // clap requires OLD and NEW without --report-dir.
        _ => return Err(UsageError("give OLD.json NEW.json, or --report-dir DIR".into()).into()),
    };
    let text = if args.json {
        // Two files give one diff object; a directory gives an array of them.
        let json = match diffs.as_slice() {
            [one] if args.report_dir.is_none() => serde_json::to_string_pretty(one),
            all => serde_json::to_string_pretty(all),
        };
        json.context("encoding the diff as JSON")? + "\n"
    } else {
        diffs
            .iter()
            .map(render_markdown)
            .collect::<Vec<_>>()
            .join("\n")
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("writing the diff to stdout")?;
    let new_leak = diffs
        .iter()
        .any(|d| d.summary.new_leaks > 0 || d.summary.new_leaking_lines > 0);
    Ok(if args.fail_on_new_leak && new_leak {
        ExitCode::from(EXIT_NEW_LEAK)
    } else {
        ExitCode::SUCCESS
    })
}

fn diff_files(old: &Path, new: &Path) -> Result<ReportDiff, UsageError> {
    let old = read_report(old)?;
    let new = read_report(new)?;
    if old.target.identity.is_some()
        && new.target.identity.is_some()
        && old.target.identity != new.target.identity
    {
        eprintln!(
            "note: the reports are of different programs or containers (identity {} vs {})",
            old.target.identity.as_deref().unwrap_or_default(),
            new.target.identity.as_deref().unwrap_or_default()
        );
    }
    Ok(compare(&old, &new))
}

/// Every `*.json` report in `dir`; files that are not reports (group reports, anything else)
/// are passed over with a note.
fn diff_directory(dir: &Path) -> Result<Vec<ReportDiff>, UsageError> {
    let entries = std::fs::read_dir(dir).map_err(|err| {
        UsageError(format!(
            "cannot read report directory {}: {err} (give the --report-dir of serve)",
            dir.display()
        ))
    })?;
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let mut reports = Vec::new();
    for path in paths {
        match read_report(&path) {
            Ok(report) => reports.push((path, report)),
            Err(err) => eprintln!("note: skipped {}: {err}", path.display()),
        }
    }
    let pairs = releases(&reports, |(_, report)| report);
    if pairs.is_empty() {
        eprintln!(
            "note: no program in {} has reports of two processes to compare",
            dir.display()
        );
    }
    Ok(pairs
        .iter()
        .map(|pair| {
            eprintln!(
                "{}: {} -> {}",
                pair.program,
                pair.old.0.display(),
                pair.new.0.display()
            );
            compare(&pair.old.1, &pair.new.1)
        })
        .collect())
}

fn read_report(path: &Path) -> Result<Report, UsageError> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        UsageError(format!(
            "cannot read report {}: {err} (give the path of a --json report)",
            path.display()
        ))
    })?;
    Report::from_json(&text).map_err(|err| {
        UsageError(format!(
            "{} is not a leak-monitor report (schema leak-monitor/report/v1): {err}",
            path.display()
        ))
    })
}

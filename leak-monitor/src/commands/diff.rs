//! `leak-monitor diff OLD.json NEW.json`: what changed between two reports of one program.
//! Markdown (or `--json`) on stdout; a report that cannot be read is the user's to fix (exit 2).

use super::UsageError;
use crate::cli::DiffArgs;
use crate::outputs::diff::{diff as compare, render_markdown};
use crate::outputs::report::Report;
use anyhow::Context;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Exit status of `--fail-on-new-leak` when there is one (as `run --fail-on-leak`).
const EXIT_NEW_LEAK: u8 = 3;

pub fn diff(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let old = read_report(&args.old)?;
    let new = read_report(&args.new)?;
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
    let diff = compare(&old, &new);
    let text = if args.json {
        serde_json::to_string_pretty(&diff).context("encoding the diff as JSON")? + "\n"
    } else {
        render_markdown(&diff)
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("writing the diff to stdout")?;
    let new_leak = diff.summary.new_leaks > 0 || diff.summary.new_leaking_lines > 0;
    Ok(if args.fail_on_new_leak && new_leak {
        ExitCode::from(EXIT_NEW_LEAK)
    } else {
        ExitCode::SUCCESS
    })
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

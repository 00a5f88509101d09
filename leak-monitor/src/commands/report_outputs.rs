//! The report files a run or a replay writes: JSON per target, Markdown and HTML for all,
//! Markdown on stdout when no file is asked for.

use super::report_files::{check_writable, write_or_fall_back};
use super::UsageError;
use crate::cli::ReportPaths;
use crate::monitor::ResourceSeries;
use crate::outputs::html;
use crate::outputs::report::{render_markdown, Report};
use std::path::{Path, PathBuf};

/// Checks before the work that every report path can be written (a usage error if not).
pub fn check_report_paths(paths: &ReportPaths) -> anyhow::Result<()> {
    for path in [&paths.json, &paths.markdown, &paths.html]
        .into_iter()
        .flatten()
    {
        check_writable(path).map_err(|err| UsageError(format!("{err:#}")))?;
    }
    Ok(())
}

/// Writes every report asked for. One that cannot be written where asked (its directory was
/// removed during the run, the disk is full) goes to a fallback file or stdout, the others are
/// still written, and the run then fails (exit 1) saying where each went.
pub fn write_reports(
    paths: &ReportPaths,
    reports: &[Report],
    series: &[Vec<ResourceSeries>],
) -> anyhow::Result<()> {
    let mut outputs = Vec::new();
    if let Some(path) = &paths.json {
        for (report, path) in reports.iter().zip(per_target_paths(path, reports)) {
            outputs.push((path, report.to_json()?));
        }
    }
    if let Some(path) = &paths.markdown {
        outputs.push((path.clone(), render_markdown(reports)));
    }
    if let Some(path) = &paths.html {
        outputs.push((path.clone(), html::render(reports, series)));
    }
    let mut misplaced = 0;
    for (path, contents) in outputs {
        if let Err(err) = write_or_fall_back(&path, &contents) {
            eprintln!("leak-monitor: {err}");
            misplaced += 1;
        }
    }
    if paths.json.is_none() && paths.markdown.is_none() {
        print!("{}", render_markdown(reports));
    }
    if misplaced > 0 {
        anyhow::bail!("{misplaced} report file(s) could not be written where asked (see above)");
    }
    Ok(())
}

/// One JSON report per target: `PATH` itself for one target, `STEM.PID.EXT` for several, so
/// each file stays a single `leak-monitor/report/v1` object.
fn per_target_paths(path: &Path, reports: &[Report]) -> Vec<PathBuf> {
    if reports.len() <= 1 {
        return vec![path.to_path_buf()];
    }
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()));
    reports
        .iter()
        .map(|r| {
            path.with_file_name(format!(
                "{stem}.{}{}",
                r.target.pid,
                ext.as_deref().unwrap_or("")
            ))
        })
        .collect()
}

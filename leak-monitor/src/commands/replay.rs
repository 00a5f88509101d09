//! `leak-monitor replay FILE`: the reports of a recording, rebuilt offline.

use super::report_outputs::{check_report_paths, write_reports};
use super::UsageError;
use crate::cli::ReplayArgs;
use crate::outputs::report::Report;
use crate::recording::{replay as read_recording, ReplayError};
use std::process::ExitCode;

/// Exit status when `--fail-on-leak` finds a leak (as `run`).
const EXIT_LEAK_FOUND: u8 = 3;

pub fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    check_report_paths(&args.outputs)?;
    let replay = read_recording(&args.recording).map_err(|err| match &err {
        // A read that fails midway is an I/O failure; a wrong path or file is the user's.
        ReplayError::Read { source, .. }
            if !matches!(
                source.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::IsADirectory
            ) =>
        {
            anyhow::Error::from(err)
        }
        _ => UsageError(err.to_string()).into(),
    })?;
    let reports = replay.reports();
    let series: Vec<_> = replay.targets.iter().map(|t| t.series.clone()).collect();
    write_reports(&args.outputs, &reports, &series)?;
    Ok(
        if args.fail_on_leak && reports.iter().any(Report::has_leak) {
            ExitCode::from(EXIT_LEAK_FOUND)
        } else {
            ExitCode::SUCCESS
        },
    )
}

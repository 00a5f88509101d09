//! `leak-monitor run`: observe targets for a fixed time, then write the report(s).

use super::report_files::{check_writable, write_private};
use super::resolve::attach_pids;
use super::ticker::{StopFlag, Ticker};
use super::{progress::Progress, tracing, UsageError};
use crate::capabilities::{Capabilities, Privileges};
use crate::cli::RunArgs;
use crate::monitor::{Ended, StacksStatus, TargetMonitor};
use crate::outputs::html;
use crate::outputs::report::{render_markdown, Report};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

/// Exit status when `--fail-on-leak` finds a leak.
const EXIT_LEAK_FOUND: u8 = 3;

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if !(args.duration.is_finite() && args.duration > 0.0) {
        return Err(UsageError(format!(
            "--duration must be a positive number of seconds, not {}",
            args.duration
        ))
        .into());
    }
    for path in [&args.json, &args.markdown, &args.html]
        .into_iter()
        .flatten()
    {
        check_writable(path).map_err(|err| UsageError(format!("{err:#}")))?;
    }
    let interval = args.sampling.interval();
    let stop = StopFlag::on_signals()?;
    let mut monitors = attach_pids(&args.pids, interval, args.sampling.attribution())?;

    let mut capabilities = Capabilities::procfs_only(Privileges::current());
    // Kept for the run: dropping it detaches the programs.
    let _tracer = tracing::start_following(
        &mut capabilities,
        args.sampling.tracing(),
        args.sampling.engagement(),
        &mut monitors,
    );
    capabilities.announce();
    for monitor in &monitors {
        if let StacksStatus::Off(why) = monitor.stacks_status() {
            eprintln!(
                "leak-monitor: PID {}: Python stacks are off: {why}",
                monitor.info().id.pid
            );
        }
    }

    observe(
        &mut monitors,
        Duration::from_secs_f64(args.duration),
        interval,
        &stop,
    );

    let reports = build_reports(&monitors, &capabilities);
    write_reports(&args, &reports, &monitors)?;

    let leak_found = reports.iter().any(Report::has_leak);
    Ok(if args.fail_on_leak && leak_found {
        ExitCode::from(EXIT_LEAK_FOUND)
    } else {
        ExitCode::SUCCESS
    })
}

/// Samples every monitor until the duration is over, all targets have ended, or a signal
/// arrives (then the report is written with what was seen).
fn observe(
    monitors: &mut [TargetMonitor],
    duration: Duration,
    interval: Duration,
    stop: &StopFlag,
) {
    let started = Instant::now();
    let deadline = started + duration;
    let mut ticker = Ticker::new(interval);
    let mut progress = Progress::on_terminal(duration);
    while Instant::now() < deadline && monitors.iter().any(|m| m.ended().is_none()) {
        let Some(now) = ticker.wait(stop) else {
            break;
        };
        for monitor in monitors.iter_mut() {
            // Errors are kept in the monitor (ended) or transient: the run goes on.
            let _ = monitor.tick(now);
        }
        progress.update(now.duration_since(started), monitors);
    }
    progress.finish();
}

fn build_reports(monitors: &[TargetMonitor], capabilities: &Capabilities) -> Vec<Report> {
    let now = SystemTime::now();
    monitors
        .iter()
        .map(|monitor| {
            let snapshot = monitor.snapshot();
            let mut capabilities = capabilities.for_target(monitor.info());
            match monitor.ended() {
                Some(Ended::Exited) => capabilities.note(format!(
                    "the target exited after {:.1} s of observation; the report covers that time",
                    snapshot.observed_seconds
                )),
                Some(Ended::Failed(why)) => {
                    capabilities.note(format!("observation stopped early: {why}"))
                }
                None => {}
            }
            Report::build(&snapshot, &capabilities, now)
        })
        .collect()
}

fn write_reports(
    args: &RunArgs,
    reports: &[Report],
    monitors: &[TargetMonitor],
) -> anyhow::Result<()> {
    if let Some(path) = &args.json {
        for (report, path) in reports.iter().zip(per_target_paths(path, reports)) {
            write_private(&path, &report.to_json()?)?;
        }
    }
    if let Some(path) = &args.markdown {
        write_private(path, &render_markdown(reports))?;
    }
    if let Some(path) = &args.html {
        let series: Vec<_> = monitors.iter().map(TargetMonitor::series).collect();
        write_private(path, &html::render(reports, &series))?;
    }
    if args.json.is_none() && args.markdown.is_none() {
        print!("{}", render_markdown(reports));
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

//! `leak-monitor run`: observe targets for a fixed time, then write the report(s).

use super::report_files::{check_writable, write_or_fall_back};
use super::resolve::attach_pids;
use super::ticker::{StopFlag, Ticker};
use super::{progress::Progress, tracing, UsageError};
use crate::capabilities::{Capabilities, Privileges};
use crate::cli::RunArgs;
use crate::monitor::{Ended, StacksStatus, TargetMonitor};
use crate::outputs::html;
use crate::outputs::report::{render_markdown, Report};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

/// Exit status when `--fail-on-leak` finds a leak.
const EXIT_LEAK_FOUND: u8 = 3;

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    // `--duration` is checked by its parser (positive, finite, bounded).
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
    let tracer = tracing::start_following(
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

    let asked = Duration::from_secs_f64(args.duration);
    let cut_short_by = observe(&mut monitors, asked, interval, &stop);

    let dropped = tracer.as_deref().map(tracing::dropped_by_kind);
    let reports = build_reports(&monitors, &capabilities, cut_short_by, dropped.as_ref());
    write_reports(&args, &reports, &monitors)?;

    let leak_found = reports.iter().any(Report::has_leak);
    Ok(if args.fail_on_leak && leak_found {
        ExitCode::from(EXIT_LEAK_FOUND)
    } else {
        ExitCode::SUCCESS
    })
}

/// Samples every monitor until the duration is over, all targets have ended, or a signal
/// arrives (then the report is written with what was seen). Returns the signal that cut the
/// run short, if one did.
fn observe(
    monitors: &mut [TargetMonitor],
    duration: Duration,
    interval: Duration,
    stop: &StopFlag,
) -> Option<&'static str> {
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
    stop.signal()
}

fn build_reports(
    monitors: &[TargetMonitor],
    capabilities: &Capabilities,
    cut_short_by: Option<&str>,
    dropped: Option<&BTreeMap<String, u64>>,
) -> Vec<Report> {
    let lost: u64 = dropped.map_or(0, |d| d.values().sum());
    let now = SystemTime::now();
    monitors
        .iter()
        .map(|monitor| {
            monitor.final_breakdown();
            let snapshot = monitor.snapshot();
            let mut capabilities = capabilities.for_target(monitor.info());
            let exited = matches!(monitor.ended(), Some(Ended::Exited));
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
            if let (Some(signal), None) = (cut_short_by, monitor.ended()) {
                capabilities.note(format!(
                    "the run was cut short by {signal} after {:.1} s of observation; the report covers that time",
                    snapshot.observed_seconds
                ));
            }
            if lost > 0 {
                capabilities.note(format!(
                    "the kernel lost {lost} events (its ring buffer was full; \
                     observation.dropped_events has them per kind): the ledgers were re-read \
                     from procfs, and what was created meanwhile is pre-existing"
                ));
            }
            let mut report = Report::build(&snapshot, &capabilities, now);
            report.observation.dropped_events = dropped.cloned();
            report.observation.cut_short = Some(cut_short_by.is_some());
            report.observation.target_exited_after_seconds =
                exited.then_some(snapshot.observed_seconds);
            report
        })
        .collect()
}

/// Writes every report asked for. One that cannot be written where asked (its directory was
/// removed during the run, the disk is full) goes to a fallback file or stdout, the others are
/// still written, and the run then fails (exit 1) saying where each went.
fn write_reports(
    args: &RunArgs,
    reports: &[Report],
    monitors: &[TargetMonitor],
) -> anyhow::Result<()> {
    let mut outputs = Vec::new();
    if let Some(path) = &args.json {
        for (report, path) in reports.iter().zip(per_target_paths(path, reports)) {
            outputs.push((path, report.to_json()?));
        }
    }
    if let Some(path) = &args.markdown {
        outputs.push((path.clone(), render_markdown(reports)));
    }
    if let Some(path) = &args.html {
        let series: Vec<_> = monitors.iter().map(TargetMonitor::series).collect();
        outputs.push((path.clone(), html::render(reports, &series)));
    }
    let mut misplaced = 0;
    for (path, contents) in outputs {
        if let Err(err) = write_or_fall_back(&path, &contents) {
            eprintln!("leak-monitor: {err}");
            misplaced += 1;
        }
    }
    if args.json.is_none() && args.markdown.is_none() {
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

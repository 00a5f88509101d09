//! `leak-monitor run`: observe targets for a fixed time, then write the report(s).

use super::record::Recording;
use super::report_outputs::{check_report_paths, write_reports};
use super::resolve::attach_pids;
use super::ticker::{StopFlag, Ticker};
use super::{progress::Progress, tracing};
use crate::capabilities::{Capabilities, Privileges};
use crate::cli::RunArgs;
use crate::monitor::{Ended, StacksStatus, TargetMonitor, TargetSnapshot};
use crate::outputs::report::Report;
use crate::recording::format::ReportInputs;
use crate::recording::unix_seconds;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

/// Exit status when `--fail-on-leak` finds a leak.
const EXIT_LEAK_FOUND: u8 = 3;

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    // `--duration` is checked by its parser (positive, finite, bounded).
    check_report_paths(&args.outputs)?;
    Recording::check(args.record.as_deref())?;
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

    let mut recording = match &args.record {
        Some(path) => Some(Recording::start(path, &capabilities, &monitors)?),
        None => None,
    };

    let asked = Duration::from_secs_f64(args.duration);
    let cut_short_by = observe(&mut monitors, asked, interval, &stop, recording.as_mut());

    let dropped = tracer.as_deref().map(tracing::dropped_by_kind);
    let built = build_reports(&monitors, &capabilities, cut_short_by, dropped.as_ref());
    if let Some(recording) = recording.as_mut() {
        for built in &built {
            recording.write(|r| r.report(&built.snapshot, built.inputs.clone()));
        }
    }
    let reports: Vec<Report> = built.into_iter().map(|built| built.report).collect();
    let series: Vec<_> = monitors.iter().map(TargetMonitor::series).collect();
    write_reports(&args.outputs, &reports, &series)?;
    if let Some(recording) = recording {
        recording.finish()?;
    }

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
    mut recording: Option<&mut Recording>,
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
            if let Some(recording) = recording.as_deref_mut() {
                recording.write(|r| r.observe(monitor));
            }
        }
        progress.update(now.duration_since(started), monitors);
    }
    progress.finish();
    stop.signal()
}

/// A target's report and what it was built from (a recording keeps both).
struct Built {
    report: Report,
    snapshot: TargetSnapshot,
    inputs: ReportInputs,
}

fn build_reports(
    monitors: &[TargetMonitor],
    capabilities: &Capabilities,
    cut_short_by: Option<&str>,
    dropped: Option<&BTreeMap<String, u64>>,
) -> Vec<Built> {
    let lost: u64 = dropped.map_or(0, |d| d.values().sum());
    let now = SystemTime::now();
    monitors
        .iter()
        .map(|monitor| {
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
            let inputs = ReportInputs {
                generated_unix: unix_seconds(now),
                capabilities,
                cut_short: Some(cut_short_by.is_some()),
                target_exited_after_seconds: exited.then_some(snapshot.observed_seconds),
                dropped_events: dropped.cloned(),
            };
            report.observation.dropped_events = inputs.dropped_events.clone();
            report.observation.cut_short = inputs.cut_short;
            report.observation.target_exited_after_seconds = inputs.target_exited_after_seconds;
            Built {
                report,
                snapshot,
                inputs,
            }
        })
        .collect()
}

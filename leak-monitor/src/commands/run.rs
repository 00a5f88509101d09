//! `leak-monitor run`: observe targets for a fixed time, then write the report(s).

use super::record::Recording;
use super::report_outputs::{check_report_paths, write_reports};
use super::resolve::attach_pids;
use super::session::Session;
use super::ticker::StopFlag;
use super::{progress::Progress, tracing};
use crate::capabilities::Capabilities;
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
    let monitors = attach_pids(&args.pids, interval, args.sampling.attribution())?;
    let mut session = Session::start(
        monitors,
        args.sampling.tracing(),
        args.sampling.engagement(),
        args.record.as_deref(),
    )?;
    session.capabilities.announce();
    for monitor in &session.monitors {
        if let StacksStatus::Off(why) = monitor.stacks_status() {
            eprintln!(
                "leak-monitor: PID {}: Python stacks are off: {why}",
                monitor.info().id.pid
            );
        }
    }

    let asked = Duration::from_secs_f64(args.duration);
    let mut progress = Progress::on_terminal(asked);
    let cut_short_by = session.observe(
        interval,
        Some(Instant::now() + asked),
        &stop,
        |elapsed, monitors| progress.update(elapsed, monitors),
    );
    progress.finish();

    let dropped = session.tracer().map(|t| tracing::dropped_by_kind(t));
    let built = build_reports(
        &session.monitors,
        &session.capabilities,
        cut_short_by,
        dropped.as_ref(),
    );
    for built in &built {
        session.record_report(&built.snapshot, built.inputs.clone());
    }
    let reports: Vec<Report> = built.into_iter().map(|built| built.report).collect();
    let series: Vec<_> = session.monitors.iter().map(TargetMonitor::series).collect();
    write_reports(&args.outputs, &reports, &series)?;
    session.finish_recording()?;

    let leak_found = reports.iter().any(Report::has_leak);
    Ok(if args.fail_on_leak && leak_found {
        ExitCode::from(EXIT_LEAK_FOUND)
    } else {
        ExitCode::SUCCESS
    })
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
            monitor.final_breakdown();
            let snapshot = monitor.snapshot();
            let mut capabilities = capabilities.for_target(monitor.info());
            let exited = matches!(monitor.ended(), Some(Ended::Exited));
            match monitor.ended() {
                Some(Ended::Exited) => capabilities.note(format!(
                    "the target exited after {:.1} s of observation; the report covers that time",
                    snapshot.observed_seconds.0
                )),
                Some(Ended::Failed(why)) => {
                    capabilities.note(format!("observation stopped early: {why}"))
                }
                None => {}
            }
            if let (Some(signal), None) = (cut_short_by, monitor.ended()) {
                capabilities.note(format!(
                    "the run was cut short by {signal} after {:.1} s of observation; the report covers that time",
                    snapshot.observed_seconds.0
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
                target_exited_after_seconds: exited.then_some(snapshot.observed_seconds.0),
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

//! `leak-monitor watch`: the live view of one process; Ctrl-C ends it and prints the report.

use super::record::Recording;
use super::resolve::attach_pids;
use super::ticker::StopFlag;
use super::tracing;
use super::view::follow_live;
use crate::capabilities::{Capabilities, Privileges};
use crate::cli::WatchArgs;
use crate::monitor::Ended;
use crate::outputs::report::{render_markdown, Report};
use crate::recording::format::ReportInputs;
use std::process::ExitCode;
use std::time::SystemTime;

pub fn watch(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let interval = args.sampling.interval();
    Recording::check(args.record.as_deref())?;
    let stop = StopFlag::on_signals()?;
    let mut monitor = attach_pids(&[args.pid], interval, args.sampling.attribution())?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no monitor for PID {}", args.pid))?;
    let mut capabilities = Capabilities::procfs_only(Privileges::current());
    // Kept for the session: dropping it detaches the programs.
    let _tracer = tracing::start_following(
        &mut capabilities,
        args.sampling.tracing(),
        args.sampling.engagement(),
        std::slice::from_mut(&mut monitor),
    );
    let mut capabilities = capabilities.for_target(monitor.info());
    capabilities.announce();

    let mut recording = match &args.record {
        Some(path) => Some(Recording::start(
            path,
            &capabilities,
            std::slice::from_ref(&monitor),
        )?),
        None => None,
    };

    let mut footer = capabilities.notes.clone();
    footer.push("Ctrl-C ends the view and prints the report.".into());
    follow_live(
        &mut monitor,
        interval,
        None,
        &stop,
        &footer,
        |monitor, _| {
            if let Some(recording) = recording.as_mut() {
                recording.write(|r| r.observe(monitor));
            }
        },
    );

    if monitor.ended() == Some(&Ended::Exited) {
        capabilities.note("the target exited during the watch");
    }
    let generated = SystemTime::now();
    let snapshot = monitor.snapshot();
    let report = Report::build(&snapshot, &capabilities, generated);
    print!("{}", render_markdown(&[report]));
    if let Some(mut recording) = recording {
        recording.write(|r| r.report(&snapshot, ReportInputs::new(generated, capabilities)));
        recording.finish()?;
    }
    Ok(ExitCode::SUCCESS)
}

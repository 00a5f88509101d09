//! `leak-monitor watch`: the live view of one process; Ctrl-C ends it and prints the report.

use super::record::Recording;
use super::resolve::attach_pids;
use super::session::Session;
use super::ticker::StopFlag;
use super::view::LiveView;
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
    let monitors = attach_pids(&[args.pid], interval, args.sampling.attribution())?;
    let mut session = Session::start(
        monitors,
        args.sampling.tracing(),
        args.sampling.engagement(),
        args.record.as_deref(),
    )?;
    let info = session.monitors[0].info().clone();
    let mut capabilities = session.capabilities.for_target(&info);
    capabilities.announce();

    let mut footer = capabilities.notes.clone();
    footer.push("Ctrl-C ends the view and prints the report.".into());
    let mut view = LiveView::new(footer);
    session.observe(interval, None, &stop, |_, monitors| {
        view.show(&monitors[0]);
    });
    drop(view);

    let monitor = &session.monitors[0];
    if monitor.ended() == Some(&Ended::Exited) {
        capabilities.note("the target exited during the watch");
    }
    let generated = SystemTime::now();
    let snapshot = monitor.snapshot();
    let report = Report::build(&snapshot, &capabilities, generated);
    print!("{}", render_markdown(&[report]));
    session.record_report(&snapshot, ReportInputs::new(generated, capabilities));
    session.finish_recording()?;
    Ok(ExitCode::SUCCESS)
}

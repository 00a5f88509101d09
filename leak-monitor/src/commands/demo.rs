//! `leak-monitor demo`: the whole job on a bundled leaky Python workload. Writes the workload
//! to a temp dir, runs it with `python3`, shows the live view, serves metrics, and ends with
//! the report. Needs nothing but `python3`.

use super::metrics_server::MetricsServer;
use super::record::Recording;
use super::report_files::{create_private_dir, write_private};
use super::session::Session;
use super::ticker::StopFlag;
use super::tracing;
use super::view::LiveView;
use super::UsageError;
use crate::cli::{DemoArgs, SamplingArgs, TracingMode};
use crate::events::Engagement;
use crate::monitor::TargetMonitor;
use crate::outputs::html;
use crate::outputs::metrics::Metrics;
use crate::outputs::report::{render_markdown, Report};
use crate::recording::format::ReportInputs;
use crate::targets;
use anyhow::Context;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

/// The bundled workload: a small "web service" that leaks memory, fds and threads at known lines.
const WORKLOAD: &str = include_str!("demo_workload.py");

/// How long the workload may take to print READY.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

pub fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if !(args.duration.is_finite() && args.duration > 0.0) {
        return Err(UsageError(format!(
            "--duration must be positive, not {}",
            args.duration
        ))
        .into());
    }
    Recording::check(args.record.as_deref())?;
    let stop = StopFlag::on_signals()?;
    let workdir = tempfile::Builder::new()
        .prefix("leak-monitor-demo-")
        .tempdir()
        .context("creating the demo's temp dir")?;
    let script = workdir.path().join("leaky_service.py");
    std::fs::write(&script, WORKLOAD).with_context(|| format!("writing {}", script.display()))?;

    let workload = Workload::start(&script)?;
    let info = targets::identify(workload.pid(), Some("demo"))
        .with_context(|| format!("identifying the demo workload (pid {})", workload.pid()))?;
    let interval = SamplingArgs::DEFAULT_INTERVAL;
    let monitor =
        TargetMonitor::attach(info, interval).context("attaching to the demo workload")?;
    let mut session = Session::start(
        vec![monitor],
        TracingMode::Events,
        Engagement::default(),
        args.record.as_deref(),
    )?;
    let capabilities = session.capabilities.clone();
    capabilities.announce();
    let metrics = Arc::new(Metrics::new().context("creating the metrics registry")?);
    let mut event_counters = tracing::EventCounters::declare(&metrics);
    let mut footer = capabilities.notes.clone();
    // The live view owns the terminal: the endpoint's log lines would tear it.
    let _server = match MetricsServer::start(args.listen, Arc::clone(&metrics), |_| {}) {
        Ok(server) => {
            footer.push(format!("metrics: http://{}/metrics", server.addr()));
            Some(server)
        }
        Err(err) => {
            // The demo is still worth watching without metrics.
            footer.push(format!("metrics off: {err:#}"));
            None
        }
    };
    footer.push(format!(
        "demo workload: pid {} running {}; ends in {}, Ctrl-C ends it now.",
        workload.pid(),
        script.display(),
        crate::humanize::duration(args.duration)
    ));

    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    let tracer = session.tracer().cloned();
    let mut view = LiveView::new(footer);
    session.observe(interval, Some(deadline), &stop, |_, monitors| {
        let snapshot = view.show(&monitors[0]);
        metrics.update(std::slice::from_ref(&snapshot));
        event_counters.update(tracer.as_ref(), &metrics);
    });
    drop(view);

    // The report is taken while the workload still runs: its exit ends its threads, and the
    // kernel's thread ledger would lose the leaked ones and the line that started them.
    let generated = SystemTime::now();
    let snapshot = session.monitors[0].snapshot();
    let report = Report::build(&snapshot, &capabilities, generated);
    session.record_report(&snapshot, ReportInputs::new(generated, capabilities));
    drop(workload);
    session.finish_recording()?;
    let markdown = render_markdown(std::slice::from_ref(&report));
    print!("{markdown}");
    let out_dir = std::env::temp_dir().join(format!("leak-monitor-demo-{}", std::process::id()));
    create_private_dir(&out_dir)?;
    write_private(&out_dir.join("report.json"), &report.to_json()?)?;
    write_private(&out_dir.join("report.md"), &markdown)?;
    let page = html::render(
        std::slice::from_ref(&report),
        &[session.monitors[0].series()],
    );
    write_private(&out_dir.join("report.html"), &page)?;
    if let Some(path) = &args.html {
        std::fs::write(path, &page).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("leak-monitor: HTML report written to {}", path.display());
    }
    eprintln!(
        "leak-monitor: demo reports written to {}",
        out_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The running workload; killed when dropped.
struct Workload {
    child: Child,
}

impl Workload {
    fn start(script: &std::path::Path) -> anyhow::Result<Self> {
        let mut child = Command::new("python3")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|err| match err.kind() {
                std::io::ErrorKind::NotFound => anyhow::Error::new(UsageError(
                    "python3 was not found on PATH: the demo runs its workload with it".into(),
                )),
                _ => anyhow::Error::new(err).context("starting python3"),
            })?;
        let stdout = child.stdout.take().context("no stdout from the workload")?;
        let (ready_tx, ready_rx) = mpsc::channel();
        // Read on a thread so the wait has a timeout; the thread keeps draining afterwards so
        // the workload never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.trim() == "READY" {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(());
                    }
                }
            }
        });
        let workload = Workload { child };
        ready_rx
            .recv_timeout(STARTUP_TIMEOUT)
            .context("the demo workload did not start (no READY from python3 within 20 s)")?;
        Ok(workload)
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

/// How long the workload has to leave through its SIGTERM handler (which removes its log
/// directory) before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

impl Drop for Workload {
    fn drop(&mut self) {
        // SIGTERM first: a SIGKILL would leave the workload's temp directory behind in /tmp.
        let terminated = rustix::process::Pid::from_raw(self.pid()).is_some_and(|pid| {
            rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_ok()
        });
        if terminated {
            let until = Instant::now() + STOP_GRACE;
            while Instant::now() < until {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

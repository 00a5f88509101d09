//! `--record FILE` for the commands that observe, `--record-dir DIR` for the daemon: the
//! recorders, fed after every tick.

use super::report_files::check_writable;
use super::UsageError;
use crate::capabilities::Capabilities;
use crate::monitor::{TargetMonitor, TargetSnapshot};
use crate::recording::format::ReportInputs;
use crate::recording::{RecordError, Recorder};
use crate::targets::TargetId;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// `--record`: the recorder, and why it stopped if a write failed (the run goes on; the
/// recording is then incomplete and the run fails at its end, after the reports).
pub struct Recording {
    recorder: Recorder,
    failed: Option<String>,
}

impl Recording {
    /// Creates the file and records the samples the monitors took when they attached.
    /// Checks before the work that the recording can be written (a usage error if not).
    pub fn check(path: Option<&Path>) -> anyhow::Result<()> {
        match path {
            Some(path) => check_writable(path).map_err(|err| UsageError(format!("{err:#}")).into()),
            None => Ok(()),
        }
    }

    pub fn start(
        path: &Path,
        capabilities: &Capabilities,
        monitors: &[TargetMonitor],
    ) -> anyhow::Result<Self> {
        let mut recording = Recording {
            recorder: Recorder::create(path, capabilities)?,
            failed: None,
        };
        for monitor in monitors {
            recording.write(|r| r.observe(monitor));
        }
        Ok(recording)
    }

    pub fn write(&mut self, record: impl FnOnce(&mut Recorder) -> Result<(), RecordError>) {
        if self.failed.is_some() {
            return;
        }
        if let Err(err) = record(&mut self.recorder) {
            eprintln!("leak-monitor: {err}; recording stopped, the reports are still written");
            self.failed = Some(err.to_string());
        }
    }

    pub fn finish(self) -> anyhow::Result<()> {
        match self.failed {
            Some(why) => anyhow::bail!("the recording is incomplete: {why}"),
            None => {
                eprintln!(
                    "leak-monitor: recording written to {} (replay it with `leak-monitor replay {}`)",
                    self.recorder.path().display(),
                    self.recorder.path().display()
                );
                Ok(())
            }
        }
    }
}

/// `serve --record-dir`: one recording per followed process (`GROUP-PID-START.lmrec`), created
/// when it is first seen and closed when it ends. A recording that cannot be written is said
/// once and given up; the daemon goes on.
pub struct FleetRecordings {
    dir: PathBuf,
    capabilities: Capabilities,
    /// `None`: its recording failed and was given up.
    recorders: HashMap<TargetId, Option<Recorder>>,
    log: fn(&str),
}

impl FleetRecordings {
    /// `dir` must exist (the daemon creates it mode 0700 at start).
    pub fn new(dir: PathBuf, capabilities: Capabilities, log: fn(&str)) -> Self {
        FleetRecordings {
            dir,
            capabilities,
            recorders: HashMap::new(),
            log,
        }
    }

    /// Records what each monitor's last tick saw, starting a recording for a new one.
    pub fn observe<'a>(&mut self, monitors: impl Iterator<Item = &'a TargetMonitor>) {
        for monitor in monitors {
            let id = monitor.info().id;
            let dir = &self.dir;
            let capabilities = &self.capabilities;
            let log = self.log;
            let recorder = self.recorders.entry(id).or_insert_with(|| {
                let name = format!(
                    "{}-{}-{}.lmrec",
                    super::report_files::sanitize(&monitor.info().group),
                    id.pid,
                    id.start_ticks
                );
                Recorder::create(&dir.join(name), capabilities)
                    .map_err(|err| log(&format!("cannot record pid {}: {err}", id.pid)))
                    .ok()
            });
            Self::write(recorder, log, |r| r.observe(monitor));
        }
    }

    /// Records a report built from `snapshot` (at a leak verdict, or as the target ended).
    pub fn report(&mut self, snapshot: &TargetSnapshot, inputs: ReportInputs) {
        let log = self.log;
        if let Some(recorder) = self.recorders.get_mut(&snapshot.info.id) {
            Self::write(recorder, log, |r| r.report(snapshot, inputs));
        }
    }

    /// Closes the recording of an ended target.
    pub fn ended(&mut self, id: TargetId) {
        if let Some(Some(recorder)) = self.recorders.remove(&id) {
            (self.log)(&format!(
                "recording of pid {} closed: {}",
                id.pid,
                recorder.path().display()
            ));
        }
    }

    fn write(
        recorder: &mut Option<Recorder>,
        log: fn(&str),
        record: impl FnOnce(&mut Recorder) -> Result<(), RecordError>,
    ) {
        if let Some(writing) = recorder.as_mut() {
            if let Err(err) = record(writing) {
                log(&format!("{err}; this recording stops here"));
                *recorder = None;
            }
        }
    }
}

//! `--record FILE` for the commands that observe: the recorder, fed after every tick.

use super::report_files::check_writable;
use super::UsageError;
use crate::capabilities::Capabilities;
use crate::monitor::TargetMonitor;
use crate::recording::{RecordError, Recorder};
use std::path::Path;

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

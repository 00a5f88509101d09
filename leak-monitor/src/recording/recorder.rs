//! Writes what the engine saw to a recording as it goes, one line per record, flushed after
//! each tick: a recorder stopped by a crash or a kill leaves a recording that replays up to
//! its last line.

use super::format::{Evidence, Header, Record, RecordedSample, ReportInputs, FORMAT};
use crate::capabilities::Capabilities;
use crate::monitor::{TargetMonitor, TargetSnapshot};
use crate::sampling::Limits;
use crate::targets::{TargetId, TargetInfo};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Attribution evidence is written at most this often (seconds into the observation), and only
/// when it changed: it carries whole stacks, and the samples carry the verdicts.
const EVIDENCE_EVERY: f64 = 30.0;

/// Why a recording could not be written.
#[derive(Debug, thiserror::Error)]
#[error("recording to {path}: {source}")]
pub struct RecordError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// One recording being written.
pub struct Recorder {
    path: PathBuf,
    out: BufWriter<File>,
    targets: HashMap<i32, Followed>,
}

/// What was last written of one target.
struct Followed {
    info: TargetInfo,
    seq: u64,
    limits: Option<Limits>,
    evidence_at: Option<f64>,
    evidence: Option<Evidence>,
}

impl Recorder {
    /// Creates (or truncates) the file and writes the header. `capabilities`: the run's, as
    /// announced; a recording cut short before its report is replayed with them.
    pub fn create(path: &Path, capabilities: &Capabilities) -> Result<Self, RecordError> {
        let error = |source| RecordError {
            path: path.to_path_buf(),
            source,
        };
        // The evidence quotes the target's source lines: readable by the owner only.
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(error)?;
        let mut recorder = Recorder {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            targets: HashMap::new(),
        };
        let header = Header {
            format: FORMAT.to_string(),
            recorded_by: env!("CARGO_PKG_VERSION").to_string(),
            started_unix: unix_seconds(SystemTime::now()),
            capabilities: capabilities.clone(),
        };
        recorder.line(&header)?;
        recorder.flush()?;
        Ok(recorder)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes what `monitor`'s last tick fed its detectors, once per sample, and its evidence
    /// when due. Call after each tick.
    pub fn observe(&mut self, monitor: &TargetMonitor) -> Result<(), RecordError> {
        let Some(tick) = monitor.last_tick() else {
            return Ok(());
        };
        let pid = monitor.info().id.pid;
        let followed = self.follow(monitor)?;
        if followed.seq == tick.seq {
            return Ok(());
        }
        followed.seq = tick.seq;
        let limits = (followed.limits != Some(*tick.limits)).then_some(*tick.limits);
        followed.limits = Some(*tick.limits);
        let due = followed
            .evidence_at
            .is_none_or(|at| tick.t - at >= EVIDENCE_EVERY);
        let t = tick.t;
        let record = Record::Sample {
            pid,
            t,
            sample: RecordedSample::from(tick.sample),
            limits,
            agreed_early: tick.agreed_early.to_vec(),
        };
        self.line(&record)?;
        if due {
            self.evidence(&monitor.snapshot(), t)?;
        }
        self.flush()
    }

    /// Writes the evidence of `snapshot` (the one the report was built from) and what else the
    /// report was built from. A target never observed has nothing to replay: it is skipped.
    pub fn report(
        &mut self,
        snapshot: &TargetSnapshot,
        report: ReportInputs,
    ) -> Result<(), RecordError> {
        let pid = snapshot.info.id.pid;
        if !self.knows(snapshot.info.id) {
            return Ok(());
        }
        self.evidence(snapshot, snapshot.observed_seconds.0)?;
        self.line(&Record::Report { pid, report })?;
        self.flush()
    }

    /// The evidence of `snapshot`, when it changed since it was last written.
    fn evidence(&mut self, snapshot: &TargetSnapshot, t: f64) -> Result<(), RecordError> {
        let evidence = Evidence::of(snapshot);
        let pid = snapshot.info.id.pid;
        let Some(followed) = self.targets.get_mut(&pid) else {
            return Ok(());
        };
        followed.evidence_at = Some(t);
        if followed.evidence.as_ref() == Some(&evidence) {
            return Ok(());
        }
        followed.evidence = Some(evidence.clone());
        self.line(&Record::Evidence {
            pid,
            t,
            evidence: Box::new(evidence),
        })
    }

    fn knows(&self, id: TargetId) -> bool {
        self.targets.get(&id.pid).is_some_and(|f| f.info.id == id)
    }

    /// The target's state, writing its `target` record when it is first seen (or its PID was
    /// reused by another process).
    fn follow(&mut self, monitor: &TargetMonitor) -> Result<&mut Followed, RecordError> {
        let info = monitor.info();
        let pid = info.id.pid;
        let known = self.targets.get(&pid).is_some_and(|f| f.info.id == info.id);
        if !known {
            let record = Record::Target {
                pid,
                info: info.clone(),
                interval_seconds: monitor.interval().as_secs_f64(),
                trend_refresh_seconds: monitor.trend_refresh_seconds(),
            };
            self.line(&record)?;
            self.targets.insert(
                pid,
                Followed {
                    info: info.clone(),
                    seq: 0,
                    limits: None,
                    evidence_at: None,
                    evidence: None,
                },
            );
        }
        Ok(self.targets.get_mut(&pid).expect("inserted above"))
    }

    fn line(&mut self, value: &impl serde::Serialize) -> Result<(), RecordError> {
        serde_json::to_writer(&mut self.out, value)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|source| RecordError {
                path: self.path.clone(),
                source,
            })
    }

    fn flush(&mut self) -> Result<(), RecordError> {
        self.out.flush().map_err(|source| RecordError {
            path: self.path.clone(),
            source,
        })
    }
}

pub fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

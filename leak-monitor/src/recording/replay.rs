//! Rebuilds the reports of a recording offline: the samples go through the same detectors
//! (`monitor::trends`) at the same seconds, so the verdicts, rates and charts are computed
//! again, not copied; sites and census findings are the recorded evidence (their source files
//! and the process are not there to read again).

use super::format::{Evidence, Header, Record, ReportInputs, FORMAT};
use crate::capabilities::Capabilities;
use crate::monitor::trends::Trends;
use crate::monitor::{ResourceSeries, ResourceSnapshot, StacksStatus, TargetSnapshot};
use crate::outputs::report::Report;
use crate::resource::{Amount, Resource, Seconds};
use crate::sampling::{Limits, Sample};
use crate::targets::TargetInfo;
use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a recording cannot be replayed. Each message is one line and says where.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is empty: not a leak-monitor recording")]
    Empty { path: String },
    #[error("{path}: line 1 is not a leak-monitor recording header ({reason})")]
    NotARecording { path: String, reason: String },
    #[error("{path} is a `{found}` recording; this leak-monitor reads `{FORMAT}`")]
    OtherFormat { path: String, found: String },
    #[error("{path}:{line}: {reason}")]
    BadRecord {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("{path}:{line}: a `{kind}` record for PID {pid}, which no `target` record introduced")]
    UnknownTarget {
        path: String,
        line: usize,
        kind: &'static str,
        pid: i32,
    },
    #[error("{path} holds no target: nothing was recorded")]
    NoTargets { path: String },
}

/// One target of a recording, replayed: as of its last report (a run writes one at its end,
/// the daemon one at each leak verdict and exit), else as of its last sample.
pub struct Replayed {
    pub snapshot: TargetSnapshot,
    pub series: Vec<ResourceSeries>,
    /// What the recorded report was built with; `None` when the recording has none.
    pub report_inputs: Option<ReportInputs>,
}

impl Replayed {
    /// The report, as the recording run built it (or, for a recording cut short, as of its last
    /// sample, with the run's capabilities and a note saying so).
    pub fn report(&self, header: &Header) -> Report {
        match &self.report_inputs {
            Some(inputs) => {
                let generated =
                    UNIX_EPOCH + Duration::from_secs_f64(inputs.generated_unix.max(0.0));
                let mut report = Report::build(&self.snapshot, &inputs.capabilities, generated);
                // What the run knew beside the snapshot; absent: as `Report::build` has it.
                let observation = &mut report.observation;
                if inputs.cut_short.is_some() {
                    observation.cut_short = inputs.cut_short;
                }
                if inputs.target_exited_after_seconds.is_some() {
                    observation.target_exited_after_seconds = inputs.target_exited_after_seconds;
                }
                if inputs.dropped_events.is_some() {
                    observation.dropped_events = inputs.dropped_events.clone();
                }
                report
            }
            None => {
                let mut capabilities: Capabilities =
                    header.capabilities.for_target(&self.snapshot.info);
                capabilities.note(format!(
                    "the recording ends after {:.1} s of observation without a report (the recorder was stopped): this report covers what was recorded",
                    self.snapshot.observed_seconds.0
                ));
                Report::build(&self.snapshot, &capabilities, SystemTime::now())
            }
        }
    }
}

/// A recording read back: its header and each target, in the order they were first recorded.
pub struct Replay {
    pub header: Header,
    pub targets: Vec<Replayed>,
}

impl Replay {
    pub fn reports(&self) -> Vec<Report> {
        self.targets
            .iter()
            .map(|t| t.report(&self.header))
            .collect()
    }
}

/// Reads and replays the recording at `path`.
pub fn replay(path: &Path) -> Result<Replay, ReplayError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| ReplayError::Read {
        path: shown.clone(),
        source,
    })?;
    replay_lines(std::io::BufReader::new(file), &shown)
}

/// Replays a recording from `input`; `path` names it in errors.
pub fn replay_lines(input: impl BufRead, path: &str) -> Result<Replay, ReplayError> {
    let mut lines = input.lines().enumerate();
    let read_error = |source| ReplayError::Read {
        path: path.to_string(),
        source,
    };
    let (_, first) = lines.next().ok_or_else(|| ReplayError::Empty {
        path: path.to_string(),
    })?;
    let header = parse_header(&first.map_err(read_error)?, path)?;
    let mut targets: Vec<(i32, TargetReplay)> = Vec::new();
    for (index, line) in lines {
        let line = line.map_err(read_error)?;
        if line.trim().is_empty() {
            continue;
        }
        let number = index + 1;
        let record: Record = serde_json::from_str(&line).map_err(|err| ReplayError::BadRecord {
            path: path.to_string(),
            line: number,
            reason: err.to_string(),
        })?;
        if let Record::Target {
            pid,
            info,
            interval_seconds,
            trend_refresh_seconds,
        } = record
        {
            let replay = TargetReplay::new(info, interval_seconds, trend_refresh_seconds);
            // A reused PID starts a new target; the old one keeps what it had.
            targets.push((pid, replay));
            continue;
        }
        let pid = record.pid();
        let Some((_, target)) = targets.iter_mut().rev().find(|(p, _)| *p == pid) else {
            return Err(ReplayError::UnknownTarget {
                path: path.to_string(),
                line: number,
                kind: kind_name(&record),
                pid,
            });
        };
        target.apply(record);
    }
    if targets.is_empty() {
        return Err(ReplayError::NoTargets {
            path: path.to_string(),
        });
    }
    Ok(Replay {
        header,
        targets: targets.into_iter().map(|(_, t)| t.finish()).collect(),
    })
}

fn parse_header(line: &str, path: &str) -> Result<Header, ReplayError> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|err| ReplayError::NotARecording {
            path: path.to_string(),
            reason: err.to_string(),
        })?;
    match value.get("format").and_then(|f| f.as_str()) {
        Some(FORMAT) => {}
        Some(other) => {
            return Err(ReplayError::OtherFormat {
                path: path.to_string(),
                found: other.to_string(),
            })
        }
        None => {
            return Err(ReplayError::NotARecording {
                path: path.to_string(),
                reason: "it has no `format` field".to_string(),
            })
        }
    }
    serde_json::from_value(value).map_err(|err| ReplayError::NotARecording {
        path: path.to_string(),
        reason: err.to_string(),
    })
}

fn kind_name(record: &Record) -> &'static str {
    match record {
        Record::Target { .. } => "target",
        Record::Sample { .. } => "sample",
        Record::Evidence { .. } => "evidence",
        Record::Report { .. } => "report",
    }
}

/// One target being replayed: the detectors fed as the live monitor fed them.
struct TargetReplay {
    info: TargetInfo,
    interval_seconds: f64,
    trends: Trends,
    limits: Limits,
    latest: Option<Sample>,
    samples: u64,
    last_t: f64,
    evidence: Option<Evidence>,
    /// The target as of its last `report` record.
    reported: Option<Replayed>,
}

impl TargetReplay {
    fn new(info: TargetInfo, interval_seconds: f64, trend_refresh_seconds: f64) -> Self {
        TargetReplay {
            info,
            interval_seconds,
            trends: Trends::new(trend_refresh_seconds),
            limits: Limits::default(),
            latest: None,
            samples: 0,
            last_t: 0.0,
            evidence: None,
            reported: None,
        }
    }

    fn apply(&mut self, record: Record) {
        match record {
            Record::Target { .. } => {}
            Record::Sample {
                t,
                sample,
                limits,
                agreed_early,
                ..
            } => {
                if let Some(limits) = limits {
                    self.limits = limits;
                }
                let sample = Sample::from(&sample);
                self.trends.observe(t, &sample, &self.limits);
                self.trends.publish(t, &agreed_early);
                self.latest = Some(sample);
                self.samples += 1;
                self.last_t = t;
            }
            Record::Evidence { evidence, .. } => {
                self.info = evidence.info.clone();
                self.evidence = Some(*evidence);
            }
            Record::Report { report, .. } => {
                self.reported = Some(Replayed {
                    snapshot: self.snapshot(),
                    series: self.trends.series(),
                    report_inputs: Some(report),
                });
            }
        }
    }

    fn finish(self) -> Replayed {
        match self.reported {
            Some(reported) => reported,
            None => Replayed {
                snapshot: self.snapshot(),
                series: self.trends.series(),
                report_inputs: None,
            },
        }
    }

    /// The target as of the records read so far.
    fn snapshot(&self) -> TargetSnapshot {
        let evidence = self.evidence.as_ref();
        let resources = Resource::ALL
            .iter()
            .filter_map(|&resource| {
                let figures = self.trends.figures(resource)?;
                let recorded = evidence.and_then(|e| e.resource(resource));
                Some(ResourceSnapshot::new(
                    resource,
                    figures,
                    self.limits.for_resource(resource).map(Amount),
                    recorded.map_or_else(Vec::new, |r| r.sites.clone()),
                    recorded.map_or_else(Vec::new, |r| r.heap_growth.clone()),
                ))
            })
            .collect();
        TargetSnapshot {
            info: self.info.clone(),
            latest: self.latest.clone().unwrap_or_default(),
            limits: self.limits,
            resources,
            observed_seconds: Seconds(self.last_t),
            samples: self.samples,
            interval_seconds: Seconds(self.interval_seconds),
            ledgers: evidence.and_then(|e| e.ledgers),
            kernel_frames_off: evidence.and_then(|e| e.kernel_frames_off.clone()),
            allocations: evidence.and_then(|e| e.allocations.clone()),
            kernel_tracing: evidence.and_then(|e| e.kernel_tracing.clone()),
            stacks: evidence.map_or_else(
                || StacksStatus::Off("the recording holds no attribution evidence".to_string()),
                |e| e.stacks.clone(),
            ),
            heap: evidence.and_then(|e| e.heap.clone()),
            memory: evidence
                .and_then(|e| e.memory.clone())
                .unwrap_or_else(|| Err("the recording holds no memory breakdown".to_string())),
        }
    }
}

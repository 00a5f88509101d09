//! The recording format, `leak-monitor/recording/v1`: JSON Lines, one record per line, the
//! first a header. docs/recording.md documents every record; a reader refuses another format
//! and names what it found.

use crate::attribution::Site;
use crate::capabilities::Capabilities;
use crate::events::{GateStats, LedgerCounts};
use crate::memory::BreakdownFindings;
use crate::monitor::{StacksStatus, TargetSnapshot};
use crate::pyheap::growth::TypeGrowth;
use crate::pyheap::HeapFindings;
use crate::resource::{Bytes, Resource};
use crate::sampling::net_tables::known_state;
use crate::sampling::{FdCounts, FdKind, Limits, Memory, Protocol, Sample, SocketCounts};
use crate::targets::TargetInfo;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

/// The header's `format`.
pub const FORMAT: &str = "leak-monitor/recording/v1";

/// The first line of a recording.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    /// The leak-monitor version that recorded it.
    pub recorded_by: String,
    /// When the recording started, seconds since the Unix epoch.
    pub started_unix: f64,
    /// The run's capabilities as announced (a target's report carries its own).
    pub capabilities: Capabilities,
}

/// Every line after the header. Records of several targets interleave, each keyed by PID.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A target is followed from now on.
    Target {
        pid: i32,
        info: TargetInfo,
        interval_seconds: f64,
        /// Trends are recomputed at most this often (0: at every sample).
        trend_refresh_seconds: f64,
    },
    /// One procfs sample fed to the detectors, `t` seconds into the observation, with the
    /// early leaks attribution agreed with when the trends were published after it.
    Sample {
        pid: i32,
        t: f64,
        sample: RecordedSample,
        /// Present on the first sample and whenever the limits changed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limits: Option<Limits>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        agreed_early: Vec<Resource>,
    },
    /// What attribution had found by `t`: sites, census, ledgers. The latest one is used.
    Evidence {
        pid: i32,
        t: f64,
        evidence: Box<Evidence>,
    },
    /// A report was built for the target: the inputs that are not samples or evidence.
    Report { pid: i32, report: ReportInputs },
}

impl Record {
    pub fn pid(&self) -> i32 {
        match self {
            Record::Target { pid, .. }
            | Record::Sample { pid, .. }
            | Record::Evidence { pid, .. }
            | Record::Report { pid, .. } => *pid,
        }
    }
}

/// A procfs sample (`Sample`), in a shape JSON can key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordedSample {
    pub rss: u64,
    pub anon: u64,
    pub file: u64,
    pub shmem: u64,
    pub fds: BTreeMap<FdKind, u64>,
    /// (protocol, state, count).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sockets: Vec<(Protocol, String, u64)>,
    pub threads: u64,
}

impl From<&Sample> for RecordedSample {
    fn from(sample: &Sample) -> Self {
        RecordedSample {
            rss: sample.memory.total.0,
            anon: sample.memory.anon.0,
            file: sample.memory.file.0,
            shmem: sample.memory.shmem.0,
            fds: sample.fds.by_kind.clone(),
            sockets: sample
                .sockets
                .by_protocol_state
                .iter()
                .map(|(&(protocol, state), &n)| (protocol, state.to_owned(), n))
                .collect(),
            threads: sample.threads,
        }
    }
}

impl From<&RecordedSample> for Sample {
    fn from(recorded: &RecordedSample) -> Self {
        let mut sockets = SocketCounts::default();
        for (protocol, state, n) in &recorded.sockets {
            *sockets
                .by_protocol_state
                .entry((*protocol, known_state(state)))
                .or_default() += n;
        }
        Sample {
            memory: Memory {
                total: Bytes(recorded.rss),
                anon: Bytes(recorded.anon),
                file: Bytes(recorded.file),
                shmem: Bytes(recorded.shmem),
            },
            fds: FdCounts {
                by_kind: recorded.fds.clone(),
            },
            sockets,
            threads: recorded.threads,
        }
    }
}

/// What attribution found for one target: everything in a `TargetSnapshot` that the samples
/// do not give (the trends and figures are recomputed from the samples on replay).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// As of now: an exec may have changed it since the `target` record.
    pub info: TargetInfo,
    pub resources: Vec<ResourceEvidence>,
    pub ledgers: Option<LedgerCounts>,
    pub kernel_frames_off: Option<String>,
    pub allocations: Option<Result<(), String>>,
    pub kernel_tracing: Option<(GateStats, Option<String>)>,
    pub stacks: StacksStatus,
    pub heap: Option<Result<std::sync::Arc<HeapFindings>, String>>,
    /// The memory breakdowns (absent in recordings made before them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Result<Arc<BreakdownFindings>, String>>,
}

/// One resource's sites (source lines resolved and described) and heap type growth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResourceEvidence {
    pub resource: Resource,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<Site>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heap_growth: Vec<TypeGrowth>,
}

impl Evidence {
    pub fn of(snapshot: &TargetSnapshot) -> Self {
        Evidence {
            info: snapshot.info.clone(),
            resources: snapshot
                .resources
                .iter()
                .map(|r| ResourceEvidence {
                    resource: r.resource,
                    sites: r.sites.clone(),
                    heap_growth: r.heap_growth.clone(),
                })
                .collect(),
            ledgers: snapshot.ledgers,
            kernel_frames_off: snapshot.kernel_frames_off.clone(),
            allocations: snapshot.allocations.clone(),
            kernel_tracing: snapshot.kernel_tracing.clone(),
            stacks: snapshot.stacks.clone(),
            heap: snapshot.heap.clone(),
            memory: Some(snapshot.memory.clone()),
        }
    }

    /// The evidence of one resource (none recorded: no sites).
    pub fn resource(&self, resource: Resource) -> Option<&ResourceEvidence> {
        self.resources.iter().find(|r| r.resource == resource)
    }
}

/// What a report was built from beside the snapshot: the run's capabilities and notes, when it
/// was generated, and the observation's facts the run knew (`Observation`'s additions).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportInputs {
    pub generated_unix: f64,
    pub capabilities: Capabilities,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_short: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_exited_after_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_events: Option<BTreeMap<String, u64>>,
}

impl ReportInputs {
    /// A report of `Report::build` alone: the observation's additions as it sets them.
    pub fn new(generated: SystemTime, capabilities: Capabilities) -> Self {
        ReportInputs {
            generated_unix: super::unix_seconds(generated),
            capabilities,
            cut_short: None,
            target_exited_after_seconds: None,
            dropped_events: None,
        }
    }
}

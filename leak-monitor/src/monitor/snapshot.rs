//! The read-only view of a target that the outputs (metrics, reports, live view) render.

use crate::attribution::Site;
use crate::detection::{Trend, VerdictChange};
use crate::events::{GateStats, LedgerCounts};
use crate::memory::BreakdownFindings;
use crate::pyheap::growth::TypeGrowth;
use crate::pyheap::HeapFindings;
use crate::resource::{Amount, Resource, Seconds};
use crate::sampling::{Limits, Sample};
use crate::targets::TargetInfo;
use std::sync::Arc;

/// One resource of one target as the outputs see it.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceSnapshot {
    pub resource: Resource,
    pub trend: Trend,
    /// First and last observed values.
    pub first: Amount,
    pub last: Amount,
    /// The limit this resource runs into, when known.
    pub limit: Option<Amount>,
    /// Seconds from the start of observation to the `leak` verdict, while it holds.
    pub leak_since_seconds: Option<Seconds>,
    /// Largest first.
    pub sites: Vec<Site>,
    /// Types whose count kept rising across heap censuses (`rss_bytes` only).
    pub heap_growth: Vec<TypeGrowth>,
    /// The latest changes of the published verdict, oldest first.
    pub verdict_changes: Vec<VerdictChange>,
    /// Every change since the start.
    pub verdict_changes_total: u64,
}

/// The figures of one resource that a snapshot shows.
pub struct TrendFigures {
    pub trend: Trend,
    pub first: Amount,
    pub last: Amount,
    pub leak_since_seconds: Option<Seconds>,
    pub verdict_changes: Vec<VerdictChange>,
    pub verdict_changes_total: u64,
}

impl ResourceSnapshot {
    pub fn new(
        resource: Resource,
        figures: TrendFigures,
        limit: Option<Amount>,
        sites: Vec<Site>,
        heap_growth: Vec<TypeGrowth>,
    ) -> Self {
        ResourceSnapshot {
            resource,
            trend: figures.trend,
            first: figures.first,
            last: figures.last,
            limit,
            leak_since_seconds: figures.leak_since_seconds,
            sites,
            heap_growth,
            verdict_changes: figures.verdict_changes,
            verdict_changes_total: figures.verdict_changes_total,
        }
    }
}

/// Everything the outputs need about one target at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetSnapshot {
    pub info: TargetInfo,
    pub latest: Sample,
    pub limits: Limits,
    pub resources: Vec<ResourceSnapshot>,
    /// Seconds between the first and the last sample.
    pub observed_seconds: Seconds,
    pub samples: u64,
    pub interval_seconds: Seconds,
    /// The eBPF ledgers' counts, when the target is traced.
    pub ledgers: Option<LedgerCounts>,
    /// Why the kernel does not walk this target's Python frames, though tracing is on.
    pub kernel_frames_off: Option<String>,
    /// `--track-allocations`: `Ok` when the allocator probes are attached, else why not;
    /// `None` when not asked for.
    pub allocations: Option<Result<(), String>>,
    /// When tracing is on: how much the kernel's syscall and page-fault programs were attached,
    /// and why they could not be attached at this target's growth, if they could not.
    pub kernel_tracing: Option<(GateStats, Option<String>)>,
    /// Whether Python stacks are read for this target, and why not.
    pub stacks: StacksStatus,
    /// The heap census of this target: what it found, or why it is off (`None`: not Python).
    pub heap: Option<Result<Arc<HeapFindings>, String>>,
    /// Breakdowns of resident memory over the observation, or why there are none.
    pub memory: Result<Arc<BreakdownFindings>, String>,
}

/// Python stack reading for one target.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StacksStatus {
    /// The stack reader is attached: growth is attributed to source lines.
    On,
    /// The target is not a Python process: nothing to read.
    NotPython,
    /// The target is Python but its stacks cannot be read; the reason, for the report's notes.
    Off(String),
}

/// The samples kept for one resource of one target, (seconds since start, value), oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceSeries {
    pub resource: Resource,
    pub points: Vec<(f64, f64)>,
}

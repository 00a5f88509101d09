//! Starting the eBPF tracer for a command, following its targets with it, and carrying its event
//! counts into the metrics. Tracing is optional: when it cannot start, the command goes on with
//! procfs alone and the capabilities say why.

use crate::capabilities::{Capabilities, Privileges};
use crate::cli::TracingMode;
use crate::events::{Engagement, EventStats};
use crate::monitor::{TargetMonitor, Tracing};
use crate::outputs::metrics::Metrics;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Event kinds exported from the start (so `rate()` works before the first event).
const EVENT_KINDS: [&str; 8] = [
    "fd_open",
    "fd_close",
    "thread_new",
    "thread_exit",
    "exec",
    "fork",
    "page_fault",
    "unmap",
];

/// Starts the tracer unless `--no-ebpf` said not to, and follows each monitor's process with it;
/// the outcome goes in `capabilities`.
pub fn start_following(
    capabilities: &mut Capabilities,
    mode: TracingMode,
    engagement: Engagement,
    monitors: &mut [TargetMonitor],
) -> Option<Arc<Tracing>> {
    let tracer = start(capabilities, mode, engagement);
    follow_all(tracer.as_ref(), monitors, capabilities);
    tracer
}

fn start(
    capabilities: &mut Capabilities,
    mode: TracingMode,
    engagement: Engagement,
) -> Option<Arc<Tracing>> {
    if mode == TracingMode::Off {
        capabilities.set_tracing(Err("switched off with --no-ebpf".to_string()));
        return None;
    }
    let allocations = mode == TracingMode::EventsAndAllocations;
    match Tracing::start(Privileges::current(), allocations, engagement) {
        Ok(tracer) => {
            capabilities.set_tracing(Ok(()));
            Some(Arc::new(tracer))
        }
        Err(err) => {
            capabilities.set_tracing(Err(err.to_string()));
            None
        }
    }
}

/// Follows each monitor's process in the kernel. A process the tracer cannot follow keeps its
/// procfs monitoring; the note says so.
fn follow_all(
    tracer: Option<&Arc<Tracing>>,
    monitors: &mut [TargetMonitor],
    capabilities: &mut Capabilities,
) {
    let Some(tracer) = tracer else {
        return;
    };
    for monitor in monitors {
        if let Err(err) = monitor.trace_with(Arc::clone(tracer)) {
            capabilities.note(format!("{err}; that target is sampled from procfs only"));
        }
    }
}

/// Events the kernel lost so far, for every kind (0 included, so a report says it lost none).
pub fn dropped_by_kind(tracing: &Tracing) -> BTreeMap<String, u64> {
    let mut dropped: BTreeMap<String, u64> = EVENT_KINDS
        .iter()
        .map(|kind| (kind.to_string(), 0))
        .collect();
    for (kind, count) in tracing.tracer.stats().dropped {
        *dropped.entry(kind.to_string()).or_default() += count;
    }
    dropped
}

/// Pushes the tracer's event counts into the metrics as deltas since the last call, and whether
/// its gated programs are attached.
#[derive(Default)]
pub struct EventCounters {
    last: EventStats,
}

impl EventCounters {
    pub fn declare(metrics: &Metrics) -> Self {
        for kind in EVENT_KINDS {
            metrics.declare_event_kind(kind);
        }
        for what in crate::events::PAIRING_COUNTS {
            metrics.add_pairing(what, 0);
        }
        EventCounters::default()
    }

    pub fn update(&mut self, tracer: Option<&Arc<Tracing>>, metrics: &Metrics) {
        let Some(tracer) = tracer else {
            return;
        };
        metrics.set_kernel_tracing(tracer.tracer.gate_stats().attached);
        let now = tracer.tracer.stats();
        for (kind, delta) in deltas(&now.received, &self.last.received) {
            metrics.add_events(kind, delta);
        }
        for (kind, delta) in deltas(&now.dropped, &self.last.dropped) {
            metrics.add_dropped(kind, delta);
        }
        for (what, delta) in deltas(&now.pairing, &self.last.pairing) {
            metrics.add_pairing(what, delta);
        }
        self.last = now;
    }
}

fn deltas<'a>(
    now: &'a BTreeMap<&'static str, u64>,
    before: &'a BTreeMap<&'static str, u64>,
) -> impl Iterator<Item = (&'static str, u64)> + 'a {
    now.iter().filter_map(|(kind, &count)| {
        let delta = count.saturating_sub(before.get(kind).copied().unwrap_or(0));
        (delta > 0).then_some((*kind, delta))
    })
}

//! What `run`, `watch` and `demo` share: the tracer that follows their targets, the run's
//! capabilities, the recording and the tick loop. They differ only in what they show while
//! observing and which reports they write at the end. (`serve` drives a `Fleet` the same way,
//! target by target as they come and go.)

use super::record::Recording;
use super::ticker::{StopFlag, Ticker};
use super::tracing;
use crate::capabilities::{Capabilities, Privileges};
use crate::cli::TracingMode;
use crate::events::Engagement;
use crate::monitor::{TargetMonitor, TargetSnapshot, Tracing};
use crate::recording::format::ReportInputs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The targets of one command and what follows them.
pub struct Session {
    pub monitors: Vec<TargetMonitor>,
    /// The run's capabilities (a target's report adds its own notes).
    pub capabilities: Capabilities,
    /// Kept for the session: dropping it detaches the kernel programs.
    tracer: Option<Arc<Tracing>>,
    recording: Option<Recording>,
}

impl Session {
    /// Follows the monitors' processes in the kernel (unless `tracing` is off; the outcome goes
    /// in the capabilities, which are announced) and starts the recording, if asked for, with
    /// the samples the monitors took when they attached.
    pub fn start(
        mut monitors: Vec<TargetMonitor>,
        tracing: TracingMode,
        engagement: Engagement,
        record: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let mut capabilities = Capabilities::procfs_only(Privileges::current());
        let tracer =
            tracing::start_following(&mut capabilities, tracing, engagement, &mut monitors);
        let recording = match record {
            Some(path) => Some(Recording::start(path, &capabilities, &monitors)?),
            None => None,
        };
        Ok(Session {
            monitors,
            capabilities,
            tracer,
            recording,
        })
    }

    pub fn tracer(&self) -> Option<&Arc<Tracing>> {
        self.tracer.as_ref()
    }

    /// Ticks every target each `interval` until `deadline` (if any), every target has ended,
    /// or a signal, recording each tick. `on_tick` sees the monitors and the time since the
    /// start once before the first tick and after each. Returns the signal that ended it, if
    /// one did.
    pub fn observe(
        &mut self,
        interval: Duration,
        deadline: Option<Instant>,
        stop: &StopFlag,
        mut on_tick: impl FnMut(Duration, &[TargetMonitor]),
    ) -> Option<&'static str> {
        let started = Instant::now();
        let mut ticker = Ticker::new(interval);
        on_tick(Duration::ZERO, &self.monitors);
        while deadline.is_none_or(|d| Instant::now() < d)
            && self.monitors.iter().any(|m| m.ended().is_none())
        {
            let Some(now) = ticker.wait(stop) else {
                break;
            };
            for monitor in &mut self.monitors {
                // Errors are kept in the monitor (ended) or transient: the session goes on.
                let _ = monitor.tick(now);
                if let Some(recording) = self.recording.as_mut() {
                    recording.write(|r| r.observe(monitor));
                }
            }
            on_tick(now.duration_since(started), &self.monitors);
        }
        stop.signal()
    }

    /// Records what a report was built from (`snapshot`, and the rest in `inputs`).
    pub fn record_report(&mut self, snapshot: &TargetSnapshot, inputs: ReportInputs) {
        if let Some(recording) = self.recording.as_mut() {
            recording.write(|r| r.report(snapshot, inputs));
        }
    }

    /// Ends the recording: says where it is, or fails when it could not be written whole.
    pub fn finish_recording(&mut self) -> anyhow::Result<()> {
        match self.recording.take() {
            Some(recording) => recording.finish(),
            None => Ok(()),
        }
    }
}

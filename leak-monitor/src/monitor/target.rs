//! One followed process: procfs samples in, per-resource trends out.

use super::snapshot::{ResourceSeries, ResourceSnapshot, TargetSnapshot};
use crate::detection::{DetectorConfig, Spike, Tracker, Trend};
use crate::events::{Tracer, TracerError};
use crate::resource::Resource;
use crate::sampling::{Limits, Sample, SampleError, Sampler};
use crate::targets::{self, TargetInfo};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often limits (fd soft limit, cgroup memory limit) are re-read: they rarely change, and
/// reading the cgroup walks several files.
const LIMITS_REFRESH: Duration = Duration::from_secs(30);

/// Spikes kept for the stack sampler; older ones are dropped first.
const MAX_PENDING_SPIKES: usize = 64;

/// Why a target stopped being followed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The process exited (or its PID now belongs to another process).
    Exited,
    /// Sampling failed for good, e.g. permission was lost.
    Failed(String),
}

/// Follows one process.
pub struct TargetMonitor {
    info: TargetInfo,
    sampler: Sampler,
    limits: Limits,
    limits_read_at: Instant,
    trackers: Vec<ResourceTracker>,
    latest: Option<Sample>,
    started: Instant,
    last_sample_at: Option<Instant>,
    samples: u64,
    interval: Duration,
    trend_refresh: Duration,
    spikes: VecDeque<(Resource, Spike)>,
    ended: Option<Ended>,
    /// The eBPF tracer following this process, when tracing is on.
    tracer: Option<Arc<Tracer>>,
}

impl TargetMonitor {
    /// Attaches to the process and takes the first sample, so an unusable target fails here.
    pub fn attach(info: TargetInfo, interval: Duration) -> Result<Self, SampleError> {
        let sampler = Sampler::attach(info.id.pid)?;
        let limits = sampler.limits()?;
        let now = Instant::now();
        let mut monitor = TargetMonitor {
            info,
            sampler,
            limits,
            limits_read_at: now,
            trackers: Resource::ALL
                .iter()
                .map(|&r| ResourceTracker::new(r))
                .collect(),
            latest: None,
            started: now,
            last_sample_at: None,
            samples: 0,
            interval,
            trend_refresh: Duration::ZERO,
            spikes: VecDeque::new(),
            ended: None,
            tracer: None,
        };
        monitor.tick(now)?;
        Ok(monitor)
    }

    /// Recompute trends at most this often (default: every tick). A trend costs up to ~0.5 ms
    /// per resource at the tracker's cap, so a daemon following many targets spaces them out;
    /// a verdict is seconds to minutes in the making anyway.
    pub fn set_trend_refresh(&mut self, every: Duration) {
        self.trend_refresh = every;
    }

    /// Follows this process in the kernel too: its fd, thread and page ledgers start now,
    /// seeded from procfs. Unfollowed when the monitor is dropped.
    pub fn trace_with(&mut self, tracer: Arc<Tracer>) -> Result<(), TracerError> {
        tracer.follow(self.info.id.pid)?;
        self.tracer = Some(tracer);
        Ok(())
    }

    pub fn tracer(&self) -> Option<&Arc<Tracer>> {
        self.tracer.as_ref()
    }

    pub fn info(&self) -> &TargetInfo {
        &self.info
    }

    pub fn ended(&self) -> Option<&Ended> {
        self.ended.as_ref()
    }

    /// Takes one sample. On error the monitor keeps what it has; a gone process is marked ended
    /// (its PID and start time are checked, so a reused PID is not mistaken for it).
    pub fn tick(&mut self, now: Instant) -> Result<(), SampleError> {
        if self.ended.is_some() {
            return Ok(());
        }
        if !targets::is_alive(self.info.id) {
            self.ended = Some(Ended::Exited);
            return Err(SampleError::Gone {
                pid: self.info.id.pid,
            });
        }
        let sample = match self.sampler.sample() {
            Ok(sample) => sample,
            Err(err) => {
                self.ended = Some(match &err {
                    SampleError::Gone { .. } => Ended::Exited,
                    SampleError::PermissionDenied { .. } => Ended::Failed(err.to_string()),
                    // A transient read error: keep following.
                    SampleError::Io { .. } => return Err(err),
                });
                return Err(err);
            }
        };
        if now.duration_since(self.limits_read_at) >= LIMITS_REFRESH {
            // Keep the old limits when the re-read fails: they are still the best we know.
            if let Ok(limits) = self.sampler.limits() {
                self.limits = limits;
            }
            self.limits_read_at = now;
        }
        let t = now.duration_since(self.started).as_secs_f64();
        for tracked in &mut self.trackers {
            let resource = tracked.resource;
            if let Some(spike) = tracked.tracker.push(t, sample.value(resource)) {
                if self.spikes.len() == MAX_PENDING_SPIKES {
                    self.spikes.pop_front();
                }
                self.spikes.push_back((resource, spike));
            }
            let limit = self.limits.for_resource(resource);
            tracked.refresh_if_older_than(self.trend_refresh, now, limit);
        }
        self.latest = Some(sample);
        self.last_sample_at = Some(now);
        self.samples += 1;
        Ok(())
    }

    /// The growth spikes seen since the last call, oldest first.
    pub fn drain_spikes(&mut self) -> impl Iterator<Item = (Resource, Spike)> + '_ {
        self.spikes.drain(..)
    }

    /// The current trend of one resource (refreshed at most every few seconds).
    pub fn trend(&self, resource: Resource) -> Trend {
        self.trackers
            .iter()
            .find(|t| t.resource == resource)
            .map(|t| t.trend)
            .unwrap_or(Trend::UNKNOWN)
    }

    /// Recomputes every trend now, e.g. before a final report.
    pub fn refresh_trends(&mut self) {
        let now = Instant::now();
        for tracked in &mut self.trackers {
            let limit = self.limits.for_resource(tracked.resource);
            tracked.refresh(now, limit);
        }
    }

    /// The samples kept for every resource, for charts.
    pub fn series(&self) -> Vec<ResourceSeries> {
        self.trackers
            .iter()
            .map(|t| ResourceSeries {
                resource: t.resource,
                points: t.tracker.points().collect(),
            })
            .collect()
    }

    pub fn snapshot(&self) -> TargetSnapshot {
        let resources = self
            .trackers
            .iter()
            .map(|t| ResourceSnapshot {
                resource: t.resource,
                trend: t.trend,
                first: t.tracker.first().unwrap_or(0.0),
                last: t.tracker.last().unwrap_or(0.0),
                limit: self.limits.for_resource(t.resource),
                sites: Vec::new(),
            })
            .collect();
        let observed_seconds = self
            .last_sample_at
            .map(|at| at.duration_since(self.started).as_secs_f64())
            .unwrap_or(0.0);
        TargetSnapshot {
            info: self.info.clone(),
            latest: self.latest.clone().unwrap_or_default(),
            limits: self.limits,
            resources,
            observed_seconds,
            samples: self.samples,
            interval_seconds: self.interval.as_secs_f64(),
            ledgers: self
                .tracer
                .as_ref()
                .and_then(|t| t.counts(self.info.id.pid)),
        }
    }
}

impl Drop for TargetMonitor {
    fn drop(&mut self) {
        if let Some(tracer) = &self.tracer {
            tracer.unfollow(self.info.id.pid);
        }
    }
}

/// One resource's detector and its last conclusion.
struct ResourceTracker {
    resource: Resource,
    tracker: Tracker,
    trend: Trend,
    computed_at: Option<Instant>,
}

impl ResourceTracker {
    fn new(resource: Resource) -> Self {
        ResourceTracker {
            resource,
            tracker: Tracker::new(DetectorConfig::for_unit(resource.unit())),
            trend: Trend::UNKNOWN,
            computed_at: None,
        }
    }

    fn refresh_if_older_than(&mut self, max_age: Duration, now: Instant, limit: Option<f64>) {
        let stale = self
            .computed_at
            .is_none_or(|at| now.duration_since(at) >= max_age);
        if stale {
            self.refresh(now, limit);
        }
    }

    fn refresh(&mut self, now: Instant, limit: Option<f64>) {
        self.trend = self.tracker.trend(limit);
        self.computed_at = Some(now);
    }
}

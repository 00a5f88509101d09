//! One followed process: procfs samples in, per-resource trends out.

use super::snapshot::{ResourceSeries, ResourceSnapshot, TargetSnapshot};
use crate::detection::{DetectorConfig, Spike, Tracker, Trend};
use crate::resource::Resource;
use crate::sampling::{Limits, Sample, SampleError, Sampler};
use crate::targets::{self, TargetInfo};
use std::collections::VecDeque;
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
    trackers: Vec<(Resource, Tracker)>,
    latest: Option<Sample>,
    started: Instant,
    last_sample_at: Option<Instant>,
    samples: u64,
    interval: Duration,
    spikes: VecDeque<(Resource, Spike)>,
    ended: Option<Ended>,
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
                .map(|&r| (r, Tracker::new(DetectorConfig::default())))
                .collect(),
            latest: None,
            started: now,
            last_sample_at: None,
            samples: 0,
            interval,
            spikes: VecDeque::new(),
            ended: None,
        };
        monitor.tick(now)?;
        Ok(monitor)
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
        for (resource, tracker) in &mut self.trackers {
            if let Some(spike) = tracker.push(t, sample.value(*resource)) {
                if self.spikes.len() == MAX_PENDING_SPIKES {
                    self.spikes.pop_front();
                }
                self.spikes.push_back((*resource, spike));
            }
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

    /// The current trend of one resource.
    pub fn trend(&self, resource: Resource) -> Trend {
        self.tracker(resource)
            .map(|t| t.trend(self.limits.for_resource(resource)))
            .unwrap_or(Trend::UNKNOWN)
    }

    fn tracker(&self, resource: Resource) -> Option<&Tracker> {
        self.trackers
            .iter()
            .find(|(r, _)| *r == resource)
            .map(|(_, t)| t)
    }

    /// The samples kept for every resource, for charts.
    pub fn series(&self) -> Vec<ResourceSeries> {
        self.trackers
            .iter()
            .map(|(resource, tracker)| ResourceSeries {
                resource: *resource,
                points: tracker.points().collect(),
            })
            .collect()
    }

    pub fn snapshot(&self) -> TargetSnapshot {
        let resources = self
            .trackers
            .iter()
            .map(|(resource, tracker)| {
                let limit = self.limits.for_resource(*resource);
                ResourceSnapshot {
                    resource: *resource,
                    trend: tracker.trend(limit),
                    first: tracker.first().unwrap_or(0.0),
                    last: tracker.last().unwrap_or(0.0),
                    limit,
                    sites: Vec::new(),
                }
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
        }
    }
}

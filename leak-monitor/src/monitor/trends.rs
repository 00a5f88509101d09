//! The verdict half of a monitor: one detector per resource, fed samples at seconds since the
//! observation started, and the published trends. Nothing here reads the process or the clock,
//! so a recording replays through the same code (`recording::replay`) to the same verdicts.

use super::snapshot::{ResourceSeries, TrendFigures};
use crate::detection::{DetectorConfig, Tracker, Trend, Verdict, VerdictHold};
use crate::resource::{Amount, Resource, Seconds};
use crate::sampling::{Limits, Sample};

/// Every resource's detector and published trend.
pub struct Trends {
    resources: Vec<ResourceTrend>,
    /// Trends are recomputed at most this often (seconds); 0 = every sample.
    refresh_every: f64,
}

/// One resource's detector and its last conclusion.
struct ResourceTrend {
    resource: Resource,
    tracker: Tracker,
    /// The published trend.
    trend: Trend,
    computed_at: Option<f64>,
    /// The trend computed at the last refresh, not yet published.
    fresh: Option<Trend>,
    /// The published verdict and its changes.
    hold: VerdictHold,
    /// When the verdict became `leak` (and has stayed so since).
    leak_since: Option<f64>,
}

impl Trends {
    pub fn new(refresh_every: f64) -> Self {
        Trends {
            resources: Resource::ALL
                .iter()
                .map(|&resource| ResourceTrend {
                    resource,
                    tracker: Tracker::new(DetectorConfig::for_unit(resource.unit())),
                    trend: Trend::UNKNOWN,
                    computed_at: None,
                    fresh: None,
                    hold: VerdictHold::default(),
                    leak_since: None,
                })
                .collect(),
            refresh_every,
        }
    }

    pub fn set_refresh_every(&mut self, seconds: f64) {
        self.refresh_every = seconds;
    }

    pub fn refresh_every(&self) -> f64 {
        self.refresh_every
    }

    /// Adds one sample taken `t` seconds into the observation and recomputes the trends that
    /// are due. Returns the resources whose step was a spike (sudden growth).
    pub fn observe(&mut self, t: f64, sample: &Sample, limits: &Limits) -> Vec<Resource> {
        let mut spiked = Vec::new();
        for tracked in &mut self.resources {
            let resource = tracked.resource;
            if tracked.tracker.push(t, sample.value(resource)).is_some() {
                spiked.push(resource);
            }
            let due = tracked
                .computed_at
                .is_none_or(|at| t - at >= self.refresh_every);
            if due {
                tracked.refresh(t, limits.for_resource(resource));
            }
        }
        spiked
    }

    /// The resources whose fresh trend passed every gate of a leak but time
    /// (`Trend::early_leak`): attribution decides whether they are called `leak` now.
    pub fn early_candidates(&self) -> Vec<Resource> {
        self.resources
            .iter()
            .filter(|tracked| tracked.fresh.is_some_and(|raw| raw.early_leak))
            .map(|tracked| tracked.resource)
            .collect()
    }

    /// Publishes the trends computed since the last call: the early candidates attribution
    /// agrees with are a leak; each then goes through its resource's `VerdictHold`.
    pub fn publish(&mut self, t: f64, agreed_early: &[Resource]) {
        for tracked in &mut self.resources {
            let Some(mut raw) = tracked.fresh.take() else {
                continue;
            };
            if agreed_early.contains(&tracked.resource) {
                raw.verdict = Verdict::Leak;
                raw.confidence = raw.confidence.max(tracked.tracker.config().leak_confidence);
            }
            tracked.trend = tracked.hold.update(t, tracked.tracker.samples(), raw);
            tracked.leak_since = match tracked.trend.verdict {
                Verdict::Leak => tracked.leak_since.or(Some(t)),
                _ => None,
            };
        }
    }

    /// The published trend of one resource.
    pub fn trend(&self, resource: Resource) -> Trend {
        self.get(resource).map_or(Trend::UNKNOWN, |t| t.trend)
    }

    /// Last minus first observed value of one resource.
    pub fn growth(&self, resource: Resource) -> Amount {
        Amount(self.get(resource).map_or(0.0, |t| {
            t.tracker.last().unwrap_or(0.0) - t.tracker.first().unwrap_or(0.0)
        }))
    }

    /// Whether any resource's published verdict is other than stable.
    pub fn any_suspected(&self) -> bool {
        self.resources
            .iter()
            .any(|t| t.trend.verdict != Verdict::Stable)
    }

    pub fn figures(&self, resource: Resource) -> Option<TrendFigures> {
        let t = self.get(resource)?;
        Some(TrendFigures {
            trend: t.trend,
            first: Amount(t.tracker.first().unwrap_or(0.0)),
            last: Amount(t.tracker.last().unwrap_or(0.0)),
            leak_since_seconds: t.leak_since.map(Seconds),
            verdict_changes: t.hold.changes().copied().collect(),
            verdict_changes_total: t.hold.total_changes(),
        })
    }

    /// The samples kept for every resource, for charts.
    pub fn series(&self) -> Vec<ResourceSeries> {
        self.resources
            .iter()
            .map(|t| ResourceSeries {
                resource: t.resource,
                points: t.tracker.points().collect(),
            })
            .collect()
    }

    fn get(&self, resource: Resource) -> Option<&ResourceTrend> {
        self.resources.iter().find(|t| t.resource == resource)
    }
}

impl ResourceTrend {
    fn refresh(&mut self, t: f64, limit: Option<f64>) {
        self.fresh = Some(self.tracker.trend(limit));
        self.computed_at = Some(t);
    }
}

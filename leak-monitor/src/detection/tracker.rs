//! The detector for one resource of one target: fed one sample per tick, asked for the current
//! trend whenever the engine needs it.

use super::config::DetectorConfig;
use super::series::{Horizon, Point, Series};
use super::spike::SpikeDetector;
use super::verdict;
use super::{GrowthPattern, Spike, Trend, Verdict};

/// Follows one resource: bounded storage, spike detection, trend analysis.
///
/// Memory is bounded by the config: at most `recent_capacity` points (16 bytes each) plus
/// `history_capacity + 1` buckets (56 bytes each); with the defaults about 23 KiB per tracker,
/// whether it runs for half an hour or for months. It grows to that with the samples: under a
/// KiB for a target followed a few seconds.
#[derive(Clone, Debug)]
pub struct Tracker {
    config: DetectorConfig,
    series: Series,
    spikes: SpikeDetector,
}

impl Tracker {
    pub fn new(config: DetectorConfig) -> Self {
        Tracker {
            series: Series::new(config.recent_capacity, config.history_capacity),
            spikes: SpikeDetector::new(config.spike_sigmas, config.resolution),
            config,
        }
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Adds a sample: `t` = seconds since observation start (increasing), `value` in the
    /// resource's unit. Returns a `Spike` when this step is a sudden growth well above the
    /// series' usual step. Samples that are not finite or do not move time forward are ignored.
    pub fn push(&mut self, t: f64, value: f64) -> Option<Spike> {
        if !t.is_finite() || !value.is_finite() {
            return None;
        }
        let previous = self.series.last();
        if previous.is_some_and(|p| t <= p.t) {
            return None;
        }
        self.series.push(Point { t, value });
        let p = previous?;
        self.spikes.observe(t, t - p.t, value - p.value)
    }

    /// The current conclusion. `limit` = the value the resource runs into (fd soft limit,
    /// memory limit), if known.
    ///
    /// Once older history exists, both the full-resolution recent window and the whole
    /// decimated history are judged: a leak that just started shows in the first, a slow one
    /// in the second. The more severe verdict wins (the recent one on a tie, for its current
    /// rate), except that a recent "leak" is only "growing" when the long view is a sawtooth
    /// whose floor does not rise: it has seen this growth given back before.
    pub fn trend(&self, limit: Option<f64>) -> Trend {
        let max_bins = self.config.max_analysis_bins;
        let analyze =
            |horizon| verdict::analyze(&self.series.bins(horizon, max_bins), &self.config, limit);
        let recent = analyze(Horizon::Recent);
        if !self.series.has_history() {
            return recent;
        }
        let all = analyze(Horizon::All);
        if recent.verdict == Verdict::Leak
            && all.pattern == GrowthPattern::Sawtooth
            && all.verdict == Verdict::Stable
        {
            return Trend {
                verdict: Verdict::Growing,
                confidence: recent.confidence.min(0.99 * self.config.leak_confidence),
                ..recent
            };
        }
        if all.verdict > recent.verdict {
            all
        } else {
            recent
        }
    }

    /// The first value ever pushed.
    pub fn first(&self) -> Option<f64> {
        self.series.first().map(|p| p.value)
    }

    /// The latest value.
    pub fn last(&self) -> Option<f64> {
        self.series.last().map(|p| p.value)
    }

    /// Number of points `points` yields (not the number of samples pushed: see `samples`).
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Samples accepted since the start.
    pub fn samples(&self) -> u64 {
        self.series.samples()
    }

    /// (t, value) points kept, oldest first (for charts): the newest sample of each history
    /// bucket, then every sample of the recent window.
    pub fn points(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.series.points().map(|p| (p.t, p.value))
    }
}

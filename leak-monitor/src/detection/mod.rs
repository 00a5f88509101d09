//! Trend detection: from a resource's time series to a verdict (leak, growing, stable), a growth
//! pattern, a rate and the time to the limit. Pure logic, no I/O: tested on synthetic series.
//!
//! The engine keeps one [`Tracker`] per resource per target, pushes one sample per tick and asks
//! for the [`Trend`] when it publishes. Inside, the modules follow the analysis:
//! `series` (bounded storage) -> `shape` (noise, drops, jumps, floor, new highs) -> `pattern`
//! (which growth pattern, what rate) -> `evidence` (trend tests, new highs, stalls) -> `verdict`
//! (leak gates, confidence, time to limit), on top of `stats` (Mann-Kendall, Theil-Sen) and
//! `fit` (least-squares models, BIC). `spike` watches each step as it is pushed.

mod config;
mod evidence;
mod fit;
mod pattern;
mod series;
mod shape;
mod spike;
mod stats;
mod tracker;
mod verdict;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

pub use config::DetectorConfig;
pub use tracker::Tracker;

use serde::Serialize;

/// The contract's `verdict`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Stable,
    Growing,
    Leak,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Stable => "stable",
            Verdict::Growing => "growing",
            Verdict::Leak => "leak",
        }
    }
}

/// The contract's `growth_pattern`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrowthPattern {
    Linear,
    Quadratic,
    Exponential,
    Step,
    Sawtooth,
    Plateau,
    Flat,
}

impl GrowthPattern {
    pub fn as_str(self) -> &'static str {
        match self {
            GrowthPattern::Linear => "linear",
            GrowthPattern::Quadratic => "quadratic",
            GrowthPattern::Exponential => "exponential",
            GrowthPattern::Step => "step",
            GrowthPattern::Sawtooth => "sawtooth",
            GrowthPattern::Plateau => "plateau",
            GrowthPattern::Flat => "flat",
        }
    }
}

/// What the detector concludes about one resource of one target.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Trend {
    pub verdict: Verdict,
    pub pattern: GrowthPattern,
    /// Current growth rate, units of the resource per second (may be negative).
    pub rate_per_second: f64,
    /// 0..=1.
    pub confidence: f64,
    /// When the resource reaches `limit` at the current rate; None when not growing or unknown.
    pub seconds_to_limit: Option<f64>,
}

impl Trend {
    /// The trend of a series too short to say anything.
    pub const UNKNOWN: Trend = Trend {
        verdict: Verdict::Stable,
        pattern: GrowthPattern::Flat,
        rate_per_second: 0.0,
        confidence: 0.0,
        seconds_to_limit: None,
    };
}

/// A sudden growth between two samples, well above the series' usual step. The stack sampler
/// reads Python stacks at spikes and weights them by `amount`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spike {
    /// Seconds since the start of observation.
    pub at: f64,
    /// Growth over the interval, in the resource's unit.
    pub amount: f64,
}

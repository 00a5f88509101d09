//! Trend detection: from a resource's time series to a verdict (leak, growing, stable), a growth
//! pattern, a rate and the time to the limit. Pure logic, no I/O: tested on synthetic series.
//!
//! The engine keeps one [`Tracker`] per resource per target (configured with
//! [`DetectorConfig::for_unit`]), pushes one sample per tick and asks for the [`Trend`] when it
//! publishes. Inside, the modules follow the analysis: `series` (bounded storage) -> `shape`
//! (noise, drops, jumps, floor, new highs) -> `pattern` (which growth pattern, what rate) ->
//! `evidence` (trend tests, new highs, stalls) -> `verdict` (leak gates, confidence, time to
//! limit), on top of `stats` (Mann-Kendall, Theil-Sen) and `fit` (least-squares models, BIC).
//! `spike` watches each step as it is pushed.
//!
//! How a verdict is reached, in short (constants are named in the modules):
//! - Excursions of up to 3 bins above or below both neighbours (by more than the drop threshold
//!   and than the neighbours differ) are smoothed over: a working set caught before the
//!   allocator trims it, or a trimmed heap caught before it is faulted in again.
//! - The series is cut into cycles at its drops (memory given back, at least 5 robust sigmas of
//!   the usual step and 15% of the range). Two drops or more make a sawtooth, judged on its
//!   troughs only (one per cycle from 8 cycles on, else per window); otherwise the floor is the
//!   minimum of each of ~12 windows. A drop is given back until a new high of the floor or the
//!   level climbs back to where it began.
//! - Pattern, in order: sawtooth; plateau when a two-slope fit beats the line (BIC) and the
//!   slope after the knee is under 1/4 of the slope before (warm-up, cache filled); flat without
//!   a significant Mann-Kendall trend; step when the rise comes in short jumps with a flat median
//!   step between; else linear, or quadratic/exponential when one beats the line by 10 BIC and
//!   the robust slope of the second half is 1.5x that of the first.
//! - Every Mann-Kendall p-value has its variance inflated for the lag-1 correlation of the noise
//!   around the best monotone fit, so a level that wanders is not a trend.
//! - `growing`: a growth pattern, p < 0.05, at least 8 points in the deciding series, no drop
//!   since the last new high, the floor not stalled, and a rise above the noise margin.
//! - `leak`: growing, and p < 0.001 over the window, floor p < 0.01, the recent half still rising
//!   (p < 0.05, at 40% of the window's rate or more; steps instead keep their rhythm), 3 new
//!   highs or more, 25 s observed or more, a rise of at least `min_leak_growth`, confidence of
//!   0.9 or more. Confidence is the product of the strengths of these pieces of evidence, so any
//!   missing one holds it down.
//! - A rise that starts in the second half of the window, after a calm, is also judged alone
//!   (stricter p), so a leak that begins after hours of calm is not diluted by them.
//! - `early_leak`: every `leak` gate but the 25 s, at stricter levels (p < `leak_p`/10, the
//!   recent half at 70% of the rate, 2 highs), after 8 s. The engine calls it a leak when
//!   attribution agrees; the series alone cannot tell a leak from a fill that has not stopped.
//! - Too few samples for all this (< `min_points`): `growing` at the Theil-Sen rate when the
//!   values rise steadily by a leak's worth, else nothing.
//! - `hold`: what the engine publishes: a more severe verdict at once, a less severe one after
//!   it has held for 20 s; each change is an event.

mod config;
mod evidence;
mod fit;
mod hold;
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
pub use hold::{VerdictChange, VerdictHold, HOLD_SECONDS};
pub use tracker::Tracker;

use crate::resource::{PerSecond, Seconds};
use serde::{Deserialize, Serialize};

/// The contract's `verdict`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    pub rate_per_second: PerSecond,
    /// 0..=1.
    pub confidence: f64,
    /// When the resource reaches `limit` at the current rate; None when not growing or unknown.
    pub seconds_to_limit: Option<Seconds>,
    /// Not yet `leak` only for want of time (`min_leak_seconds`): the series passes every other
    /// gate at stricter levels after `min_early_leak_seconds`. The engine calls it a leak when
    /// attribution agrees (the growth comes from a source that does not give back).
    #[serde(skip)]
    pub early_leak: bool,
}

impl Trend {
    /// The trend of a series too short to say anything.
    pub const UNKNOWN: Trend = Trend {
        verdict: Verdict::Stable,
        pattern: GrowthPattern::Flat,
        rate_per_second: PerSecond::ZERO,
        confidence: 0.0,
        seconds_to_limit: None,
        early_leak: false,
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

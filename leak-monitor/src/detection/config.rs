//! The detector's thresholds. `Default` is unit-agnostic; `for_unit` adds the unit's resolution
//! and the smallest growth worth calling a leak, and is what the engine should use.

use crate::resource::Unit;

/// Thresholds of the trend detector. The defaults are what the unit tests were tuned on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectorConfig {
    /// Smallest change of the value that means something (1 for counts, a page for memory).
    /// Noise is never estimated below it, and a jump must be at least this big.
    pub resolution: f64,
    /// Smallest rise of the floor over the observation that may be called a leak.
    pub min_leak_growth: f64,
    /// Samples kept at full resolution (floor: 32).
    pub recent_capacity: usize,
    /// Buckets of decimated older history (floor: 8).
    pub history_capacity: usize,
    /// Bins an analysis works on at most; the O(n^2) tests run on this many points.
    pub max_analysis_bins: usize,
    /// Fewest samples before any verdict but `stable`.
    pub min_points: usize,
    /// Fewest seconds observed before a `leak` verdict from the series alone.
    pub min_leak_seconds: f64,
    /// Fewest seconds observed before a `leak` verdict the engine may give earlier, when the
    /// series passes every other gate at stricter levels and attribution names a source that
    /// does not give back (`Trend::early_leak`).
    pub min_early_leak_seconds: f64,
    /// One-sided Mann-Kendall p-value under which growth counts as seen (`growing`).
    pub growing_p: f64,
    /// One-sided Mann-Kendall p-value the whole-window trend needs for `leak`.
    pub leak_p: f64,
    /// Confidence a `leak` verdict needs.
    pub leak_confidence: f64,
    /// Significant new highs of the floor (or steps) a `leak` needs.
    pub min_new_highs: usize,
    /// Growth counts as stopped when the slope after the bend is below this share of the slope
    /// before it (warm-up, cache filled).
    pub plateau_ratio: f64,
    /// A step is a spike when it exceeds the usual step by this many robust standard deviations.
    pub spike_sigmas: f64,
    /// Smooth over brief excursions before looking for drops (`shape::Observed`): memory's
    /// allocators make them (a working set caught before it is trimmed, a heap top caught
    /// trimmed), while a count that dips for a moment has really given its fds or threads back.
    pub smooth_excursions: bool,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            resolution: 0.0,
            min_leak_growth: 0.0,
            recent_capacity: 512,
            history_capacity: 256,
            max_analysis_bins: 240,
            min_points: 10,
            min_leak_seconds: 25.0,
            min_early_leak_seconds: 8.0,
            growing_p: 0.05,
            leak_p: 0.001,
            leak_confidence: 0.9,
            min_new_highs: 3,
            plateau_ratio: 0.25,
            spike_sigmas: 6.0,
            smooth_excursions: true,
        }
    }
}

/// One resident page: RSS moves in these.
const PAGE: f64 = 4096.0;
/// Memory growth below this over the observation is not worth a leak report.
const MIN_MEMORY_LEAK: f64 = 1024.0 * 1024.0;
/// Three leaked fds, sockets or threads.
const MIN_COUNT_LEAK: f64 = 3.0;

impl DetectorConfig {
    /// The defaults with the resolution and minimum leak size of `unit`.
    pub fn for_unit(unit: Unit) -> Self {
        let (resolution, min_leak_growth) = match unit {
            Unit::Bytes => (PAGE, MIN_MEMORY_LEAK),
            Unit::Count => (1.0, MIN_COUNT_LEAK),
        };
        DetectorConfig {
            resolution,
            min_leak_growth,
            smooth_excursions: unit == Unit::Bytes,
            ..DetectorConfig::default()
        }
    }
}

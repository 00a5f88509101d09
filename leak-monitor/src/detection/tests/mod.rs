//! Scenario tests of the detector on synthetic series shaped like real Python processes:
//! leaks that must be called (`leaks`), growth that must not be (`non_leaks`), and daemon-length
//! runs (`long_runs`). Noise comes from a fixed-seed xorshift, so every run is the same, and
//! each scenario is checked over several seeds so a pass is not one lucky draw.

mod leaks;
mod long_runs;
mod non_leaks;
mod tracker_api;

use super::{DetectorConfig, Spike, Tracker, Trend};
use crate::resource::Unit;

pub const MB: f64 = 1024.0 * 1024.0;
pub const KB: f64 = 1024.0;
/// Seeds every scenario is run with.
pub const SEEDS: std::ops::Range<u64> = 1..21;

/// xorshift64*: tiny, deterministic, good enough for noise.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [-a, a).
    pub fn pm(&mut self, a: f64) -> f64 {
        (2.0 * self.unit() - 1.0) * a
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in [lo, hi).
    pub fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// RSS values are whole pages, like /proc reports them.
pub fn pages(bytes: f64) -> f64 {
    (bytes / 4096.0).round() * 4096.0
}

/// A generated series: value at each tick.
pub struct Run {
    pub tracker: Tracker,
    pub spikes: Vec<Spike>,
}

/// Samples `value(t)` every `dt` seconds for `seconds` (inclusive of t = 0), into a tracker
/// configured for `unit`.
pub fn sample(unit: Unit, seconds: f64, dt: f64, value: impl FnMut(f64) -> f64) -> Run {
    sample_with(DetectorConfig::for_unit(unit), seconds, dt, value)
}

pub fn sample_with(
    config: DetectorConfig,
    seconds: f64,
    dt: f64,
    mut value: impl FnMut(f64) -> f64,
) -> Run {
    let mut tracker = Tracker::new(config);
    let mut spikes = Vec::new();
    let ticks = (seconds / dt).round() as usize;
    for i in 0..=ticks {
        let t = i as f64 * dt;
        spikes.extend(tracker.push(t, value(t)));
    }
    Run { tracker, spikes }
}

/// First tick at which `done(trend)` holds, checking the trend after every sample up to
/// `seconds`; None if never.
pub fn first_time(
    unit: Unit,
    seconds: f64,
    mut value: impl FnMut(f64) -> f64,
    done: impl Fn(&Trend) -> bool,
) -> Option<f64> {
    let mut tracker = Tracker::new(DetectorConfig::for_unit(unit));
    let ticks = seconds.round() as usize;
    for i in 0..=ticks {
        let t = i as f64;
        tracker.push(t, value(t));
        if done(&tracker.trend(None)) {
            return Some(t);
        }
    }
    None
}

/// Runs `scenario` for every seed, collecting the trends, with a readable failure message.
pub fn for_seeds(scenario: impl Fn(&mut Rng) -> Run) -> Vec<(u64, Trend)> {
    SEEDS
        .map(|seed| {
            let run = scenario(&mut Rng::new(seed));
            (seed, run.tracker.trend(None))
        })
        .collect()
}

//! Growth that is not a leak: warm-up, caches filling to their bound, collector sawtooth, noise,
//! one-off steps, memory given back. None may be called a leak, at 40 s nor later.

use super::*;
use crate::detection::{GrowthPattern, Verdict};
use crate::resource::Unit;

/// Checks a scenario at 40 s and at 120 s for every seed: never a leak, and (when given) always
/// the expected verdict and pattern at the end.
fn assert_not_leak<F: FnMut(f64) -> f64>(
    make: impl Fn(u64) -> F,
    unit: Unit,
    expect: Option<(Verdict, GrowthPattern)>,
) {
    for seconds in [39.0, 119.0] {
        for seed in SEEDS {
            let trend = sample(unit, seconds, 1.0, make(seed)).tracker.trend(None);
            let context = format!("seed {seed} at {seconds} s: {trend:?}");
            assert_ne!(trend.verdict, Verdict::Leak, "{context}");
            assert!(trend.confidence < 0.9, "{context}");
            if let Some((verdict, pattern)) = expect {
                assert_eq!(
                    (trend.verdict, trend.pattern),
                    (verdict, pattern),
                    "{context}"
                );
            }
        }
    }
}

/// Also checks every intermediate tick for a false leak along the way (slower: one trend per
/// sample).
fn assert_never_leak<F: FnMut(f64) -> f64>(make: impl Fn(u64) -> F, unit: Unit) {
    for seed in SEEDS {
        let hit = first_time(unit, 120.0, make(seed), |t| t.verdict == Verdict::Leak);
        assert_eq!(hit, None, "seed {seed}: false leak at {hit:?} s");
    }
}

/// Imports and start-up: 12 MB to 45 MB in the first 3 s, then flat with +-200 KB noise.
fn warm_up(seed: u64) -> impl FnMut(f64) -> f64 {
    let mut rng = Rng::new(seed);
    move |t| pages(12.0 * MB + 33.0 * MB * (t / 3.0).min(1.0) + rng.pm(200.0 * KB))
}

#[test]
fn warm_up_then_flat_is_a_stable_plateau() {
    assert_not_leak(
        warm_up,
        Unit::Bytes,
        Some((Verdict::Stable, GrowthPattern::Plateau)),
    );
    assert_never_leak(warm_up, Unit::Bytes);
}

/// `deque(maxlen)` or `lru_cache(maxsize)`: grows 2 MB/s until full after `fill` seconds, then
/// flat with +-300 KB noise.
fn bounded_cache(seed: u64, fill: f64) -> impl FnMut(f64) -> f64 {
    let mut rng = Rng::new(seed);
    move |t| pages(20.0 * MB + 2.0 * MB * t.min(fill) + rng.pm(300.0 * KB))
}

#[test]
fn a_bounded_cache_filling_is_not_a_leak() {
    for fill in [10.0, 15.0, 20.0] {
        assert_not_leak(|seed| bounded_cache(seed, fill), Unit::Bytes, None);
        assert_never_leak(|seed| bounded_cache(seed, fill), Unit::Bytes);
    }
    // Once well past the fill, it is a stable plateau.
    for seed in SEEDS {
        let trend = sample(Unit::Bytes, 59.0, 1.0, bounded_cache(seed, 15.0))
            .tracker
            .trend(None);
        let context = format!("seed {seed}: {trend:?}");
        assert_eq!(trend.verdict, Verdict::Stable, "{context}");
        assert_eq!(trend.pattern, GrowthPattern::Plateau, "{context}");
        assert!(trend.rate_per_second.0.abs() < 100.0 * KB, "{context}");
    }
}

/// A cache whose fill slows down as it nears its bound (hit rate rising): 1 - e^(-t/6).
fn saturating_cache(seed: u64) -> impl FnMut(f64) -> f64 {
    let mut rng = Rng::new(seed);
    move |t| pages(20.0 * MB + 40.0 * MB * (1.0 - (-t / 6.0).exp()) + rng.pm(300.0 * KB))
}

#[test]
fn a_cache_filling_ever_slower_is_not_a_leak() {
    assert_not_leak(saturating_cache, Unit::Bytes, None);
    assert_never_leak(saturating_cache, Unit::Bytes);
}

/// The collector: rises 20 MB over a period of 5-8 s (fixed or `irregular`), then frees it all;
/// the floor stays at 50 MB, +-500 KB noise.
fn gc_sawtooth(seed: u64, irregular: bool) -> impl FnMut(f64) -> f64 {
    let mut rng = Rng::new(seed);
    let mut cycle_start = 0.0;
    let mut period = 6.0;
    move |t| {
        if t - cycle_start >= period {
            cycle_start = t;
            if irregular {
                period = rng.between(5.0, 8.0).round();
            }
        }
        let phase = (t - cycle_start) / period;
        pages(50.0 * MB + 20.0 * MB * phase + rng.pm(500.0 * KB))
    }
}

#[test]
fn a_collector_sawtooth_with_a_flat_floor_is_a_stable_sawtooth() {
    for irregular in [false, true] {
        let make = |seed| gc_sawtooth(seed, irregular);
        assert_not_leak(
            make,
            Unit::Bytes,
            Some((Verdict::Stable, GrowthPattern::Sawtooth)),
        );
        assert_never_leak(make, Unit::Bytes);
    }
}

fn noisy_flat(seed: u64) -> impl FnMut(f64) -> f64 {
    let mut rng = Rng::new(seed);
    move |_| pages(64.0 * MB + rng.pm(2.0 * MB))
}

#[test]
fn noise_on_a_flat_series_is_stable() {
    assert_not_leak(noisy_flat, Unit::Bytes, None);
    assert_never_leak(noisy_flat, Unit::Bytes);
    // Integer counts bouncing between 10 and 13 (sockets opened and closed).
    let fds = |seed| {
        let mut rng = Rng::new(seed);
        let mut fds = 11.0f64;
        move |_| {
            fds = (fds + rng.pm(1.5).round()).clamp(10.0, 13.0);
            fds
        }
    };
    assert_not_leak(fds, Unit::Count, None);
    assert_never_leak(fds, Unit::Count);
}

/// Memory held by in-flight work wandering around a fixed level: a mean-reverting walk
/// (AR(1) with coefficient `phi` per second, steps of +-1 MB) that drifts for a while but goes
/// nowhere.
fn wander(seed: u64, phi: f64) -> impl FnMut(f64) -> f64 {
    let mut rng = Rng::new(seed);
    let mut offset = 0.0;
    move |_| {
        offset = phi * offset + rng.pm(MB);
        pages(100.0 * MB + offset)
    }
}

#[test]
fn a_wandering_level_is_not_a_leak() {
    // Correlation time ~5 s: never a leak, at any tick.
    assert_not_leak(|seed| wander(seed, 0.8), Unit::Bytes, None);
    assert_never_leak(|seed| wander(seed, 0.8), Unit::Bytes);
    // ~10 s: not a leak at 40 s nor 120 s. (Known limit: in the first ~35 s, a wander this slow
    // can rise for 15-20 s straight, which no test can tell from a leak; over 40 seeds, 2 were
    // called a leak at some tick between 25 and 31 s.)
    assert_not_leak(|seed| wander(seed, 0.9), Unit::Bytes, None);
}

/// One allocation of 50 MB at `at` seconds, then nothing.
fn one_step(seed: u64, at: f64) -> impl FnMut(f64) -> f64 {
    let mut rng = Rng::new(seed);
    move |t| pages(30.0 * MB + if t >= at { 50.0 * MB } else { 0.0 } + rng.pm(200.0 * KB))
}

#[test]
fn a_single_step_up_is_not_a_leak() {
    for at in [5.0, 15.0, 25.0, 35.0] {
        assert_not_leak(|seed| one_step(seed, at), Unit::Bytes, None);
        assert_never_leak(|seed| one_step(seed, at), Unit::Bytes);
    }
    // One fd opened once.
    let fd = |_| |t: f64| if t >= 20.0 { 9.0 } else { 8.0 };
    assert_not_leak(fd, Unit::Count, None);
}

/// Grows 1 MB/s for 20 s, frees it all at 25 s, stays flat.
fn grows_then_frees(seed: u64) -> impl FnMut(f64) -> f64 {
    let mut rng = Rng::new(seed);
    move |t| {
        let held = if t < 25.0 { t.min(20.0) * MB } else { 0.0 };
        pages(40.0 * MB + held + rng.pm(200.0 * KB))
    }
}

#[test]
fn growth_that_is_freed_again_is_not_a_leak() {
    assert_not_leak(grows_then_frees, Unit::Bytes, None);
    assert_never_leak(grows_then_frees, Unit::Bytes);
}

#[test]
fn steps_of_warm_up_are_a_plateau_not_a_step_leak() {
    // Loading a model in three chunks in the first 7 s, then serving.
    let load = |seed| {
        let mut rng = Rng::new(seed);
        move |t: f64| {
            let loaded = [2.0, 4.0, 7.0].iter().filter(|&&at| t >= at).count() as f64;
            pages(30.0 * MB + 100.0 * MB * loaded + rng.pm(200.0 * KB))
        }
    };
    assert_not_leak(
        load,
        Unit::Bytes,
        Some((Verdict::Stable, GrowthPattern::Plateau)),
    );
}

#[test]
fn too_short_a_series_says_nothing() {
    let run = sample(Unit::Bytes, 2.0, 1.0, |t| t * 10.0 * MB);
    assert_eq!(run.tracker.trend(None), Trend::UNKNOWN);
    // Five seconds of 10 MB/s are no leak yet, but not nothing either (see `short_runs_say_what_they_saw`).
    let run = sample(Unit::Bytes, 5.0, 1.0, |t| t * 10.0 * MB);
    assert_eq!(run.tracker.trend(None).verdict, Verdict::Growing);
    let empty = Tracker::new(DetectorConfig::default());
    assert!(empty.is_empty());
    assert_eq!(empty.trend(Some(1.0)), Trend::UNKNOWN);
    assert_eq!((empty.first(), empty.last()), (None, None));
}

//! Leaks the detector must call, with the right pattern and rate.

use super::*;
use crate::detection::{GrowthPattern, Verdict};
use crate::resource::Seconds;

fn assert_leak(trends: &[(u64, Trend)], pattern: GrowthPattern, rate: Option<(f64, f64)>) {
    for (seed, trend) in trends {
        assert_eq!(trend.verdict, Verdict::Leak, "seed {seed}: {trend:?}");
        assert_eq!(trend.pattern, pattern, "seed {seed}: {trend:?}");
        assert!(trend.confidence >= 0.9, "seed {seed}: {trend:?}");
        if let Some((expected, tolerance)) = rate {
            let error = (trend.rate_per_second.0 - expected).abs() / expected;
            assert!(
                error <= tolerance,
                "seed {seed}: rate off by {error:.3}: {trend:?}"
            );
        }
    }
}

/// 12 MB growing 1 MB/s, +-200 KB noise, and now and then the allocator grabbing 2 MB ahead of
/// need (`ahead`, used up by the following growth) or briefly (`!ahead`, a transient spike).
fn rss_linear(rng: &mut Rng, ahead: bool) -> Run {
    let mut reserved = 0.0f64;
    sample(crate::resource::Unit::Bytes, 29.0, 1.0, |t| {
        let need = 12.0 * MB + MB * t;
        let mut v = need + rng.pm(200.0 * KB);
        if rng.chance(0.15) {
            if ahead {
                reserved = need + 2.0 * MB;
            } else {
                v += 2.0 * MB;
            }
        }
        pages(v.max(reserved))
    })
}

#[test]
fn rss_growing_1mb_per_second_for_30s_is_a_linear_leak() {
    assert_leak(
        &for_seeds(|rng| rss_linear(rng, true)),
        GrowthPattern::Linear,
        Some((MB, 0.1)),
    );
    assert_leak(
        &for_seeds(|rng| rss_linear(rng, false)),
        GrowthPattern::Linear,
        Some((MB, 0.1)),
    );
}

#[test]
fn allocator_jumps_on_a_linear_leak_are_spikes() {
    let run = sample(crate::resource::Unit::Bytes, 29.0, 1.0, |t| {
        12.0 * MB + MB * t + if t == 20.0 { 4.0 * MB } else { 0.0 }
    });
    assert_eq!(run.spikes.len(), 1, "{:?}", run.spikes);
    assert_eq!(run.spikes[0].at, 20.0);
    assert_eq!(run.spikes[0].amount, 5.0 * MB);
}

#[test]
fn twenty_fds_per_second_for_30s_is_a_linear_leak() {
    // fds opened continuously; the sampling instant jitters by up to 50 ms.
    let trends = for_seeds(|rng| {
        sample(crate::resource::Unit::Count, 29.0, 1.0, |t| {
            (7.0 + 20.0 * (t + rng.pm(0.05)).max(0.0)).floor()
        })
    });
    assert_leak(&trends, GrowthPattern::Linear, Some((20.0, 0.1)));
}

#[test]
fn one_thread_per_second_for_30s_is_a_leak() {
    let trends = for_seeds(|rng| {
        let phase = rng.unit();
        sample(crate::resource::Unit::Count, 29.0, 1.0, |t| {
            (2.0 + t + phase + rng.pm(0.1)).floor()
        })
    });
    assert_leak(&trends, GrowthPattern::Linear, Some((1.0, 0.1)));
}

#[test]
fn quadratic_growth_is_a_quadratic_leak() {
    // Each second leaks more than the last: 12 MB + 0.05 MB/s^2 t^2, over 30 s and 60 s.
    for seconds in [30.0, 60.0] {
        let trends = for_seeds(|rng| {
            sample(crate::resource::Unit::Bytes, seconds - 1.0, 1.0, |t| {
                pages(12.0 * MB + 0.05 * MB * t * t + rng.pm(200.0 * KB))
            })
        });
        let slope_at_end = 2.0 * 0.05 * MB * (seconds - 1.0);
        assert_leak(
            &trends,
            GrowthPattern::Quadratic,
            Some((slope_at_end, 0.15)),
        );
    }
}

#[test]
fn exponential_growth_is_an_exponential_leak() {
    // Doubling every 10 s on top of a 12 MB base, over 45 s and 60 s.
    for seconds in [45.0, 60.0] {
        let trends = for_seeds(|rng| {
            sample(crate::resource::Unit::Bytes, seconds - 1.0, 1.0, |t| {
                pages(12.0 * MB + 0.5 * MB * (t / 10.0).exp2() + rng.pm(200.0 * KB))
            })
        });
        let t_end = seconds - 1.0;
        let slope_at_end = 0.5 * MB * (t_end / 10.0).exp2() * std::f64::consts::LN_2 / 10.0;
        assert_leak(
            &trends,
            GrowthPattern::Exponential,
            Some((slope_at_end, 0.2)),
        );
    }
}

/// A batch that leaks 50 MB once every 10 s (first at t = 5), with +-200 KB noise.
fn batch_leak(rng: &mut Rng, seconds: f64) -> Run {
    sample(crate::resource::Unit::Bytes, seconds, 1.0, |t| {
        let batches = ((t + 5.0) / 10.0).floor();
        pages(30.0 * MB + 50.0 * MB * batches + rng.pm(200.0 * KB))
    })
}

#[test]
fn a_batch_leaking_50mb_every_10s_is_a_step_leak_after_three_steps() {
    // Steps at 5, 15, 25, 35: three new highs above the first level by t = 25.
    assert_leak(
        &for_seeds(|rng| batch_leak(rng, 40.0)),
        GrowthPattern::Step,
        Some((5.0 * MB, 0.1)),
    );
    // Two steps are not enough.
    for (seed, trend) in for_seeds(|rng| batch_leak(rng, 20.0)) {
        assert_ne!(trend.verdict, Verdict::Leak, "seed {seed}: {trend:?}");
    }
}

#[test]
fn each_batch_step_is_a_spike() {
    let run = batch_leak(&mut Rng::new(7), 40.0);
    let at: Vec<f64> = run.spikes.iter().map(|s| s.at).collect();
    assert_eq!(
        at,
        [15.0, 25.0, 35.0],
        "the step at 5 s comes before 8 steps are known"
    );
}

#[test]
fn one_fd_every_10s_is_a_step_leak() {
    let trends = for_seeds(|rng| {
        let phase = rng.between(0.0, 10.0);
        sample(crate::resource::Unit::Count, 45.0, 1.0, |t| {
            (12.0 + (t + phase) / 10.0).floor()
        })
    });
    assert_leak(&trends, GrowthPattern::Step, Some((0.1, 0.1)));
}

#[test]
fn time_to_limit_follows_the_current_rate() {
    let run = rss_linear(&mut Rng::new(3), false);
    let last = run.tracker.last().unwrap();
    let trend = run.tracker.trend(Some(last + 100.0 * MB));
    let eta = trend.seconds_to_limit.unwrap().0;
    assert!((eta - 100.0).abs() < 10.0, "{trend:?}");
    assert_eq!(run.tracker.trend(None).seconds_to_limit, None);
    // Already over the limit: no time left.
    assert_eq!(
        run.tracker.trend(Some(1.0)).seconds_to_limit,
        Some(Seconds(0.0))
    );
}

#[test]
fn time_to_limit_follows_the_curve_of_an_exponential() {
    let run = sample(crate::resource::Unit::Bytes, 59.0, 1.0, |t| {
        pages(12.0 * MB + 0.5 * MB * (t / 10.0).exp2())
    });
    // 12 + 0.5 * 2^(t/10) MB reaches 1036 MB at t = 10 log2(2048) = 110 s.
    let trend = run.tracker.trend(Some(1036.0 * MB));
    let eta = trend.seconds_to_limit.unwrap().0;
    assert!((eta - 51.0).abs() < 3.0, "{trend:?}");
}

/// A slow leak under heavy churn: the floor rises 300 KB/s under a collector sawtooth of
/// 30 MB with irregular 5-8 s periods and +-2 MB noise.
fn churn_sawtooth(seed: u64) -> impl FnMut(f64) -> f64 {
    let mut rng = Rng::new(seed);
    let mut cycle_start = 0.0;
    let mut period = 6.0;
    move |t| {
        if t - cycle_start >= period {
            cycle_start = t;
            period = rng.between(5.0, 8.0).round();
        }
        let phase = (t - cycle_start) / period;
        pages(80.0 * MB + 300.0 * KB * t + 30.0 * MB * phase + rng.pm(2.0 * MB))
    }
}

/// The same leak under memoryless churn: +-30 MB of uniform noise on every sample.
fn churn_noise(seed: u64) -> impl FnMut(f64) -> f64 {
    let mut rng = Rng::new(seed);
    move |t| pages(80.0 * MB + 300.0 * KB * t + rng.pm(30.0 * MB))
}

/// When each seed first reaches `verdict` (or better) within `seconds`.
fn times_to<F: FnMut(f64) -> f64>(
    make: impl Fn(u64) -> F,
    verdict: Verdict,
    seconds: f64,
) -> Vec<Option<f64>> {
    SEEDS
        .map(|seed| {
            first_time(crate::resource::Unit::Bytes, seconds, make(seed), |t| {
                t.verdict >= verdict
            })
        })
        .collect()
}

fn worst(times: &[Option<f64>]) -> Option<f64> {
    times.iter().try_fold(0.0f64, |w, t| t.map(|t| w.max(t)))
}

#[test]
fn a_slow_leak_under_a_churning_sawtooth_is_found() {
    // Achieved on these 20 seeds: `growing` by 30-45 s, `leak` by 60-90 s (printed below).
    let growing = times_to(churn_sawtooth, Verdict::Growing, 60.0);
    let leak = times_to(churn_sawtooth, Verdict::Leak, 180.0);
    println!("sawtooth churn: growing at {growing:?}, leak at {leak:?}");
    assert!(
        worst(&growing).is_some(),
        "not growing within 60 s: {growing:?}"
    );
    assert!(worst(&leak).is_some(), "no leak within 180 s: {leak:?}");
    for seed in SEEDS {
        let run = sample(
            crate::resource::Unit::Bytes,
            180.0,
            1.0,
            churn_sawtooth(seed),
        );
        let trend = run.tracker.trend(None);
        assert_eq!(trend.verdict, Verdict::Leak, "seed {seed}: {trend:?}");
        assert_eq!(
            trend.pattern,
            GrowthPattern::Sawtooth,
            "seed {seed}: {trend:?}"
        );
        let error = (trend.rate_per_second.0 - 300.0 * KB).abs() / (300.0 * KB);
        assert!(error < 0.25, "seed {seed}: {trend:?}");
    }
}

#[test]
fn a_slow_leak_under_noisy_churn_is_found() {
    // Memoryless +-30 MB noise (sd 17 MB) hides the trend much longer: at 60 s it has risen by
    // one noise sd, and no test can be sure. Achieved on these 20 seeds: `growing` by 60 s for
    // 9, `leak` by 180 s for 19 (median ~117 s). Asserted with a little slack.
    let growing = times_to(churn_noise, Verdict::Growing, 60.0);
    let leak = times_to(churn_noise, Verdict::Leak, 180.0);
    println!("noise churn: growing at {growing:?}, leak at {leak:?}");
    let found = |times: &[Option<f64>]| times.iter().filter(|t| t.is_some()).count();
    assert!(found(&growing) >= 8, "growing within 60 s: {growing:?}");
    assert!(found(&leak) >= 18, "leak within 180 s: {leak:?}");
    for seed in SEEDS {
        let run = sample(crate::resource::Unit::Bytes, 180.0, 1.0, churn_noise(seed));
        let trend = run.tracker.trend(None);
        assert!(trend.verdict >= Verdict::Growing, "seed {seed}: {trend:?}");
    }
}

#[test]
fn a_leak_in_bursts_is_a_leak_through_its_pauses() {
    // Leaks 2 MB/s for 10 s, then pauses 10 s, again and again. Once called, the pauses (no
    // longer than those already seen) do not take the verdict back.
    for seed in SEEDS {
        let mut rng = Rng::new(seed);
        let mut tracker = Tracker::new(DetectorConfig::for_unit(crate::resource::Unit::Bytes));
        let mut called = None;
        for i in 0..=120 {
            let t = f64::from(i);
            let leaked = 2.0 * MB * (10.0 * (t / 20.0).floor() + (t % 20.0).min(10.0));
            tracker.push(t, pages(40.0 * MB + leaked + rng.pm(300.0 * KB)));
            let trend = tracker.trend(None);
            match called {
                None if trend.verdict == Verdict::Leak => called = Some(t),
                Some(at) => assert_eq!(
                    trend.verdict,
                    Verdict::Leak,
                    "seed {seed} at {t} (called at {at}): {trend:?}"
                ),
                None => {}
            }
        }
        let at = called.unwrap_or(f64::INFINITY);
        assert!(at <= 60.0, "seed {seed}: called at {at}");
    }
}

#[test]
fn fds_leaking_under_churn_are_a_leak() {
    // A server whose open sockets bounce between 20 and 26 with traffic, and which leaks one
    // every 4 s.
    let trends = for_seeds(|rng| {
        let phase = rng.between(0.0, 4.0);
        sample(crate::resource::Unit::Count, 119.0, 1.0, |t| {
            (20.0 + ((t + phase) / 4.0).floor() + rng.between(0.0, 7.0)).floor()
        })
    });
    assert_leak(&trends, GrowthPattern::Linear, Some((0.25, 0.15)));
}

/// The demo's leaks, as series: each passes every gate but time (`early_leak`) by its 10th
/// sample (9 s, one tick of slack under 10 s), so the engine can call it once attribution
/// names a source that does not give back; counts whatever the phase of their steps.
#[test]
fn clear_leaks_are_early_leaks_within_ten_seconds() {
    type Make = Box<dyn Fn(u64) -> Box<dyn FnMut(f64) -> f64>>;
    let cases: [(&str, Unit, Make); 3] = [
        (
            "1.3 MB/s under GC noise",
            Unit::Bytes,
            Box::new(|seed| {
                let mut rng = Rng::new(seed);
                Box::new(move |t| pages(40.0 * MB + 1.3 * MB * t + rng.pm(150.0 * KB)))
            }),
        ),
        (
            "5 fds/s",
            Unit::Count,
            Box::new(|_| Box::new(|t| 12.0 + (5.0 * t).floor())),
        ),
        (
            "a thread every 2 s",
            Unit::Count,
            Box::new(|seed| {
                let phase = Rng::new(seed).between(0.0, 2.0);
                Box::new(move |t| 3.0 + ((t + phase) / 2.0).floor())
            }),
        ),
    ];
    for (name, unit, make) in &cases {
        for seed in SEEDS {
            let at = first_time(*unit, 30.0, make(seed), |t| t.early_leak);
            assert!(
                at.is_some_and(|at| at <= 9.0),
                "{name}, seed {seed}: early at {at:?}"
            );
        }
    }
}

/// A slow leak as `tests/python/slow_churn_leak.py` shows it at one sample a second: 300 KB/s
/// on 16 MB, and now and then a request's working set of 2-4 MB caught before the allocator
/// trims it (8% of samples, one bin), plus `dips` samples caught while the heap top was trimmed
/// (1-4 MB under the line).
fn working_set_spikes(seed: u64, dips: usize) -> impl FnMut(f64) -> f64 {
    let mut rng = Rng::new(seed);
    let at: Vec<f64> = (0..dips).map(|_| rng.between(3.0, 50.0).round()).collect();
    move |t| {
        let line = 16.0 * MB + 300.0 * KB * t + rng.pm(100.0 * KB);
        pages(if at.contains(&t) {
            line - rng.between(1.0, 4.0) * MB
        } else if rng.chance(0.08) {
            line + rng.between(2.0, 4.0) * MB
        } else {
            line
        })
    }
}

#[test]
fn a_slow_leak_through_brief_spikes_and_dips_is_a_leak() {
    // A few of these ended in drops that made a sawtooth of a handful of troughs, and the
    // leak was called stable (the live test did so in CI): 68 of these 80 runs were missed.
    // Achieved now: 73 of 80 at 50 s (a dip down to the start's level is left alone, and one
    // bin at the end is not taken as outgrowing a drop: both err towards "given back").
    let mut missed = Vec::new();
    for dips in 0..4 {
        for seed in SEEDS {
            let trend = sample(
                crate::resource::Unit::Bytes,
                50.0,
                1.0,
                working_set_spikes(seed, dips),
            )
            .tracker
            .trend(None);
            let error = (trend.rate_per_second.0 - 300.0 * KB).abs() / (300.0 * KB);
            if trend.verdict != Verdict::Leak || error > 0.1 {
                missed.push(format!("{dips} dips, seed {seed}: {trend:?}"));
            }
        }
    }
    println!("missed {}:\n{}", missed.len(), missed.join("\n"));
    assert!(
        missed.len() <= 8,
        "missed {}:\n{}",
        missed.len(),
        missed.join("\n")
    );
}

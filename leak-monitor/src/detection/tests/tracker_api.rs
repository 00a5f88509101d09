//! The tracker's contract with the engine: what it accepts, what it reports, and that the
//! verdicts do not depend on the sampling interval.

use super::*;
use crate::detection::{GrowthPattern, Verdict};
use crate::resource::Unit;

#[test]
fn samples_that_are_not_finite_or_go_back_in_time_are_ignored() {
    let mut tracker = Tracker::new(DetectorConfig::for_unit(Unit::Count));
    assert_eq!(tracker.push(0.0, 5.0), None);
    assert_eq!(tracker.push(1.0, f64::NAN), None);
    assert_eq!(tracker.push(f64::INFINITY, 6.0), None);
    assert_eq!(tracker.push(0.0, 7.0), None);
    assert_eq!(tracker.push(-1.0, 7.0), None);
    tracker.push(2.0, 8.0);
    assert_eq!(tracker.len(), 2);
    assert_eq!(tracker.samples(), 2);
    assert_eq!((tracker.first(), tracker.last()), (Some(5.0), Some(8.0)));
    let points: Vec<(f64, f64)> = tracker.points().collect();
    assert_eq!(points, [(0.0, 5.0), (2.0, 8.0)]);
}

#[test]
fn noise_alone_raises_no_spikes() {
    for seed in SEEDS {
        let mut rng = Rng::new(seed);
        let run = sample(Unit::Bytes, 120.0, 1.0, |_| {
            pages(64.0 * MB + rng.pm(2.0 * MB))
        });
        assert!(run.spikes.is_empty(), "seed {seed}: {:?}", run.spikes);
    }
}

#[test]
fn verdicts_do_not_depend_on_the_sampling_interval() {
    for dt in [0.1, 0.5, 2.0] {
        // A 1 MB/s leak over 60 s.
        let mut rng = Rng::new(11);
        let run = sample(Unit::Bytes, 60.0, dt, |t| {
            pages(12.0 * MB + MB * t + rng.pm(200.0 * KB))
        });
        let trend = run.tracker.trend(None);
        assert_eq!(trend.verdict, Verdict::Leak, "every {dt} s: {trend:?}");
        assert_eq!(
            trend.pattern,
            GrowthPattern::Linear,
            "every {dt} s: {trend:?}"
        );
        assert!(
            (trend.rate_per_second.0 - MB).abs() < 0.1 * MB,
            "every {dt} s: {trend:?}"
        );
        // A collector sawtooth with a flat floor, 20 MB over 6 s, over 120 s.
        let mut rng = Rng::new(12);
        let run = sample(Unit::Bytes, 120.0, dt, |t| {
            pages(50.0 * MB + 20.0 * MB * ((t % 6.0) / 6.0) + rng.pm(500.0 * KB))
        });
        let trend = run.tracker.trend(None);
        assert_eq!(trend.verdict, Verdict::Stable, "every {dt} s: {trend:?}");
        // A cache filling for 15 s, over 60 s.
        let mut rng = Rng::new(13);
        let run = sample(Unit::Bytes, 60.0, dt, |t| {
            pages(20.0 * MB + 2.0 * MB * t.min(15.0) + rng.pm(300.0 * KB))
        });
        let trend = run.tracker.trend(None);
        assert_eq!(trend.verdict, Verdict::Stable, "every {dt} s: {trend:?}");
        assert_eq!(
            trend.pattern,
            GrowthPattern::Plateau,
            "every {dt} s: {trend:?}"
        );
    }
}

#[test]
fn confidence_and_verdict_agree() {
    let config = DetectorConfig::for_unit(Unit::Bytes);
    let mut rng = Rng::new(21);
    // A leak, a plateau and noise, checked at every tick.
    let mut tracker = Tracker::new(config);
    for i in 0..=90 {
        let t = f64::from(i);
        let v = 30.0 * MB + MB * t.min(45.0) + rng.pm(MB);
        tracker.push(t, pages(v));
        let trend = tracker.trend(Some(4.0e9));
        assert!((0.0..=1.0).contains(&trend.confidence), "{trend:?}");
        assert_eq!(
            trend.confidence >= config.leak_confidence,
            trend.verdict == Verdict::Leak,
            "at {t}: {trend:?}"
        );
        assert_eq!(
            trend.seconds_to_limit.is_some(),
            trend.verdict != Verdict::Stable && trend.rate_per_second.0 > 0.0,
            "at {t}: {trend:?}"
        );
    }
}

/// A run shorter than the full analysis needs says what it saw: a clear rise is `growing` at
/// about its rate (never `leak`, never `flat` at 0/s); a flat, a noisy and a tiny rise stay
/// `stable`.
#[test]
fn short_runs_say_what_they_saw() {
    // 7 s of an fd leak, 20 fds/s from 47.
    let run = sample(Unit::Count, 7.0, 1.0, |t| 47.0 + 20.0 * t);
    let trend = run.tracker.trend(None);
    assert_eq!(trend.verdict, Verdict::Growing, "{trend:?}");
    assert!((trend.rate_per_second.0 - 20.0).abs() < 1.0, "{trend:?}");
    // And a 1.3 MB/s memory leak over 6 s, with noise, toward a 200 MB limit.
    for seed in SEEDS {
        let mut rng = Rng::new(seed);
        let run = sample(Unit::Bytes, 6.0, 1.0, |t| {
            pages(30.0 * MB + 1.3 * MB * t + rng.pm(100.0 * KB))
        });
        let trend = run.tracker.trend(Some(200.0 * MB));
        assert_eq!(trend.verdict, Verdict::Growing, "seed {seed}: {trend:?}");
        assert!(trend
            .seconds_to_limit
            .is_some_and(|s| s.0 > 100.0 && s.0 < 160.0));
    }
    let stable = |value: &dyn Fn(f64) -> f64, unit| {
        let trend = sample(unit, 7.0, 1.0, value).tracker.trend(None);
        assert_eq!(trend.verdict, Verdict::Stable, "{trend:?}");
    };
    stable(&|_| 40.0, Unit::Count);
    // Two new fds in 7 s: less than a leak could be.
    stable(&|t| 40.0 + (t / 3.5).floor(), Unit::Count);
    // Memory that wanders by a few hundred KB.
    for seed in SEEDS {
        let rng = std::cell::RefCell::new(Rng::new(seed));
        stable(
            &|_| pages(30.0 * MB + rng.borrow_mut().pm(400.0 * KB)),
            Unit::Bytes,
        );
    }
    // Three samples are too few to say anything.
    let trend = sample(Unit::Count, 2.0, 1.0, |t| 10.0 + 50.0 * t)
        .tracker
        .trend(None);
    assert_eq!(trend.verdict, Verdict::Stable, "{trend:?}");
}

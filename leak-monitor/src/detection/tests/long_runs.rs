//! Daemon-length runs: bounded memory, and the interplay of the recent window with the long,
//! decimated history.

use super::*;
use crate::detection::{GrowthPattern, Verdict};
use crate::resource::Unit;

#[test]
fn a_tracker_keeps_a_bounded_number_of_points_for_days() {
    let config = DetectorConfig::for_unit(Unit::Bytes);
    let mut rng = Rng::new(1);
    let run = sample_with(config, 2.0 * 24.0 * 3600.0, 1.0, |_| {
        pages(100.0 * MB + rng.pm(MB))
    });
    let tracker = &run.tracker;
    assert!(tracker.len() <= config.recent_capacity + config.history_capacity + 1);
    assert_eq!(tracker.samples(), 2 * 24 * 3600 + 1);
    assert_eq!(tracker.points().count(), tracker.len());
    let times: Vec<f64> = tracker.points().map(|(t, _)| t).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(times.last(), Some(&(2.0 * 24.0 * 3600.0)));
    let trend = tracker.trend(None);
    assert_eq!(trend.verdict, Verdict::Stable, "{trend:?}");
}

#[test]
fn a_leak_that_starts_after_hours_of_calm_is_found_quickly() {
    let mut rng = Rng::new(2);
    let start = 3.0 * 3600.0;
    let run = sample(Unit::Bytes, start + 40.0, 1.0, |t| {
        pages(200.0 * MB + (t - start).max(0.0) * MB + rng.pm(200.0 * KB))
    });
    let trend = run.tracker.trend(None);
    assert_eq!(trend.verdict, Verdict::Leak, "{trend:?}");
    assert_eq!(trend.pattern, GrowthPattern::Linear, "{trend:?}");
}

#[test]
fn a_slow_leak_only_the_long_view_can_see_is_found() {
    // 100 B/s under +-200 KB noise: invisible in 8 minutes, clear over 6 hours (2.1 MB).
    let mut rng = Rng::new(3);
    let run = sample(Unit::Bytes, 6.0 * 3600.0, 1.0, |t| {
        pages(50.0 * MB + 100.0 * t + rng.pm(200.0 * KB))
    });
    let trend = run.tracker.trend(None);
    assert_eq!(trend.verdict, Verdict::Leak, "{trend:?}");
    assert!((trend.rate_per_second.0 - 100.0).abs() < 25.0, "{trend:?}");
}

#[test]
fn a_slow_cycle_seen_before_is_not_a_leak_in_its_rising_half() {
    // A batch that fills 300 MB over 10 minutes, then drops it all, every 20 minutes. Stopped
    // 8 minutes into a rising half: the recent window alone would call that a leak.
    let mut rng = Rng::new(4);
    let cycle = 1200.0;
    let seconds = 5.0 * cycle + 480.0;
    let run = sample(Unit::Bytes, seconds, 1.0, |t| {
        let phase = (t % cycle) / cycle;
        let held = if phase < 0.5 {
            phase * 2.0 * 300.0 * MB
        } else {
            0.0
        };
        pages(100.0 * MB + held + rng.pm(MB))
    });
    let trend = run.tracker.trend(None);
    assert_ne!(trend.verdict, Verdict::Leak, "{trend:?}");
    // Without the history (a fresh tracker on the same 8 minutes) it would be.
    let mut rng = Rng::new(4);
    let fresh = sample(Unit::Bytes, 479.0, 1.0, |t| {
        pages(100.0 * MB + t / 600.0 * 300.0 * MB + rng.pm(MB))
    });
    assert_eq!(fresh.tracker.trend(None).verdict, Verdict::Leak);
}

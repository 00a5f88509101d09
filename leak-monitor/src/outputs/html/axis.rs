//! Chart axes: the value range of a series (a flat one gets a range that shows it, not -1..1)
//! and "nice" ticks, on the time axis in seconds, minutes or hours by the length of the run.

use crate::resource::Unit;

/// The time unit of a chart's axis, picked by how long the run was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnit {
    Seconds,
    Minutes,
    Hours,
}

impl TimeUnit {
    /// Seconds up to 3 minutes, minutes up to 3 hours, hours beyond.
    pub fn for_span(seconds: f64) -> Self {
        if seconds <= 180.0 {
            TimeUnit::Seconds
        } else if seconds <= 3.0 * 3600.0 {
            TimeUnit::Minutes
        } else {
            TimeUnit::Hours
        }
    }

    fn seconds(self) -> f64 {
        match self {
            TimeUnit::Seconds => 1.0,
            TimeUnit::Minutes => 60.0,
            TimeUnit::Hours => 3600.0,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            TimeUnit::Seconds => "s",
            TimeUnit::Minutes => "min",
            TimeUnit::Hours => "h",
        }
    }
}

/// Ticks of the time axis from `t0` to `t1` (seconds since the start of the run), as
/// (seconds, label): `0 s`, `10 s`, `20 s`; `0 min`, `5 min`; `0 h`, `1.5 h`.
pub fn time_ticks(t0: f64, t1: f64) -> Vec<(f64, String)> {
    let unit = TimeUnit::for_span(t1.max(0.0));
    let scale = unit.seconds();
    let step = nice_step((t1 - t0).max(0.0) / scale / 5.0, false);
    ticks(t0 / scale, t1 / scale, step)
        .into_iter()
        .map(|v| (v * scale, format!("{} {}", trim_number(v), unit.symbol())))
        .collect()
}

/// The value range to plot for values between `lo` and `hi`: a flat series gets a little room
/// around its value, never below 0 for a non-negative value (a flat 0 is drawn on 0..1).
pub fn value_range(lo: f64, hi: f64, unit: Unit) -> (f64, f64) {
    if hi - lo > f64::EPSILON * hi.abs().max(1.0) {
        return (lo, hi);
    }
    let smallest = match unit {
        Unit::Bytes => 1024.0,
        Unit::Count => 1.0,
    };
    let pad = (hi.abs() * 0.1).max(smallest);
    let low = if lo >= 0.0 {
        (lo - pad).max(0.0)
    } else {
        lo - pad
    };
    (low, hi + pad)
}

/// Ticks of the value axis within `lo..=hi` (about four); whole numbers for counts, round
/// numbers of KiB, MiB or GiB for bytes.
pub fn value_ticks(lo: f64, hi: f64, unit: Unit) -> Vec<f64> {
    let rough = (hi - lo) / 4.0;
    let step = match unit {
        Unit::Count => nice_step(rough, true),
        Unit::Bytes => {
            let mut scale = 1.0;
            while rough >= 1024.0 * scale && scale < 1024f64.powi(4) {
                scale *= 1024.0;
            }
            nice_step(rough / scale, scale == 1.0) * scale
        }
    };
    ticks(lo, hi, step)
}

/// Multiples of `step` within `lo..=hi`.
fn ticks(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    if !(step > 0.0 && lo.is_finite() && hi.is_finite()) {
        return Vec::new();
    }
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last.min(first + 50))
        .map(|k| k as f64 * step)
        .collect()
}

/// 1, 2, 2.5 or 5 times a power of ten, at least `rough`; at least 1 when `whole`.
fn nice_step(rough: f64, whole: bool) -> f64 {
    if !(rough.is_finite() && rough > 0.0) {
        return 1.0;
    }
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|&s| s >= rough * (1.0 - 1e-9))
        .unwrap_or(10.0 * power);
    if whole {
        step.max(1.0).round()
    } else {
        step
    }
}

/// `10`, `2.5`, `0.25`: no trailing zeros.
fn trim_number(v: f64) -> String {
    let text = format!("{:.2}", v);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(ticks: &[(f64, String)]) -> Vec<&str> {
        ticks.iter().map(|(_, l)| l.as_str()).collect()
    }

    #[test]
    fn a_short_run_is_in_seconds_and_never_in_milliseconds() {
        let ticks = time_ticks(0.0, 30.0);
        assert_eq!(labels(&ticks), ["0 s", "10 s", "20 s", "30 s"]);
        let ticks = time_ticks(0.4, 20.0);
        assert!(labels(&ticks).iter().all(|l| !l.contains("ms")));
        assert_eq!(labels(&ticks)[0], "5 s", "{ticks:?}");
    }

    #[test]
    fn long_runs_are_in_minutes_or_hours() {
        let ticks = time_ticks(0.0, 1800.0);
        assert_eq!(labels(&ticks), ["0 min", "10 min", "20 min", "30 min"]);
        assert_eq!(ticks[1].0, 600.0);
        let ticks = time_ticks(0.0, 6.0 * 3600.0);
        assert_eq!(labels(&ticks), ["0 h", "2 h", "4 h", "6 h"]);
    }

    #[test]
    fn a_flat_series_gets_a_sensible_range() {
        assert_eq!(value_range(0.0, 0.0, Unit::Count), (0.0, 1.0));
        assert_eq!(value_range(4.0, 4.0, Unit::Count), (3.0, 5.0));
        let (lo, hi) = value_range(100e6, 100e6, Unit::Bytes);
        assert!(lo > 0.0 && lo < 100e6 && hi > 100e6);
        assert_eq!(value_range(3.0, 9.0, Unit::Count), (3.0, 9.0));
    }

    #[test]
    fn byte_ticks_are_round_in_their_unit() {
        let mib = 1024.0 * 1024.0;
        assert_eq!(
            value_ticks(16.3 * mib, 31.2 * mib, Unit::Bytes),
            [20.0 * mib, 25.0 * mib, 30.0 * mib]
        );
    }

    #[test]
    fn count_ticks_are_whole() {
        assert_eq!(value_ticks(0.0, 1.0, Unit::Count), [0.0, 1.0]);
        assert_eq!(
            value_ticks(10.0, 30.0, Unit::Count),
            [10.0, 15.0, 20.0, 25.0, 30.0]
        );
        assert!(value_ticks(0.0, 3.0, Unit::Count)
            .iter()
            .all(|v| v.fract() == 0.0));
    }
}

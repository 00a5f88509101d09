//! The evidence that growth is sustained, gathered from a classified series: trend tests on the
//! deciding series (the troughs for a sawtooth, the levels otherwise), on the floor and on the
//! recent half, each corrected for serially correlated noise; the new highs and how long ago the
//! last one came; whether memory was given back; how much the floor rose.

use super::pattern::{self, Shape};
use super::shape::{Highs, Observed};
use super::stats::{self, mann_kendall, MannKendall};

/// Growth has stopped when no new high came for this many typical gaps between highs...
const STALL_GAPS: f64 = 3.0;
/// ...or this many times the longest pause between highs already seen (a leak in bursts)...
const PAUSE_GAPS: f64 = 1.5;
/// ...or this share of the window, whichever is longer.
const STALL_SPAN_SHARE: f64 = 0.15;
/// A staircase has stopped when no step came for this many typical gaps between steps.
const STEP_STALL_GAPS: f64 = 1.5;

/// What the verdict is decided on.
#[derive(Clone, Debug, PartialEq)]
pub struct Evidence {
    /// One-sided p-values for "it increases": the deciding series over the whole window, the
    /// floor, the deciding series over the recent half.
    pub p_trend: f64,
    pub p_floor: f64,
    pub p_recent: f64,
    /// Robust slope of the recent half over that of the whole window.
    pub recent_ratio: f64,
    /// Points in the deciding series.
    pub deciding_points: usize,
    /// Significant new highs of the floor (or steps of a staircase).
    pub highs: usize,
    pub since_last_high: f64,
    /// How long growth may pause before it counts as stopped.
    pub allowed_wait: f64,
    /// A clear drop came after the last new high: memory was given back.
    pub given_back: bool,
    /// How much the floor (or the staircase) rose over the window.
    pub rise: f64,
}

/// The trend test the pattern is classified on: the troughs' for a sawtooth (its raw values
/// swing with the collector), the levels' otherwise.
pub fn deciding_trend(o: &Observed) -> MannKendall {
    if o.sawtooth {
        mann_kendall(&floor_values(o))
    } else {
        o.level_trend
    }
}

fn floor_values(o: &Observed) -> Vec<f64> {
    o.floor.iter().map(|m| m.v).collect()
}

/// Mann-Kendall p-value with the variance inflated by the correlation of the noise around the
/// best monotone fit: a level that wanders fakes trends otherwise.
fn p_increasing(values: &[f64], test: MannKendall) -> f64 {
    let rho = stats::noise_autocorrelation(values);
    test.inflated(stats::variance_inflation(rho, values.len()))
        .p_increasing()
}

pub fn gather(o: &Observed, shape: &Shape, trend: MannKendall) -> Evidence {
    let floor_v = floor_values(o);
    let floor_rate = o.floor_line.map_or(0.0, |l| l.slope);
    let (deciding, whole_slope, recent, recent_slope) = if o.sawtooth {
        let floor_t: Vec<f64> = o.floor.iter().map(|m| m.t).collect();
        let half = floor_t.partition_point(|&t| t < o.start() + 0.5 * o.span());
        let recent_slope =
            stats::theil_sen(&floor_t[half..], &floor_v[half..]).map_or(0.0, |l| l.slope);
        (&floor_v[..], floor_rate, &floor_v[half..], recent_slope)
    } else {
        let slope = o.level_line.map_or(0.0, |l| l.slope);
        (&o.level[..], slope, &o.level[o.half..], o.second_half_slope)
    };
    let recent_ratio = if whole_slope > 0.0 {
        recent_slope / whole_slope
    } else {
        0.0
    };
    let (highs, allowed_wait) = highs_and_wait(o, shape, floor_rate);
    let since_last_high = highs.last().map_or(o.span(), |t| o.end() - t);
    // A leak never gives back: any clear drop must have been outgrown, by a later new high of
    // the floor or by the level climbing back to where the drop began (the last bin and the
    // median of the last three both: the last bin is never smoothed over).
    let now = o.level[o.len() - 1].min(pattern::recent_level(o));
    let given_back = !o.sawtooth
        && o.drops
            .last()
            .is_some_and(|d| highs.last().is_none_or(|h| o.t[d.to] > h) && now < o.level[d.from]);
    Evidence {
        p_trend: p_increasing(deciding, trend),
        p_floor: p_increasing(&floor_v, mann_kendall(&floor_v)),
        p_recent: p_increasing(recent, mann_kendall(recent)),
        recent_ratio,
        deciding_points: deciding.len(),
        highs: highs.count(),
        since_last_high,
        allowed_wait,
        given_back,
        rise: rise(o, shape, &highs, floor_rate),
    }
}

/// The new highs that count for this shape, and how long growth may pause between them.
fn highs_and_wait(o: &Observed, shape: &Shape, floor_rate: f64) -> (Highs, f64) {
    if let Some(steps) = &shape.steps {
        let wait = steps
            .median_gap()
            .map_or(0.0, |g| STEP_STALL_GAPS * g + 2.0 * o.spacing());
        return (steps.clone(), wait);
    }
    let highs = o.floor_highs();
    // New highs come every `margin / rate` seconds at best: under heavy noise they are rare by
    // construction, and a long wait says nothing.
    let expected_gap = if floor_rate > 0.0 {
        o.high_margin() / floor_rate
    } else {
        f64::INFINITY
    };
    let wait = (STALL_GAPS * highs.median_gap().unwrap_or(0.0).max(expected_gap))
        .max(PAUSE_GAPS * highs.longest_gap().unwrap_or(0.0))
        .max(STALL_SPAN_SHARE * o.span())
        .max(2.0 * o.spacing());
    (highs, wait)
}

/// How much the series rose: the steps for a staircase, else the floor's robust trend over the
/// window (a sawtooth's swing and one-sample spikes do not count).
fn rise(o: &Observed, shape: &Shape, highs: &Highs, floor_rate: f64) -> f64 {
    if shape.steps.is_some() {
        let first = highs.times.first().map_or(o.end(), |&t| t);
        let before = o.t.partition_point(|&t| t < first).saturating_sub(1);
        return pattern::recent_level(o) - o.level[before];
    }
    floor_rate.max(0.0) * o.span()
}

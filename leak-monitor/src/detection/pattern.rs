//! Growth pattern classification: which of sawtooth, flat, plateau, step, linear, quadratic or
//! exponential describes a series, the current rate that pattern implies, and how to project
//! it to a limit. The verdict (is it a leak?) is decided elsewhere, on this and more evidence.

use super::config::DetectorConfig;
use super::fit::{self, Curve, Fit};
use super::shape::{Highs, Observed};
use super::stats;
use super::GrowthPattern;

/// A curved model must beat the line by this much BIC ("very strong" evidence) to be chosen.
const MODEL_MARGIN: f64 = 10.0;
/// The two-slope model must beat the line by this much BIC for growth to count as stopped.
const BEND_MARGIN: f64 = 10.0;
/// Knees searched from this share of the span on; the flat part after one must last at least
/// `1 - BEND_LATEST` of the span.
const BEND_EARLIEST: f64 = 0.05;
const BEND_LATEST: f64 = 0.85;
/// A curve is only accelerating growth when the second half's robust slope is this many times
/// the first half's.
const ACCELERATION: f64 = 1.5;
/// A jump lasting more bins than this is a ramp, not a step.
const MAX_JUMP_BINS: usize = 3;
/// Steps are rare: at most this share of the bins may be inside jumps.
const MAX_JUMP_SHARE: f64 = 0.4;
/// Between steps the series is flat: its median step is below this share of a jump.
const FLAT_BETWEEN: f64 = 0.1;
/// Jumps must explain at least this share of the net rise, and not give back much of it.
const JUMPS_EXPLAIN: f64 = 0.6;
const JUMPS_AT_MOST: f64 = 2.0;

/// How to carry the current growth forward to a limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Projection {
    /// Straight on at the current rate from `from`, the value that will meet the limit first.
    Line { from: f64 },
    /// Along a fitted curve.
    Curve(Curve),
}

/// A classified series.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    pub pattern: GrowthPattern,
    /// Current rate, units per second.
    pub rate: f64,
    pub projection: Projection,
    /// For `Step`: the jumps that set new highs.
    pub steps: Option<Highs>,
}

/// A clear change of slope: the two-slope fit beats the straight line by `BEND_MARGIN` of BIC.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bend {
    pub knee: f64,
    /// Slopes before and after the knee, units per second.
    pub before: f64,
    pub after: f64,
}

impl Bend {
    /// Growth that stopped: fast before the knee, (almost) flat after, for long enough.
    fn stopped(&self, o: &Observed, config: &DetectorConfig) -> bool {
        self.before > 0.0
            && self.after <= config.plateau_ratio * self.before
            && self.knee <= o.start() + BEND_LATEST * o.span()
    }

    /// Growth that started: (almost) flat before the knee, rising after it.
    pub fn onset(&self, config: &DetectorConfig) -> bool {
        self.after > 0.0 && self.before <= config.plateau_ratio * self.after
    }
}

/// Where the levels clearly change slope, if they do.
pub fn bend(o: &Observed) -> Option<Bend> {
    let linear = fit::linear(&o.t, &o.level)?;
    let h = fit::hinge(&o.t, &o.level, BEND_EARLIEST)?;
    let n = o.len();
    let floor = variance_floor(o);
    let two_slopes = Fit {
        curve: linear.curve,
        rss: h.rss,
        params: 4,
    };
    (two_slopes.bic(n, floor) < linear.bic(n, floor) - BEND_MARGIN).then_some(Bend {
        knee: h.knee,
        before: h.before,
        after: h.after,
    })
}

/// Residual variance no fit can go below: the quantisation of the values.
fn variance_floor(o: &Observed) -> f64 {
    o.resolution * o.resolution / 12.0
}

/// Classifies `o`; `p_growth` is the one-sided trend p-value of the deciding series (the floor
/// for a sawtooth, the levels otherwise), `bend` its change of slope if any.
pub fn classify(o: &Observed, config: &DetectorConfig, p_growth: f64, bend: Option<Bend>) -> Shape {
    let current = recent_level(o);
    let line_from_current = |pattern, rate| Shape {
        pattern,
        rate,
        projection: Projection::Line { from: current },
        steps: None,
    };
    if o.sawtooth {
        let rate = o.floor_line.map_or(0.0, |l| l.slope);
        // The peaks meet a limit first: project from the highest point of the last cycle.
        let last_cycle = o.drops.last().map_or(0, |d| d.to);
        let peak = o.hi[last_cycle..].iter().copied().fold(current, f64::max);
        return Shape {
            pattern: GrowthPattern::Sawtooth,
            rate,
            projection: Projection::Line { from: peak },
            steps: None,
        };
    }
    let stopped = bend.filter(|b| b.stopped(o, config));
    // Warm-up: the growth is all in the first third and the rest is flat.
    if let Some(b) = stopped.filter(|b| b.knee <= o.start() + o.span() / 3.0) {
        return line_from_current(GrowthPattern::Plateau, b.after);
    }
    let Some(line) = o.level_line else {
        return line_from_current(GrowthPattern::Flat, 0.0);
    };
    if p_growth >= config.growing_p || line.slope <= 0.0 {
        return line_from_current(GrowthPattern::Flat, line.slope);
    }
    if let Some(highs) = steps(o) {
        let rate = step_rate(o, &highs);
        return Shape {
            steps: Some(highs),
            ..line_from_current(GrowthPattern::Step, rate)
        };
    }
    if let Some(b) = stopped {
        return line_from_current(GrowthPattern::Plateau, b.after);
    }
    let linear_shape = line_from_current(GrowthPattern::Linear, line.slope);
    match curved(o) {
        Some(Fit {
            curve: curve @ Curve::Exponential { .. },
            ..
        }) => Shape {
            pattern: GrowthPattern::Exponential,
            rate: curve.derivative(o.end()),
            projection: Projection::Curve(curve),
            steps: None,
        },
        Some(Fit {
            curve: curve @ Curve::Quadratic { c2, .. },
            ..
        }) if c2 > 0.0 => Shape {
            pattern: GrowthPattern::Quadratic,
            rate: curve.derivative(o.end()),
            projection: Projection::Curve(curve),
            steps: None,
        },
        // Decelerating: a plateau when the growth has nearly stopped, else still a line.
        Some(Fit { curve, .. })
            if curve.derivative(o.end()) <= config.plateau_ratio * curve.derivative(o.start()) =>
        {
            line_from_current(GrowthPattern::Plateau, curve.derivative(o.end()).max(0.0))
        }
        _ => linear_shape,
    }
}

/// The curved model (quadratic or exponential) that describes the levels clearly better than a
/// line, if one does. Least squares are pulled by allocator jumps, so a curve that accelerates
/// must also show it robustly: the Theil-Sen slope of the second half well above the first's.
fn curved(o: &Observed) -> Option<Fit> {
    let n = o.len();
    let floor = variance_floor(o);
    let bic = |f: &Fit| f.bic(n, floor);
    let linear = fit::linear(&o.t, &o.level)?;
    let best = [
        fit::quadratic(&o.t, &o.level),
        fit::exponential(&o.t, &o.level),
    ]
    .into_iter()
    .flatten()
    .min_by(|a, b| bic(a).total_cmp(&bic(b)))
    .filter(|c| bic(c) < bic(&linear) - MODEL_MARGIN)?;
    let accelerating = best.curve.derivative(o.end()) > best.curve.derivative(o.start());
    if !accelerating {
        return Some(best);
    }
    let (first, second) = (o.first_half_slope, o.second_half_slope);
    (second > 0.0 && second >= ACCELERATION * first.max(0.0)).then_some(best)
}

/// The value now, robust to one odd sample: the median of the last three bins.
pub fn recent_level(o: &Observed) -> f64 {
    let n = o.len();
    stats::median(&o.level[n.saturating_sub(3)..]).unwrap_or(o.level[n - 1])
}

/// The jumps that set new highs, when the series grows in discrete steps with flat between.
fn steps(o: &Observed) -> Option<Highs> {
    let jumps = o.jumps();
    if jumps.is_empty() || jumps.iter().any(|j| j.to - j.from > MAX_JUMP_BINS) {
        return None;
    }
    let n = o.len();
    let inside: usize = jumps.iter().map(|j| j.to - j.from).sum();
    if inside as f64 > MAX_JUMP_SHARE * (n - 1) as f64 {
        return None;
    }
    let sizes: Vec<f64> = jumps.iter().map(|j| j.amount).collect();
    let typical = stats::median(&sizes)?;
    if o.step_median.abs() > FLAT_BETWEEN * typical {
        return None;
    }
    let head = stats::median(&o.level[..3.min(n)])?;
    let net = recent_level(o) - head;
    let total: f64 = sizes.iter().sum();
    if net <= 0.0 || total < JUMPS_EXPLAIN * net || total > JUMPS_AT_MOST * net {
        return None;
    }
    let mut highs = Highs::default();
    for j in &jumps {
        let before = o.level[..=j.from].iter().copied().fold(f64::MIN, f64::max);
        if o.level[j.to] > before + 0.5 * j.amount {
            highs.times.push(o.t[j.to]);
        }
    }
    // Also a trend test over the whole: a staircase always passes it, noise with jumps may not.
    (o.level_trend.p_increasing() < 0.05).then_some(highs)
}

/// Growth per second of a staircase: the rise of the steps after the first over the time they took.
fn step_rate(o: &Observed, highs: &Highs) -> f64 {
    let (Some(&first), Some(&last)) = (highs.times.first(), highs.times.last()) else {
        return 0.0;
    };
    if last <= first {
        return 0.0;
    }
    let level_at = |t: f64| o.level[o.t.partition_point(|&x| x < t).min(o.len() - 1)];
    (level_at(last) - level_at(first)) / (last - first)
}

//! From a classified series to the verdict: the evidence that growth is sustained (trend tests on
//! the whole window, on the floor and on the recent half; new highs and how recent the last one
//! is), a confidence made of that evidence, and the gates a `leak` must pass.

use super::config::DetectorConfig;
use super::pattern::{self, Projection, Shape};
use super::series::Bin;
use super::shape::{Highs, Observed};
use super::stats::{self, mann_kendall};
use super::{GrowthPattern, Trend, Verdict};

/// The floor (troughs) must rise with at least this one-sided significance for a leak.
const FLOOR_P: f64 = 0.01;
/// The recent half must still rise with at least this significance for a leak...
const RECENT_P: f64 = 0.05;
/// ...and at no less than this share of the whole window's rate (growth that slows down to a
/// crawl is a cache filling, not a leak).
const RECENT_RATIO: f64 = 0.4;
/// Growth has stopped when no new high came for this many typical gaps between highs...
const STALL_GAPS: f64 = 3.0;
/// ...or this many times the longest pause between highs already seen (a leak in bursts)...
const PAUSE_GAPS: f64 = 1.5;
/// ...or this share of the window, whichever is longer.
const STALL_SPAN_SHARE: f64 = 0.15;
/// A staircase has stopped when no step came for this many typical gaps between steps.
const STEP_STALL_GAPS: f64 = 1.5;
/// Fewest points of the deciding series (troughs, for a sawtooth) for any growth call: with
/// fewer, Mann-Kendall could not reach `leak_p` even on a perfectly monotone series.
const MIN_DECIDING_POINTS: usize = 8;
/// A rise is judged on its own only when it starts in the second half of the horizon (after
/// a long calm), and must then clear a p-value this many times stricter than `leak_p`.
const ONSET_EARLIEST: f64 = 0.5;
const ONSET_SELECTION_PENALTY: f64 = 10.0;
/// ...and rise by this many times the spread of the level before it.
const ONSET_CALM_RATIO: f64 = 3.0;
/// Steps a staircase needs before it counts as growing rather than one-off.
const MIN_STEPS_GROWING: usize = 2;

/// The evidence behind a verdict, kept for tests and diagnostics.
#[derive(Clone, Debug, PartialEq)]
pub struct Evidence {
    pub p_trend: f64,
    pub p_floor: f64,
    pub p_recent: f64,
    pub recent_ratio: f64,
    pub highs: usize,
    pub since_last_high: f64,
    pub allowed_wait: f64,
    pub rise: f64,
}

/// Analyses one horizon's bins. A series too short to judge is `Trend::UNKNOWN`.
pub fn analyze(bins: &[Bin], config: &DetectorConfig, limit: Option<f64>) -> Trend {
    assess(bins, config, limit).map_or(Trend::UNKNOWN, |a| a.trend)
}

/// One horizon judged: the trend, the evidence behind it, and where growth started when it
/// started inside the horizon.
#[derive(Clone, Debug, PartialEq)]
pub struct Assessment {
    pub trend: Trend,
    pub evidence: Evidence,
    /// Set when the trend is that of the growth since this time, not of the whole horizon.
    pub since: Option<f64>,
}

/// `analyze`, with the evidence. When the levels were flat and then started to rise, the rise
/// is judged on its own too, as a tracker started at its onset would: otherwise a leak that
/// begins after hours of calm would be diluted by the calm. The more severe verdict wins.
pub fn assess(bins: &[Bin], config: &DetectorConfig, limit: Option<f64>) -> Option<Assessment> {
    let o = Observed::new(bins, config)?;
    let bend = pattern::bend(&o);
    let whole = judge(&o, bins.len(), bend, config, config.leak_p, limit)?;
    let onset = bend.filter(|b| {
        !o.sawtooth && b.onset(config) && b.knee >= o.start() + ONSET_EARLIEST * o.span()
    });
    let Some(onset) = onset else {
        return Some(whole);
    };
    if whole.trend.verdict == Verdict::Leak {
        return Some(whole);
    }
    let from = bins.partition_point(|b| b.t < onset.knee);
    // Only after a calm: the rise must dwarf how much the level moved before it, or it is just
    // one more swing of a level that wanders.
    let calm = &o.level[..from];
    let spread = stats::quantile(calm, 0.95)? - stats::quantile(calm, 0.05)?;
    let rise = pattern::recent_level(&o) - o.level[from.min(o.len() - 1)];
    if rise < ONSET_CALM_RATIO * spread {
        return Some(whole);
    }
    let since = &bins[from..];
    // The knee was chosen where the rise fits best: demand more of the rise for that choice.
    let leak_p = config.leak_p / ONSET_SELECTION_PENALTY;
    let rise = Observed::new(since, config)
        .and_then(|r| judge(&r, since.len(), None, config, leak_p, limit));
    match rise {
        Some(rise) if rise.trend.verdict > whole.trend.verdict => Some(Assessment {
            since: Some(onset.knee),
            ..rise
        }),
        _ => Some(whole),
    }
}

/// Judges one observed series.
fn judge(
    o: &Observed,
    bins: usize,
    bend: Option<pattern::Bend>,
    config: &DetectorConfig,
    leak_p: f64,
    limit: Option<f64>,
) -> Option<Assessment> {
    if bins < config.min_points.max(3) || o.span() <= 0.0 {
        return None;
    }
    let floor_v: Vec<f64> = o.floor.iter().map(|m| m.v).collect();
    let floor_rate = o.floor_line.map_or(0.0, |l| l.slope);
    // A sawtooth is judged on its troughs only: the raw values swing with the collector.
    let (trend_test, whole_slope, recent, recent_slope) = if o.sawtooth {
        let floor_t: Vec<f64> = o.floor.iter().map(|m| m.t).collect();
        let half = floor_t.partition_point(|&t| t < o.start() + 0.5 * o.span());
        let recent_slope =
            stats::theil_sen(&floor_t[half..], &floor_v[half..]).map_or(0.0, |l| l.slope);
        (
            mann_kendall(&floor_v),
            floor_rate,
            &floor_v[half..],
            recent_slope,
        )
    } else {
        let slope = o.level_line.map_or(0.0, |l| l.slope);
        (
            o.level_trend,
            slope,
            &o.level[o.half..],
            o.second_half_slope,
        )
    };
    let shape = pattern::classify(o, config, trend_test.p_increasing(), bend);
    // Serially correlated noise (a level that wanders) fakes trends: each test's variance is
    // inflated by the correlation of the noise around the best monotone fit.
    let inflation = |v: &[f64]| stats::variance_inflation(stats::noise_autocorrelation(v), v.len());
    let dv = if o.sawtooth {
        &floor_v[..]
    } else {
        &o.level[..]
    };
    let p_trend = trend_test.inflated(inflation(dv)).p_increasing();
    let p_floor = mann_kendall(&floor_v)
        .inflated(inflation(&floor_v))
        .p_increasing();
    let p_recent = mann_kendall(recent)
        .inflated(inflation(recent))
        .p_increasing();
    let recent_ratio = if whole_slope > 0.0 {
        recent_slope / whole_slope
    } else {
        0.0
    };

    let (highs, allowed_wait) = match &shape.steps {
        Some(steps) => {
            let wait = steps
                .median_gap()
                .map_or(0.0, |g| STEP_STALL_GAPS * g + 2.0 * o.spacing());
            (steps.clone(), wait)
        }
        None => {
            let highs = o.floor_highs();
            // New highs come every `margin / rate` seconds at best: under heavy noise they are
            // rare by construction, and a long wait says nothing.
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
    };
    let since_last_high = highs.last().map_or(o.span(), |t| o.end() - t);
    // A leak never gives back: any clear drop must have been outgrown by a later new high.
    let given_back = !o.sawtooth
        && o.drops
            .last()
            .is_some_and(|d| highs.last().is_none_or(|h| o.t[d.to] > h));
    let rise = rise(o, &shape, &highs, floor_rate);

    let evidence = Evidence {
        p_trend,
        p_floor,
        p_recent,
        recent_ratio,
        highs: highs.count(),
        since_last_high,
        allowed_wait,
        rise,
    };
    let confidence = confidence(o, &shape, &evidence, config);
    let growth_seen = match shape.pattern {
        GrowthPattern::Flat | GrowthPattern::Plateau => false,
        GrowthPattern::Step => highs.count() >= MIN_STEPS_GROWING,
        _ => p_trend < config.growing_p,
    } && dv.len() >= MIN_DECIDING_POINTS
        && shape.rate > 0.0
        && !given_back
        && since_last_high <= allowed_wait
        && rise >= o.high_margin();
    let leak = growth_seen
        && o.span() >= config.min_leak_seconds
        && p_trend < leak_p
        && p_floor < FLOOR_P
        && (shape.pattern == GrowthPattern::Step
            || (p_recent < RECENT_P && recent_ratio >= RECENT_RATIO))
        && highs.count() >= config.min_new_highs
        && rise >= config.min_leak_growth
        && confidence >= config.leak_confidence;
    let verdict = if leak {
        Verdict::Leak
    } else if growth_seen {
        Verdict::Growing
    } else {
        Verdict::Stable
    };
    // Below the leak threshold unless the verdict is leak, so the number and the verdict agree.
    let confidence = if leak {
        confidence
    } else {
        confidence.min(0.99 * config.leak_confidence)
    };
    let seconds_to_limit = match (verdict, limit) {
        (Verdict::Stable, _) | (_, None) => None,
        (_, Some(limit)) => time_to_limit(o, &shape, limit),
    };
    let trend = Trend {
        verdict,
        pattern: shape.pattern,
        rate_per_second: shape.rate,
        confidence,
        seconds_to_limit,
    };
    Some(Assessment {
        trend,
        evidence,
        since: None,
    })
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

/// Maps a one-sided p-value to evidence in 0..=1: 0 at p = 0.5 (nothing), near 1 as p -> 0.
fn evidence_of(p: f64) -> f64 {
    (1.0 - 2.0 * p).clamp(0.0, 1.0)
}

/// The confidence that this is a leak: the product of the strength of each piece of evidence,
/// so any one missing piece (no trend, no recent growth, few highs, a long wait since the last
/// one, too little growth, too short a window) holds it down.
fn confidence(o: &Observed, shape: &Shape, e: &Evidence, config: &DetectorConfig) -> f64 {
    let shape_factor = match shape.pattern {
        GrowthPattern::Flat | GrowthPattern::Plateau => 0.0,
        GrowthPattern::Step => 1.0,
        _ => evidence_of(e.p_recent) * (e.recent_ratio / RECENT_RATIO).clamp(0.0, 1.0),
    };
    let share = |have: f64, need: f64| {
        if need > 0.0 {
            (have / need).clamp(0.0, 1.0)
        } else {
            1.0
        }
    };
    let waited = if e.since_last_high > e.allowed_wait && e.since_last_high > 0.0 {
        e.allowed_wait / e.since_last_high
    } else {
        1.0
    };
    let c = evidence_of(e.p_trend)
        * evidence_of(e.p_floor)
        * shape_factor
        * share(e.highs as f64, config.min_new_highs as f64)
        * waited
        * share(e.rise, config.min_leak_growth)
        * share(o.span(), config.min_leak_seconds)
        * share(o.len() as f64, config.min_points as f64);
    c.clamp(0.0, 1.0)
}

/// Seconds until the growth reaches `limit`, following the pattern; None when not growing.
fn time_to_limit(o: &Observed, shape: &Shape, limit: f64) -> Option<f64> {
    match shape.projection {
        Projection::Curve(curve) => curve.time_to_reach(limit, o.end()),
        Projection::Line { from } if from >= limit => Some(0.0),
        Projection::Line { from } => (shape.rate > 0.0).then(|| (limit - from) / shape.rate),
    }
}

//! From a classified series and its evidence to the verdict: the gates a `leak` must pass, the
//! confidence, the time to the limit; and the re-judging of a rise that started after a calm.

use super::config::DetectorConfig;
use super::evidence::{self, Evidence};
use super::pattern::{self, Bend, Projection, Shape};
use super::series::Bin;
use super::shape::Observed;
use super::stats;
use super::{GrowthPattern, Trend, Verdict};
use crate::resource::{PerSecond, Seconds};

/// The floor (troughs) must rise with at least this one-sided significance for a leak.
const FLOOR_P: f64 = 0.01;
/// The recent half must still rise with at least this significance for a leak...
const RECENT_P: f64 = 0.05;
/// ...and at no less than this share of the whole window's rate (growth that slows down to a
/// crawl is a cache filling, not a leak).
const RECENT_RATIO: f64 = 0.4;
/// Fewest points of the deciding series (troughs, for a sawtooth) for any growth call: with
/// fewer, Mann-Kendall could not reach `leak_p` even on a perfectly monotone series.
pub(super) const MIN_DECIDING_POINTS: usize = 8;
/// Steps a staircase needs before it counts as growing rather than one-off.
const MIN_STEPS_GROWING: usize = 2;
/// A rise is judged on its own only when it starts in the second half of the horizon (after
/// a long calm), must clear a p-value this many times stricter than `leak_p` (its start was
/// chosen to fit it best)...
const ONSET_EARLIEST: f64 = 0.5;
const ONSET_SELECTION_PENALTY: f64 = 10.0;
/// ...and must rise by this many times the spread of the level before it.
const ONSET_CALM_RATIO: f64 = 3.0;
/// An early leak (before `min_leak_seconds`) needs a trend p-value this many times stricter
/// than `leak_p`: 5 lets a clean count that rises by one every 2 s (a thread per request batch)
/// through at its 10th sample (p = 1.9e-4 with its ties), where 10 waited for the 11th...
const EARLY_STRICTER: f64 = 5.0;
/// ...and a recent half still rising at this share of the window's rate or more (a warm-up or
/// a cache that fills slows down; a leak does not)...
const EARLY_RECENT_RATIO: f64 = 0.7;
/// ...and this many new highs (the stricter p-value already needs a long monotone run).
const EARLY_MIN_HIGHS: usize = 2;

/// Fewest samples for an early call on a series too short to judge in full.
const EARLY_MIN_POINTS: usize = 4;

/// Analyses one horizon's bins. A series too short to judge in full gets an early call.
pub fn analyze(bins: &[Bin], config: &DetectorConfig, limit: Option<f64>) -> Trend {
    assess(bins, config, limit).map_or_else(|| early(bins, config, limit), |a| a.trend)
}

/// A series too short for the full analysis (fewer than `min_points` samples): `growing`, at
/// its Theil-Sen rate, when it rises steadily (Mann-Kendall p < `growing_p`) by at least the
/// smallest growth a leak may have, so a short run says what it saw; else `Trend::UNKNOWN`.
/// Never `leak`: that needs the full analysis and `min_leak_seconds`.
fn early(bins: &[Bin], config: &DetectorConfig, limit: Option<f64>) -> Trend {
    if bins.len() < EARLY_MIN_POINTS {
        return Trend::UNKNOWN;
    }
    let t: Vec<f64> = bins.iter().map(|b| b.t).collect();
    let level: Vec<f64> = bins.iter().map(|b| b.level).collect();
    let p = stats::mann_kendall(&level).p_increasing();
    let rise = level[level.len() - 1] - level[0];
    let enough = config.min_leak_growth.max(3.0 * config.resolution);
    let Some(line) = stats::theil_sen(&t, &level) else {
        return Trend::UNKNOWN;
    };
    if p >= config.growing_p || rise < enough || line.slope <= 0.0 {
        return Trend::UNKNOWN;
    }
    let span = t[t.len() - 1] - t[0];
    let last = line.intercept + line.slope * t[t.len() - 1];
    Trend {
        verdict: Verdict::Growing,
        pattern: GrowthPattern::Linear,
        rate_per_second: PerSecond(line.slope),
        confidence: (evidence_of(p) * (span / config.min_leak_seconds).clamp(0.0, 1.0))
            .min(0.99 * config.leak_confidence),
        seconds_to_limit: limit.map(|limit| Seconds(((limit - last) / line.slope).max(0.0))),
        early_leak: false,
    }
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
    let Some(onset) = onset.filter(|_| whole.trend.verdict != Verdict::Leak) else {
        return Some(whole);
    };
    let from = bins.partition_point(|b| b.t < onset.knee);
    if !after_calm(&o, from) {
        return Some(whole);
    }
    let since = &bins[from..];
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

/// Whether the rise from bin `from` on dwarfs how much the level moved before it; if not, it is
/// one more swing of a level that wanders, not a leak that started.
fn after_calm(o: &Observed, from: usize) -> bool {
    let calm = &o.level[..from.min(o.len())];
    let (Some(lo), Some(hi)) = (stats::quantile(calm, 0.05), stats::quantile(calm, 0.95)) else {
        return false;
    };
    let start = o.level[from.min(o.len() - 1)];
    pattern::recent_level(o) - start >= ONSET_CALM_RATIO * (hi - lo)
}

/// Judges one observed series; `leak_p` is the trend p-value a leak needs.
fn judge(
    o: &Observed,
    bins: usize,
    bend: Option<Bend>,
    config: &DetectorConfig,
    leak_p: f64,
    limit: Option<f64>,
) -> Option<Assessment> {
    if bins < config.min_points.max(3) || o.span() <= 0.0 {
        return None;
    }
    let trend_test = evidence::deciding_trend(o);
    let shape = pattern::classify(o, config, trend_test.p_increasing(), bend);
    let e = evidence::gather(o, &shape, trend_test);
    let early_confidence = confidence(o, &shape, &e, config, true);
    let confidence = confidence(o, &shape, &e, config, false);
    let growth_seen = match shape.pattern {
        GrowthPattern::Flat | GrowthPattern::Plateau => false,
        GrowthPattern::Step => e.highs >= MIN_STEPS_GROWING,
        _ => e.p_trend < config.growing_p,
    } && e.deciding_points >= MIN_DECIDING_POINTS
        && shape.rate > 0.0
        && !e.given_back
        && e.since_last_high <= e.allowed_wait
        && e.rise >= o.high_margin();
    let leak = growth_seen
        && o.span() >= config.min_leak_seconds
        && e.p_trend < leak_p
        && e.p_floor < FLOOR_P
        && (shape.pattern == GrowthPattern::Step
            || (e.p_recent < RECENT_P && e.recent_ratio >= RECENT_RATIO))
        && e.highs >= config.min_new_highs
        && e.rise >= config.min_leak_growth
        && confidence >= config.leak_confidence;
    // Everything a leak needs but the time, at stricter levels: a leak if the growth's source
    // is one that does not give back (the engine's call, from attribution).
    let early_leak = growth_seen
        && !leak
        && o.span() >= config.min_early_leak_seconds
        && e.p_trend < leak_p / EARLY_STRICTER
        && e.p_floor < FLOOR_P
        && (shape.pattern == GrowthPattern::Step
            || (e.p_recent < RECENT_P && e.recent_ratio >= EARLY_RECENT_RATIO))
        && e.highs >= EARLY_MIN_HIGHS
        && e.rise >= config.min_leak_growth
        && early_confidence >= config.leak_confidence;
    let verdict = if leak {
        Verdict::Leak
    } else if growth_seen {
        Verdict::Growing
    } else {
        Verdict::Stable
    };
    let trend = Trend {
        verdict,
        pattern: shape.pattern,
        rate_per_second: PerSecond(shape.rate),
        // Below the leak threshold unless the verdict is leak, so number and verdict agree.
        confidence: if leak {
            confidence
        } else {
            confidence.min(0.99 * config.leak_confidence)
        },
        seconds_to_limit: match (verdict, limit) {
            (Verdict::Stable, _) | (_, None) => None,
            (_, Some(limit)) => time_to_limit(o, &shape, limit).map(Seconds),
        },
        early_leak,
    };
    Some(Assessment {
        trend,
        evidence: e,
        since: None,
    })
}

/// Maps a one-sided p-value to evidence in 0..=1: 0 at p = 0.5 (nothing), near 1 as p -> 0.
fn evidence_of(p: f64) -> f64 {
    (1.0 - 2.0 * p).clamp(0.0, 1.0)
}

/// The confidence that this is a leak: the product of the strength of each piece of evidence,
/// so any one missing piece (no trend, no recent growth, few highs, a long wait since the last
/// one, too little growth, too short a window) holds it down. `early`: as an early leak is
/// judged, without the window's length and with its fewer highs.
fn confidence(
    o: &Observed,
    shape: &Shape,
    e: &Evidence,
    config: &DetectorConfig,
    early: bool,
) -> f64 {
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
        * if early {
            share(e.highs as f64, EARLY_MIN_HIGHS as f64)
        } else {
            share(e.highs as f64, config.min_new_highs as f64)
        }
        * waited
        * share(e.rise, config.min_leak_growth)
        * if early {
            1.0
        } else {
            share(o.span(), config.min_leak_seconds)
        }
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

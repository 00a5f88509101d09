//! The features an analysis reads off a binned series: its noise, its drops (memory given back),
//! its jumps (discrete growth), its floor (the troughs, which a GC sawtooth cannot lift) and the
//! significant new highs that floor sets.

use super::config::DetectorConfig;
use super::series::Bin;
use super::stats::{self, Line, MannKendall};

/// Floor windows aimed for when there is no sawtooth to cut the series into cycles.
const FLOOR_WINDOWS: usize = 12;
/// A drop must exceed this many robust standard deviations of the usual step...
const DROP_SIGMAS: f64 = 5.0;
/// ...and this share of the series' robust range, so noise and allocator jitter are not frees.
const DROP_RANGE_SHARE: f64 = 0.15;
/// Up-ticks below this share of the drop threshold do not split a drop in two.
const DROP_JITTER_SHARE: f64 = 0.1;
/// A jump (discrete growth) exceeds this many robust standard deviations of the usual step.
const JUMP_SIGMAS: f64 = 5.0;
/// Fewest cycles (drops + 1) for a sawtooth's floor to be one trough per cycle: as many as the
/// verdict needs points in the series it decides on.
const MIN_CYCLE_TROUGHS: usize = super::verdict::MIN_DECIDING_POINTS;
/// Excursions of up to this many bins above or below both neighbours are smoothed over.
const EXCURSION_BINS: usize = 3;
/// A new high of the floor must clear the previous one by this many floor noise sigmas.
const HIGH_MARGIN_SIGMAS: f64 = 2.0;

/// A point of a derived series (the floor).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mark {
    pub t: f64,
    pub v: f64,
}

/// Consecutive moves in one direction between bin `from` and bin `to` (`to > from`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Run {
    pub from: usize,
    pub to: usize,
    /// `level[to] - level[from]`.
    pub amount: f64,
}

/// How a series' new highs went.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Highs {
    /// Times of the significant new highs, oldest first.
    pub times: Vec<f64>,
}

impl Highs {
    pub fn count(&self) -> usize {
        self.times.len()
    }

    pub fn last(&self) -> Option<f64> {
        self.times.last().copied()
    }

    fn gaps(&self) -> Vec<f64> {
        self.times.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// Median time between consecutive new highs.
    pub fn median_gap(&self) -> Option<f64> {
        stats::median(&self.gaps())
    }

    /// Longest time between consecutive new highs.
    pub fn longest_gap(&self) -> Option<f64> {
        self.gaps().into_iter().reduce(f64::max)
    }
}

/// A binned series with its features, ready to classify and judge.
#[derive(Clone, Debug)]
pub struct Observed {
    pub t: Vec<f64>,
    pub level: Vec<f64>,
    pub hi: Vec<f64>,
    /// Median step between consecutive bins.
    pub step_median: f64,
    /// Robust standard deviation of the steps; at least a tiny epsilon of the values' scale.
    pub step_sigma: f64,
    /// Smallest change that counts (the config's resolution, or the epsilon).
    pub resolution: f64,
    pub drops: Vec<Run>,
    /// At least two drops, with rises in between: memory taken and given back repeatedly.
    pub sawtooth: bool,
    /// Troughs: one per cycle in a sawtooth of enough cycles (`MIN_CYCLE_TROUGHS`), else one
    /// per window of bins.
    pub floor: Vec<Mark>,
    /// Robust noise of one floor point.
    pub floor_sigma: f64,
    /// Theil-Sen lines of the levels and of the floor; the levels' slopes in each half of the
    /// span. Computed once: they are the costly part of an analysis.
    pub level_line: Option<Line>,
    pub floor_line: Option<Line>,
    /// Index of the first bin of the second half of the span.
    pub half: usize,
    pub first_half_slope: f64,
    pub second_half_slope: f64,
    /// Mann-Kendall on the levels, without any correction.
    pub level_trend: MannKendall,
}

impl Observed {
    pub fn new(bins: &[Bin], config: &DetectorConfig) -> Option<Observed> {
        let n = bins.len();
        if n < 3 {
            return None;
        }
        let t: Vec<f64> = bins.iter().map(|b| b.t).collect();
        let mut level: Vec<f64> = bins.iter().map(|b| b.level).collect();
        let mut lo: Vec<f64> = bins.iter().map(|b| b.lo).collect();
        let hi: Vec<f64> = bins.iter().map(|b| b.hi).collect();
        let scale = level.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let epsilon = scale * 1e-9;
        let resolution = config.resolution.max(epsilon);
        let diffs: Vec<f64> = level.windows(2).map(|w| w[1] - w[0]).collect();
        let steps = stats::robust_scale(&diffs)?;
        let step_sigma = steps.sigma.max(epsilon);

        let range = stats::quantile(&level, 0.95)? - stats::quantile(&level, 0.05)?;
        let drop_threshold = (DROP_SIGMAS * step_sigma)
            .max(DROP_RANGE_SHARE * range)
            .max(resolution);
        let jitter = step_sigma
            .max(resolution)
            .max(DROP_JITTER_SHARE * drop_threshold);
        if config.smooth_excursions {
            smooth_excursions(&t, &mut level, &mut lo, drop_threshold);
        }
        let drops = drops(&level, jitter, drop_threshold);
        let rises: f64 = level.windows(2).map(|w| (w[1] - w[0]).max(0.0)).sum();
        let given_back: f64 = drops.iter().map(|d| -d.amount).sum();
        let sawtooth = drops.len() >= 2 && rises >= 0.5 * given_back;

        // Too few cycles leave too few troughs to judge: the windows' troughs stand in then.
        let floor = if sawtooth && drops.len() + 1 >= MIN_CYCLE_TROUGHS {
            cycle_floor(&t, &lo, &drops)
        } else {
            window_floor(&t, &lo, (n / FLOOR_WINDOWS).max(1))
        };
        let floor_steps: Vec<f64> = floor.windows(2).map(|w| w[1].v - w[0].v).collect();
        let floor_sigma = stats::robust_scale(&floor_steps)
            .map_or(0.0, |s| s.sigma / std::f64::consts::SQRT_2)
            .max(epsilon);
        let floor_t: Vec<f64> = floor.iter().map(|m| m.t).collect();
        let floor_v: Vec<f64> = floor.iter().map(|m| m.v).collect();
        let floor_line = stats::theil_sen(&floor_t, &floor_v);
        let level_line = stats::theil_sen(&t, &level);
        let half = t.partition_point(|&x| x < (t[0] + t[n - 1]) / 2.0);
        let slope = |r: std::ops::Range<usize>| {
            stats::theil_sen(&t[r.clone()], &level[r]).map_or(0.0, |l| l.slope)
        };
        let (first_half_slope, second_half_slope) = (slope(0..half), slope(half..n));
        let level_trend = stats::mann_kendall(&level);
        Some(Observed {
            t,
            level,
            hi,
            step_median: steps.median,
            step_sigma,
            resolution,
            drops,
            sawtooth,
            floor,
            floor_sigma,
            level_line,
            floor_line,
            half,
            first_half_slope,
            second_half_slope,
            level_trend,
        })
    }

    pub fn len(&self) -> usize {
        self.t.len()
    }

    pub fn start(&self) -> f64 {
        self.t[0]
    }

    pub fn end(&self) -> f64 {
        self.t[self.t.len() - 1]
    }

    pub fn span(&self) -> f64 {
        self.end() - self.start()
    }

    /// Median time between bins.
    pub fn spacing(&self) -> f64 {
        self.span() / (self.len() - 1) as f64
    }

    /// Runs of steps that each exceed the jump threshold: discrete growth.
    pub fn jumps(&self) -> Vec<Run> {
        let unit = (JUMP_SIGMAS * self.step_sigma).max(self.resolution);
        runs(&self.level, |d| d >= unit)
    }

    /// Margin a floor point must clear the previous new high by.
    pub fn high_margin(&self) -> f64 {
        (HIGH_MARGIN_SIGMAS * self.floor_sigma).max(self.resolution)
    }

    /// Significant new highs of the floor: each must clear the previous counted high by the margin,
    /// so creeping growth is counted once it adds up and noise around a plateau is not.
    pub fn floor_highs(&self) -> Highs {
        new_highs(&self.floor, self.high_margin())
    }
}

/// Maximal runs of consecutive steps that satisfy `keep`.
fn runs(level: &[f64], keep: impl Fn(f64) -> bool) -> Vec<Run> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for i in 0..level.len().saturating_sub(1) {
        let inside = keep(level[i + 1] - level[i]);
        match (inside, start) {
            (true, None) => start = Some(i),
            (false, Some(from)) => {
                out.push(Run {
                    from,
                    to: i,
                    amount: level[i] - level[from],
                });
                start = None;
            }
            _ => {}
        }
    }
    if let Some(from) = start {
        let to = level.len() - 1;
        out.push(Run {
            from,
            to,
            amount: level[to] - level[from],
        });
    }
    out
}

/// Falls of at least `threshold`: runs of steps that do not rise by more than `jitter` (a small
/// up-tick in the middle of a free does not split it), trimmed to their lowest point.
fn drops(level: &[f64], jitter: f64, threshold: f64) -> Vec<Run> {
    runs(level, |d| d < jitter)
        .into_iter()
        .filter_map(|run| {
            let to = (run.from..=run.to).min_by(|&a, &b| level[a].total_cmp(&level[b]))?;
            let amount = level[to] - level[run.from];
            (to > run.from && amount <= -threshold).then_some(Run {
                from: run.from,
                to,
                amount,
            })
        })
        .collect()
}

/// Lays a straight line, in `level` and `lo`, over every excursion of up to three bins that
/// rises above (or falls below) both of its neighbours by more than `threshold`: a request's
/// working set freed and trimmed by the allocator at once, or the heap top trimmed between
/// requests and faulted in again by the next. Neither keeps memory nor gives it back, yet each
/// ends in a drop: a few of them made a sawtooth of a slow leak, judged on a handful of troughs
/// and called stable. A GC sawtooth rises over several bins, so it keeps its drops.
fn smooth_excursions(t: &[f64], level: &mut [f64], lo: &mut [f64], threshold: f64) {
    let n = level.len();
    // Found on the levels as sampled, so one excursion does not hide its neighbour.
    let mut away = vec![false; n];
    // The lowest level before each bin.
    let lowest_before: Vec<f64> = level
        .iter()
        .scan(f64::INFINITY, |lowest, &v| {
            let before = *lowest;
            *lowest = lowest.min(v);
            Some(before)
        })
        .collect();
    for width in 1..=EXCURSION_BINS {
        for i in 1..n.saturating_sub(width) {
            let (a, b) = (i - 1, i + width);
            let inside = &level[i..b];
            let top = inside.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let bottom = inside.iter().copied().fold(f64::INFINITY, f64::min);
            // It stands out from both neighbours by more than they differ: a step of a GC
            // sawtooth's rise stands out from the bin before it, not from the one after the drop.
            let apart = threshold.max((level[b] - level[a]).abs());
            let up = bottom - level[a].max(level[b]) > apart;
            // A dip down to the lowest level before it gave everything back, if briefly: that
            // is evidence, not noise.
            let down = level[a].min(level[b]) - top > apart && top > lowest_before[i] + threshold;
            if up || down {
                away[i..b].fill(true);
            }
        }
    }
    let mut i = 0;
    while i < n {
        if !away[i] {
            i += 1;
            continue;
        }
        // Never the first or the last bin, so both ends are bins that stayed.
        let (a, b) = (i - 1, (i..n).find(|&k| !away[k]).unwrap_or(n - 1));
        i = b;
        // Longer runs are the series' own shape (troughs between the spikes of a fast
        // collector cycle look like dips), not an excursion from it.
        if b - a - 1 > EXCURSION_BINS {
            continue;
        }
        for k in a + 1..b {
            let share = (t[k] - t[a]) / (t[b] - t[a]);
            level[k] = level[a] + share * (level[b] - level[a]);
            // A bin's lowest sample, for the floor, on the line through its neighbours' own.
            lo[k] = lo[a] + share * (lo[b] - lo[a]);
        }
    }
}

/// The lowest point of a range of bins.
fn trough(t: &[f64], lo: &[f64], range: std::ops::Range<usize>) -> Option<Mark> {
    range
        .min_by(|&a, &b| lo[a].total_cmp(&lo[b]))
        .map(|i| Mark { t: t[i], v: lo[i] })
}

/// One trough per cycle, cycles cut at the bottom of each drop.
fn cycle_floor(t: &[f64], lo: &[f64], drops: &[Run]) -> Vec<Mark> {
    let mut cuts: Vec<usize> = vec![0];
    cuts.extend(drops.iter().map(|d| d.to));
    cuts.push(t.len());
    cuts.dedup();
    cuts.windows(2)
        .filter_map(|w| trough(t, lo, w[0]..w[1]))
        .collect()
}

/// One trough per window of `width` bins (the last window takes the remainder).
fn window_floor(t: &[f64], lo: &[f64], width: usize) -> Vec<Mark> {
    let n = t.len();
    let windows = (n / width).max(1);
    (0..windows)
        .filter_map(|k| {
            let end = if k + 1 == windows { n } else { (k + 1) * width };
            trough(t, lo, k * width..end)
        })
        .collect()
}

fn new_highs(points: &[Mark], margin: f64) -> Highs {
    let mut highs = Highs::default();
    let Some(first) = points.first() else {
        return highs;
    };
    let mut reference = first.v;
    for p in &points[1..] {
        if p.v > reference + margin {
            highs.times.push(p.t);
            reference = p.v;
        }
    }
    highs
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::detection::series::Point;

    fn observe(values: &[f64]) -> Observed {
        let bins: Vec<Bin> = values
            .iter()
            .enumerate()
            .map(|(i, &value)| Bin::of(Point { t: i as f64, value }))
            .collect();
        Observed::new(&bins, &DetectorConfig::default()).unwrap()
    }

    #[test]
    fn a_sawtooth_is_cut_into_cycles_at_its_drops() {
        let mut values = Vec::new();
        for _ in 0..8 {
            values.extend([10.0, 14.0, 18.0, 22.0, 26.0, 30.0]);
        }
        let o = observe(&values);
        assert!(o.sawtooth);
        assert_eq!(o.drops.len(), 7);
        assert!(o.drops.iter().all(|d| d.amount == -20.0));
        assert_eq!(o.floor.len(), 8);
        assert!(o.floor.iter().all(|m| m.v == 10.0));
        assert_eq!(o.floor_highs().count(), 0);
    }

    #[test]
    fn a_sawtooth_of_few_cycles_is_judged_on_window_troughs() {
        let mut values = Vec::new();
        for _ in 0..4 {
            values.extend([10.0, 14.0, 18.0, 22.0, 26.0, 30.0]);
        }
        let o = observe(&values);
        assert!(o.sawtooth);
        assert_eq!(o.drops.len(), 3);
        // 24 bins in windows of 2: four troughs would be too few to judge.
        assert_eq!(o.floor.len(), 12);
        assert_eq!(o.floor_highs().count(), 2, "within the first cycle only");
    }

    #[test]
    fn a_drop_split_by_an_uptick_stays_one_drop() {
        let mut values = vec![0.0, 5.0, 10.0, 15.0, 20.0, 8.0, 8.25, 0.0];
        // The rise after the trough is no sharper than the drop's last part: not a dip.
        values.extend([4.0, 8.0, 12.0, 16.0, 20.0, 0.0, 5.0, 10.0]);
        let o = observe(&values);
        assert_eq!(o.drops.len(), 2, "{:?} {:?}", o.drops, o.level);
        assert_eq!(o.drops[0].to, 7);
    }

    #[test]
    fn brief_spikes_and_dips_on_a_line_are_smoothed_over_not_drops() {
        let mut values: Vec<f64> = (0..40).map(|i| 100.0 + 2.0 * f64::from(i)).collect();
        // A request's working set trimmed at once (one bin, then two), the heap top trimmed
        // between requests (one bin), a spike right before a dip.
        values[8] += 30.0;
        values[15] += 30.0;
        values[16] += 28.0;
        values[24] -= 30.0;
        values[31] += 30.0;
        values[32] -= 30.0;
        let o = observe(&values);
        assert!(o.drops.is_empty(), "{:?}", o.drops);
        assert!(!o.sawtooth);
        for (i, v) in o.level.iter().enumerate() {
            let line = 100.0 + 2.0 * i as f64;
            assert!((v - line).abs() < 1e-9, "bin {i}: {v} is not on the line");
        }
    }

    #[test]
    fn a_line_has_no_drops_and_a_rising_floor() {
        let values: Vec<f64> = (0..40).map(|i| 100.0 + 3.0 * f64::from(i)).collect();
        let o = observe(&values);
        assert!(!o.sawtooth && o.drops.is_empty());
        // 40 bins in windows of 3 (the last takes 4).
        assert_eq!(o.floor.len(), 13);
        assert_eq!(o.floor_highs().count(), 12);
        assert_eq!(o.jumps().len(), 1, "one long run of equal steps");
    }

    #[test]
    fn steps_of_a_staircase_are_jumps() {
        let values: Vec<f64> = (0..40).map(|i| f64::from(10 + i / 10)).collect();
        let o = observe(&values);
        let jumps = o.jumps();
        assert_eq!(jumps.len(), 3);
        assert!(jumps.iter().all(|j| j.to == j.from + 1 && j.amount == 1.0));
        let highs = o.floor_highs();
        assert_eq!(highs.count(), 3);
        // Window troughs at 12, 21 and 30: the first window after each step.
        assert_eq!(highs.times, [12.0, 21.0, 30.0]);
    }
}

//! Bounded storage of one resource's time series: the most recent samples at full resolution,
//! and older samples folded into a fixed number of buckets (mean, min, max, last) whose width
//! doubles whenever they run out. Memory grows with the samples up to those caps and then stays
//! constant however long the daemon runs: a target followed for a minute costs a minute's worth.

use std::collections::VecDeque;

/// One sample: seconds since observation start, and the value in the resource's unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub t: f64,
    pub value: f64,
}

/// Consecutive samples summarised: the unit of the decimated history and of the analysis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bin {
    /// Mean time of the samples.
    pub t: f64,
    /// Mean value.
    pub level: f64,
    /// Lowest and highest value: `lo` is what the floor (troughs) is judged on.
    pub lo: f64,
    pub hi: f64,
    /// The newest sample, shown on charts.
    pub last: Point,
    pub count: u64,
}

impl Bin {
    pub fn of(p: Point) -> Bin {
        Bin {
            t: p.t,
            level: p.value,
            lo: p.value,
            hi: p.value,
            last: p,
            count: 1,
        }
    }

    /// Folds `later` (whose samples all come after this bin's) into this bin.
    pub fn absorb(&mut self, later: &Bin) {
        let total = (self.count + later.count) as f64;
        let (w_self, w_later) = (self.count as f64 / total, later.count as f64 / total);
        self.t = self.t * w_self + later.t * w_later;
        self.level = self.level * w_self + later.level * w_later;
        self.lo = self.lo.min(later.lo);
        self.hi = self.hi.max(later.hi);
        self.last = later.last;
        self.count += later.count;
    }
}

/// Which part of the series an analysis looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Horizon {
    /// Only the full-resolution recent window.
    Recent,
    /// Everything kept, decimated history included.
    All,
}

/// Smallest capacities accepted, so the analysis always has a window to work on.
pub const MIN_RECENT_CAPACITY: usize = 32;
pub const MIN_HISTORY_CAPACITY: usize = 8;
/// Samples per history bucket before the first compaction.
const INITIAL_SAMPLES_PER_BUCKET: u64 = 4;
/// Room allocated at first: a fleet of targets followed for seconds should not each hold the
/// full window. The storage doubles from here, never past its cap.
const INITIAL_ROOM: usize = 16;

/// The bounded series. At most `recent_capacity` points plus `history_capacity + 1` bins.
#[derive(Clone, Debug)]
pub struct Series {
    recent: VecDeque<Point>,
    recent_capacity: usize,
    history: Vec<Bin>,
    history_capacity: usize,
    /// The history bucket still being filled.
    open: Option<Bin>,
    samples_per_bucket: u64,
    first: Option<Point>,
    samples: u64,
}

impl Series {
    pub fn new(recent_capacity: usize, history_capacity: usize) -> Series {
        let recent_capacity = recent_capacity.max(MIN_RECENT_CAPACITY);
        let history_capacity = history_capacity.max(MIN_HISTORY_CAPACITY);
        Series {
            recent: VecDeque::with_capacity(INITIAL_ROOM.min(recent_capacity)),
            recent_capacity,
            history: Vec::new(),
            history_capacity,
            open: None,
            samples_per_bucket: INITIAL_SAMPLES_PER_BUCKET,
            first: None,
            samples: 0,
        }
    }

    /// Appends a sample; the caller guarantees time increases.
    pub fn push(&mut self, p: Point) {
        if self.recent.len() == self.recent_capacity {
            if let Some(old) = self.recent.pop_front() {
                self.retire(old);
            }
        }
        let (len, room) = (self.recent.len(), self.recent.capacity());
        if len == room {
            self.recent
                .reserve_exact(grown_room(room, self.recent_capacity) - len);
        }
        self.recent.push_back(p);
        self.first.get_or_insert(p);
        self.samples += 1;
    }

    /// Moves a sample that left the recent window into the history.
    fn retire(&mut self, p: Point) {
        let bin = Bin::of(p);
        match &mut self.open {
            Some(open) => open.absorb(&bin),
            None => self.open = Some(bin),
        }
        if let Some(open) = self.open.take_if(|b| b.count >= self.samples_per_bucket) {
            let (len, room) = (self.history.len(), self.history.capacity());
            if len == room {
                // One over the cap: the bucket that triggers a compaction.
                self.history
                    .reserve_exact(grown_room(room, self.history_capacity + 1) - len);
            }
            self.history.push(open);
            if self.history.len() > self.history_capacity {
                self.compact();
            }
        }
    }

    /// Halves the history by merging neighbours; later buckets hold twice as many samples.
    fn compact(&mut self) {
        let merged: Vec<Bin> = self
            .history
            .chunks(2)
            .map(|pair| {
                let mut bin = pair[0];
                if let Some(second) = pair.get(1) {
                    bin.absorb(second);
                }
                bin
            })
            .collect();
        self.history.clear();
        self.history.extend(merged);
        self.samples_per_bucket *= 2;
    }

    pub fn first(&self) -> Option<Point> {
        self.first
    }

    pub fn last(&self) -> Option<Point> {
        self.recent.back().copied()
    }

    /// Samples ever pushed.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Whether anything older than the recent window is kept.
    pub fn has_history(&self) -> bool {
        !self.history.is_empty() || self.open.is_some()
    }

    /// Points kept, oldest first: one per history bucket (its newest sample), then every recent one.
    pub fn points(&self) -> impl Iterator<Item = Point> + '_ {
        self.history
            .iter()
            .chain(self.open.iter())
            .map(|b| b.last)
            .chain(self.recent.iter().copied())
    }

    /// Number of points `points` yields.
    pub fn len(&self) -> usize {
        self.history.len() + usize::from(self.open.is_some()) + self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }

    /// The horizon summarised in at most `max_bins` bins, oldest first. Kept as is when it fits;
    /// otherwise regrouped into bins of equal time width.
    pub fn bins(&self, horizon: Horizon, max_bins: usize) -> Vec<Bin> {
        let recent = self.recent.iter().map(|&p| Bin::of(p));
        let items: Vec<Bin> = match horizon {
            Horizon::Recent => recent.collect(),
            Horizon::All => self
                .history
                .iter()
                .chain(self.open.iter())
                .copied()
                .chain(recent)
                .collect(),
        };
        let max_bins = max_bins.max(1);
        let (Some(first), Some(last)) = (items.first(), items.last()) else {
            return items;
        };
        let span = last.t - first.t;
        if items.len() <= max_bins || span <= 0.0 {
            return items;
        }
        let (t0, width) = (first.t, span / max_bins as f64);
        let slot = |b: &Bin| (((b.t - t0) / width) as usize).min(max_bins - 1);
        let mut out: Vec<Bin> = Vec::with_capacity(max_bins);
        let mut current = usize::MAX;
        for item in &items {
            let s = slot(item);
            match out.last_mut() {
                Some(bin) if s == current => bin.absorb(item),
                _ => {
                    out.push(*item);
                    current = s;
                }
            }
        }
        out
    }
}

/// The next room for storage holding `room` items and never more than `cap`: twice as much
/// (amortised pushes), clamped so a full series holds exactly its cap, not the next power of two.
fn grown_room(room: usize, cap: usize) -> usize {
    (room * 2).max(INITIAL_ROOM).min(cap.max(room + 1))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn filled(n: usize, recent: usize, history: usize) -> Series {
        let mut s = Series::new(recent, history);
        for i in 0..n {
            s.push(Point {
                t: i as f64,
                value: i as f64 * 2.0,
            });
        }
        s
    }

    #[test]
    fn keeps_everything_while_the_recent_window_has_room() {
        let s = filled(20, 32, 8);
        assert_eq!(s.len(), 20);
        assert!(!s.has_history());
        assert_eq!(s.first().unwrap().value, 0.0);
        assert_eq!(s.last().unwrap().value, 38.0);
        let pts: Vec<Point> = s.points().collect();
        assert_eq!(pts.len(), 20);
        assert_eq!(pts[19].t, 19.0);
    }

    #[test]
    fn memory_stays_bounded_over_weeks_of_samples() {
        // Three weeks at 1 Hz.
        let n = 3 * 7 * 24 * 3600;
        let s = filled(n, 512, 256);
        assert!(s.len() <= 512 + 256 + 1, "len {}", s.len());
        assert_eq!(s.samples(), n as u64);
        assert_eq!(s.first().unwrap().t, 0.0);
        // Oldest first, strictly increasing, and the history still reaches back to the start.
        let pts: Vec<Point> = s.points().collect();
        assert!(pts.windows(2).all(|w| w[0].t < w[1].t));
        assert!(pts[0].t < 20_000.0, "oldest kept point {}", pts[0].t);
        assert_eq!(pts.last().unwrap().t, (n - 1) as f64);
    }

    #[test]
    fn storage_grows_with_the_samples_and_stops_at_the_caps() {
        let s = filled(3, 512, 256);
        assert!(s.recent.capacity() < 32, "{}", s.recent.capacity());
        assert_eq!(s.history.capacity(), 0);
        // Full windows hold their caps, not the next power of two.
        let s = filled(100_000, 500, 200);
        assert_eq!(s.recent.len(), 500);
        assert!(s.recent.capacity() < 512, "{}", s.recent.capacity());
        assert!(s.history.capacity() <= 201, "{}", s.history.capacity());
    }

    #[test]
    fn history_buckets_keep_min_max_and_mean() {
        let mut s = Series::new(32, 8);
        let values = [5.0, 1.0, 9.0, 3.0];
        for (i, v) in values.iter().enumerate() {
            s.push(Point {
                t: i as f64,
                value: *v,
            });
        }
        for i in 4..36 {
            s.push(Point {
                t: i as f64,
                value: 4.0,
            });
        }
        let bins = s.bins(Horizon::All, 1000);
        let oldest = bins[0];
        assert_eq!((oldest.lo, oldest.hi, oldest.level), (1.0, 9.0, 4.5));
        assert_eq!(oldest.count, 4);
        assert_eq!(oldest.last, Point { t: 3.0, value: 3.0 });
    }

    #[test]
    fn bins_regroup_by_time_within_the_budget() {
        let s = filled(500, 512, 64);
        let bins = s.bins(Horizon::Recent, 100);
        assert!(bins.len() <= 100 && bins.len() >= 95, "{}", bins.len());
        assert_eq!(bins.iter().map(|b| b.count).sum::<u64>(), 500);
        assert_eq!(bins[0].lo, 0.0);
        assert_eq!(bins.last().unwrap().hi, 998.0);
        assert!(bins.windows(2).all(|w| w[0].t < w[1].t));
    }

    #[test]
    fn recent_horizon_excludes_history() {
        let s = filled(1000, 64, 16);
        let recent = s.bins(Horizon::Recent, 1000);
        assert_eq!(recent.len(), 64);
        assert_eq!(recent[0].t, 936.0);
        let all = s.bins(Horizon::All, 1000);
        assert!(all.len() > 64);
        assert_eq!(all.iter().map(|b| b.count).sum::<u64>(), 1000);
    }
}

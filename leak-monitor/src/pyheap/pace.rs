//! When the next census of a target is due (pure). A census costs the target nothing but the
//! daemon a few milliseconds of reads per thousand objects, so it is paced by its own cost; and
//! once censuses keep finding the same thing (the same containers growing, the same types
//! rising, or nothing at all), the gap widens: a leak that is already named gains nothing from
//! being named again every two seconds, while at 50 targets those reads were most of the
//! daemon's CPU. A change in what they find, or a new episode of growth, brings the pace back.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::Duration;

/// The shortest gap between two censuses.
pub const MIN_GAP: Duration = Duration::from_secs(2);
/// A census may take at most this share of the gap before the next: its cost on the machine
/// stays under 1/PACE of a core.
pub const PACE: u32 = 20;
/// The widest gap a stable finding backs off to.
pub const MAX_GAP: Duration = Duration::from_secs(30);
/// Censuses in a row that found the same growing holders or types before the gap widens.
const STABLE_FOUND: u32 = 2;
/// The same, while nothing is found: growth is only seen across several censuses (a holder
/// needs `growth::MIN_RISE` items over at least three), so the pace is kept longer.
const STABLE_NOTHING: u32 = 6;

/// What a census found, condensed to compare with the one before: the addresses of the growing
/// containers and the names of the rising types, in any order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finding {
    digest: u64,
    empty: bool,
}

impl Finding {
    pub fn of<'a>(
        holders: impl IntoIterator<Item = u64>,
        types: impl IntoIterator<Item = &'a str>,
    ) -> Finding {
        let mut holders: Vec<u64> = holders.into_iter().collect();
        let mut types: Vec<&str> = types.into_iter().collect();
        holders.sort_unstable();
        types.sort_unstable();
        let mut hasher = DefaultHasher::new();
        holders.hash(&mut hasher);
        types.hash(&mut hasher);
        Finding {
            digest: hasher.finish(),
            empty: holders.is_empty() && types.is_empty(),
        }
    }
}

/// The pace of one target's censuses.
#[derive(Debug, Default)]
pub struct Pace {
    last: Option<Finding>,
    /// Censuses in a row, after the first, that found what the one before did.
    stable: u32,
}

impl Pace {
    /// A census that took `spent` found `finding`: the gap before the next.
    pub fn after(&mut self, spent: Duration, finding: Option<Finding>) -> Duration {
        match (self.last, finding) {
            (Some(last), Some(now)) if last == now => self.stable += 1,
            _ => self.stable = 0,
        }
        self.last = finding;
        let grace = match finding {
            Some(f) if !f.empty => STABLE_FOUND,
            _ => STABLE_NOTHING,
        };
        let base = (spent * PACE).max(MIN_GAP);
        let gap = match self.stable.checked_sub(grace) {
            Some(beyond) => base.saturating_mul(1 << (beyond + 1).min(5)),
            None => base,
        };
        gap.min(MAX_GAP.max(base))
    }

    /// Memory grows again after the censuses were disarmed: a new episode, at the full pace.
    pub fn restart(&mut self) {
        *self = Pace::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: Duration = Duration::from_millis(10);

    fn found(addresses: &[u64]) -> Option<Finding> {
        Some(Finding::of(addresses.iter().copied(), ["dict"]))
    }

    #[test]
    fn the_same_holders_found_again_widen_the_gap_up_to_the_cap() {
        let mut pace = Pace::default();
        let gaps: Vec<u64> = (0..9)
            .map(|_| pace.after(CHEAP, found(&[0x10, 0x20])).as_secs())
            .collect();
        assert_eq!(gaps, [2, 2, 4, 8, 16, 30, 30, 30, 30]);
    }

    #[test]
    fn order_does_not_matter_but_a_new_holder_brings_the_pace_back() {
        let mut pace = Pace::default();
        for _ in 0..5 {
            pace.after(CHEAP, found(&[0x10, 0x20]));
        }
        assert!(pace.after(CHEAP, found(&[0x20, 0x10])) > MIN_GAP);
        assert_eq!(pace.after(CHEAP, found(&[0x10, 0x20, 0x30])), MIN_GAP);
    }

    #[test]
    fn nothing_found_keeps_the_pace_longer_and_a_failed_census_resets_it() {
        let mut pace = Pace::default();
        let nothing = Some(Finding::of([], []));
        let gaps: Vec<u64> = (0..8)
            .map(|_| pace.after(CHEAP, nothing).as_secs())
            .collect();
        assert_eq!(gaps, [2, 2, 2, 2, 2, 2, 4, 8]);
        assert_eq!(pace.after(CHEAP, None), MIN_GAP);
    }

    #[test]
    fn a_costly_census_is_paced_by_its_cost_and_a_restart_forgets_the_streak() {
        let mut pace = Pace::default();
        assert_eq!(
            pace.after(Duration::from_secs(1), found(&[1])),
            Duration::from_secs(20)
        );
        for _ in 0..6 {
            pace.after(CHEAP, found(&[1]));
        }
        assert!(pace.after(CHEAP, found(&[1])) > MIN_GAP);
        pace.restart();
        assert_eq!(pace.after(CHEAP, found(&[1])), MIN_GAP);
    }
}

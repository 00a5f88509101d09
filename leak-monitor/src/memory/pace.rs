//! How far apart a growing target's breakdowns are (pure). While memory grows a breakdown comes
//! every `GROWING_GAP`, so the report can say which part grows; once several in a row find the
//! same part growing most, that answer is settled and the gap widens to the idle one. At 50
//! targets the breakdowns of the growing ones were half of the background readers' time. A
//! different part in the lead, or a new episode of growth, brings the pace back.

use super::parts::{Breakdown, Part};
use std::time::Duration;

/// While memory grows: a breakdown per this gap at first...
pub const GROWING_GAP: Duration = Duration::from_secs(5);
/// ...and per this one when memory does not grow, or once the growing part is settled.
pub const IDLE_GAP: Duration = Duration::from_secs(15);
/// Breakdowns in a row that found the part the one before found in the lead, before the gap
/// widens (doubled, then doubled again for each one more, up to `IDLE_GAP`).
const SETTLED_AFTER: u32 = 2;

/// The part that grew the most from `before` to `now`, when one grew.
pub fn lead(before: &Breakdown, now: &Breakdown) -> Option<Part> {
    Part::ALL
        .iter()
        .map(|&part| (part, now.get(part).saturating_sub(before.get(part))))
        .filter(|&(_, grown)| grown > 0)
        .max_by_key(|&(_, grown)| grown)
        .map(|(part, _)| part)
}

/// The pace of one target's breakdowns while its memory grows.
#[derive(Debug, Default)]
pub struct Pace {
    last: Option<Part>,
    /// Breakdowns in a row, after the first, that found `last` in the lead.
    same: u32,
}

impl Pace {
    /// A breakdown found `lead` growing most (None: none grew, or it failed): the gap before
    /// the next while memory grows.
    pub fn after(&mut self, lead: Option<Part>) -> Duration {
        match (self.last, lead) {
            (Some(last), Some(now)) if last == now => self.same += 1,
            _ => self.same = 0,
        }
        self.last = lead;
        match self.same.checked_sub(SETTLED_AFTER) {
            Some(beyond) => GROWING_GAP.saturating_mul(2 << beyond.min(4)).min(IDLE_GAP),
            None => GROWING_GAP,
        }
    }

    /// Memory grows again after it had stopped: a new episode, at the full pace.
    pub fn restart(&mut self) {
        *self = Pace::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breakdown(python: u64, native: u64) -> Breakdown {
        let mut b = Breakdown::default();
        b.bytes[0] = python;
        b.bytes[4] = native;
        b
    }

    #[test]
    fn the_part_that_grew_most_leads() {
        let before = breakdown(100, 100);
        assert_eq!(
            lead(&before, &breakdown(150, 120)),
            Some(Part::PythonObjects)
        );
        assert_eq!(lead(&before, &breakdown(90, 130)), Some(Part::Native));
        assert_eq!(lead(&before, &breakdown(90, 100)), None);
    }

    #[test]
    fn a_settled_lead_widens_the_gap_up_to_the_idle_one() {
        let mut pace = Pace::default();
        let gaps: Vec<u64> = (0..6)
            .map(|_| pace.after(Some(Part::PythonObjects)).as_secs())
            .collect();
        assert_eq!(gaps, [5, 5, 10, 15, 15, 15]);
        // Another part in the lead: back to the full pace, and settled again later.
        assert_eq!(pace.after(Some(Part::Native)), GROWING_GAP);
        assert_eq!(pace.after(None), GROWING_GAP);
        pace.after(Some(Part::Native));
        assert_eq!(pace.after(Some(Part::Native)), GROWING_GAP);
        assert_eq!(pace.after(Some(Part::Native)), Duration::from_secs(10));
        pace.restart();
        assert_eq!(pace.after(Some(Part::Native)), GROWING_GAP);
    }
}

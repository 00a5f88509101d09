//! What the engine publishes from one resource's successive trends: a more severe verdict at
//! once, a less severe one only after it has held for `HOLD` (so a verdict does not bounce
//! leak -> growing -> leak on noise), and each change of the published verdict as an event.

use super::{Trend, Verdict};
use serde::Serialize;
use std::collections::VecDeque;

/// How long a less severe verdict must hold before it is published.
pub const HOLD_SECONDS: f64 = 20.0;
/// Changes kept per resource (the oldest are dropped; `total` still counts them).
const KEPT: usize = 32;

/// One change of a published verdict.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct VerdictChange {
    /// Seconds since the observation started.
    pub at_seconds: f64,
    /// Samples taken by then: the observation's length whatever the machine's load did to
    /// the ticks (`at_seconds` is wall time).
    pub samples: u64,
    pub from: Verdict,
    pub to: Verdict,
}

/// The published verdict of one resource and its history.
#[derive(Clone, Debug, Default)]
pub struct VerdictHold {
    published: Option<Trend>,
    /// Since when the trends have been less severe than the published one.
    lower_since: Option<f64>,
    changes: VecDeque<VerdictChange>,
    total: u64,
}

impl VerdictHold {
    /// Takes the trend computed at `t` seconds, after `samples` samples; returns the trend to
    /// publish.
    pub fn update(&mut self, t: f64, samples: u64, trend: Trend) -> Trend {
        let Some(published) = self.published else {
            self.published = Some(trend);
            return trend;
        };
        if trend.verdict >= published.verdict {
            self.lower_since = None;
            self.publish(t, samples, published.verdict, trend);
            return trend;
        }
        let since = *self.lower_since.get_or_insert(t);
        if t - since >= HOLD_SECONDS {
            self.lower_since = None;
            self.publish(t, samples, published.verdict, trend);
            return trend;
        }
        // Held: the published verdict stands, with the confidence that made it.
        Trend {
            verdict: published.verdict,
            confidence: published.confidence,
            ..trend
        }
    }

    fn publish(&mut self, t: f64, samples: u64, from: Verdict, trend: Trend) {
        self.published = Some(trend);
        if trend.verdict == from {
            return;
        }
        if self.changes.len() == KEPT {
            self.changes.pop_front();
        }
        self.changes.push_back(VerdictChange {
            at_seconds: t,
            samples,
            from,
            to: trend.verdict,
        });
        self.total += 1;
    }

    /// The latest changes, oldest first.
    pub fn changes(&self) -> impl Iterator<Item = &VerdictChange> {
        self.changes.iter()
    }

    /// Every change since the start, including those no longer kept.
    pub fn total_changes(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::GrowthPattern;

    fn trend(verdict: Verdict, confidence: f64) -> Trend {
        Trend {
            verdict,
            pattern: GrowthPattern::Linear,
            rate_per_second: crate::resource::PerSecond(1.0),
            confidence,
            seconds_to_limit: None,
            early_leak: false,
        }
    }

    #[test]
    fn more_severe_at_once_less_severe_only_once_it_holds() {
        let mut hold = VerdictHold::default();
        let stable = trend(Verdict::Stable, 0.0);
        let growing = trend(Verdict::Growing, 0.5);
        let leak = trend(Verdict::Leak, 0.95);
        assert_eq!(hold.update(0.0, 1, stable).verdict, Verdict::Stable);
        assert_eq!(hold.update(5.0, 6, growing).verdict, Verdict::Growing);
        assert_eq!(hold.update(10.0, 11, leak).verdict, Verdict::Leak);
        // Noise: growing for 19 s, then leak again; never published.
        for t in 11u32..30 {
            let published = hold.update(f64::from(t), u64::from(t) + 1, growing);
            assert_eq!(published.verdict, Verdict::Leak, "at {t} s");
            assert_eq!(
                published.confidence, 0.95,
                "the confidence agrees with the verdict"
            );
        }
        assert_eq!(hold.update(30.0, 31, leak).verdict, Verdict::Leak);
        // A real change: stable for 20 s.
        for t in 31u32..51 {
            assert_eq!(
                hold.update(f64::from(t), u64::from(t) + 1, stable).verdict,
                Verdict::Leak
            );
        }
        assert_eq!(hold.update(51.0, 52, stable).verdict, Verdict::Stable);
        let changes: Vec<(f64, u64, Verdict, Verdict)> = hold
            .changes()
            .map(|c| (c.at_seconds, c.samples, c.from, c.to))
            .collect();
        assert_eq!(
            changes,
            [
                (5.0, 6, Verdict::Stable, Verdict::Growing),
                (10.0, 11, Verdict::Growing, Verdict::Leak),
                (51.0, 52, Verdict::Leak, Verdict::Stable),
            ]
        );
        assert_eq!(hold.total_changes(), 3);
    }

    #[test]
    fn only_the_latest_changes_are_kept() {
        let mut hold = VerdictHold::default();
        let mut t = 0.0;
        for _ in 0..100 {
            hold.update(t, 0, trend(Verdict::Leak, 0.95));
            t += HOLD_SECONDS + 1.0;
            hold.update(t, 0, trend(Verdict::Stable, 0.0));
            hold.update(t + HOLD_SECONDS, 0, trend(Verdict::Stable, 0.0));
            t += HOLD_SECONDS + 1.0;
        }
        assert_eq!(hold.changes().count(), KEPT);
        assert_eq!(hold.total_changes(), 199);
    }
}

//! The growth that engages the kernel tracer (`events::Engagement::OnGrowth`): a resource
//! rising a step above the last level it rose to, twice within `WINDOW`. One rise is not
//! enough: a loop that opens and closes a file is seen with one fd more now and then, once.
//! A leak keeps rising.

use crate::resource::{Resource, Unit};
use std::time::{Duration, Instant};

/// Two rises this close engage the tracer.
const WINDOW: Duration = Duration::from_secs(60);

/// The smallest rise of resident memory that counts: a steady interpreter's heap creeps by a
/// page now and then; a leak worth tracing passes this many bytes a minute twice over.
const RSS_STEP: f64 = 256.0 * 1024.0;

/// What one sample was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rise {
    None,
    /// A rise with no other in the last `WINDOW`.
    Lone,
    /// A rise that follows another within `WINDOW`.
    Sustained,
}

impl Rise {
    /// Whether this tick engages the kernel tracer: at a sustained rise; at any rise while the
    /// tracer is attached (it stays so); and at every tick while a trend is `growing` or `leak`
    /// (`suspected`), since a slow leak's rises can be minutes apart and each must find the
    /// programs attached to be traced.
    pub fn engages(self, suspected: bool, attached: impl FnOnce() -> bool) -> bool {
        suspected
            || match self {
                Rise::None => false,
                Rise::Lone => attached(),
                Rise::Sustained => true,
            }
    }
}

/// One resource's rises.
#[derive(Debug)]
pub struct Rises {
    step: f64,
    /// The level the last rise reached (the first sample, before any).
    mark: Option<f64>,
    last: Option<Instant>,
}

impl Rises {
    pub fn new(resource: Resource) -> Self {
        let step = match resource.unit() {
            Unit::Bytes => RSS_STEP,
            Unit::Count => 1.0,
        };
        Rises {
            step,
            mark: None,
            last: None,
        }
    }

    pub fn observe(&mut self, value: f64, now: Instant) -> Rise {
        let Some(mark) = self.mark else {
            self.mark = Some(value);
            return Rise::None;
        };
        if value < mark + self.step {
            return Rise::None;
        }
        self.mark = Some(value);
        let sustained = self
            .last
            .replace(now)
            .is_some_and(|before| now.saturating_duration_since(before) <= WINDOW);
        if sustained {
            Rise::Sustained
        } else {
            Rise::Lone
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(resource: Resource, values: &[f64], every: Duration) -> Vec<Rise> {
        let t0 = Instant::now();
        let mut rises = Rises::new(resource);
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| rises.observe(v, t0 + every * i as u32))
            .collect()
    }

    #[test]
    fn churn_between_two_levels_rises_once() {
        let seen = feed(
            Resource::OpenFds,
            &[10.0, 11.0, 10.0, 11.0, 10.0, 11.0],
            Duration::from_secs(1),
        );
        assert_eq!(seen.iter().filter(|r| **r != Rise::None).count(), 1);
        assert!(!seen.contains(&Rise::Sustained));
    }

    #[test]
    fn a_leak_keeps_rising() {
        let seen = feed(
            Resource::OpenFds,
            &[10.0, 11.0, 12.0, 13.0],
            Duration::from_secs(1),
        );
        assert_eq!(
            seen,
            [Rise::None, Rise::Lone, Rise::Sustained, Rise::Sustained]
        );
    }

    #[test]
    fn engagement_needs_sustained_rises_or_a_growing_trend() {
        assert!(!Rise::None.engages(false, || true));
        assert!(!Rise::Lone.engages(false, || false));
        assert!(Rise::Lone.engages(false, || true));
        assert!(Rise::Sustained.engages(false, || false));
        assert!(Rise::None.engages(true, || false));
    }

    #[test]
    fn rises_far_apart_stay_lone() {
        let seen = feed(Resource::Threads, &[2.0, 3.0, 4.0], Duration::from_secs(61));
        assert_eq!(seen, [Rise::None, Rise::Lone, Rise::Lone]);
    }

    #[test]
    fn resident_memory_rises_by_whole_steps() {
        let kib = 1024.0;
        let seen = feed(
            Resource::RssBytes,
            &[
                10_000.0 * kib,
                10_100.0 * kib, // creep
                10_300.0 * kib, // +300 KiB over the first sample
                10_500.0 * kib, // +200 over the mark: not yet
                10_600.0 * kib,
            ],
            Duration::from_secs(1),
        );
        assert_eq!(
            seen,
            [
                Rise::None,
                Rise::None,
                Rise::Lone,
                Rise::None,
                Rise::Sustained
            ]
        );
    }
}

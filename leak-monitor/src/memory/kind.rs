//! What kind of memory a target's RSS is made of, judged from the breakdowns at the start and
//! at the end of the observation: live Python objects, native memory, or memory the allocators
//! keep after it was freed (fragmentation). Pure.

use super::parts::{Breakdown, Part};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryKind {
    PythonObjects,
    Native,
    AllocatorRetention,
    Mixed,
}

impl MemoryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryKind::PythonObjects => "python_objects",
            MemoryKind::Native => "native",
            MemoryKind::AllocatorRetention => "allocator_retention",
            MemoryKind::Mixed => "mixed",
        }
    }
}

/// The growth between two breakdowns, by what it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GrowthShares {
    /// Bytes (signed) per kind of growth: live Python objects; native (C heap in use and other
    /// anonymous memory); allocator free space (pymalloc and malloc).
    pub python_objects: i64,
    pub native: i64,
    pub allocator_free: i64,
    /// File-backed and shared memory.
    pub other: i64,
}

impl GrowthShares {
    pub fn between(first: &Breakdown, last: &Breakdown) -> GrowthShares {
        let d = |p: Part| last.get(p) as i64 - first.get(p) as i64;
        GrowthShares {
            python_objects: d(Part::PythonObjects),
            native: d(Part::CAllocator) + d(Part::Native),
            allocator_free: d(Part::PythonAllocatorFree) + d(Part::CAllocatorFree),
            other: d(Part::File) + d(Part::Shmem),
        }
    }

    pub fn total(&self) -> i64 {
        self.python_objects + self.native + self.allocator_free + self.other
    }

    /// Each kind's share of the growth (of the positive parts: a part that shrank does not
    /// make another's share bigger than the whole).
    pub fn shares(&self) -> [(MemoryKind, f64); 3] {
        let positive = [
            self.python_objects,
            self.native,
            self.allocator_free,
            self.other,
        ]
        .iter()
        .map(|v| (*v).max(0) as f64)
        .sum::<f64>();
        let share = |v: i64| {
            if positive > 0.0 {
                v.max(0) as f64 / positive
            } else {
                0.0
            }
        };
        [
            (MemoryKind::PythonObjects, share(self.python_objects)),
            (MemoryKind::Native, share(self.native)),
            (MemoryKind::AllocatorRetention, share(self.allocator_free)),
        ]
    }
}

/// A kind takes the verdict when it has this share of the growth.
const DOMINANT: f64 = 0.7;
/// Growth below this share of RSS (or 4 MiB) is no growth.
const NOTABLE: f64 = 0.03;
const NOTABLE_FLOOR: i64 = 4 << 20;

/// The kind of memory behind the RSS of a target between two breakdowns.
///
/// RSS that grew: the kind with most of the growth, `mixed` when none has `DOMINANT`. RSS that
/// held while live memory (Python objects and the C heap in use) shrank: allocator retention.
/// RSS that held with nothing moving: what most of the private memory is.
pub fn classify(first: &Breakdown, last: &Breakdown) -> MemoryKind {
    let growth = GrowthShares::between(first, last);
    let rss = last.total().max(1) as f64;
    let notable = ((rss * NOTABLE) as i64).max(NOTABLE_FLOOR);
    if growth.total() >= notable {
        return dominant(&growth.shares());
    }
    let live_change = growth.python_objects + growth.native;
    if live_change <= -notable {
        return MemoryKind::AllocatorRetention;
    }
    // What the private memory is (file-backed and shared memory are none of the kinds).
    let held = GrowthShares {
        other: 0,
        ..GrowthShares::between(&Breakdown::default(), last)
    };
    dominant(&held.shares())
}

fn dominant(shares: &[(MemoryKind, f64); 3]) -> MemoryKind {
    shares
        .iter()
        .find(|(_, s)| *s >= DOMINANT)
        .map_or(MemoryKind::Mixed, |(k, _)| *k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(python: u64, py_free: u64, c: u64, c_free: u64, native: u64) -> Breakdown {
        Breakdown {
            bytes: [python, py_free, c, c_free, native, 10 << 20, 0],
            ..Breakdown::default()
        }
    }

    const MB: u64 = 1 << 20;

    #[test]
    fn growth_goes_to_the_part_that_grew() {
        let first = b(10 * MB, MB, 5 * MB, MB, 8 * MB);
        assert_eq!(
            classify(&first, &b(90 * MB, 3 * MB, 8 * MB, MB, 8 * MB)),
            MemoryKind::PythonObjects
        );
        assert_eq!(
            classify(&first, &b(10 * MB, MB, 5 * MB, MB, 108 * MB)),
            MemoryKind::Native
        );
        assert_eq!(
            classify(&first, &b(12 * MB, 60 * MB, 5 * MB, 40 * MB, 8 * MB)),
            MemoryKind::AllocatorRetention
        );
        assert_eq!(
            classify(&first, &b(60 * MB, MB, 5 * MB, MB, 60 * MB)),
            MemoryKind::Mixed
        );
    }

    #[test]
    fn rss_that_holds_while_objects_go_is_retention() {
        let first = b(100 * MB, 5 * MB, 5 * MB, MB, 8 * MB);
        let last = b(4 * MB, 101 * MB, 5 * MB, MB, 8 * MB);
        assert_eq!(classify(&first, &last), MemoryKind::AllocatorRetention);
        let shares = GrowthShares::between(&first, &last);
        assert_eq!(shares.python_objects, -96 * MB as i64);
    }

    #[test]
    fn nothing_moving_is_judged_by_what_is_there() {
        let same = b(100 * MB, 5 * MB, 5 * MB, MB, 8 * MB);
        assert_eq!(classify(&same, &same), MemoryKind::PythonObjects);
    }
}

//! What to do about each kind of memory: allocator settings for retention (with what each
//! costs), where to look for native growth. Pure text from the findings.

use super::kind::{GrowthShares, MemoryKind};
use super::parts::{Breakdown, Part};

/// Free space below this is not worth a setting.
const NOTABLE: u64 = 4 << 20;
/// In `mixed` memory, a kind with this share of the growth gets its fixes.
const MIXED_SHARE: f64 = 0.25;

/// Allocators that replace glibc's malloc when preloaded or linked.
const OTHER_ALLOCATORS: &[&str] = &["libjemalloc", "libmimalloc", "libtcmalloc"];

/// The first mapping of an allocator other than glibc's, by file name.
pub fn other_allocator(maps: &str) -> Option<String> {
    maps.lines().find_map(|line| {
        let path = line.split_whitespace().nth(5)?;
        let name = path.rsplit('/').next()?;
        OTHER_ALLOCATORS
            .iter()
            .any(|a| name.starts_with(a))
            .then(|| name.to_string())
    })
}

/// The fixes that apply to a target of this kind, one per line, most useful first.
pub fn fixes(
    kind: MemoryKind,
    first: &Breakdown,
    last: &Breakdown,
    other_allocator: Option<&str>,
) -> Vec<String> {
    let growth = GrowthShares::between(first, last);
    let mut out = Vec::new();
    let c_free = last.get(Part::CAllocatorFree);
    let py_free = last.get(Part::PythonAllocatorFree);
    let arenas = last.glibc.map_or(0, |g| g.arenas);
    let retention_share = growth.shares()[2].1;
    let retention = kind == MemoryKind::AllocatorRetention
        || (kind == MemoryKind::Mixed && retention_share >= MIXED_SHARE);
    if retention {
        let mut c_fixes = Vec::new();
        if let Some(name) = other_allocator {
            c_fixes.push(format!(
                "the target runs {name}, not glibc's malloc: tune its own release settings (jemalloc: MALLOC_CONF=dirty_decay_ms:1000,muzzy_decay_ms:0; mimalloc: MIMALLOC_PURGE_DELAY=0), at some CPU cost for returning pages sooner"
            ));
        } else if c_free >= NOTABLE {
            c_fixes.push(format!(
                "glibc keeps {} MiB free in {arenas} arena(s): MALLOC_ARENA_MAX=2 (environment, at start) caps the per-thread arenas; costs lock contention between threads that allocate at once",
                c_free >> 20
            ));
            c_fixes.push(
                "MALLOC_TRIM_THRESHOLD_=131072 (mallopt M_TRIM_THRESHOLD) gives the top of each heap back sooner; costs more brk/madvise calls when memory is reused".to_string(),
            );
            c_fixes.push(
                "call malloc_trim(0) after a large release (ctypes.CDLL('libc.so.6').malloc_trim(0)): returns free pages of every arena at once; costs a pause while it walks the bins".to_string(),
            );
            c_fixes.push(
                "LD_PRELOAD=libjemalloc.so.2 or libmimalloc.so (at start): allocators that return freed pages on their own and fragment less across threads; costs a dependency and a restart, and a few percent of speed either way depending on the workload".to_string(),
            );
        }
        let mut py_fixes = Vec::new();
        if py_free >= NOTABLE {
            py_fixes.push(format!(
                "pymalloc keeps {} MiB of pools that hold only a few live objects each (an arena goes back only when all its pools are empty): make long-lived objects together (at start, or in a batch) rather than among many short-lived ones, and drop short-lived ones in bulk",
                py_free >> 20
            ));
            py_fixes.push(
                "PYTHONMALLOC=malloc with LD_PRELOAD=libjemalloc.so.2 (at start) hands small objects to an allocator that returns pages one by one; costs ~10-20% of allocation speed in object-heavy code".to_string(),
            );
        }
        // The allocator that keeps more comes first.
        if py_free > c_free {
            out.extend(py_fixes);
            out.extend(c_fixes);
        } else {
            out.extend(c_fixes);
            out.extend(py_fixes);
        }
    }
    let native = kind == MemoryKind::Native
        || (kind == MemoryKind::Mixed && growth.shares()[1].1 >= MIXED_SHARE);
    if native {
        out.push(
            "native memory grows outside Python's objects: the rss_bytes sites are the Python lines that made the C library allocate (page faults traced in the kernel); free what that call returns, or close the library object that owns it".to_string(),
        );
    }
    let python = kind == MemoryKind::PythonObjects
        || (kind == MemoryKind::Mixed && growth.shares()[0].1 >= MIXED_SHARE);
    if python {
        out.push(
            "live Python objects grow: the heap census's holders and the rss_bytes sites name what keeps them".to_string(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_preloaded_allocator() {
        let maps = "7f00-7f10 r-xp 00000000 fe:00 1 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2\n";
        assert_eq!(other_allocator(maps).as_deref(), Some("libjemalloc.so.2"));
        assert_eq!(
            other_allocator("7f00-7f10 r-xp 0 fe:00 1 /lib/libc.so.6\n"),
            None
        );
    }

    #[test]
    fn retention_gets_allocator_settings_with_costs() {
        let first = Breakdown::default();
        let last = Breakdown {
            bytes: [1 << 20, 0, 1 << 20, 200 << 20, 0, 0, 0],
            ..Breakdown::default()
        };
        let fixes = fixes(MemoryKind::AllocatorRetention, &first, &last, None);
        assert!(fixes[0].contains("MALLOC_ARENA_MAX") && fixes[0].contains("costs"));
        assert!(fixes.iter().any(|f| f.contains("malloc_trim")));
        let jemalloc = super::fixes(
            MemoryKind::AllocatorRetention,
            &first,
            &last,
            Some("libjemalloc.so.2"),
        );
        assert!(!jemalloc.iter().any(|f| f.contains("MALLOC_ARENA_MAX")));
    }
}

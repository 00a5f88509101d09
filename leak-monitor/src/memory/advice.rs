//! What to do about each kind of memory: allocator settings for retention (with what each
//! costs), where to look for native growth. Pure text from the findings.

use super::kind::{GrowthShares, MemoryKind};
use super::parts::{Breakdown, Part};

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
    let retention = kind == MemoryKind::AllocatorRetention || growth.allocator_free > 0;
    if retention && kind != MemoryKind::PythonObjects {
        if let Some(name) = other_allocator {
            out.push(format!(
                "the target runs {name}, not glibc's malloc: tune its own release settings (jemalloc: MALLOC_CONF=dirty_decay_ms:1000,muzzy_decay_ms:0; mimalloc: MIMALLOC_PURGE_DELAY=0), at some CPU cost for returning pages sooner"
            ));
        } else {
            if c_free > 0 {
                out.push(format!(
                    "glibc keeps {} MiB free in {arenas} arena(s): MALLOC_ARENA_MAX=2 (environment, at start) caps the per-thread arenas; costs lock contention between threads that allocate at once",
                    c_free >> 20
                ));
                out.push(
                    "MALLOC_TRIM_THRESHOLD_=131072 (mallopt M_TRIM_THRESHOLD) gives the top of each heap back sooner; costs more brk/madvise calls when memory is reused".to_string(),
                );
                out.push(
                    "call malloc_trim(0) after a large release (ctypes.CDLL('libc.so.6').malloc_trim(0)): returns free pages of every arena at once; costs a pause while it walks the bins".to_string(),
                );
            }
            out.push(
                "LD_PRELOAD=libjemalloc.so.2 or libmimalloc.so (at start): allocators that return freed pages on their own and fragment less across threads; costs a dependency and a restart, and a few percent of speed either way depending on the workload".to_string(),
            );
        }
        if py_free > 0 {
            out.push(format!(
                "pymalloc keeps {} MiB of pools that hold only a few live objects each: a long-lived object made among many short-lived ones pins its arena; make long-lived objects together (at start, or in a batch) and drop short-lived ones in bulk; PYTHONMALLOC=malloc hands small objects to the C allocator instead (costs ~10-20% of allocation speed)",
                py_free >> 20
            ));
        }
    }
    if matches!(kind, MemoryKind::Native | MemoryKind::Mixed) && growth.native > 0 {
        out.push(
            "native memory grows outside Python's objects: the rss_bytes sites are the Python lines that made the C library allocate (page faults traced in the kernel); free what that call returns, or close the library object that owns it".to_string(),
        );
    }
    if matches!(kind, MemoryKind::PythonObjects | MemoryKind::Mixed) && growth.python_objects > 0
    {
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
        assert_eq!(other_allocator("7f00-7f10 r-xp 0 fe:00 1 /lib/libc.so.6\n"), None);
    }

    #[test]
    fn retention_gets_allocator_settings_with_costs() {
        let first = Breakdown::default();
        let mut last = Breakdown::default();
        last.bytes = [1 << 20, 0, 1 << 20, 200 << 20, 0, 0, 0];
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

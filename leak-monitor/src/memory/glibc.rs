//! glibc malloc's arenas, read from outside: how much of the memory it got from the system is
//! in use and how much it keeps free (its top chunks and the free chunks in its bins).
//!
//! A thread arena lives in 64 MiB-aligned heaps whose first words are a `heap_info` (`ar_ptr`,
//! `prev`, `size`, `mprotect_size`); the first heap of an arena holds its `malloc_state` right
//! after it. Arenas are chained by `malloc_state.next` through `main_arena` (in libc's data),
//! which is found on that chain or, with one arena, by its pointer to itself. Offsets are those
//! of `struct malloc_state` on x86_64 since glibc 2.27 (`have_fastchunks` added); every value
//! read is checked (top chunk inside the arena's memory, sizes below `system_mem`) and a walk
//! is bounded, so another allocator or a changed layout gives an error, never a figure.

use crate::memory::smaps::Mapping;
use crate::pyframes::memory::Memory;

/// `HEAP_MAX_SIZE` on 64-bit: thread arenas' heaps are aligned to it.
pub const HEAP_MAX: u64 = 64 << 20;
const NFASTBINS: usize = 10;
const NBINS: usize = 127;

/// Where `struct malloc_state` keeps what is read, for one range of glibc versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateLayout {
    /// `fastbinsY` (none since glibc 2.43, which dropped fast bins).
    pub fastbins: Option<u64>,
    pub top: u64,
    pub bins: u64,
    pub next: u64,
    pub system_mem: u64,
    pub len: usize,
}

/// glibc 2.27-2.42: `mutex`, `flags`, `have_fastchunks`, `fastbinsY[10]`, `top`, ...
pub const WITH_FASTBINS: StateLayout = StateLayout {
    fastbins: Some(16),
    top: 96,
    bins: 112,
    next: 2160,
    system_mem: 2184,
    len: 2200,
};

/// glibc 2.43+: `mutex`, `flags`, `top`, `last_remainder`, `bins`, ...
pub const NO_FASTBINS: StateLayout = StateLayout {
    fastbins: None,
    top: 8,
    bins: 24,
    next: 2072,
    system_mem: 2096,
    len: 2112,
};

const LAYOUTS: [StateLayout; 2] = [WITH_FASTBINS, NO_FASTBINS];
/// Free chunks read per arena at most: a heap cut to crumbs gives an estimate, not a stall.
const MAX_FREE_CHUNKS: usize = 20_000;
/// Arenas followed at most (glibc's default cap is 8 per core).
const MAX_ARENAS: usize = 1024;

/// What glibc's arenas hold at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GlibcState {
    pub arenas: u64,
    /// Bytes the arenas got from the system (`system_mem`, summed).
    pub system_bytes: u64,
    /// Of those, free: top chunks and binned free chunks.
    pub free_bytes: u64,
    /// A bin walk hit its bound: the free figure is a lower bound.
    pub truncated: bool,
}

impl GlibcState {
    pub fn in_use_bytes(&self) -> u64 {
        self.system_bytes.saturating_sub(self.free_bytes)
    }
}

/// The mappings that are thread arenas' heaps: anonymous, writable, 64 MiB-aligned, with a
/// `heap_info` whose size fits the mapping.
pub fn is_thread_heap(memory: &dyn Memory, mapping: &Mapping) -> bool {
    let candidate =
        mapping.is_anonymous() && mapping.is_writable() && mapping.start.is_multiple_of(HEAP_MAX);
    if !candidate {
        return false;
    }
    let mut info = [0u8; 32];
    if memory.read(mapping.start, &mut info).is_err() {
        return false;
    }
    let ar_ptr = word(&info, 0);
    let size = word(&info, 16);
    size > 0 && size <= HEAP_MAX && size <= mapping.len() + HEAP_MAX && ar_ptr != 0
}

fn word(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// Finds every arena and the layout of their state: from the thread heaps' `ar_ptr` and the
/// `next` chain, or, without thread arenas, `main_arena` in libc's writable data by its `next`
/// pointing to itself. Each layout is tried; the one whose chain closes into a ring wins.
fn find_arenas(memory: &dyn Memory, maps: &[Mapping]) -> Result<(Vec<u64>, StateLayout), String> {
    let mut thread_state = None;
    for m in maps.iter().filter(|m| is_thread_heap(memory, m)) {
        if let Ok(ar_ptr) = memory.read_u64(m.start) {
            // The first heap of an arena holds its state right after `heap_info`.
            if ar_ptr > m.start && ar_ptr < m.start + 128 {
                thread_state = Some(ar_ptr);
                break;
            }
        }
    }
    let mut why = String::from("no glibc malloc arena found");
    for layout in LAYOUTS {
        let start = match thread_state {
            Some(s) => s,
            None => match find_main_arena(memory, maps, &layout) {
                Some(s) => s,
                None => continue,
            },
        };
        match ring(memory, start, &layout) {
            Ok(arenas) => return Ok((arenas, layout)),
            Err(e) => why = e,
        }
    }
    Err(why)
}

/// Finds the arenas once and walks their ring from the same start afterwards: `main_arena` and
/// the thread arenas never move or go away. Searching again at every breakdown raced the heap:
/// `main_arena`'s top chunk, read after a `brk`, lay past the end of `[heap]` in the smaps read
/// just before, and the breakdown said no arena was found.
#[derive(Debug, Default)]
pub struct ArenaFinder {
    start: Option<(u64, StateLayout)>,
}

impl ArenaFinder {
    pub fn arenas(
        &mut self,
        memory: &dyn Memory,
        maps: &[Mapping],
    ) -> Result<(Vec<u64>, StateLayout), String> {
        if let Some((start, layout)) = self.start {
            if let Ok(arenas) = ring(memory, start, &layout) {
                return Ok((arenas, layout));
            }
        }
        let (arenas, layout) = find_arenas(memory, maps)?;
        self.start = arenas.first().map(|&start| (start, layout));
        Ok((arenas, layout))
    }
}

/// The arenas on the `next` ring from `start`.
fn ring(memory: &dyn Memory, start: u64, layout: &StateLayout) -> Result<Vec<u64>, String> {
    let mut arenas = vec![start];
    let mut at = start;
    for _ in 0..MAX_ARENAS {
        let next = memory
            .read_u64(at + layout.next)
            .map_err(|e| format!("malloc_state.next: {e}"))?;
        if next == start {
            return Ok(arenas);
        }
        if next == 0 || arenas.contains(&next) {
            return Err("glibc's arena list is not a ring".into());
        }
        arenas.push(next);
        at = next;
    }
    Err("glibc's arena list does not end".into())
}

/// `main_arena`: in a writable mapping of libc (or the anonymous one right after it), the one
/// 8-aligned place whose `next` is itself and whose top chunk lies in `[heap]`.
fn find_main_arena(memory: &dyn Memory, maps: &[Mapping], layout: &StateLayout) -> Option<u64> {
    let heap = maps.iter().find(|m| m.name == "[heap]")?;
    let mut previous_libc = false;
    for m in maps {
        let libc = m.name.contains("/libc.so") || m.name.contains("/libc-");
        if m.is_writable() && (libc || (previous_libc && m.is_anonymous())) && m.len() <= 1 << 22 {
            let mut data = vec![0u8; usize::try_from(m.len()).ok()?];
            if memory.read(m.start, &mut data).is_ok() {
                let mut at = 0;
                while at + layout.len <= data.len() {
                    let here = m.start + at as u64;
                    let top = word(&data, at + layout.top as usize);
                    if word(&data, at + layout.next as usize) == here
                        && top >= heap.start
                        && top < heap.end
                    {
                        return Some(here);
                    }
                    at += 8;
                }
            }
        }
        previous_libc = libc;
    }
    None
}

/// Sums what every arena got from the system and keeps free.
pub fn read(
    memory: &dyn Memory,
    arenas: &[u64],
    layout: &StateLayout,
) -> Result<GlibcState, String> {
    let mut state = GlibcState::default();
    for &arena in arenas {
        let mut b = vec![0u8; layout.len];
        memory
            .read(arena, &mut b)
            .map_err(|e| format!("malloc_state: {e}"))?;
        let system = word(&b, layout.system_mem as usize);
        let top = word(&b, layout.top as usize);
        let top_size = memory
            .read_u64(top + 8)
            .map_err(|e| format!("top chunk: {e}"))?
            & !7;
        if system == 0 || top_size > system {
            return Err(format!(
                "arena at {arena:#x} is not plausible (system {system}, top {top_size})"
            ));
        }
        let mut free = top_size;
        let mut budget = MAX_FREE_CHUNKS;
        let fastbins = layout.fastbins.map_or(0, |_| NFASTBINS);
        for i in 0..fastbins {
            let mut chunk = word(&b, layout.fastbins.unwrap_or(0) as usize + i * 8);
            while chunk != 0 && budget > 0 {
                budget -= 1;
                let Ok(size) = memory.read_u64(chunk + 8) else {
                    break;
                };
                free += size & !7;
                // glibc 2.32+ mangle the fastbin links (safe-linking): unmangle with the
                // link's own address.
                let raw = memory.read_u64(chunk + 16).unwrap_or(0);
                chunk = raw ^ ((chunk + 16) >> 12);
                if !chunk.is_multiple_of(16) {
                    break;
                }
            }
        }
        for i in 0..NBINS {
            let head = arena + layout.bins + (i as u64) * 16 - 16;
            let mut chunk = word(&b, (layout.bins as usize) + i * 16);
            while chunk != head && chunk != 0 && budget > 0 {
                budget -= 1;
                let mut c = [0u8; 24];
                if memory.read(chunk, &mut c).is_err() {
                    break;
                }
                free += word(&c, 8) & !7;
                chunk = word(&c, 16);
            }
        }
        state.truncated |= budget == 0;
        state.free_bytes += free.min(system);
        state.system_bytes += system;
        state.arenas += 1;
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pyframes::memory::FixtureMemory;

    const L: StateLayout = WITH_FASTBINS;
    const TOP: u64 = L.top;
    const BINS: u64 = L.bins;
    const NEXT: u64 = L.next;
    const SYSTEM_MEM: u64 = L.system_mem;

    fn mapping(start: u64, len: u64, name: &str) -> Mapping {
        Mapping {
            start,
            end: start + len,
            perms: "rw-p".into(),
            name: name.into(),
            rss: len,
            anonymous: len,
        }
    }

    fn put(b: &mut [u8], at: u64, v: u64) {
        let at = at as usize;
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn walks_a_thread_arena_and_main_arena() {
        let heap = 0x7f00_0000_0000u64; // 64 MiB aligned
        let state = heap + 32;
        let libc = 0x7f10_0000_0000u64;
        let main = libc + 0x100;
        let mut memory = FixtureMemory::default();
        // Thread heap: heap_info then malloc_state.
        let mut h = vec![0u8; 0x10000];
        put(&mut h, 0, state);
        put(&mut h, 16, 0x10000);
        let s = 32u64;
        let top = heap + 0x8000;
        put(&mut h, s + TOP, top);
        put(&mut h, s + NEXT, main);
        put(&mut h, s + SYSTEM_MEM, 0x10000);
        put(&mut h, 0x8000 + 8, 0x4000 | 1); // top chunk of 16 KiB
                                             // One free chunk of 0x100 in bin 1 (unsorted): head <-> chunk.
        let chunk = heap + 0x1000;
        let bin_head = state + BINS - 16;
        put(&mut h, s + BINS, chunk);
        put(&mut h, 0x1000 + 8, 0x100 | 1);
        put(&mut h, 0x1000 + 16, bin_head);
        // The other bins are empty: each points to its own head.
        for i in 1..NBINS as u64 {
            put(&mut h, s + BINS + i * 16, state + BINS + i * 16 - 16);
        }
        memory.put(heap, h);
        // main_arena in libc's data, empty bins, top in [heap].
        let mut l = vec![0u8; 0x1000];
        let brk = 0x5600_0000u64;
        put(&mut l, 0x100 + TOP, brk + 0x100);
        put(&mut l, 0x100 + NEXT, state);
        put(&mut l, 0x100 + SYSTEM_MEM, 0x21000);
        for i in 0..NBINS as u64 {
            put(&mut l, 0x100 + BINS + i * 16, main + BINS + i * 16 - 16);
        }
        memory.put(libc, l);
        let mut brk_bytes = vec![0u8; 0x200];
        put(&mut brk_bytes, 0x108, 0x20f00 | 1);
        memory.put(brk, brk_bytes);
        let maps = vec![
            mapping(brk, 0x21000, "[heap]"),
            mapping(heap, 0x10000, ""),
            mapping(libc, 0x1000, "/usr/lib/x86_64-linux-gnu/libc.so.6"),
        ];
        let (arenas, layout) = find_arenas(&memory, &maps).unwrap();
        assert_eq!(arenas, vec![state, main]);
        assert_eq!(layout, WITH_FASTBINS);
        let read = read(&memory, &arenas, &layout).unwrap();
        assert_eq!(read.arenas, 2);
        assert_eq!(read.system_bytes, 0x10000 + 0x21000);
        assert_eq!(read.free_bytes, 0x4000 + 0x100 + 0x20f00);
        assert_eq!(read.in_use_bytes(), 0x10000 - 0x4100 + 0x100);
        assert!(!read.truncated);
    }

    /// A process without thread arenas: `main_arena` at libc's data + 0x200, its top in `[heap]`.
    fn main_arena_alone() -> (FixtureMemory, Vec<Mapping>, u64) {
        let libc = 0x7f10_0000_0000u64;
        let mut memory = FixtureMemory::default();
        let mut l = vec![0u8; 0x1000];
        put(&mut l, 0x200 + TOP, 0x5600_0010);
        put(&mut l, 0x200 + NEXT, libc + 0x200);
        memory.put(libc, l);
        let maps = vec![
            mapping(0x5600_0000, 0x21000, "[heap]"),
            mapping(libc, 0x1000, "/lib/libc.so.6"),
        ];
        (memory, maps, libc)
    }

    #[test]
    fn main_arena_alone_is_found_by_its_self_pointer() {
        let (memory, maps, libc) = main_arena_alone();
        assert_eq!(
            find_arenas(&memory, &maps).unwrap(),
            (vec![libc + 0x200], WITH_FASTBINS)
        );
        assert!(find_arenas(&memory, &maps[1..]).is_err());
    }

    #[test]
    fn arenas_once_found_are_walked_again_without_searching() {
        let (memory, maps, _) = main_arena_alone();
        let mut finder = ArenaFinder::default();
        let found = finder.arenas(&memory, &maps).unwrap();
        // The heap moved under an older smaps: a search fails, the ring found before does not.
        let moved = [mapping(0x5700_0000, 0x1000, "[heap]"), maps[1].clone()];
        assert!(find_arenas(&memory, &moved).is_err());
        assert_eq!(finder.arenas(&memory, &moved).unwrap(), found);
    }

    #[test]
    fn glibc_without_fast_bins_is_read_with_its_own_layout() {
        // glibc 2.43: `top` at 8, `next` at 2072.
        let libc = 0x7f10_0000_0000u64;
        let brk = 0x5600_0000u64;
        let mut memory = FixtureMemory::default();
        let mut l = vec![0u8; 0x1000];
        put(&mut l, 0x300 + NO_FASTBINS.top, brk + 0x100);
        put(&mut l, 0x300 + NO_FASTBINS.next, libc + 0x300);
        put(&mut l, 0x300 + NO_FASTBINS.system_mem, 0x21000);
        memory.put(libc, l);
        let mut brk_bytes = vec![0u8; 0x200];
        put(&mut brk_bytes, 0x108, 0x1000 | 1);
        memory.put(brk, brk_bytes);
        let maps = vec![
            mapping(brk, 0x21000, "[heap]"),
            mapping(libc, 0x1000, "/lib/libc.so.6"),
        ];
        let (arenas, layout) = find_arenas(&memory, &maps).unwrap();
        assert_eq!(
            (arenas.as_slice(), layout),
            (&[libc + 0x300][..], NO_FASTBINS)
        );
        let state = read(&memory, &arenas, &layout).unwrap();
        assert_eq!(state.free_bytes, 0x1000);
        assert_eq!(state.in_use_bytes(), 0x20000);
    }
}

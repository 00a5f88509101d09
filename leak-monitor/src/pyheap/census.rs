//! One census: every object on the interpreter's GC generation lists, counted by type, and
//! the containers among them with their lengths. The lists are found from `_PyRuntime`:
//! interpreters -> `gc` -> three `gc_generation` heads (3.11-3.13's `generations[3]`, 3.14's
//! `young` and `old[2]`), recognised by their shape (each head's neighbours point back at it),
//! so a field added before them in a patch release moves nothing. The target runs on while we
//! read: a list that changes under us ends that list's walk early (the census is marked
//! partial), and every walk is bounded in objects and time.

use super::layout::{shared::*, HeapLayout};
use super::objects::{container_len, Kind, Types};
use super::reader::{ReadStats, Reader};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Bounds of one census.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub max_objects: u64,
    pub max_time: Duration,
    /// Containers shorter than this are counted but not tracked across censuses.
    pub min_tracked_len: u64,
    /// The most containers tracked (the longest are kept).
    pub max_tracked: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_objects: 20_000_000,
            max_time: Duration::from_secs(10),
            min_tracked_len: 8,
            max_tracked: 20_000,
        }
    }
}

/// Objects of one type in a census.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeCount {
    pub count: u64,
    /// The objects' own bytes (header, GC head, inline items; a list's item array).
    pub bytes: u64,
}

/// One container object seen by a census.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Container {
    pub address: u64,
    pub type_address: u64,
    pub len: u64,
}

/// What one census saw.
#[derive(Clone, Debug, Default)]
pub struct Census {
    pub objects: u64,
    /// By type name.
    pub types: HashMap<String, TypeCount>,
    /// The type name of each tracked container's type address.
    pub type_names: HashMap<u64, String>,
    /// The longest containers, longest first.
    pub containers: Vec<Container>,
    /// A list ended early (it changed under the walk, or a bound was hit).
    pub partial: bool,
    /// Objects whose type could not be read (freed under us, or not objects at all).
    pub unreadable: u64,
    pub reads: ReadStats,
    pub wall: Duration,
}

/// Why no census could be taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CensusError {
    #[error("cannot read the interpreter state at {0:#x}")]
    NoInterpreter(u64),
    #[error("no GC generation lists found in the interpreter's gc state (layout mismatch)")]
    NoGenerations,
}

/// Generations per interpreter.
const GENERATIONS: u64 = 3;
/// `sizeof(struct gc_generation)`: a `PyGC_Head` and two ints.
pub(super) const GENERATION_SIZE: u64 = 24;
/// Where in the gc state the generation heads are looked for.
pub(super) const GC_SCAN: u64 = 96;
/// Attempts at finding the generation heads.
const HEAD_TRIES: usize = 20;
/// Interpreters followed.
const MAX_INTERPRETERS: usize = 16;

/// Takes one census of the process whose `_PyRuntime` is at `runtime`.
pub fn take(
    reader: &mut Reader<'_>,
    layout: &HeapLayout,
    runtime: u64,
    bounds: Bounds,
) -> Result<Census, CensusError> {
    let started = Instant::now();
    let mut census = Census::default();
    let mut types = Types::default();
    let mut tracked: Vec<Container> = Vec::new();
    let mut interp = reader
        .pointer(runtime.wrapping_add(layout.frames.runtime_interpreters_head))
        .ok_or(CensusError::NoInterpreter(runtime))?;
    let mut heads_found = 0;
    for _ in 0..MAX_INTERPRETERS {
        if interp == 0 {
            break;
        }
        let heads = generation_heads(reader, interp + layout.interp_gc)
            .ok_or(CensusError::NoGenerations)?;
        heads_found += heads.len();
        for &head in &heads {
            walk_list(
                reader,
                (head, &heads),
                bounds,
                started,
                &mut types,
                &mut census,
                &mut tracked,
            );
        }
        interp = reader
            .pointer(interp + layout.frames.interp_next)
            .unwrap_or(0);
    }
    if heads_found == 0 {
        return Err(CensusError::NoGenerations);
    }
    tracked.sort_unstable_by_key(|c| std::cmp::Reverse(c.len));
    tracked.truncate(bounds.max_tracked);
    for container in &tracked {
        if let Some(info) = types.get(reader, container.type_address) {
            census
                .type_names
                .insert(container.type_address, info.name.clone());
        }
    }
    census.containers = tracked;
    census.reads = reader.stats;
    census.wall = started.elapsed();
    Ok(census)
}

/// The three generation heads of a gc state: consecutive `gc_generation`s whose heads'
/// neighbours point back at them. The young list changes all the time, so a few tries, each
/// reading afresh.
pub fn generation_heads(reader: &mut Reader<'_>, gc: u64) -> Option<Vec<u64>> {
    (0..HEAD_TRIES).find_map(|_| {
        reader.forget();
        heads_at_some_offset(reader, gc)
    })
}

fn heads_at_some_offset(reader: &mut Reader<'_>, gc: u64) -> Option<Vec<u64>> {
    (0..=GC_SCAN).step_by(8).find_map(|offset| {
        let heads: Vec<u64> = (0..GENERATIONS)
            .map(|i| gc + offset + i * GENERATION_SIZE)
            .collect();
        heads
            .iter()
            .all(|&head| is_list_head(reader, head))
            .then_some(heads)
    })
}

/// `PyGC_Head` links carry flags in their low bits (3.14's old-space bit in `_gc_next`,
/// `_gc_prev`'s collecting and finalized bits).
const LINK_MASK: u64 = !0b111;

fn is_list_head(reader: &mut Reader<'_>, head: u64) -> bool {
    let (Some(next), Some(prev)) = (reader.u64(head), reader.u64(head + 8)) else {
        return false;
    };
    let (next, prev) = (next & LINK_MASK, prev & LINK_MASK);
    if !reader.plausible(next) || !reader.plausible(prev) {
        return false;
    }
    // Only the first node's back link is checked: a thread that allocates appends to the
    // young list's tail all the time, so its last node is seldom the one read a moment ago.
    next == head || reader.u64(next + 8).map(|p| p & LINK_MASK) == Some(head)
}

/// Walks the list at `head` (one of `heads`, the interpreter's generation heads). A node whose
/// back link is not the node before it, or another generation's head, means the list changed
/// under the walk (objects moved to another generation, a collection running): the census is
/// then partial, never a walk around someone else's list until the bounds stop it.
fn walk_list(
    reader: &mut Reader<'_>,
    (head, heads): (u64, &[u64]),
    bounds: Bounds,
    started: Instant,
    types: &mut Types,
    census: &mut Census,
    tracked: &mut Vec<Container>,
) {
    let mut node = match reader.u64(head) {
        Some(next) => next & LINK_MASK,
        None => {
            census.partial = true;
            return;
        }
    };
    let mut previous = head;
    while node != head {
        if heads.contains(&node) {
            census.partial = true;
            return;
        }
        if census.objects >= bounds.max_objects
            || (census.objects.is_multiple_of(4096) && started.elapsed() > bounds.max_time)
        {
            census.partial = true;
            return;
        }
        if !reader.plausible(node) {
            census.partial = true;
            return;
        }
        let (Some(next), Some(back)) = (reader.u64(node), reader.u64(node + 8)) else {
            census.partial = true;
            return;
        };
        if back & LINK_MASK != previous {
            census.partial = true;
            return;
        }
        let next = next & LINK_MASK;
        census.objects += 1;
        let object = node + GC_HEAD;
        match types.of(reader, object) {
            Some((ty, info)) => {
                let kind = info.kind;
                let basic = info.basicsize + GC_HEAD;
                let name = info.name.clone();
                let len = if kind.is_container() {
                    container_len(reader, object, kind)
                } else {
                    None
                };
                let bytes = basic + len.map_or(0, |n| extra_bytes(kind, n));
                let count = census.types.entry(name).or_default();
                count.count += 1;
                count.bytes = count.bytes.saturating_add(bytes);
                if let Some(len) = len.filter(|n| *n >= bounds.min_tracked_len) {
                    tracked.push(Container {
                        address: object,
                        type_address: ty,
                        len,
                    });
                    if tracked.len() >= bounds.max_tracked * 4 {
                        tracked.sort_unstable_by_key(|c| std::cmp::Reverse(c.len));
                        tracked.truncate(bounds.max_tracked);
                    }
                }
            }
            None => census.unreadable += 1,
        }
        previous = node;
        node = next;
    }
}

/// Estimated bytes of a container's separately allocated storage for `len` items (item
/// arrays, hash tables), without the items themselves.
fn extra_bytes(kind: Kind, len: u64) -> u64 {
    match kind {
        Kind::List => len * 8,
        // Entries (24 bytes) and indices, at the table's usual 2/3 fill.
        Kind::Dict => len * 36,
        // Hash table slots of 16 bytes, at most 60% full.
        Kind::Set => len * 27,
        // Blocks of 64 pointers.
        Kind::Deque => len * 8 + (len / 64 + 1) * 16,
        _ => 0,
    }
}

/// A hand-made CPython 3.11 heap in a memory image, for tests and fuzzing: `_PyRuntime` at
/// `BASE`, one interpreter whose first generation holds list objects of the given lengths.
pub mod synthetic {
    use super::super::layout::{shared::*, HeapLayout};
    use super::super::reader::MemoryImage;
    use crate::pyframes::layout::from_table;

    pub const BASE: u64 = 0x10_0000;
    const SIZE: usize = 0x1_0000;
    const INTERP: u64 = BASE + 0x100;
    const META: u64 = BASE + 0x2000;
    const LIST: u64 = BASE + 0x2400;
    const NAMES: u64 = BASE + 0x2800;
    const OBJECTS: u64 = BASE + 0x4000;

    pub fn layout() -> HeapLayout {
        HeapLayout::for_version(from_table(3, 11).expect("3.11 table"), &[]).expect("3.11 heap")
    }

    struct Bytes(Vec<u8>);

    impl Bytes {
        fn put(&mut self, at: u64, value: u64) {
            let i = (at - BASE) as usize;
            self.0[i..i + 8].copy_from_slice(&value.to_le_bytes());
        }
    }

    /// The image, and the address of each list object.
    pub fn heap(lens: &[u64]) -> (MemoryImage, Vec<u64>) {
        let layout = layout();
        let mut b = Bytes(vec![0u8; SIZE]);
        b.put(BASE + layout.frames.runtime_interpreters_head, INTERP);
        let gc = INTERP + layout.interp_gc;
        let heads: Vec<u64> = (0..3).map(|i| gc + 24 + i * 24).collect();
        for &head in &heads {
            b.put(head, head);
            b.put(head + 8, head);
        }
        // `type` and `list`.
        b.put(META + OB_TYPE, META);
        b.put(META + TP_FLAGS, FLAG_READY | FLAG_TYPE);
        b.put(META + TP_BASICSIZE, 904);
        b.put(META + TP_NAME, NAMES);
        b.put(LIST + OB_TYPE, META);
        b.put(LIST + TP_FLAGS, FLAG_READY | FLAG_LIST);
        b.put(LIST + TP_BASICSIZE, 40);
        b.put(LIST + TP_NAME, NAMES + 8);
        b.0[(NAMES - BASE) as usize..][..5].copy_from_slice(b"type\0");
        b.0[(NAMES + 8 - BASE) as usize..][..5].copy_from_slice(b"list\0");
        // The lists, linked into the first generation.
        let nodes: Vec<u64> = (0..lens.len() as u64).map(|i| OBJECTS + i * 64).collect();
        let head = heads[0];
        for (i, (&node, &len)) in nodes.iter().zip(lens).enumerate() {
            let next = nodes.get(i + 1).copied().unwrap_or(head);
            let prev = if i == 0 { head } else { nodes[i - 1] };
            b.put(node, next);
            b.put(node + 8, prev);
            b.put(node + GC_HEAD + OB_TYPE, LIST);
            b.put(node + GC_HEAD + OB_SIZE, len);
        }
        if let (Some(&first), Some(&last)) = (nodes.first(), nodes.last()) {
            b.put(head, first);
            b.put(head + 8, last);
        }
        let mut image = MemoryImage::default();
        image.put(BASE, b.0);
        (image, nodes.iter().map(|n| n + GC_HEAD).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::synthetic::{heap, layout, BASE};
    use super::*;

    #[test]
    fn counts_the_objects_on_the_generation_lists() {
        let (image, objects) = heap(&[10, 3, 40]);
        let mut reader = Reader::new(&image, image.mappings());
        let census = take(&mut reader, &layout(), BASE, Bounds::default()).unwrap();
        assert_eq!(census.objects, 3);
        assert!(!census.partial);
        assert_eq!(census.types["list"].count, 3);
        // Only containers of 8 entries or more are tracked, the longest first.
        let tracked: Vec<(u64, u64)> = census
            .containers
            .iter()
            .map(|c| (c.address, c.len))
            .collect();
        assert_eq!(tracked, vec![(objects[2], 40), (objects[0], 10)]);
    }

    #[test]
    fn a_list_broken_under_the_walk_ends_it_as_partial() {
        let (mut image, objects) = heap(&[10, 3, 40]);
        // The second object's next link now points outside every mapping.
        assert!(image.write(objects[1] - GC_HEAD, &0xdead_0000u64.to_le_bytes()));
        let mut reader = Reader::new(&image, image.mappings());
        let census = take(&mut reader, &layout(), BASE, Bounds::default()).unwrap();
        assert!(census.partial);
        assert_eq!(census.objects, 2);
    }

    #[test]
    fn a_node_moved_into_a_loop_under_the_walk_ends_it_at_once() {
        let (mut image, objects) = heap(&[10, 3, 40]);
        // The third object's next link leads back to the first: a cycle without the head, as
        // when objects move to another list while the walk is on them.
        assert!(image.write(objects[2] - GC_HEAD, &(objects[0] - GC_HEAD).to_le_bytes()));
        let mut reader = Reader::new(&image, image.mappings());
        let census = take(&mut reader, &layout(), BASE, Bounds::default()).unwrap();
        assert!(census.partial);
        assert!(census.objects <= 3, "walked {} objects", census.objects);
    }

    #[test]
    fn memory_without_a_gc_state_is_an_error_not_a_census() {
        let mut image = crate::pyheap::reader::MemoryImage::default();
        image.put(BASE, vec![0xab; 4096]);
        let mut reader = Reader::new(&image, image.mappings());
        assert!(take(&mut reader, &layout(), BASE, Bounds::default()).is_err());
    }
}

//! CPython's small-object allocator (pymalloc), read from outside: its arenas (1 MiB mmaps),
//! their 16 KiB pools, and the blocks in use per pool. Used blocks are live Python objects of
//! up to 512 bytes; the rest of an arena's touched pools is free space the allocator keeps
//! (an arena is given back only when all of its pools are empty).
//!
//! Where the state is: 3.12+ keep it in one struct (`_obmalloc_mgmt`: `arenas`, `maxarenas`,
//! `unused_arena_objects`, `usable_arenas`, `nfp2lasta[65]`, then three counters), inside
//! `_PyRuntime`'s main interpreter (3.12) or a static of libpython (3.13+). Its offset moves
//! with every version and build, so it is found by its shape in the interpreter's writable
//! data: every pointer must fall on an `arena_object` of the `arenas` array and the counters
//! must agree. 3.10 and 3.11 keep the same fields as separate statics, found in `.symtab`
//! when the file was not stripped. Either way the array read back must hold as many arenas as
//! the allocator counts, or the state is not trusted.

use crate::pyframes::memory::Memory;

/// `sizeof(struct arena_object)`.
const ARENA_OBJECT: u64 = 48;
/// 3.10+ on 64-bit (radix tree on): 1 MiB arenas of 16 KiB pools.
pub const ARENA_SIZE: u64 = 1 << 20;
pub const POOL_SIZE: u64 = 16 << 10;
const POOLS_IN_ARENA: usize = (ARENA_SIZE / POOL_SIZE) as usize;
/// Block sizes are multiples of 16 (`ALIGNMENT`), by size class index + 1.
const ALIGNMENT: u64 = 16;
/// Size classes: blocks of 16..=512 bytes.
const SIZE_CLASSES: u32 = 32;
/// More arena objects than this is not a real allocator (64 GiB of arenas).
const MAX_ARENAS: u64 = 1 << 16;
/// Pool headers read at most per breakdown (16 MiB of pools each... 4 GiB of arenas in all):
/// past that, one pool in n is read and the counts scaled, so a breakdown's cost stays bounded.
const MAX_POOL_HEADERS: usize = 16 * 1024;
/// The bytes of a pool header read: `ref.count` (0) to `szidx` (36).
const HEADER: usize = 40;
/// `_obmalloc_mgmt` up to `narenas_highwater`.
const MGMT_LEN: usize = 32 + (POOLS_IN_ARENA + 1) * 8 + 24;

/// Where the allocator's bookkeeping lives in the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locator {
    /// 3.12+: the `_obmalloc_mgmt` struct at this address.
    Mgmt(u64),
    /// 3.10/3.11: the statics `arenas`, `maxarenas` and `narenas_currently_allocated`.
    Statics {
        arenas: u64,
        maxarenas: u64,
        current: u64,
    },
}

/// The allocator's state at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PymallocState {
    pub arenas: u64,
    /// Bytes of pools carved from the arenas so far (touched, so resident unless swapped).
    pub pool_bytes: u64,
    /// Bytes of blocks in use: live small objects.
    pub used_bytes: u64,
    pub pools_in_use: u64,
    /// 1 when every pool header was read; n when one pool in n was, and the used figures are
    /// scaled up from that sample.
    pub sample_stride: u64,
}

impl PymallocState {
    /// Touched arena bytes not holding a live object.
    pub fn free_bytes(&self) -> u64 {
        self.pool_bytes.saturating_sub(self.used_bytes)
    }
}

/// Looks in `data` (read from `base` in the target) for `_obmalloc_mgmt` by its shape. Exactly
/// one match, or none.
pub fn find_mgmt(base: u64, data: &[u8]) -> Option<u64> {
    let mut found = None;
    let mut at = 0;
    while at + MGMT_LEN <= data.len() {
        if looks_like_mgmt(&data[at..at + MGMT_LEN]) {
            if found.is_some() {
                return None;
            }
            found = Some(base + at as u64);
        }
        at += 8;
    }
    found
}

fn word(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn looks_like_mgmt(b: &[u8]) -> bool {
    let arenas = word(b, 0);
    let max = word(b, 8) & 0xFFFF_FFFF;
    // `maxarenas` starts at 16 and doubles.
    if arenas == 0
        || !arenas.is_multiple_of(8)
        || !(16..=MAX_ARENAS).contains(&max)
        || !max.is_power_of_two()
    {
        return false;
    }
    let end = arenas + max * ARENA_OBJECT;
    let in_array =
        |p: u64| p == 0 || (p >= arenas && p < end && (p - arenas).is_multiple_of(ARENA_OBJECT));
    if !(in_array(word(b, 16)) && in_array(word(b, 24))) {
        return false;
    }
    if !(0..=POOLS_IN_ARENA).all(|i| in_array(word(b, 32 + i * 8))) {
        return false;
    }
    let counters = 32 + (POOLS_IN_ARENA + 1) * 8;
    let (current, times, high) = (
        word(b, counters),
        word(b, counters + 8),
        word(b, counters + 16),
    );
    current > 0 && current <= high && high <= max && times >= current
}

/// Reads the allocator's state: the arena array, then each carved pool's header.
pub fn read(memory: &dyn Memory, locator: Locator) -> Result<PymallocState, String> {
    read_bounded(memory, locator, MAX_POOL_HEADERS)
}

/// `read`, reading at most about `max_headers` pool headers.
fn read_bounded(
    memory: &dyn Memory,
    locator: Locator,
    max_headers: usize,
) -> Result<PymallocState, String> {
    let (array, max, current) = match locator {
        Locator::Mgmt(at) => {
            let mut b = vec![0u8; MGMT_LEN];
            memory.read(at, &mut b).map_err(|e| e.to_string())?;
            if !looks_like_mgmt(&b) {
                return Err("pymalloc's bookkeeping no longer has its shape".into());
            }
            (
                word(&b, 0),
                word(&b, 8) & 0xFFFF_FFFF,
                word(&b, MGMT_LEN - 24),
            )
        }
        Locator::Statics {
            arenas,
            maxarenas,
            current,
        } => {
            let read = |a| memory.read_u64(a).map_err(|e| e.to_string());
            (
                read(arenas)?,
                read(maxarenas)? & 0xFFFF_FFFF,
                read(current)?,
            )
        }
    };
    if array == 0 || max == 0 || max > MAX_ARENAS || current > max {
        return Err(format!(
            "pymalloc's counters are not plausible ({max} arena objects, {current} in use)"
        ));
    }
    let mut objects = vec![0u8; usize::try_from(max * ARENA_OBJECT).unwrap_or(0)];
    memory
        .read(array, &mut objects)
        .map_err(|e| e.to_string())?;
    let mut headers = Vec::new();
    let mut state = PymallocState::default();
    for arena in objects.chunks_exact(ARENA_OBJECT as usize) {
        let address = word(arena, 0);
        if address == 0 {
            continue;
        }
        state.arenas += 1;
        let pool_address = word(arena, 8);
        let first = address.div_ceil(POOL_SIZE) * POOL_SIZE;
        if pool_address < first || pool_address > address + ARENA_SIZE {
            return Err(format!(
                "pymalloc arena at {address:#x} has no plausible pools"
            ));
        }
        state.pool_bytes += pool_address - address;
        let mut pool = first;
        while pool + POOL_SIZE <= pool_address {
            headers.push(pool);
            pool += POOL_SIZE;
        }
    }
    if state.arenas != current {
        return Err(format!(
            "pymalloc counts {current} arenas but its array holds {}",
            state.arenas
        ));
    }
    let stride = headers.len().div_ceil(max_headers.max(1)).max(1);
    let headers: Vec<u64> = headers.into_iter().step_by(stride).collect();
    state.sample_stride = stride as u64;
    let mut bytes = vec![0u8; headers.len() * HEADER];
    let read = memory.read_many(&headers, &mut bytes);
    for (header, _) in bytes.chunks_exact(HEADER).zip(read).filter(|(_, ok)| *ok) {
        let count = word(header, 0) & 0xFFFF_FFFF;
        let size_class = u32::from_le_bytes(header[36..40].try_into().unwrap_or_default());
        if count == 0 || size_class >= SIZE_CLASSES {
            continue;
        }
        let block = u64::from(size_class + 1) * ALIGNMENT;
        // A pool holds at most POOL_SIZE / block blocks; more is a torn read.
        state.used_bytes += (count * block).min(POOL_SIZE) * state.sample_stride;
        state.pools_in_use += state.sample_stride;
    }
    state.used_bytes = state.used_bytes.min(state.pool_bytes);
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pyframes::memory::FixtureMemory;

    const ARRAY: u64 = 0x5000_0000;
    const ARENA: u64 = 0x7f00_0000_0000;

    fn mgmt(max: u64, current: u64) -> Vec<u8> {
        let mut b = vec![0u8; MGMT_LEN];
        b[0..8].copy_from_slice(&ARRAY.to_le_bytes());
        b[8..16].copy_from_slice(&max.to_le_bytes());
        b[24..32].copy_from_slice(&ARRAY.to_le_bytes());
        let c = MGMT_LEN - 24;
        for (i, v) in [current, current + 3, current].iter().enumerate() {
            b[c + i * 8..c + i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    #[test]
    fn finds_the_struct_by_its_shape() {
        let mut data = vec![0xAAu8; 4096];
        data.extend(mgmt(16, 1));
        data.extend(vec![0u8; 512]);
        assert_eq!(find_mgmt(0x1000, &data), Some(0x1000 + 4096));
        // A pointer outside the array breaks the shape.
        let mut bad = mgmt(16, 1);
        bad[16..24].copy_from_slice(&(ARRAY + 5).to_le_bytes());
        assert_eq!(find_mgmt(0, &bad), None);
        // Two matches: not trusted.
        let mut two = mgmt(16, 1);
        two.extend(mgmt(16, 1));
        assert_eq!(find_mgmt(0, &two), None);
    }

    #[test]
    fn counts_used_blocks_per_pool() {
        let mut memory = FixtureMemory::default();
        memory.put(0x1000, mgmt(16, 1));
        let mut array = vec![0u8; 16 * 48];
        array[0..8].copy_from_slice(&ARENA.to_le_bytes());
        // Three pools carved.
        array[8..16].copy_from_slice(&(ARENA + 3 * POOL_SIZE).to_le_bytes());
        memory.put(ARRAY, array);
        let pool = |count: u64, class: u32| {
            let mut h = vec![0u8; 48];
            h[0..8].copy_from_slice(&count.to_le_bytes());
            h[36..40].copy_from_slice(&class.to_le_bytes());
            h
        };
        memory.put(ARENA, pool(100, 1)); // 100 blocks of 32 bytes
        memory.put(ARENA + POOL_SIZE, pool(0, 3)); // empty
        memory.put(ARENA + 2 * POOL_SIZE, pool(10, 31)); // 10 blocks of 512
        let state = read(&memory, Locator::Mgmt(0x1000)).unwrap();
        assert_eq!(state.arenas, 1);
        assert_eq!(state.pool_bytes, 3 * POOL_SIZE);
        assert_eq!(state.used_bytes, 3200 + 5120);
        assert_eq!(state.pools_in_use, 2);
        assert_eq!(state.sample_stride, 1);
        // One pool in two: the first and the third, counted twice each.
        let sampled = read_bounded(&memory, Locator::Mgmt(0x1000), 2).unwrap();
        assert_eq!(sampled.sample_stride, 2);
        assert_eq!(sampled.used_bytes, 2 * (3200 + 5120));
        assert_eq!(sampled.pools_in_use, 4);
        assert_eq!(state.free_bytes(), 3 * POOL_SIZE - 8320);
    }

    #[test]
    fn a_count_that_disagrees_with_the_array_is_refused() {
        let mut memory = FixtureMemory::default();
        memory.put(0x1000, mgmt(16, 2));
        memory.put(ARRAY, vec![0u8; 16 * 48]);
        assert!(read(&memory, Locator::Mgmt(0x1000)).is_err());
    }
}

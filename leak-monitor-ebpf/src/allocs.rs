//! Allocation tracking (opt-in): uprobes on the C allocator of a followed process, so heap
//! blocks can be blamed on the Python line that allocated them even when the heap reuses
//! memory (new pages then fault in whichever line extends the heap, not the one that keeps
//! the blocks). Blocks of at least `MIN_ALLOC_BYTES` are sent with the allocating stack and
//! remembered in `LIVE_ALLOCS`; freeing one sends its address. Every call of the probed
//! functions traps, which is why this is off unless asked for.

use crate::emit;
use crate::pystack::emit_created;
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{map, uprobe, uretprobe},
    maps::{HashMap, LruHashMap},
    programs::{ProbeContext, RetProbeContext},
};
use leak_monitor_common::{kind, AllocKey, MAX_ALLOCS_IN_FLIGHT, MAX_LIVE_ALLOCS, MIN_ALLOC_BYTES};

/// Allocator calls in flight: tid -> requested size (only sizes worth tracking). LRU, so a
/// thread that never returns (longjmp, exit) cannot fill it.
#[map]
static ALLOC_SIZES: LruHashMap<u32, u64> = LruHashMap::with_max_entries(MAX_ALLOCS_IN_FLIGHT, 0);

/// Tracked blocks: (address, tgid) -> size. A full map leaves new blocks untracked (counted).
#[map]
static LIVE_ALLOCS: HashMap<AllocKey, u64> = HashMap::with_max_entries(MAX_LIVE_ALLOCS, 0);

/// The probes are attached per process, so every caller is followed; the ids still come from
/// the helper (tgid, tid).
#[inline(always)]
fn current() -> (u32, u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    ((pid_tgid >> 32) as u32, pid_tgid as u32)
}

#[inline(always)]
fn requested(tid: u32, size: u64) {
    if size >= MIN_ALLOC_BYTES {
        let _ = ALLOC_SIZES.insert(&tid, &size, 0);
    }
}

#[inline(always)]
fn freed(tgid: u32, tid: u32, address: u64) {
    if address == 0 {
        return;
    }
    let key = AllocKey {
        address,
        tgid,
        _pad: 0,
    };
    if LIVE_ALLOCS.remove(&key).is_ok() {
        emit(tgid, tid, kind::FREE, 0, address, 0, 0, 0);
    }
}

#[uprobe]
pub fn malloc_enter(ctx: ProbeContext) -> u32 {
    let (_, tid) = current();
    requested(tid, ctx.arg::<u64>(0).unwrap_or(0));
    0
}

#[uprobe]
pub fn calloc_enter(ctx: ProbeContext) -> u32 {
    let (_, tid) = current();
    let count = ctx.arg::<u64>(0).unwrap_or(0);
    let size = ctx.arg::<u64>(1).unwrap_or(0);
    // Both below 2^32, or the product is huge anyway (no 128-bit multiply in BPF).
    let total = if count >> 32 == 0 && size >> 32 == 0 {
        count * size
    } else {
        u64::MAX
    };
    requested(tid, total);
    0
}

/// realloc(ptr, size): the old block is gone (or moved), a new one is returned.
#[uprobe]
pub fn realloc_enter(ctx: ProbeContext) -> u32 {
    let (tgid, tid) = current();
    freed(tgid, tid, ctx.arg::<u64>(0).unwrap_or(0));
    requested(tid, ctx.arg::<u64>(1).unwrap_or(0));
    0
}

/// The return of malloc, calloc and realloc.
#[uretprobe]
pub fn alloc_exit(ctx: RetProbeContext) -> u32 {
    let (tgid, tid) = current();
    // SAFETY: copied out at once; the entry is removed right after.
    let Some(size) = (unsafe { ALLOC_SIZES.get(&tid) }).copied() else {
        return 0;
    };
    let _ = ALLOC_SIZES.remove(&tid);
    let address: u64 = ctx.ret();
    if address == 0 {
        return 0;
    }
    let key = AllocKey {
        address,
        tgid,
        _pad: 0,
    };
    if LIVE_ALLOCS.insert(&key, &size, 0).is_ok() {
        emit_created(tgid, tid, kind::ALLOC, 0, address, size, 0, 0);
    } else {
        crate::count(kind::ALLOC);
    }
    0
}

#[uprobe]
pub fn free_enter(ctx: ProbeContext) -> u32 {
    let (tgid, tid) = current();
    freed(tgid, tid, ctx.arg::<u64>(0).unwrap_or(0));
    0
}

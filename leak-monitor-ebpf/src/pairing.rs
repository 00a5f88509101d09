//! Opens paired with closes in the kernel, so that a target churning fds costs a table write
//! per open and per close instead of an event each (and a frame walk per open).
//!
//! A followed process user space gave a slot (`FD_SLOTS`: tgid -> slot) has its fds below
//! `FD_CAP` in `FD_TABLE` (see `leak_monitor_common::fd_entry`): an open writes its time and
//! call there, a close zeroes it. Nothing is sent for either unless user space already took the
//! fd into its ledger (`KNOWN`): user space scans the table (mmap'd) for opens that survived a
//! while and takes them from there, with the stack kept for the open if one was walked.
//! Stacks are walked for every open while the slot opens few fds, and for one in
//! `SAMPLE_ONE_IN` when it churns; they live in `FD_STACKS` until their fd is closed or taken.

use crate::{count, emit};
use aya_ebpf::{
    helpers::{bpf_get_prandom_u32, bpf_ktime_get_ns},
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
};
use leak_monitor_common::{
    counter, fd_entry, fd_sampling, kind, FdStack, SampleWindow, BPF_F_MMAPABLE, FD_CAP,
    MAX_FD_SLOTS, MAX_FD_STACKS, SAMPLE_WINDOW_NS,
};

/// Followed processes whose fds are paired: tgid -> slot (user space assigns slots).
#[map]
static FD_SLOTS: HashMap<u32, u32> = HashMap::with_max_entries(MAX_FD_SLOTS, 0);

/// The tgid each slot belongs to (0: free), written by user space with `FD_SLOTS`: checks a
/// CPU's cached slot (`LAST_SLOT`) without the hash lookup.
#[map]
static SLOT_OWNERS: Array<u32> = Array::with_max_entries(MAX_FD_SLOTS, 0);

/// Per CPU, the last (tgid, slot) found in `FD_SLOTS`: a churning target runs on a CPU for
/// many syscalls in a row, so most lookups are two array reads instead of a hash lookup.
#[map]
static LAST_SLOT: PerCpuArray<[u32; 2]> = PerCpuArray::with_max_entries(1, 0);

/// `FD_CAP` entries per slot, see `fd_entry`. Mmap'd by user space.
#[map]
static FD_TABLE: Array<u64> = Array::with_max_entries(MAX_FD_SLOTS * FD_CAP, BPF_F_MMAPABLE);

/// The stacks walked for paired opens still open: `slot * FD_CAP + fd` -> stack.
#[map]
static FD_STACKS: HashMap<u32, FdStack> = HashMap::with_max_entries(MAX_FD_STACKS, 0);

/// How many stacks are walked, see `fd_sampling` (user space writes it at load).
#[map]
static FD_SAMPLING: Array<u32> = Array::with_max_entries(fd_sampling::LEN, 0);

/// Per slot, the opens of the current sampling window.
#[map]
static SAMPLE_WINDOWS: Array<SampleWindow> = Array::with_max_entries(MAX_FD_SLOTS, 0);

/// Per CPU, where a stack is walked before it is copied into `FD_STACKS` (too big for the
/// program's stack).
#[map]
static SCRATCH: PerCpuArray<FdStack> = PerCpuArray::with_max_entries(1, 0);

/// The slot of `tgid`, if it has one.
#[inline(always)]
fn slot_of(tgid: u32) -> Option<u32> {
    let last = LAST_SLOT.get_ptr_mut(0)?;
    // SAFETY: this CPU's entry; programs on sys_exit do not nest on a CPU.
    let last = unsafe { &mut *last };
    if last[0] == tgid && SLOT_OWNERS.get(last[1]).copied() == Some(tgid) {
        return Some(last[1]);
    }
    // SAFETY: copied out at once.
    let slot = (unsafe { FD_SLOTS.get(&tgid) }).copied()?;
    if slot >= MAX_FD_SLOTS {
        return None;
    }
    *last = [tgid, slot];
    Some(slot)
}

/// The `FD_TABLE` index of `fd` of `tgid`, when `tgid` has a slot and `fd` is below the cap.
#[inline(always)]
fn index(tgid: u32, fd: u64) -> Option<(u32, u32)> {
    let slot = slot_of(tgid)?;
    if fd >= u64::from(FD_CAP) {
        return None;
    }
    Some((slot, slot * FD_CAP + fd as u32))
}

/// An open of `fd` by `call` that may be paired. Returns false when it must be sent as an
/// event instead (no slot, fd over the cap).
#[inline(always)]
pub fn opened(tgid: u32, tid: u32, call: u64, fd: u64) -> bool {
    let Some((slot, at)) = index(tgid, fd) else {
        if fd >= u64::from(FD_CAP) && slot_of(tgid).is_some() {
            count(counter::OVER_CAP);
        }
        return false;
    };
    let Some(entry) = FD_TABLE.get_ptr_mut(at) else {
        return false;
    };
    // SAFETY: a helper with no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let mut value = (now & fd_entry::TS_MASK)
        | ((call << fd_entry::CALL_SHIFT) & fd_entry::CALL_MASK)
        // Never 0, even at a time that wraps to 0: 0 is "no open".
        | u64::from(now & fd_entry::TS_MASK == 0);
    // Decided before the thread is looked up: the lookups are most of a skipped open's cost.
    if sample(slot, now) {
        if let Some((layout, tstate)) = crate::pystack::walkable(tgid, tid) {
            if keep_stack(&layout, tstate, at, tid) {
                value |= fd_entry::STACKED;
            }
        }
    } else {
        count(counter::STACKS_SKIPPED);
    }
    // SAFETY: a map value of this slot; user space only compare-and-swaps it.
    let old = unsafe { core::ptr::read_volatile(entry) };
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(entry, value) };
    count(counter::PAIRED_OPENS);
    if old != 0 {
        // The fd was replaced without a close seen here (exec, close_range, a lost race):
        // its stack is stale, and user space must drop what it knew.
        if old & fd_entry::STACKED != 0 && value & fd_entry::STACKED == 0 {
            let _ = FD_STACKS.remove(&at);
        }
        if old & fd_entry::KNOWN != 0 {
            emit(tgid, tid, kind::FD_CLOSE, nr_close(), fd, 0, 0, 0);
        }
    }
    true
}

/// A close of `fd`. Returns true when it was paired with its open here (nothing to send).
#[inline(always)]
pub fn closed(tgid: u32, fd: u64) -> bool {
    let Some((_, at)) = index(tgid, fd) else {
        return false;
    };
    let Some(entry) = FD_TABLE.get_ptr_mut(at) else {
        return false;
    };
    // SAFETY: a map value of this slot; user space only compare-and-swaps it.
    let old = unsafe { core::ptr::read_volatile(entry) };
    if old == 0 {
        // Not opened here (there before, made by a call sent as an event): send it.
        return false;
    }
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(entry, 0) };
    if old & fd_entry::STACKED != 0 {
        let _ = FD_STACKS.remove(&at);
    }
    if old & fd_entry::KNOWN != 0 {
        return false;
    }
    count(counter::PAIRED_CLOSES);
    true
}

/// An fd made by a call that is sent as an event (pipe, dup, accept...): whatever the table
/// held for that number is stale.
#[inline(always)]
pub fn forget(tgid: u32, fd: u64) {
    let Some((_, at)) = index(tgid, fd) else {
        return;
    };
    if let Some(entry) = FD_TABLE.get_ptr_mut(at) {
        // SAFETY: a map value; see `closed`.
        let old = unsafe { core::ptr::read_volatile(entry) };
        if old != 0 {
            // SAFETY: as above.
            unsafe { core::ptr::write_volatile(entry, 0) };
            if old & fd_entry::STACKED != 0 {
                let _ = FD_STACKS.remove(&at);
            }
        }
    }
}

#[inline(always)]
fn nr_close() -> u32 {
    leak_monitor_common::nr::CLOSE as u32
}

/// Whether this open of `slot` gets its stack walked: all while the slot opens few fds, one
/// in `ONE_IN` past that.
#[inline(always)]
fn sample(slot: u32, now: u64) -> bool {
    let Some(window) = SAMPLE_WINDOWS.get_ptr_mut(slot) else {
        return false;
    };
    // SAFETY: a map value; CPUs opening at once may lose a count, which only shifts the
    // sampling a little.
    let window = unsafe { &mut *window };
    if now.wrapping_sub(window.start_ns) > SAMPLE_WINDOW_NS {
        window.start_ns = now;
        window.opens = 0;
    }
    window.opens += 1;
    let setting = |index| FD_SAMPLING.get(index).copied().unwrap_or(0);
    if window.opens <= u64::from(setting(fd_sampling::EVERY_UP_TO)) {
        return true;
    }
    let one_in = setting(fd_sampling::ONE_IN);
    // SAFETY: a helper with no preconditions.
    one_in != 0 && unsafe { bpf_get_prandom_u32() } % one_in == 0
}

/// Walks the stack into this CPU's scratch and keeps it for the fd at `at`.
#[inline(always)]
fn keep_stack(layout: &leak_monitor_common::PyLayout, tstate: u64, at: u32, tid: u32) -> bool {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's scratch slot, writable; programs on sys_exit do not nest on a CPU.
    unsafe {
        (*scratch).tid = tid;
        crate::pystack::walk_into(layout, tstate, core::ptr::addr_of_mut!((*scratch).stack));
    }
    // SAFETY: as above, fully written by the walk (depth, truncated and the frames it read;
    // user space reads only `depth` frames).
    if FD_STACKS.insert(&at, unsafe { &*scratch }, 0).is_err() {
        count(counter::STACKS_LOST);
        return false;
    }
    count(counter::STACKS_SAMPLED);
    true
}

//! New resident pages. A not-present user fault sends one stacked event, and the faults that
//! follow on the next pages of the same thread (sequential touching of fresh memory, the
//! common case) only extend one of a few per-CPU runs, sent as one `PAGE_RUN` event when it
//! is displaced or reaches `MAX_RUN_PAGES`: one stack walk per run, one small record per
//! `MAX_RUN_PAGES` pages, not one of each per page.

use crate::emit;
use crate::pystack::emit_created;
use aya_ebpf::{macros::map, maps::PerCpuArray};
use leak_monitor_common::{kind, PageRun, MAX_RUN_PAGES};

const PAGE_SIZE: u64 = 4096;
/// Runs each CPU extends at once. A thread filling new memory also faults other pages between
/// (its interpreter's own structures, a second buffer); with a few runs kept those interleaved
/// faults do not break the long one.
const RUN_SLOTS: u32 = 4;

/// The runs each CPU is extending.
#[map]
static PAGE_RUNS: PerCpuArray<PageRun> = PerCpuArray::with_max_entries(RUN_SLOTS, 0);

/// Per CPU, the slot the next new run takes (round robin: the oldest run is sent first).
#[map]
static NEXT_SLOT: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// A not-present fault at `address` by thread `tid` of `tgid`.
#[inline(always)]
pub fn fault(tgid: u32, tid: u32, address: u64) {
    let page = address & !(PAGE_SIZE - 1);
    let mut slot = 0;
    while slot < RUN_SLOTS {
        if let Some(run) = PAGE_RUNS.get_ptr_mut(slot) {
            // SAFETY: this CPU's slot; a fault inside a BPF program is not a user fault, so
            // these programs do not nest on a CPU.
            let run = unsafe { &mut *run };
            if run.tid == tid && run.next == page {
                run.pages += 1;
                run.next = page + PAGE_SIZE;
                if run.pages >= MAX_RUN_PAGES {
                    send(run);
                }
                return;
            }
        }
        slot += 1;
    }
    let victim = match NEXT_SLOT.get_ptr_mut(0) {
        Some(next) => {
            // SAFETY: as above.
            let next = unsafe { &mut *next };
            let taken = *next % RUN_SLOTS;
            *next = (taken + 1) % RUN_SLOTS;
            taken
        }
        None => 0,
    };
    let Some(run) = PAGE_RUNS.get_ptr_mut(victim) else {
        return emit_created(tgid, tid, kind::PAGE_FAULT, 0, address, 0, 0, 0);
    };
    // SAFETY: as above.
    let run = unsafe { &mut *run };
    send(run);
    emit_created(tgid, tid, kind::PAGE_FAULT, 0, address, 0, 0, 0);
    *run = PageRun {
        start: page + PAGE_SIZE,
        next: page + PAGE_SIZE,
        tgid,
        tid,
        pages: 0,
        _pad: 0,
    };
}

/// Sends this CPU's pending runs of `tgid`.
#[inline(always)]
pub fn flush_run(tgid: u32) {
    let mut slot = 0;
    while slot < RUN_SLOTS {
        if let Some(run) = PAGE_RUNS.get_ptr_mut(slot) {
            // SAFETY: as in `fault`.
            let run = unsafe { &mut *run };
            if run.tgid == tgid {
                send(run);
            }
        }
        slot += 1;
    }
}

/// Sends the run's counted pages, if any, and keeps extending it from where it ends.
#[inline(always)]
fn send(run: &mut PageRun) {
    if run.pages > 0 {
        emit(
            run.tgid,
            run.tid,
            kind::PAGE_RUN,
            0,
            run.start,
            u64::from(run.pages),
            0,
            0,
        );
        run.pages = 0;
        run.start = run.next;
    }
}

//! New resident pages. A not-present user fault sends one stacked event, and the faults that
//! follow on the next pages of the same thread (sequential touching of fresh memory, the
//! common case) only extend a per-CPU run, sent as one `PAGE_RUN` event when it breaks or
//! reaches `MAX_RUN_PAGES`: one stack walk and one ring buffer record per run, not per page.

use crate::emit;
use crate::pystack::emit_created;
use aya_ebpf::{macros::map, maps::PerCpuArray};
use leak_monitor_common::{kind, PageRun, MAX_RUN_PAGES};

const PAGE_SIZE: u64 = 4096;

/// The run each CPU is extending (index 0).
#[map]
static PAGE_RUNS: PerCpuArray<PageRun> = PerCpuArray::with_max_entries(1, 0);

/// A not-present fault at `address` by thread `tid` of `tgid`.
#[inline(always)]
pub fn fault(tgid: u32, tid: u32, address: u64) {
    let page = address & !(PAGE_SIZE - 1);
    let Some(run) = PAGE_RUNS.get_ptr_mut(0) else {
        return emit_created(tgid, tid, kind::PAGE_FAULT, 0, address, 0, 0, 0);
    };
    // SAFETY: this CPU's slot; programs do not nest on a CPU for these tracepoints' callers
    // (a fault inside a BPF program is not a user fault).
    let run = unsafe { &mut *run };
    if run.tid == tid && run.next == page {
        run.pages += 1;
        run.next = page + PAGE_SIZE;
        if run.pages >= MAX_RUN_PAGES {
            send(run);
        }
        return;
    }
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

/// Sends this CPU's pending run when it belongs to `tgid`.
#[inline(always)]
pub fn flush_run(tgid: u32) {
    if let Some(run) = PAGE_RUNS.get_ptr_mut(0) {
        // SAFETY: as in `fault`.
        let run = unsafe { &mut *run };
        if run.tgid == tgid {
            send(run);
        }
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

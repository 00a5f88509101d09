//! leak-monitor's kernel programs. Each is small: is this thread in a followed process? then
//! fill one fixed-size `Event` and submit it to the ring buffer. All policy (ledgers, kinds,
//! attribution) lives in user space.
//!
//! Raw tracepoints only: they need no tracefs and this kernel has no kprobes.
//! - `sys_exit`: the fd-creating and fd-closing syscalls, clone/clone3 with CLONE_THREAD, and
//!   the calls that give memory back, when they succeeded. The syscall number and arguments are
//!   read from the saved registers at exit, so no program runs at syscall entry.
//! - `page_fault_user`: a fault on a not-present page is a page becoming resident; faults on
//!   consecutive pages are sent as runs (`pages`).
//! - `sched_process_exit` / `sched_process_exec`: thread exit, exec.
//!
//! Creating events (fd, thread, page) of threads whose `PyThreadState` user space registered
//! carry the thread's Python stack, walked here at the event (`pystack`). Most fd opens and
//! closes are paired here instead of sent (`pairing`): only fds that survive reach user space.

#![no_std]
#![no_main]

mod allocs;
mod pages;
mod pairing;
mod pystack;
mod syscalls;

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{map, raw_tracepoint},
    maps::{Array, PerCpuArray, RingBuf},
    programs::RawTracePointContext,
};
use leak_monitor_common::{counter, kind, Event, RING_BYTES, TARGET_WORDS, WAKEUP_BYTES};

// bpf_ringbuf_query / bpf_ringbuf_submit flags (uapi/linux/bpf.h).
const BPF_RB_AVAIL_DATA: u64 = 0;
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;

/// Followed processes, one bit per tgid (bit `tgid % 64` of word `tgid / 64`); user space sets
/// and clears them. An array, not a hash map: the verifier inlines an array lookup, and every
/// syscall of the machine goes through this filter while `sys_exit` has its program (a hash
/// lookup there cost an open/close loop ~4% more, `tests/python/syscall_floor.py`).
#[map]
static TARGETS: Array<u64> = Array::with_max_entries(TARGET_WORDS, 0);

#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(RING_BYTES, 0);

/// Per-CPU counters, see `leak_monitor_common::counter`.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::LEN, 0);

/// The current thread as (tgid, tid) when its process is followed.
#[inline(always)]
fn followed() -> Option<(u32, u32)> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let word = TARGETS.get(tgid / 64)?;
    if *word & (1u64 << (tgid % 64)) == 0 {
        return None;
    }
    Some((tgid, pid_tgid as u32))
}

#[inline(always)]
pub(crate) fn count(index: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, so no other program writes it concurrently.
        unsafe { *slot += 1 };
    }
}

/// Sends one event; a full ring buffer is counted, never silent.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn emit(tgid: u32, tid: u32, kind: u32, detail: u32, a: u64, b: u64, c: u64, d: u64) {
    match EVENTS.reserve::<Event>(0) {
        Some(mut entry) => {
            entry.write(Event {
                // SAFETY: a helper with no preconditions.
                ts_ns: unsafe { bpf_ktime_get_ns() },
                a,
                b,
                c,
                d,
                tgid,
                tid,
                kind,
                detail,
            });
            entry.submit(wakeup_flag(core::mem::size_of::<Event>()));
        }
        None => count(kind),
    }
}

/// Wakes the reader once per batch: only the record that brings the queued bytes past
/// `WAKEUP_BYTES` does (a wake-up costs the traced thread an IPI, microseconds; the reader polls
/// every few milliseconds anyway). Records reserved at once on two CPUs may both miss the
/// crossing; the reader's poll timeout covers that.
#[inline(always)]
pub(crate) fn wakeup_flag(record: usize) -> u64 {
    // Includes this record, reserved but not yet submitted (plus its 8-byte header).
    let queued = EVENTS.query(BPF_RB_AVAIL_DATA);
    if queued >= WAKEUP_BYTES && queued < WAKEUP_BYTES + record as u64 + 8 {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit(ctx: RawTracePointContext) -> i32 {
    if let Some((tgid, tid)) = followed() {
        syscalls::on_exit(&ctx, tgid, tid);
    }
    0
}

#[raw_tracepoint(tracepoint = "page_fault_user")]
pub fn page_fault_user(ctx: RawTracePointContext) -> i32 {
    // TP_PROTO(unsigned long address, struct pt_regs *regs, unsigned long error_code)
    let Some((tgid, tid)) = followed() else {
        return 0;
    };
    let address: u64 = ctx.arg(0);
    let error_code: u64 = ctx.arg(2);
    // Bit 0 set: the page was present (a protection fault, e.g. copy-on-write): nothing new.
    if error_code & 1 == 0 {
        pages::fault(tgid, tid, address);
    }
    0
}

#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(_ctx: RawTracePointContext) -> i32 {
    // Runs in the exiting thread.
    if let Some((tgid, tid)) = followed() {
        pages::flush_run(tgid);
        pystack::forget_thread(tid);
        emit(tgid, tid, kind::THREAD_EXIT, 0, 0, 0, 0, 0);
    }
    0
}

#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(_ctx: RawTracePointContext) -> i32 {
    // Runs in the thread that exec'd, which now leads the process.
    if let Some((tgid, tid)) = followed() {
        emit(tgid, tid, kind::EXEC, 0, 0, 0, 0, 0);
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

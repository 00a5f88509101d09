//! leak-monitor's kernel programs. Each is small: is this thread in a followed process? then
//! fill one fixed-size `Event` and submit it to the ring buffer. All policy (ledgers, kinds,
//! attribution) lives in user space.
//!
//! Raw tracepoints only: they need no tracefs and this kernel has no kprobes.
//! - `sys_enter` / `sys_exit`: the fd-creating and fd-closing syscalls, clone/clone3 with
//!   CLONE_THREAD, and the calls that give memory back. Arguments are kept from entry to exit in
//!   `PENDING`, keyed by thread id, and the event is sent only when the call succeeded.
//! - `page_fault_user`: a fault on a not-present page is a page becoming resident.
//! - `sched_process_exit` / `sched_process_exec`: thread exit, exec.
//!
//! Creating events (fd, thread, page) of threads whose `PyThreadState` user space registered
//! carry the thread's Python stack, walked here at the event (`pystack`).

#![no_std]
#![no_main]

mod pystack;
mod syscalls;

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{map, raw_tracepoint},
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::RawTracePointContext,
};
use leak_monitor_common::{
    counter, kind, Event, PendingCall, MAX_PENDING, MAX_TARGETS, RING_BYTES, WAKEUP_BYTES,
};

// bpf_ringbuf_query / bpf_ringbuf_submit flags (uapi/linux/bpf.h).
const BPF_RB_AVAIL_DATA: u64 = 0;
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;

/// Followed processes: tgid -> 1. User space adds and removes them.
#[map]
static TARGETS: HashMap<u32, u32> = HashMap::with_max_entries(MAX_TARGETS, 0);

/// Syscalls in flight on followed threads: tid -> the arguments needed at exit. LRU, so entries
/// of threads that died mid-call (or were unfollowed) are evicted, never fill the map.
#[map]
static PENDING: LruHashMap<u32, PendingCall> = LruHashMap::with_max_entries(MAX_PENDING, 0);

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
    // SAFETY: the value is only tested for presence, never held across a map update.
    unsafe { TARGETS.get(&tgid) }?;
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
            entry.submit(wakeup_flag());
        }
        None => count(kind),
    }
}

/// Wakes the reader only once a batch is waiting: a wake-up per event costs the traced thread
/// microseconds (the reader polls every few milliseconds anyway).
#[inline(always)]
pub(crate) fn wakeup_flag() -> u64 {
    if EVENTS.query(BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
    if let Some((_, tid)) = followed() {
        syscalls::on_enter(&ctx, tid);
    }
    0
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
        pystack::emit_created(tgid, tid, kind::PAGE_FAULT, 0, address, 0, 0, 0);
    }
    0
}

#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(_ctx: RawTracePointContext) -> i32 {
    // Runs in the exiting thread.
    if let Some((tgid, tid)) = followed() {
        let _ = PENDING.remove(&tid);
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

//! The one place the wire format between the kernel programs (`leak-monitor-ebpf`) and user space
//! (`leak-monitor`) is defined: map names, sizes and the `#[repr(C)]` event record.
//!
//! `no_std`, no implicit padding (all fields are explicitly sized, `u64`s first), so the kernel
//! and user space agree on every byte. The `user` feature adds `aya::Pod`.

#![no_std]

/// Map and program names, shared so a rename on one side cannot silently break the other.
pub mod names {
    pub const TARGETS: &str = "TARGETS";
    pub const EVENTS: &str = "EVENTS";
    pub const PAGE_RUNS: &str = "PAGE_RUNS";
    pub const ALLOC_SIZES: &str = "ALLOC_SIZES";
    pub const LIVE_ALLOCS: &str = "LIVE_ALLOCS";
    pub const COUNTERS: &str = "COUNTERS";
    pub const PY_THREADS: &str = "PY_THREADS";
    pub const PY_LAYOUT: &str = "PY_LAYOUT";
    pub const FD_SLOTS: &str = "FD_SLOTS";
    pub const FD_TABLE: &str = "FD_TABLE";
    pub const FD_STACKS: &str = "FD_STACKS";
    pub const FD_SAMPLING: &str = "FD_SAMPLING";
    pub const SLOT_OWNERS: &str = "SLOT_OWNERS";

    pub const SYS_EXIT: &str = "sys_exit";
    pub const PAGE_FAULT_USER: &str = "page_fault_user";
    pub const PROCESS_EXIT: &str = "sched_process_exit";
    pub const PROCESS_EXEC: &str = "sched_process_exec";
    pub const MALLOC_ENTER: &str = "malloc_enter";
    pub const CALLOC_ENTER: &str = "calloc_enter";
    pub const REALLOC_ENTER: &str = "realloc_enter";
    pub const ALLOC_EXIT: &str = "alloc_exit";
    pub const FREE_ENTER: &str = "free_enter";
}

/// Most processes whose Python frames are walked at once (entries of `PY_LAYOUT`).
pub const MAX_TARGETS: u32 = 4096;
/// Words of the `TARGETS` bitmap, one bit per tgid: 2^22 bits, the kernel's highest
/// `pid_max` (`PID_MAX_LIMIT` on 64-bit), in 512 KiB.
pub const TARGET_WORDS: u32 = 1 << 16;
/// Pages a run of consecutive faults (see [`kind::PAGE_RUN`]) adds before it is sent, which
/// bounds how many new pages user space may not know of yet: this many per run a CPU keeps
/// (`RUN_SLOTS` in the kernel programs, 4).
pub const MAX_RUN_PAGES: u32 = 32;
/// Smallest heap block the allocation probes track. CPython serves objects up to 512 bytes from
/// its own arenas (mmap'd, covered by the page faults); everything bigger is a malloc.
pub const MIN_ALLOC_BYTES: u64 = 513;
/// Heap blocks tracked at once across followed processes (entries of `LIVE_ALLOCS`).
pub const MAX_LIVE_ALLOCS: u32 = 1 << 18;
/// Allocator calls in flight at once (entries of `ALLOC_SIZES`).
pub const MAX_ALLOCS_IN_FLIGHT: u32 = 16384;

/// Bytes of the event ring buffer (a power of two multiple of the page size). At 64 bytes per
/// record that is 32,768 events of slack while user space drains it.
pub const RING_BYTES: u32 = 2 << 20;
/// Queued bytes at which the kernel wakes the reader (otherwise it finds them at its next
/// poll, within `POLL_INTERVAL` of user space).
pub const WAKEUP_BYTES: u64 = 256 << 10;

/// Indices of the per-CPU `COUNTERS` array. Events lost to a full ring buffer are counted at the
/// index of their kind (`kind::*`, 1..=15), so drops are known per kind; index 0 is unused.
/// From `PAIRED_OPENS` on they count what the in-kernel fd pairing (see [`fd_entry`]) did
/// instead of sending events, so the work it saved or skipped is known.
pub mod counter {
    /// Indices below this are drops, counted at the index of the lost event's kind.
    pub const DROPS_END: u32 = 16;
    /// Opens kept in `FD_TABLE` instead of being sent.
    pub const PAIRED_OPENS: u32 = 16;
    /// Closes of such opens that user space never saw: paired in the kernel, nothing sent.
    pub const PAIRED_CLOSES: u32 = 17;
    /// Paired opens whose Python stack was walked and kept in `FD_STACKS`.
    pub const STACKS_SAMPLED: u32 = 18;
    /// Paired opens whose stack was not walked (the target churns).
    pub const STACKS_SKIPPED: u32 = 19;
    /// Walked stacks `FD_STACKS` had no room for.
    pub const STACKS_LOST: u32 = 20;
    /// Opens of a process with a pairing slot sent as events: fd at or above `FD_CAP`.
    pub const OVER_CAP: u32 = 21;
    pub const LEN: u32 = 24;
}

/// Processes whose fds the kernel pairs at once (slots of `FD_TABLE`, assigned by user space
/// in `FD_SLOTS`: tgid -> slot). Further processes get today's one event per open and close.
pub const MAX_FD_SLOTS: u32 = 64;
/// Fds below this are paired (entries per slot of `FD_TABLE`); higher fds are sent as events.
pub const FD_CAP: u32 = 4096;
/// Sampled stacks kept at once for open fds (entries of `FD_STACKS`, key `slot * FD_CAP + fd`).
pub const MAX_FD_STACKS: u32 = 8192;
/// Opens a slot may make per `SAMPLE_WINDOW_NS` with every one's stack walked; past that, one
/// in `SAMPLE_ONE_IN` (at random) is. A slow leak or a demo keeps exact lines for every fd; a
/// target opening and closing hundreds of thousands a second pays a walk for a few. User space
/// writes both into `FD_SAMPLING` ([`fd_sampling`]); these are its defaults.
pub const SAMPLE_EVERY_UP_TO: u32 = 64;
pub const SAMPLE_WINDOW_NS: u64 = 100_000_000;
pub const SAMPLE_ONE_IN: u32 = 32;

/// Indices of the `FD_SAMPLING` array (u32 each).
pub mod fd_sampling {
    /// Opens per window whose stacks are all walked.
    pub const EVERY_UP_TO: u32 = 0;
    /// Past those, one open in this many is walked; 0: none is.
    pub const ONE_IN: u32 = 1;
    pub const LEN: u32 = 2;
}
/// `BPF_F_MMAPABLE`: user space maps `FD_TABLE` and scans it with plain loads.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

/// An entry of `FD_TABLE`: 0 for no paired open; else the open's CLOCK_MONOTONIC time (low
/// `TS_BITS` bits) with the syscall number and two flags above. The kernel writes it at open
/// and zeroes it at close; user space only sets `KNOWN` (compare-and-swap) once it fed the fd
/// to its ledger as a survivor, and zeroes slots it gives back.
pub mod fd_entry {
    /// User space has the fd in its ledger: its close must be sent.
    pub const KNOWN: u64 = 1 << 63;
    /// `FD_STACKS` holds the stack of this open.
    pub const STACKED: u64 = 1 << 62;
    pub const CALL_SHIFT: u32 = 53;
    /// The syscall number, 9 bits (every fd-making call is below 512).
    pub const CALL_MASK: u64 = 0x1ff << CALL_SHIFT;
    /// 2^53 ns: 104 days of uptime before the time wraps (ages are taken modulo this).
    pub const TS_BITS: u32 = 53;
    pub const TS_MASK: u64 = (1 << TS_BITS) - 1;
}

/// Per slot, the opens of the current sampling window (see [`SAMPLE_EVERY_UP_TO`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleWindow {
    pub start_ns: u64,
    pub opens: u64,
}

/// What an [`Event`] says happened. The numbers are the wire format.
pub mod kind {
    /// `a` = the new fd; `detail` = the syscall number that made it.
    pub const FD_OPEN: u32 = 1;
    /// Two fds at once (pipe, pipe2, socketpair): `a`, `b`; `detail` = the syscall number.
    pub const FD_OPEN_PAIR: u32 = 2;
    /// `a` = the closed fd.
    pub const FD_CLOSE: u32 = 3;
    /// close_range: `a` = first, `b` = last fd (inclusive).
    pub const FD_CLOSE_RANGE: u32 = 4;
    /// A thread of the target was created: `a` = its tid.
    pub const THREAD_NEW: u32 = 5;
    /// The thread `tid` exited (`tid == tgid`: the main thread, i.e. the process is ending).
    pub const THREAD_EXIT: u32 = 6;
    /// The target called exec: its fds (close-on-exec), threads and memory are new.
    pub const EXEC: u32 = 7;
    /// A user page fault on a not-present page: `a` = the faulting address.
    pub const PAGE_FAULT: u32 = 8;
    /// Memory given back: `a` = start, `b` = length (munmap, madvise DONTNEED/FREE/REMOVE).
    pub const UNMAP: u32 = 9;
    /// brk moved: `a` = the new break (user space keeps the old one).
    pub const BRK: u32 = 10;
    /// mremap: `a`/`b` = old start/length, `c`/`d` = new start/length.
    pub const REMAP: u32 = 11;
    /// The target forked a child process (not a thread): `a` = the child's pid.
    pub const FORK: u32 = 12;
    /// More not-present faults by the thread `tid`, each on the page right after the one
    /// before: `b` pages from address `a`, continuing the page just below `a` (whose own event
    /// came first and carries the stack). Sequential touching of new memory costs one stacked
    /// event per run instead of one per page.
    pub const PAGE_RUN: u32 = 13;
    /// malloc/calloc/realloc returned a block of at least `MIN_ALLOC_BYTES`: `a` = its
    /// address, `b` = its size (only with allocation tracking).
    pub const ALLOC: u32 = 14;
    /// A tracked block was freed (or moved by realloc): `a` = its address.
    pub const FREE: u32 = 15;
}

/// One thing a followed process did, as the kernel saw it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_MONOTONIC, nanoseconds (`bpf_ktime_get_ns`).
    pub ts_ns: u64,
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub d: u64,
    pub tgid: u32,
    pub tid: u32,
    /// One of [`kind`].
    pub kind: u32,
    /// Kind-specific detail (for fd events: the syscall number).
    pub detail: u32,
}

/// A tracked heap block: its address in the process `tgid`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AllocKey {
    pub address: u64,
    pub tgid: u32,
    pub _pad: u32,
}

/// A run of consecutive page faults a CPU is extending (a few per CPU). User space only clears
/// them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageRun {
    /// First page of the pages counted but not yet sent.
    pub start: u64,
    /// The page a fault must hit to extend the run.
    pub next: u64,
    pub tgid: u32,
    pub tid: u32,
    /// Pages counted from `start`, not yet sent.
    pub pages: u32,
    pub _pad: u32,
}

/// Most Python frames read in the kernel per event. The walk is a bounded loop of this many
/// steps (four user-memory reads each), well inside the verifier's limits.
pub const MAX_FRAMES: usize = 24;
/// Python threads whose `PyThreadState` the kernel knows (entries of `PY_THREADS`).
pub const MAX_PY_THREADS: u32 = 65536;
/// Bytes of a frame read at once: the frame fields of a [`PyLayout`] must lie within this many
/// bytes of the lowest of them.
pub const FRAME_CHUNK: usize = 96;
/// "No such field" in a [`PyLayout`] offset.
pub const NO_OFFSET: u32 = u32::MAX;

/// Where CPython keeps the frame chain, for one process's interpreter version: byte offsets
/// user space derives from the version (or from `_Py_DebugOffsets`). The kernel only follows
/// them; it knows nothing of versions.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PyLayout {
    /// Low bits to clear from the frame's code pointer (tagged `_PyStackRef` in 3.14+), else 0.
    pub code_tag_mask: u64,
    /// In `PyThreadState`: `frame` (3.10), `cframe` (3.11, 3.12) or `current_frame` (3.13+).
    pub tstate_frame: u32,
    /// In `_PyCFrame`: `current_frame`; [`NO_OFFSET`] when the thread state points at the
    /// frame directly (3.10's `frame`, 3.13+'s `current_frame`).
    pub cframe_current: u32,
    /// In `_PyInterpreterFrame`: `f_code` / `f_executable` (3.10: `PyFrameObject.f_code`).
    pub frame_code: u32,
    /// In `_PyInterpreterFrame`: `previous` (3.10: `PyFrameObject.f_back`).
    pub frame_previous: u32,
    /// In `_PyInterpreterFrame`: `prev_instr` / `instr_ptr`; in 3.10's `PyFrameObject`:
    /// the `int f_lasti` (see `instr_is_index`).
    pub frame_instr: u32,
    /// In `_PyInterpreterFrame`: `owner` (one byte); [`NO_OFFSET`] when frames have no owner
    /// (3.10).
    pub frame_owner: u32,
    /// The `owner` value of C-stack shim frames, which are skipped; [`NO_OFFSET`] for none.
    pub owner_cstack: u32,
    /// In `PyCodeObject`: `co_code_adaptive`, so an instruction pointer becomes an offset.
    pub code_adaptive: u32,
    /// In `PyThreadState`: `interp`. With the next two, the kernel gives a thread created by a
    /// known Python thread the new thread state CPython put at the head of the interpreter's
    /// list (its `native_thread_id` still 0), before user space can see it.
    pub tstate_interp: u32,
    /// In `PyInterpreterState`: `threads.head`.
    pub interp_threads_head: u32,
    /// In `PyThreadState`: `native_thread_id` (3.11+), or `thread_id` (3.10's `pthread_t`):
    /// the kernel compares it only with 0, the new thread's tid and the creating thread's
    /// own value.
    pub tstate_native_thread_id: u32,
    /// 1 when `frame_instr` holds an `int` instruction index in code units (3.10's `f_lasti`,
    /// -1 before the first instruction); 0 when it is a pointer into `co_code_adaptive`.
    pub instr_is_index: u32,
}

/// A thread's Python stack as the kernel read it at an event, innermost frame first: the code
/// object address of each frame and the instruction offset in it (in 2-byte code units).
/// A `code` of 0 is a C-stack shim frame (3.12+), to be skipped. An offset past the code (a
/// frame not started yet) has no line: the function's first line stands for it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PyStack {
    /// Frames filled in `code` and `instr_offset`.
    pub depth: u32,
    /// 1 when the stack was deeper than [`MAX_FRAMES`] (the outermost frames are missing).
    pub truncated: u32,
    pub code: [u64; MAX_FRAMES],
    pub instr_offset: [u32; MAX_FRAMES],
}

impl Default for PyStack {
    fn default() -> Self {
        PyStack {
            depth: 0,
            truncated: 0,
            code: [0; MAX_FRAMES],
            instr_offset: [0; MAX_FRAMES],
        }
    }
}

/// The stack the kernel keeps for a paired fd open until the fd is closed or user space takes
/// it, with the thread that made the open (a survivor reaches user space later, from another
/// thread's point of view, so the table cannot say which thread opened it).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FdStack {
    pub tid: u32,
    pub _pad: u32,
    pub stack: PyStack,
}

/// A creating event (fd, thread, page) with the creating thread's Python stack, sent instead
/// of the plain [`Event`] when the thread's `PyThreadState` is known. Told apart by length.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackedEvent {
    pub event: Event,
    pub stack: PyStack,
}

// SAFETY: all are `#[repr(C)]`, made only of integers, with no padding (checked below), so every
// bit pattern is a valid value.
#[cfg(feature = "user")]
unsafe impl aya::Pod for Event {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for PageRun {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for AllocKey {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for PyLayout {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for PyStack {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for FdStack {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for StackedEvent {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for SampleWindow {}

const _: () = assert!(core::mem::size_of::<Event>() == 5 * 8 + 4 * 4);
const _: () = assert!(core::mem::size_of::<PageRun>() == 4 * 8);
const _: () = assert!(core::mem::size_of::<PyLayout>() == 8 + 12 * 4);
const _: () = assert!(core::mem::size_of::<PyStack>() == 8 + MAX_FRAMES * 12);
const _: () = assert!(
    core::mem::size_of::<StackedEvent>()
        == core::mem::size_of::<Event>() + core::mem::size_of::<PyStack>()
);

/// x86_64 syscall numbers (asm/unistd_64.h) of the calls the programs follow.
pub mod nr {
    pub const OPEN: u64 = 2;
    pub const CLOSE: u64 = 3;
    pub const MUNMAP: u64 = 11;
    pub const BRK: u64 = 12;
    pub const PIPE: u64 = 22;
    pub const MREMAP: u64 = 25;
    pub const MADVISE: u64 = 28;
    pub const DUP: u64 = 32;
    pub const DUP2: u64 = 33;
    pub const SOCKET: u64 = 41;
    pub const ACCEPT: u64 = 43;
    pub const SOCKETPAIR: u64 = 53;
    pub const CLONE: u64 = 56;
    pub const FORK: u64 = 57;
    pub const VFORK: u64 = 58;
    pub const FCNTL: u64 = 72;
    pub const CREAT: u64 = 85;
    pub const EPOLL_CREATE: u64 = 213;
    pub const INOTIFY_INIT: u64 = 253;
    pub const OPENAT: u64 = 257;
    pub const SIGNALFD: u64 = 282;
    pub const TIMERFD_CREATE: u64 = 283;
    pub const EVENTFD: u64 = 284;
    pub const ACCEPT4: u64 = 288;
    pub const SIGNALFD4: u64 = 289;
    pub const EVENTFD2: u64 = 290;
    pub const EPOLL_CREATE1: u64 = 291;
    pub const DUP3: u64 = 292;
    pub const PIPE2: u64 = 293;
    pub const INOTIFY_INIT1: u64 = 294;
    pub const PERF_EVENT_OPEN: u64 = 298;
    pub const FANOTIFY_INIT: u64 = 300;
    pub const MEMFD_CREATE: u64 = 319;
    pub const USERFAULTFD: u64 = 323;
    pub const IO_URING_SETUP: u64 = 425;
    pub const PIDFD_OPEN: u64 = 434;
    pub const CLONE3: u64 = 435;
    pub const CLOSE_RANGE: u64 = 436;
    pub const OPENAT2: u64 = 437;
    pub const PIDFD_GETFD: u64 = 438;
}

/// Constants from the kernel's uapi headers that the programs test.
pub mod uapi {
    pub const CLONE_THREAD: u64 = 0x0001_0000;
    pub const F_DUPFD: u64 = 0;
    pub const F_DUPFD_CLOEXEC: u64 = 1030;
    pub const MADV_DONTNEED: u64 = 4;
    pub const MADV_FREE: u64 = 8;
    pub const MADV_REMOVE: u64 = 9;
    pub const CLOSE_RANGE_CLOEXEC: u64 = 1 << 2;
}

//! The syscall programs' logic: which calls are kept at entry, and the event each one makes at
//! exit when it succeeded.

use crate::emit;
use crate::pages::flush_run;
use crate::pairing;
use crate::pystack::emit_created;
use aya_ebpf::{
    helpers::{bpf_probe_read_kernel, bpf_probe_read_user},
    programs::RawTracePointContext,
};
use leak_monitor_common::{kind, nr, uapi};

/// x86_64's `struct pt_regs` (arch/x86/include/asm/ptrace.h) from `r10` to `orig_ax`: the
/// syscall argument registers rdi, rsi, rdx, r10 (only the first four arguments are used) and
/// `orig_ax`, the syscall number. At syscall exit they still hold what the caller passed (the
/// kernel writes only `ax`), so no entry program is needed; one read gets them all.
const REGS_FROM: usize = 56; // r10
const REGS_WORDS: usize = 9; // r10, r9, r8, ax, cx, dx, si, di, orig_ax
const R10: usize = 0;
const DX: usize = 5;
const SI: usize = 6;
const DI: usize = 7;
const ORIG_AX: usize = 8;

/// The syscall number and first four arguments, or `None` when the registers cannot be read.
#[inline(always)]
fn registers(regs: u64) -> Option<(u64, [u64; 4])> {
    // SAFETY: bpf_probe_read_kernel checks the address.
    let words =
        unsafe { bpf_probe_read_kernel((regs as usize + REGS_FROM) as *const [u64; REGS_WORDS]) }
            .ok()?;
    Some((
        words[ORIG_AX],
        [words[DI], words[SI], words[DX], words[R10]],
    ))
}

/// Whether the exit of this syscall can make an event.
#[inline(always)]
fn followed_call(id: u64) -> bool {
    matches!(
        id,
        nr::OPEN
            | nr::OPENAT
            | nr::OPENAT2
            | nr::CREAT
            | nr::CLOSE
            | nr::CLOSE_RANGE
            | nr::SOCKET
            | nr::SOCKETPAIR
            | nr::ACCEPT
            | nr::ACCEPT4
            | nr::PIPE
            | nr::PIPE2
            | nr::DUP
            | nr::DUP2
            | nr::DUP3
            | nr::FCNTL
            | nr::EVENTFD
            | nr::EVENTFD2
            | nr::EPOLL_CREATE
            | nr::EPOLL_CREATE1
            | nr::TIMERFD_CREATE
            | nr::SIGNALFD
            | nr::SIGNALFD4
            | nr::MEMFD_CREATE
            | nr::INOTIFY_INIT
            | nr::INOTIFY_INIT1
            | nr::PIDFD_OPEN
            | nr::PIDFD_GETFD
            | nr::USERFAULTFD
            | nr::PERF_EVENT_OPEN
            | nr::FANOTIFY_INIT
            | nr::IO_URING_SETUP
            | nr::CLONE
            | nr::CLONE3
            | nr::FORK
            | nr::VFORK
            | nr::MUNMAP
            | nr::MADVISE
            | nr::MREMAP
            | nr::BRK
    )
}

/// `sys_exit`: TP_PROTO(struct pt_regs *regs, long ret).
#[inline(always)]
pub fn on_exit(ctx: &RawTracePointContext, tgid: u32, tid: u32) {
    let Some((id, [a0, a1, a2, a3])) = registers(ctx.arg(0)) else {
        return;
    };
    if !followed_call(id) {
        return;
    }
    let ret: i64 = ctx.arg(1);
    if ret < 0 {
        return;
    }
    let ret = ret as u64;
    let detail = id as u32;
    if matches!(id, nr::MUNMAP | nr::MADVISE | nr::MREMAP | nr::BRK) {
        // Pages this CPU counted but has not sent must reach user space before the event that
        // may give them back.
        flush_run(tgid);
    }
    // One emission point per kind of event, so the frame walk is verified once, not once per
    // syscall.
    let created = match id {
        nr::CLOSE => {
            if !pairing::closed(tgid, a0) {
                emit(tgid, tid, kind::FD_CLOSE, detail, a0, 0, 0, 0);
            }
            return;
        }
        nr::CLOSE_RANGE => {
            if a2 & uapi::CLOSE_RANGE_CLOEXEC == 0 {
                emit(tgid, tid, kind::FD_CLOSE_RANGE, detail, a0, a1, 0, 0);
            }
            return;
        }
        nr::PIPE | nr::PIPE2 => pair(a0),
        nr::SOCKETPAIR => pair(a3),
        nr::FCNTL => {
            // Only F_DUPFD* make an fd; other commands return flags, owners, ...
            if a1 != uapi::F_DUPFD && a1 != uapi::F_DUPFD_CLOEXEC {
                return;
            }
            Some((kind::FD_OPEN, ret, a0))
        }
        // `b` carries the source fd, so user space can give the copy the original's kind.
        nr::DUP | nr::DUP2 | nr::DUP3 => Some((kind::FD_OPEN, ret, a0)),
        nr::CLONE => thread_or_fork(a0, ret),
        nr::CLONE3 => {
            // struct clone_args starts with `__aligned_u64 flags`.
            // SAFETY: bpf_probe_read_user checks the address.
            let flags = unsafe { bpf_probe_read_user(a0 as *const u64) }.unwrap_or(0);
            thread_or_fork(flags, ret)
        }
        nr::FORK | nr::VFORK => {
            if ret > 0 {
                emit(tgid, tid, kind::FORK, detail, ret, 0, 0, 0);
            }
            return;
        }
        nr::MUNMAP => return emit(tgid, tid, kind::UNMAP, detail, a0, a1, 0, 0),
        nr::MADVISE => {
            if a2 == uapi::MADV_DONTNEED || a2 == uapi::MADV_FREE || a2 == uapi::MADV_REMOVE {
                emit(tgid, tid, kind::UNMAP, detail, a0, a1, 0, 0);
            }
            return;
        }
        // mremap returns the new address; `a2` is the new length.
        nr::MREMAP => return emit(tgid, tid, kind::REMAP, detail, a0, a1, ret, a2),
        nr::BRK => return emit(tgid, tid, kind::BRK, detail, ret, 0, 0, 0),
        // Accepts stay events: each is counted (the unit of `per_event`).
        nr::ACCEPT | nr::ACCEPT4 => Some((kind::FD_OPEN, ret, 0)),
        _ => {
            if pairing::opened(tgid, tid, id, ret) {
                return;
            }
            Some((kind::FD_OPEN, ret, 0))
        }
    };
    // An fd sent as an event: the pairing table must not hold an older open of its number.
    match created {
        Some((kind::FD_OPEN, fd, _)) => pairing::forget(tgid, fd),
        Some((kind::FD_OPEN_PAIR, first, second)) => {
            pairing::forget(tgid, first);
            pairing::forget(tgid, second);
        }
        _ => {}
    }
    match created {
        Some((kind::FORK, child, _)) => emit(tgid, tid, kind::FORK, 0, child, 0, 0, 0),
        // THREAD_NEW's detail is 0, as before.
        Some((kind::THREAD_NEW, child, _)) => {
            crate::pystack::adopt_child(tgid, tid, child as u32);
            emit_created(tgid, tid, kind::THREAD_NEW, 0, child, 0, 0, 0)
        }
        Some((kind, a, b)) => emit_created(tgid, tid, kind, detail, a, b, 0, 0),
        None => {}
    }
}

/// clone/clone3 returned `child` (> 0 in the parent): a thread or a new process.
#[inline(always)]
fn thread_or_fork(flags: u64, child: u64) -> Option<(u32, u64, u64)> {
    if child == 0 {
        return None;
    }
    let kind = if flags & uapi::CLONE_THREAD != 0 {
        kind::THREAD_NEW
    } else {
        kind::FORK
    };
    Some((kind, child, 0))
}

/// pipe/pipe2/socketpair wrote two fds into the caller's `int[2]`.
#[inline(always)]
fn pair(array: u64) -> Option<(u32, u64, u64)> {
    // SAFETY: bpf_probe_read_user checks the address.
    let fds = unsafe { bpf_probe_read_user(array as *const [i32; 2]) }.ok()?;
    Some((kind::FD_OPEN_PAIR, fds[0] as u64, fds[1] as u64))
}

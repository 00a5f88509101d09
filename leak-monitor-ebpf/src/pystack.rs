//! The in-kernel Python frame walk: at a creating event on a thread whose `PyThreadState` user
//! space registered, follow the thread's frame chain with the offsets user space installed for
//! its process, and send the event with the stack (code object + instruction offset per frame).
//!
//! Nothing here knows CPython versions: `PyLayout` says where each pointer lives. A failed read
//! ends the walk with what was read so far.

use crate::{emit, EVENTS};
use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, bpf_probe_read_user, bpf_probe_read_user_buf},
    macros::map,
    maps::HashMap,
};
use leak_monitor_common::{
    Event, PyLayout, PyStack, StackedEvent, FRAME_CHUNK, MAX_FRAMES, MAX_PY_THREADS, MAX_TARGETS,
    NO_OFFSET,
};

/// Words of the buffer a frame is read into: a power of two at least FRAME_CHUNK / 8, so an
/// index is bounded by a mask the verifier understands.
const WINDOW_WORDS: usize = 16;
const _: () = assert!(WINDOW_WORDS * 8 >= FRAME_CHUNK && WINDOW_WORDS.is_power_of_two());

/// Python threads of followed processes: tid -> address of its `PyThreadState`.
#[map]
static PY_THREADS: HashMap<u32, u64> = HashMap::with_max_entries(MAX_PY_THREADS, 0);

/// Followed Python processes whose frames can be read: tgid -> the layout of their CPython.
#[map]
static PY_LAYOUT: HashMap<u32, PyLayout> = HashMap::with_max_entries(MAX_TARGETS, 0);

/// Python thread `parent` (of `tgid`) made thread `child`. CPython links the child's new
/// thread state at the head of the interpreter's list before starting it, and the child fills
/// in its own `native_thread_id` only once it runs; so a head whose id is not yet some other
/// thread's is the child's.
/// Registering it now gives the child's first events their stacks; user space's refresh
/// corrects the entry if two threads started at once.
#[inline(always)]
pub fn adopt_child(tgid: u32, parent: u32, child: u32) {
    // SAFETY: copied out at once.
    let Some(layout) = (unsafe { PY_LAYOUT.get(&tgid) }).copied() else {
        return;
    };
    // SAFETY: copied out at once.
    let Some(tstate) = (unsafe { PY_THREADS.get(&parent) }).copied() else {
        return;
    };
    let Some(interp) = read_u64(tstate + u64::from(layout.tstate_interp)) else {
        return;
    };
    let Some(head) = read_u64(interp + u64::from(layout.interp_threads_head)) else {
        return;
    };
    if head == 0 || head == tstate {
        return;
    }
    // Not started yet: 0 (3.12+) or the creating thread's own value (3.10's `pthread_t` and
    // 3.11's id are filled in by the thread that allocates the state); the child's own id if
    // it already ran.
    let id = read_u64(head + u64::from(layout.tstate_native_thread_id));
    let mine = read_u64(tstate + u64::from(layout.tstate_native_thread_id));
    if id == Some(0) || id == mine || id == Some(u64::from(child)) {
        let _ = PY_THREADS.insert(&child, &head, 0);
    }
}

/// A thread exited: its `PyThreadState` is gone, and its tid may be reused.
#[inline(always)]
pub fn forget_thread(tid: u32) {
    let _ = PY_THREADS.remove(&tid);
}

#[inline(always)]
fn read_u64(address: u64) -> Option<u64> {
    // SAFETY: bpf_probe_read_user checks the address; a bad one is an error, not a fault.
    unsafe { bpf_probe_read_user(address as *const u64) }.ok()
}

/// Sends a creating event, with the thread's Python stack when it can be read.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn emit_created(tgid: u32, tid: u32, kind: u32, detail: u32, a: u64, b: u64, c: u64, d: u64) {
    // Non-Python targets stop at this one lookup, then take the plain path.
    // SAFETY: copied out at once.
    let Some(layout) = (unsafe { PY_LAYOUT.get(&tgid) }).copied() else {
        return emit(tgid, tid, kind, detail, a, b, c, d);
    };
    // SAFETY: copied out at once.
    let Some(tstate) = (unsafe { PY_THREADS.get(&tid) }).copied() else {
        return emit(tgid, tid, kind, detail, a, b, c, d);
    };
    let Some(mut entry) = EVENTS.reserve::<StackedEvent>(0) else {
        return crate::count(kind);
    };
    let record = entry.as_mut_ptr();
    // SAFETY: `record` points at the reserved, writable ring buffer slot of one StackedEvent;
    // every field read by user space is written before submit.
    unsafe {
        (*record).event = Event {
            ts_ns: bpf_ktime_get_ns(),
            a,
            b,
            c,
            d,
            tgid,
            tid,
            kind,
            detail,
        };
        let stack = core::ptr::addr_of_mut!((*record).stack);
        let (depth, truncated) = walk(&layout, tstate, stack);
        (*stack).depth = depth;
        (*stack).truncated = truncated;
    }
    entry.submit(crate::wakeup_flag(core::mem::size_of::<StackedEvent>()));
}

/// Whether thread `tid` of `tgid` has a Python stack the kernel can walk.
#[inline(always)]
pub fn walkable(tgid: u32, tid: u32) -> Option<(PyLayout, u64)> {
    // SAFETY: copied out at once.
    let layout = (unsafe { PY_LAYOUT.get(&tgid) }).copied()?;
    // SAFETY: copied out at once.
    let tstate = (unsafe { PY_THREADS.get(&tid) }).copied()?;
    Some((layout, tstate))
}

/// Walks the stack of the thread whose state is `tstate` into `stack`.
///
/// # Safety
/// `stack` must point at a writable `PyStack`.
#[inline(always)]
pub unsafe fn walk_into(layout: &PyLayout, tstate: u64, stack: *mut PyStack) {
    // SAFETY: the caller's pointer is writable.
    unsafe {
        let (depth, truncated) = walk(layout, tstate, stack);
        (*stack).depth = depth;
        (*stack).truncated = truncated;
    }
}

/// Fills the frames of `stack` and returns (depth, truncated).
///
/// Slot `i` is always the `i`-th frame of the chain, and the loop body has no data-dependent
/// branches but its early exits, so the verifier's states merge at every iteration: a C-stack
/// shim frame is written with code 0 (user space skips it), a frame that has not started yet
/// gets a wrapped offset (user space finds no line for it and uses the first line).
///
/// # Safety
/// `stack` must point at a writable `PyStack`.
#[inline(always)]
unsafe fn walk(layout: &PyLayout, tstate: u64, stack: *mut PyStack) -> (u32, u32) {
    let Some(mut frame) = read_u64(tstate + u64::from(layout.tstate_frame)) else {
        return (0, 0);
    };
    if layout.cframe_current != NO_OFFSET {
        if frame == 0 {
            return (0, 0);
        }
        match read_u64(frame + u64::from(layout.cframe_current)) {
            Some(current) => frame = current,
            None => return (0, 0),
        }
    }
    let shim_owner = u64::from(layout.owner_cstack);
    // The four frame fields are read in one go: a FRAME_CHUNK-byte window from the lowest of
    // their offsets rounded down to 8 (user space checks that the layout fits in it and that
    // the pointers are 8-byte aligned), kept as words so each field is one masked load.
    let base = layout
        .frame_code
        .min(layout.frame_previous)
        .min(layout.frame_instr)
        .min(layout.frame_owner)
        & !7;
    let index = |offset: u32| ((offset - base) / 8) as usize;
    let (at_code, at_previous, at_instr, at_owner) = (
        index(layout.frame_code),
        index(layout.frame_previous),
        index(layout.frame_instr),
        index(layout.frame_owner),
    );
    let owner_shift = ((layout.frame_owner - base) % 8) * 8;
    let mut chunk = [0u64; WINDOW_WORDS];
    let mut depth = 0;
    while depth < MAX_FRAMES {
        if frame == 0 {
            return (depth as u32, 0);
        }
        // SAFETY: bpf_probe_read_user checks the address; the destination is the first
        // FRAME_CHUNK bytes of `chunk`, which has WINDOW_WORDS * 8 >= FRAME_CHUNK bytes.
        let read = unsafe {
            let bytes =
                core::slice::from_raw_parts_mut(chunk.as_mut_ptr().cast::<u8>(), FRAME_CHUNK);
            bpf_probe_read_user_buf((frame + u64::from(base)) as *const u8, bytes)
        };
        if read.is_err() {
            break;
        }
        let word = |i: usize| chunk[i & (WINDOW_WORDS - 1)];
        let code = word(at_code);
        let instr = word(at_instr);
        let owner = (word(at_owner) >> owner_shift) & 0xff;
        let previous = word(at_previous);
        // 0 for a shim (owner == owner_cstack), all ones otherwise; NO_OFFSET never matches
        // a byte.
        let keep = ((owner ^ shim_owner) != 0) as u64;
        let code = code & !layout.code_tag_mask & keep.wrapping_neg();
        let start = code.wrapping_add(u64::from(layout.code_adaptive));
        // 3.10 keeps an instruction index (`int f_lasti`), 3.11+ a pointer into the code.
        let is_index = u64::from(layout.instr_is_index != 0).wrapping_neg();
        let from_pointer = instr.wrapping_sub(start) >> 1;
        let offset = ((instr & 0xFFFF_FFFF & is_index) | (from_pointer & !is_index)) as u32;
        // SAFETY: `depth < MAX_FRAMES`, and the caller's pointer is writable.
        unsafe {
            (*stack).code[depth] = code;
            (*stack).instr_offset[depth] = offset;
        }
        depth += 1;
        frame = previous;
    }
    (depth as u32, u32::from(frame != 0))
}

//! The frame walk of `leak-monitor-ebpf/src/pystack.rs`, in user space: the same `PyLayout`,
//! the same window read per frame, the same arithmetic, into the same `PyStack`. It reads a
//! thread's stack from outside when the kernel cannot (checks, recorded fixtures), and it is
//! the walk's executable specification: the fixtures of every CPython version replay through it.

use super::memory::Memory;
use leak_monitor_common::{PyLayout, PyStack, FRAME_CHUNK, MAX_FRAMES, NO_OFFSET};

/// The stack of the thread whose `PyThreadState` is at `tstate`, innermost frame first. A
/// failed read ends the walk with what was read so far, as in the kernel.
pub fn read_stack(memory: &dyn Memory, layout: &PyLayout, tstate: u64) -> PyStack {
    let mut stack = PyStack::default();
    let Ok(mut frame) = memory.read_u64(tstate + u64::from(layout.tstate_frame)) else {
        return stack;
    };
    if layout.cframe_current != NO_OFFSET {
        if frame == 0 {
            return stack;
        }
        match memory.read_u64(frame + u64::from(layout.cframe_current)) {
            Ok(current) => frame = current,
            Err(_) => return stack,
        }
    }
    let base = layout
        .frame_code
        .min(layout.frame_previous)
        .min(layout.frame_instr)
        .min(layout.frame_owner)
        & !7;
    let field = |chunk: &[u8; FRAME_CHUNK], offset: u32| -> u64 {
        let at = (offset - base) as usize;
        let mut word = [0u8; 8];
        for (i, b) in word.iter_mut().enumerate() {
            *b = chunk.get(at + i).copied().unwrap_or(0);
        }
        u64::from_le_bytes(word)
    };
    let mut depth = 0;
    while depth < MAX_FRAMES {
        if frame == 0 {
            stack.depth = depth as u32;
            return stack;
        }
        let mut chunk = [0u8; FRAME_CHUNK];
        if memory.read(frame + u64::from(base), &mut chunk).is_err() {
            break;
        }
        let mut code = field(&chunk, layout.frame_code) & !layout.code_tag_mask;
        let instr = field(&chunk, layout.frame_instr);
        let is_shim = layout.frame_owner != NO_OFFSET
            && u64::from(layout.owner_cstack) == field(&chunk, layout.frame_owner) & 0xff;
        if is_shim {
            code = 0;
        }
        stack.code[depth] = code;
        stack.instr_offset[depth] = if layout.instr_is_index != 0 {
            instr as u32
        } else {
            let start = code.wrapping_add(u64::from(layout.code_adaptive));
            (instr.wrapping_sub(start) >> 1) as u32
        };
        depth += 1;
        frame = field(&chunk, layout.frame_previous);
    }
    // Deeper than MAX_FRAMES, or a frame that could not be read: outer frames are missing.
    stack.depth = depth as u32;
    stack.truncated = u32::from(frame != 0);
    stack
}

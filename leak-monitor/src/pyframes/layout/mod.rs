//! Where CPython keeps what the frame walk needs, per version: the one place in leak-monitor
//! that knows CPython's struct layouts (x86_64, default non-free-threaded builds).
//!
//! 3.10, 3.11 and 3.12 come from tables measured against CPython's headers (`offsetof` over
//! frameobject.h or pycore_frame.h, cpython/pystate.h, cpython/code.h, pycore_runtime.h,
//! pycore_interp.h); 3.13+ publish their own offsets in `_Py_DebugOffsets` at the start of
//! `_PyRuntime`, decoded here. A table is checked against the live process before use
//! (`super::check`).

use super::linetable::LineTableFormat;
use super::FramesError;
use leak_monitor_common::{PyLayout, NO_OFFSET};

/// Offsets into `PyCodeObject`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeLayout {
    pub filename: u64,
    pub name: u64,
    pub qualname: u64,
    pub linetable: u64,
    pub firstlineno: u64,
    /// `co_code_adaptive`: the end of the fixed part, read in one go.
    pub adaptive: u64,
}

/// Offsets into strings and bytes objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectLayout {
    /// `PyASCIIObject.length`.
    pub unicode_length: u64,
    /// `PyASCIIObject.state` (bit fields: kind bits 2-4, compact bit 5, ascii bit 6).
    pub unicode_state: u64,
    /// `sizeof(PyASCIIObject)`: where a compact ASCII string's characters start.
    pub ascii_size: u64,
    /// `sizeof(PyCompactUnicodeObject)`: where a compact non-ASCII string's characters start.
    pub compact_size: u64,
    /// `PyVarObject.ob_size` of a bytes object.
    pub bytes_size: u64,
    /// `PyBytesObject.ob_sval`.
    pub bytes_data: u64,
}

/// How a thread state names its OS thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadIdent {
    /// 3.11+: `native_thread_id` holds the tid.
    Native,
    /// 3.10: only `thread_id`, a `pthread_t`: glibc's `struct pthread`, whose `tid` lies at
    /// this offset (x86_64 glibc 2.x; checked against /proc/PID/task before use).
    Pthread { tid_offset: u64 },
}

/// glibc x86_64: `offsetof(struct pthread, tid)` (measured: `threading.get_native_id()`
/// equals the `int` at `threading.get_ident() + 0x2d0` under glibc 2.36).
pub const GLIBC_PTHREAD_TID: u64 = 0x2d0;

/// Everything user space and the kernel need for one CPython version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub major: u8,
    pub minor: u8,
    /// `_PyRuntime.interpreters.head`.
    pub runtime_interpreters_head: u64,
    /// `PyInterpreterState.next`.
    pub interp_next: u64,
    /// `PyInterpreterState.threads.head`.
    pub interp_threads_head: u64,
    /// `PyThreadState.next`.
    pub tstate_next: u64,
    /// `PyThreadState.native_thread_id` (3.10: `thread_id`, see `thread_ident`).
    pub tstate_native_thread_id: u64,
    pub thread_ident: ThreadIdent,
    pub code: CodeLayout,
    pub objects: ObjectLayout,
    pub linetable: LineTableFormat,
    /// What the kernel follows.
    pub kernel: PyLayout,
}

const OBJECTS_311: ObjectLayout = ObjectLayout {
    unicode_length: 16,
    unicode_state: 32,
    // 3.11 still has `wchar_t *wstr` (and `wstr_length` in the compact form).
    ascii_size: 48,
    compact_size: 72,
    bytes_size: 16,
    bytes_data: 32,
};

const OBJECTS_312: ObjectLayout = ObjectLayout {
    ascii_size: 40,
    compact_size: 56,
    ..OBJECTS_311
};

/// 3.10: `tstate->frame` is a `PyFrameObject` chain (`f_back`), `f_lasti` an instruction
/// index; code objects have no `co_qualname` (the name stands in) and the 3.10 line table.
const V3_10: Layout = Layout {
    major: 3,
    minor: 10,
    runtime_interpreters_head: 32,
    interp_next: 0,
    interp_threads_head: 8,
    tstate_next: 8,
    tstate_native_thread_id: 176,
    thread_ident: ThreadIdent::Pthread {
        tid_offset: GLIBC_PTHREAD_TID,
    },
    code: CodeLayout {
        filename: 104,
        name: 112,
        qualname: 112,
        linetable: 120,
        firstlineno: 40,
        // `sizeof(PyCodeObject)`: 3.10 keeps its bytecode in a separate `co_code` object.
        adaptive: 176,
    },
    objects: OBJECTS_311,
    linetable: LineTableFormat::Pairs310,
    kernel: PyLayout {
        code_tag_mask: 0,
        tstate_frame: 24,
        cframe_current: NO_OFFSET,
        frame_code: 32,
        frame_previous: 24,
        frame_instr: 96,
        frame_owner: NO_OFFSET,
        owner_cstack: NO_OFFSET,
        code_adaptive: 0,
        tstate_interp: 16,
        interp_threads_head: 8,
        tstate_native_thread_id: 176,
        instr_is_index: 1,
    },
};

/// 3.11: `tstate->cframe->current_frame`; frames are `_PyInterpreterFrame` with `f_code` at 32
/// and no C-stack shims (entry frames are real Python frames, marked by `is_entry`).
const V3_11: Layout = Layout {
    major: 3,
    minor: 11,
    runtime_interpreters_head: 40,
    interp_next: 0,
    interp_threads_head: 16,
    tstate_next: 8,
    tstate_native_thread_id: 160,
    thread_ident: ThreadIdent::Native,
    code: CodeLayout {
        filename: 112,
        name: 120,
        qualname: 128,
        linetable: 136,
        firstlineno: 72,
        adaptive: 184,
    },
    objects: OBJECTS_311,
    linetable: LineTableFormat::Locations,
    kernel: PyLayout {
        code_tag_mask: 0,
        tstate_frame: 56,
        // `_PyCFrame { uint8_t use_tracing; _PyInterpreterFrame *current_frame; ... }`
        cframe_current: 8,
        frame_code: 32,
        frame_previous: 48,
        frame_instr: 56,
        frame_owner: 69,
        owner_cstack: NO_OFFSET,
        code_adaptive: 184,
        tstate_interp: 16,
        interp_threads_head: 16,
        tstate_native_thread_id: 160,
        instr_is_index: 0,
    },
};

/// 3.12: `_PyCFrame` lost `use_tracing`; frames start with `f_code`, `previous`; the
/// interpreter's C entry points push `FRAME_OWNED_BY_CSTACK` (3) shims.
const V3_12: Layout = Layout {
    major: 3,
    minor: 12,
    runtime_interpreters_head: 40,
    interp_next: 0,
    interp_threads_head: 72,
    tstate_next: 8,
    tstate_native_thread_id: 144,
    thread_ident: ThreadIdent::Native,
    code: CodeLayout {
        filename: 112,
        name: 120,
        qualname: 128,
        linetable: 136,
        firstlineno: 68,
        adaptive: 192,
    },
    objects: OBJECTS_312,
    linetable: LineTableFormat::Locations,
    kernel: PyLayout {
        code_tag_mask: 0,
        tstate_frame: 56,
        cframe_current: 0,
        frame_code: 0,
        frame_previous: 8,
        frame_instr: 56,
        frame_owner: 70,
        owner_cstack: 3,
        code_adaptive: 192,
        tstate_interp: 16,
        interp_threads_head: 72,
        tstate_native_thread_id: 144,
        instr_is_index: 0,
    },
};

/// Do the frame fields the kernel reads lie in one `FRAME_CHUNK`-byte window, as the kernel
/// reads them (from the lowest field's offset rounded down to 8, pointers as aligned words)?
/// A missing `owner` ([`NO_OFFSET`], 3.10) is left out: the kernel never matches it.
pub fn fits_frame_chunk(kernel: &PyLayout) -> bool {
    let pointers = [kernel.frame_code, kernel.frame_previous, kernel.frame_instr];
    let fields = [
        kernel.frame_code,
        kernel.frame_previous,
        kernel.frame_instr,
        kernel.frame_owner,
    ];
    let fields = fields.iter().filter(|&&f| f != NO_OFFSET);
    let low = fields.clone().min().copied().unwrap_or(0) & !7;
    let high = fields.max().copied().unwrap_or(0);
    // Pointers are 8 bytes, so the highest 8-byte field must end inside the window too.
    pointers.iter().all(|p| p % 8 == 0)
        && (high - low) as usize <= leak_monitor_common::FRAME_CHUNK - 8
}

/// The layout from a table, for the versions that have one.
pub fn from_table(major: u8, minor: u8) -> Option<Layout> {
    match (major, minor) {
        (3, 10) => Some(V3_10),
        (3, 11) => Some(V3_11),
        (3, 12) => Some(V3_12),
        _ => None,
    }
}

/// Does this version publish `_Py_DebugOffsets`?
pub fn has_debug_offsets(major: u8, minor: u8) -> bool {
    major == 3 && minor >= 13
}

/// Bytes to read from the start of `_PyRuntime` to decode its `_Py_DebugOffsets`.
pub const DEBUG_OFFSETS_PREFIX: usize = 8 * 64;

/// How one version lays out the leading sections of `_Py_DebugOffsets` (runtime, interpreter,
/// thread, frame, code), each a run of `u64`s starting with its struct's `size`, after the
/// header (`char cookie[8]`, `uint64_t version`, `uint64_t free_threaded`).
struct DebugShape {
    /// The number of fields of each leading section.
    lengths: [usize; 5],
    /// Words between the thread and frame sections (3.15's size-less `err_stackitem`).
    gap_after_thread: usize,
    /// The index of `native_thread_id` in the thread section.
    thread_native_id: usize,
}

fn debug_shape(minor: u8) -> Option<DebugShape> {
    match minor {
        13 => Some(DebugShape {
            lengths: [3, 13, 9, 6, 10],
            gap_after_thread: 0,
            thread_native_id: 6,
        }),
        14 => Some(DebugShape {
            lengths: [3, 16, 9, 8, 11],
            gap_after_thread: 0,
            thread_native_id: 6,
        }),
        // 3.15 added the base and last-profiled frames, the GIL and exception fields to the
        // thread section, and `err_stackitem` after it.
        15 => Some(DebugShape {
            lengths: [3, 16, 16, 8, 11],
            gap_after_thread: 1,
            thread_native_id: 9,
        }),
        _ => None,
    }
}

const COOKIE: &[u8; 8] = b"xdebugpy";

/// The leading sections of `_Py_DebugOffsets`, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugSection {
    Runtime = 0,
    Interpreter = 1,
    Thread = 2,
    Frame = 3,
    Code = 4,
}

/// The version, the word index where each leading section starts, and the thread section's
/// `native_thread_id` index, checked against the cookie and the free-threaded flag.
fn debug_sections(bytes: &[u8]) -> Result<(u8, u8, [usize; 5], usize), FramesError> {
    if bytes.get(..8) != Some(&COOKIE[..]) {
        return Err(FramesError::DebugOffsets("no xdebugpy cookie"));
    }
    let version = debug_word(bytes, 1)?;
    let major = ((version >> 24) & 0xFF) as u8;
    let minor = ((version >> 16) & 0xFF) as u8;
    if debug_word(bytes, 2)? != 0 {
        return Err(FramesError::FreeThreaded(
            format!("{major}.{minor}t"),
            "its _Py_DebugOffsets say so",
        ));
    }
    let shape = debug_shape(minor)
        .filter(|_| major == 3)
        .ok_or_else(|| FramesError::Unsupported(format!("{major}.{minor}")))?;
    let mut starts = [0usize; 5];
    let mut at = 3;
    for (section, (start, len)) in starts.iter_mut().zip(shape.lengths).enumerate() {
        if section == DebugSection::Frame as usize {
            at += shape.gap_after_thread;
        }
        *start = at;
        at += len;
    }
    Ok((major, minor, starts, shape.thread_native_id))
}

fn debug_word(bytes: &[u8], index: usize) -> Result<u64, FramesError> {
    bytes
        .get(index * 8..index * 8 + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or(FramesError::DebugOffsets("truncated"))
}

/// One field of `_Py_DebugOffsets` (read from the start of `_PyRuntime`): the `index`-th
/// `u64` of `section`, whose field 0 is its struct's size.
pub fn debug_offset(bytes: &[u8], section: DebugSection, index: usize) -> Result<u64, FramesError> {
    let (_, _, starts, _) = debug_sections(bytes)?;
    debug_word(bytes, starts[section as usize] + index)
}

/// Decodes `_Py_DebugOffsets` (CPython 3.13-3.15) from the first bytes of `_PyRuntime`.
pub fn from_debug_offsets(bytes: &[u8]) -> Result<Layout, FramesError> {
    let word = |index: usize| debug_word(bytes, index);
    let (major, minor, starts, native_id) = debug_sections(bytes)?;
    let [runtime, interp, thread, frame, code] = starts;
    let field = |section: usize, index: usize| word(section + index);
    let small = |value: u64| -> Result<u32, FramesError> {
        u32::try_from(value)
            .ok()
            .filter(|v| *v < 1 << 20)
            .ok_or(FramesError::DebugOffsets("offset out of range"))
    };
    let adaptive = field(code, 9)?;
    let layout = Layout {
        major,
        minor,
        runtime_interpreters_head: field(runtime, 2)?,
        interp_next: field(interp, 2)?,
        interp_threads_head: field(interp, 3)?,
        tstate_next: field(thread, 2)?,
        tstate_native_thread_id: field(thread, native_id)?,
        thread_ident: ThreadIdent::Native,
        code: CodeLayout {
            filename: field(code, 1)?,
            name: field(code, 2)?,
            qualname: field(code, 3)?,
            linetable: field(code, 4)?,
            firstlineno: field(code, 5)?,
            adaptive,
        },
        objects: OBJECTS_312,
        linetable: LineTableFormat::Locations,
        kernel: PyLayout {
            // 3.14+'s `f_executable` is a `_PyStackRef`: its low bits are tags.
            code_tag_mask: if minor >= 14 { 0b11 } else { 0 },
            tstate_frame: small(field(thread, 4)?)?,
            cframe_current: NO_OFFSET,
            frame_code: small(field(frame, 2)?)?,
            frame_previous: small(field(frame, 1)?)?,
            frame_instr: small(field(frame, 3)?)?,
            frame_owner: small(field(frame, 5)?)?,
            owner_cstack: 3,
            code_adaptive: small(adaptive)?,
            tstate_interp: small(field(thread, 3)?)?,
            interp_threads_head: small(field(interp, 3)?)?,
            tstate_native_thread_id: small(field(thread, native_id)?)?,
            instr_is_index: 0,
        },
    };
    // Every offset must lie inside its struct, whose size each section starts with.
    let inside = |offset: u64, section: usize| -> Result<(), FramesError> {
        let size = field(section, 0)?;
        (offset < size)
            .then_some(())
            .ok_or(FramesError::DebugOffsets("offset past its struct"))
    };
    inside(layout.runtime_interpreters_head, runtime)?;
    inside(layout.interp_threads_head, interp)?;
    inside(layout.tstate_native_thread_id, thread)?;
    inside(u64::from(layout.kernel.tstate_frame), thread)?;
    inside(u64::from(layout.kernel.frame_owner), frame)?;
    inside(layout.code.firstlineno, code)?;
    Ok(layout)
}

#[cfg(test)]
mod tests;

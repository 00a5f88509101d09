//! Where CPython keeps what a heap census reads, per version (x86_64, default builds): the
//! one place in `pyheap` that knows versions.
//!
//! 3.11 and 3.12 come from tables measured against CPython's own headers (`offsetof` over
//! `pycore_interp.h`, `pycore_dict.h`, `cpython/object.h`); 3.13+ take the interpreter's
//! `gc` and `imports.modules` offsets, the frame's `localsplus` and the code's
//! `co_localsplusnames` from `_Py_DebugOffsets`. What every version 3.11-3.15 shares (the
//! early fields of `PyTypeObject`, `PyDictObject`, `PyDictKeysObject`, sets, lists,
//! functions, methods, cells, modules) is a constant here. Each layout is checked against the
//! live process before a census trusts it (`census::check_layout`).

use crate::pyframes::layout::{debug_offset, DebugSection, Layout};
use crate::pyframes::FramesError;

/// How an instance of a class with `Py_TPFLAGS_MANAGED_DICT` keeps its attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManagedDict {
    /// 3.11: a dict pointer three words before the object, a values pointer four before.
    Split,
    /// 3.12: one word three before the object: a dict, or values tagged by `- 1`.
    Tagged,
    /// 3.13+: a dict pointer three words before, else values inline after the object.
    Inline,
}

/// The offsets a census needs for one CPython version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapLayout {
    pub minor: u8,
    /// The thread and frame walk (`pyframes`' layout of the same interpreter).
    pub frames: Layout,
    /// `PyInterpreterState.gc`: the collector's state with the generation lists.
    pub interp_gc: u64,
    /// `PyInterpreterState.modules` (3.11) or `.imports.modules`: `sys.modules`.
    pub interp_modules: u64,
    /// `PyDictValues.values`.
    pub dict_values: u64,
    pub managed_dict: ManagedDict,
    /// `PyHeapTypeObject.ht_cached_keys`: the shared keys of a class's instances.
    pub ht_cached_keys: u64,
    /// `_PyInterpreterFrame.localsplus`.
    pub frame_localsplus: u64,
    /// `PyCodeObject.co_localsplusnames`.
    pub code_localsplusnames: u64,
    /// Tag bits of a frame's locals (3.14+'s `_PyStackRef`).
    pub local_tag_mask: u64,
    /// `PyTupleObject.ob_item` (3.14+ cache the tuple's hash before it).
    pub tuple_items: u64,
}

/// Offsets shared by CPython 3.11-3.15.
pub mod shared {
    pub const OB_TYPE: u64 = 8;
    /// `PyVarObject.ob_size` (lists, tuples, deques, bytes, ints' digit count in 3.11).
    pub const OB_SIZE: u64 = 16;
    pub const TP_NAME: u64 = 24;
    pub const TP_BASICSIZE: u64 = 32;
    pub const TP_ITEMSIZE: u64 = 40;
    pub const TP_FLAGS: u64 = 168;
    pub const TP_BASE: u64 = 256;
    pub const TP_DICT: u64 = 264;
    pub const TP_DICTOFFSET: u64 = 288;
    pub const TP_MRO: u64 = 344;
    pub const DICT_USED: u64 = 16;
    pub const DICT_KEYS: u64 = 32;
    pub const DICT_VALUES: u64 = 40;
    pub const KEYS_LOG2_INDEX_BYTES: u64 = 9;
    pub const KEYS_KIND: u64 = 10;
    pub const KEYS_NENTRIES: u64 = 24;
    pub const KEYS_INDICES: u64 = 32;
    pub const SET_USED: u64 = 24;
    pub const SET_MASK: u64 = 32;
    pub const SET_TABLE: u64 = 40;
    pub const LIST_ITEMS: u64 = 24;
    pub const LIST_ALLOCATED: u64 = 32;
    pub const MODULE_DICT: u64 = 16;
    pub const FUNC_GLOBALS: u64 = 16;
    pub const FUNC_QUALNAME: u64 = 40;
    pub const FUNC_DEFAULTS: u64 = 56;
    pub const FUNC_CLOSURE: u64 = 72;
    pub const METHOD_FUNC: u64 = 16;
    pub const METHOD_SELF: u64 = 24;
    pub const CELL_REF: u64 = 16;
    pub const BYTEARRAY_ALLOC: u64 = 24;
    /// `sizeof(PyGC_Head)`: two words before every GC-tracked object.
    pub const GC_HEAD: u64 = 16;
    pub const FLAG_MANAGED_DICT: u64 = 1 << 4;
    pub const FLAG_HEAPTYPE: u64 = 1 << 9;
    pub const FLAG_READY: u64 = 1 << 12;
    pub const FLAG_LIST: u64 = 1 << 25;
    pub const FLAG_TUPLE: u64 = 1 << 26;
    pub const FLAG_BYTES: u64 = 1 << 27;
    pub const FLAG_UNICODE: u64 = 1 << 28;
    pub const FLAG_DICT: u64 = 1 << 29;
    pub const FLAG_TYPE: u64 = 1 << 31;
    pub const FLAG_LONG: u64 = 1 << 24;
}

impl HeapLayout {
    /// The layout for the interpreter whose frame layout is `frames`; `debug` holds the first
    /// bytes of `_PyRuntime` (its `_Py_DebugOffsets` on 3.13+).
    pub fn for_version(frames: Layout, debug: &[u8]) -> Result<HeapLayout, FramesError> {
        let table = |interp_gc, interp_modules, managed_dict, ht_cached_keys| HeapLayout {
            minor: frames.minor,
            frames,
            interp_gc,
            interp_modules,
            dict_values: 0,
            managed_dict,
            ht_cached_keys,
            frame_localsplus: 72,
            code_localsplusnames: 96,
            local_tag_mask: 0,
            tuple_items: 24,
        };
        match (frames.major, frames.minor) {
            (3, 11) => Ok(table(648, 888, ManagedDict::Split, 872)),
            (3, 12) => Ok(table(112, 944, ManagedDict::Tagged, 880)),
            (3, minor @ 13..=15) => {
                // 3.14 put `threads.main` before `gc` in the interpreter's section.
                let gc_index = if minor == 13 { 4 } else { 5 };
                // 3.15's `PyHeapTypeObject` grew by a word before `ht_cached_keys`.
                let ht_cached_keys = if minor >= 15 { 888 } else { 880 };
                let interp = |index| debug_offset(debug, DebugSection::Interpreter, index);
                Ok(HeapLayout {
                    interp_gc: interp(gc_index)?,
                    interp_modules: interp(gc_index + 1)?,
                    dict_values: 8,
                    managed_dict: ManagedDict::Inline,
                    frame_localsplus: debug_offset(debug, DebugSection::Frame, 4)?,
                    code_localsplusnames: debug_offset(debug, DebugSection::Code, 7)?,
                    local_tag_mask: if minor >= 14 { 0b11 } else { 0 },
                    tuple_items: if minor >= 14 { 32 } else { 24 },
                    ..table(0, 0, ManagedDict::Inline, ht_cached_keys)
                })
            }
            (major, minor) => Err(FramesError::NoCensusLayout(format!("{major}.{minor}"))),
        }
    }
}

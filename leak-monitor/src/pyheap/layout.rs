//! Where CPython keeps what a heap census reads, per version (x86_64, default builds): the
//! one place in `pyheap` that knows versions.
//!
//! 3.10, 3.11 and 3.12 come from tables measured against CPython's own headers (`offsetof`
//! over `pycore_interp.h`, `pycore_dict.h`, `cpython/object.h`, `frameobject.h`, by
//! `measure/measure.sh` into `measure/measured.txt`, which the tests below compare with the
//! tables); 3.10's dict keys, whose struct is not in an installed header, are measured in a
//! live 3.10 (`measure/keys.py`). 3.13+ take the interpreter's `gc` and `imports.modules`
//! offsets, the frame's `localsplus` and the code's `co_localsplusnames` from
//! `_Py_DebugOffsets`. What every version 3.10-3.15 shares (the early fields of
//! `PyTypeObject`, `PyDictObject`, sets, lists, functions, methods, cells, modules) is a
//! constant here. Each layout is checked against the live process before a census trusts it
//! (`HeapSource::check`).

use crate::pyframes::layout::{debug_offset, DebugSection, Layout};
use crate::pyframes::FramesError;

/// How an instance of a class with `Py_TPFLAGS_MANAGED_DICT` keeps its attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManagedDict {
    /// 3.10: no managed dicts (the flag bit is unused); every instance keeps its `__dict__`
    /// at `tp_dictoffset`.
    Absent,
    /// 3.11: a dict pointer three words before the object, a values pointer four before.
    Split,
    /// 3.12: one word three before the object: a dict, or values tagged by `- 1`.
    Tagged,
    /// 3.13+: a dict pointer three words before, else values inline after the object.
    Inline,
}

/// How a dict's keys object (`PyDictKeysObject`) lays out its table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DictKeys {
    /// 3.10: `dk_size` (slots, a power of two) at 8, `dk_nentries` at 32, the indices at 40,
    /// each of 1, 2, 4 or 8 bytes as `dk_size` fits in 8, 16 or 32 bits; entries are always
    /// `{hash, key, value}`, and a split table's values a plain `PyObject *` array.
    Sized,
    /// 3.11+: `dk_log2_index_bytes` at 9, `dk_kind` at 10, `dk_nentries` at 24, the indices
    /// at 32; general entries `{hash, key, value}`, unicode and split ones `{key, value}`.
    Log2,
}

/// Where a frame's local slots are named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalNames {
    /// 3.11+: one tuple, `co_localsplusnames`, names every slot.
    Plus(u64),
    /// 3.10: `co_varnames`, `co_cellvars` and `co_freevars` name the slots in that order.
    Split([u64; 3]),
}

impl LocalNames {
    /// The code object's fields that hold tuples of names, in slot order.
    pub fn fields(&self) -> &[u64] {
        match self {
            LocalNames::Plus(field) => std::slice::from_ref(field),
            LocalNames::Split(fields) => fields,
        }
    }
}

/// 3.10's `PyDictKeysObject` (`DictKeys::Sized`), measured by `measure/keys.py`.
pub mod keys310 {
    pub const SIZE: u64 = 8;
    pub const NENTRIES: u64 = 32;
    pub const INDICES: u64 = 40;
    pub const ENTRY: u64 = 24;
}

/// The offsets a census needs for one CPython version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapLayout {
    pub minor: u8,
    /// The thread and frame walk (`pyframes`' layout of the same interpreter).
    pub frames: Layout,
    /// `PyInterpreterState.gc`: the collector's state with the generation lists.
    pub interp_gc: u64,
    /// `PyInterpreterState.modules` (3.10, 3.11) or `.imports.modules`: `sys.modules`.
    pub interp_modules: u64,
    /// `PyDictValues.values` (3.10: `ma_values` is the array itself, 0).
    pub dict_values: u64,
    pub dict_keys: DictKeys,
    pub managed_dict: ManagedDict,
    /// `PyHeapTypeObject.ht_cached_keys`: the shared keys of a class's instances.
    pub ht_cached_keys: u64,
    /// `_PyInterpreterFrame.localsplus` (3.10: `PyFrameObject.f_localsplus`).
    pub frame_localsplus: u64,
    /// The code object's tuples of local names.
    pub local_names: LocalNames,
    /// Tag bits of a frame's locals (3.14+'s `_PyStackRef`).
    pub local_tag_mask: u64,
    /// `PyTupleObject.ob_item` (3.14+ cache the tuple's hash before it).
    pub tuple_items: u64,
}

/// Offsets shared by CPython 3.10-3.15 (the `KEYS_` ones are 3.11+'s, see [`DictKeys`]).
pub mod shared {
    pub const OB_TYPE: u64 = 8;
    /// `PyVarObject.ob_size` (lists, tuples, deques, bytes, ints' digit count in 3.10 and 3.11).
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
    /// 3.11+ (`DictKeys::Log2`).
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
    /// 3.11+ (unused in 3.10).
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
            dict_keys: DictKeys::Log2,
            managed_dict,
            ht_cached_keys,
            frame_localsplus: 72,
            local_names: LocalNames::Plus(96),
            local_tag_mask: 0,
            tuple_items: 24,
        };
        match (frames.major, frames.minor) {
            // Frames are heap `PyFrameObject`s whose `f_localsplus` holds the locals, then the
            // cells, then the free variables (`co_varnames` 72, `co_cellvars` 88,
            // `co_freevars` 80).
            (3, 10) => Ok(HeapLayout {
                dict_keys: DictKeys::Sized,
                frame_localsplus: 352,
                local_names: LocalNames::Split([72, 88, 80]),
                ..table(616, 856, ManagedDict::Absent, 872)
            }),
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
                    local_names: LocalNames::Plus(debug_offset(debug, DebugSection::Code, 7)?),
                    local_tag_mask: if minor >= 14 { 0b11 } else { 0 },
                    tuple_items: if minor >= 14 { 32 } else { 24 },
                    ..table(0, 0, ManagedDict::Inline, ht_cached_keys)
                })
            }
            (major, minor) => Err(FramesError::NoCensusLayout(format!("{major}.{minor}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shared::*;
    use super::*;
    use crate::pyframes::layout::from_table;
    use crate::pyheap::census::{GC_SCAN, GENERATION_SIZE};

    /// `measure/measured.txt` (by `measure/measure.sh`): (key, value) of one version.
    fn measured(version: &str) -> Vec<(String, u64)> {
        include_str!("measure/measured.txt")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let mut w = l.split(' ');
                (w.next()? == version).then_some(())?;
                Some((w.next()?.to_owned(), w.next()?.parse().ok()?))
            })
            .collect()
    }

    /// The layout's value for a measured key.
    fn ours(layout: &HeapLayout, key: &str) -> u64 {
        let names = layout.local_names;
        let split = |i: usize| match names {
            LocalNames::Split(fields) => fields[i],
            LocalNames::Plus(_) => panic!("{key} measured for a one-tuple layout"),
        };
        let sized = |value: u64| {
            assert_eq!(layout.dict_keys, DictKeys::Sized, "{key}");
            value
        };
        let log2 = |value: u64| {
            assert_eq!(layout.dict_keys, DictKeys::Log2, "{key}");
            value
        };
        match key {
            "interp_gc" => layout.interp_gc,
            "interp_modules" => layout.interp_modules,
            "gc_generation_size" => GENERATION_SIZE,
            "gc_head" => GC_HEAD,
            "ht_cached_keys" => layout.ht_cached_keys,
            "tp_name" => TP_NAME,
            "tp_basicsize" => TP_BASICSIZE,
            "tp_itemsize" => TP_ITEMSIZE,
            "tp_flags" => TP_FLAGS,
            "tp_base" => TP_BASE,
            "tp_dict" => TP_DICT,
            "tp_dictoffset" => TP_DICTOFFSET,
            "tp_mro" => TP_MRO,
            "dict_used" => DICT_USED,
            "dict_keys" => DICT_KEYS,
            "dict_values" => DICT_VALUES,
            "set_used" => SET_USED,
            "set_mask" => SET_MASK,
            "set_table" => SET_TABLE,
            "list_items" => LIST_ITEMS,
            "list_allocated" => LIST_ALLOCATED,
            "tuple_items" => layout.tuple_items,
            "module_dict" => MODULE_DICT,
            "func_defaults" => FUNC_DEFAULTS,
            "func_closure" => FUNC_CLOSURE,
            "method_func" => METHOD_FUNC,
            "method_self" => METHOD_SELF,
            "cell_ref" => CELL_REF,
            "bytearray_alloc" => BYTEARRAY_ALLOC,
            "frame_localsplus" => layout.frame_localsplus,
            "code_varnames" => split(0),
            "code_cellvars" => split(1),
            "code_freevars" => split(2),
            "code_localsplusnames" => match names {
                LocalNames::Plus(field) => field,
                LocalNames::Split(_) => panic!("3.10 has no co_localsplusnames"),
            },
            "keys_size" => sized(keys310::SIZE),
            "keys_nentries" if layout.dict_keys == DictKeys::Sized => keys310::NENTRIES,
            "keys_indices" if layout.dict_keys == DictKeys::Sized => keys310::INDICES,
            "keys_entry_size" => sized(keys310::ENTRY),
            "keys_log2_index_bytes" => log2(KEYS_LOG2_INDEX_BYTES),
            "keys_kind" => log2(KEYS_KIND),
            "keys_nentries" => log2(KEYS_NENTRIES),
            "keys_indices" => log2(KEYS_INDICES),
            other => panic!("unknown measured key {other}"),
        }
    }

    #[test]
    fn the_310_to_312_tables_agree_with_the_measured_offsets() {
        for minor in 10..=12 {
            let layout = HeapLayout::for_version(from_table(3, minor).unwrap(), &[]).unwrap();
            let rows = measured(&format!("3.{minor}"));
            assert!(rows.len() >= 35, "3.{minor}: {} measured", rows.len());
            for (key, value) in rows {
                if key == "gc_generations" {
                    // The heads are found by their shape within `GC_SCAN` bytes of `gc`.
                    assert!(value <= GC_SCAN, "3.{minor}: generations at {value}");
                    continue;
                }
                assert_eq!(ours(&layout, &key), value, "3.{minor} {key}");
            }
        }
    }

    #[test]
    fn only_310_reads_sized_keys_three_name_tuples_and_no_managed_dicts() {
        let heap = |minor| HeapLayout::for_version(from_table(3, minor).unwrap(), &[]).unwrap();
        let v310 = heap(10);
        assert_eq!(v310.dict_keys, DictKeys::Sized);
        assert_eq!(v310.managed_dict, ManagedDict::Absent);
        assert_eq!(v310.local_names.fields().len(), 3);
        for v in [heap(11), heap(12)] {
            assert_eq!(v.dict_keys, DictKeys::Log2);
            assert_ne!(v.managed_dict, ManagedDict::Absent);
            assert_eq!(v.local_names.fields(), &[96]);
        }
    }
}

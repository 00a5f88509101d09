//! Python objects read from outside: types, strings, and the entries of dicts, lists,
//! tuples, sets and instances. Every length read from the target is bounded before it is
//! used, every pointer checked (`Reader::pointer`); nonsense gives None, never a panic.

use super::layout::{keys310, shared::*, DictKeys, HeapLayout, ManagedDict};
use super::reader::Reader;
use std::collections::HashMap;

/// The most entries read from one container.
pub const MAX_ENTRIES: usize = 1 << 16;
/// Longest type name and attribute name read.
const MAX_NAME: usize = 128;
/// Types followed up a class's bases to find its kind.
const MAX_BASES: usize = 32;

/// What a census knows to read inside an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    List,
    Tuple,
    Dict,
    Set,
    Deque,
    Module,
    Type,
    Function,
    Method,
    Cell,
    Str,
    Bytes,
    ByteArray,
    Int,
    /// An instance of a class, whose attributes live in a managed dict or at `tp_dictoffset`.
    Instance,
    Other,
}

impl Kind {
    /// Containers whose length a census tracks.
    pub fn is_container(self) -> bool {
        matches!(self, Kind::List | Kind::Dict | Kind::Set | Kind::Deque)
    }
}

/// One type object of the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeInfo {
    pub name: String,
    pub kind: Kind,
    pub basicsize: u64,
    pub itemsize: u64,
    pub flags: u64,
    pub dictoffset: i64,
}

/// Type objects read so far (by address), including those that did not look like types.
#[derive(Default)]
pub struct Types {
    known: HashMap<u64, Option<TypeInfo>>,
}

impl Types {
    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// The type at `address`, read once; None when it does not look like a type object.
    pub fn get(&mut self, reader: &mut Reader<'_>, address: u64) -> Option<&TypeInfo> {
        self.known
            .entry(address)
            .or_insert_with(|| read_type(reader, address))
            .as_ref()
    }

    /// The type of the object at `object`.
    pub fn of(&mut self, reader: &mut Reader<'_>, object: u64) -> Option<(u64, &TypeInfo)> {
        // Inside a mapping, an object's address plus a field offset cannot overflow.
        if !reader.plausible(object) {
            return None;
        }
        let ty = reader.pointer(object + OB_TYPE)?;
        let info = self.get(reader, ty)?;
        Some((ty, info))
    }
}

fn read_type(reader: &mut Reader<'_>, address: u64) -> Option<TypeInfo> {
    let flags = reader.u64(address + TP_FLAGS)?;
    if flags & FLAG_READY == 0 {
        return None;
    }
    // A type's own type is a type (`type` or a metaclass).
    let meta = reader.pointer(address + OB_TYPE)?;
    if reader.u64(meta + TP_FLAGS)? & FLAG_TYPE == 0 {
        return None;
    }
    let basicsize = reader.u64(address + TP_BASICSIZE)?;
    let itemsize = reader.u64(address + TP_ITEMSIZE)?;
    if !(16..=1 << 20).contains(&basicsize) || itemsize > 1 << 12 {
        return None;
    }
    // Strings need no alignment: not `pointer`.
    let name_at = reader.u64(address + TP_NAME).filter(|p| *p != 0)?;
    let name = reader.c_string(name_at, MAX_NAME)?;
    let dictoffset = reader.i64(address + TP_DICTOFFSET)?;
    let kind = kind_of(reader, address, flags, &name);
    Some(TypeInfo {
        name,
        kind,
        basicsize,
        itemsize,
        flags,
        dictoffset,
    })
}

/// The kind from the subclass flags, else from the first base with a known name.
fn kind_of(reader: &mut Reader<'_>, address: u64, flags: u64, name: &str) -> Kind {
    if flags & FLAG_TYPE != 0 {
        return Kind::Type;
    }
    if flags & FLAG_LIST != 0 {
        return Kind::List;
    }
    if flags & FLAG_TUPLE != 0 {
        return Kind::Tuple;
    }
    if flags & FLAG_DICT != 0 {
        return Kind::Dict;
    }
    if flags & FLAG_UNICODE != 0 {
        return Kind::Str;
    }
    if flags & FLAG_BYTES != 0 {
        return Kind::Bytes;
    }
    if flags & FLAG_LONG != 0 {
        return Kind::Int;
    }
    let mut ty = address;
    let mut name = name.to_owned();
    for _ in 0..MAX_BASES {
        match name.as_str() {
            "set" | "frozenset" => return Kind::Set,
            "collections.deque" => return Kind::Deque,
            "module" => return Kind::Module,
            "function" => return Kind::Function,
            "method" => return Kind::Method,
            "cell" => return Kind::Cell,
            "bytearray" => return Kind::ByteArray,
            "object" => break,
            _ => {}
        }
        let Some(base) = reader.pointer(ty + TP_BASE) else {
            break;
        };
        let Some(base_name) = reader
            .u64(base + TP_NAME)
            .and_then(|at| reader.c_string(at, MAX_NAME))
        else {
            break;
        };
        ty = base;
        name = base_name;
    }
    if flags & FLAG_HEAPTYPE != 0 {
        Kind::Instance
    } else {
        Kind::Other
    }
}

/// The length of a container (or None for other kinds).
pub fn container_len(reader: &mut Reader<'_>, object: u64, kind: Kind) -> Option<u64> {
    let len = match kind {
        Kind::List | Kind::Tuple | Kind::Deque => reader.i64(object + OB_SIZE)?,
        Kind::Dict => reader.i64(object + DICT_USED)?,
        Kind::Set => reader.i64(object + SET_USED)?,
        _ => return None,
    };
    u64::try_from(len).ok().filter(|n| *n < 1 << 40)
}

/// A `str` (compact, ASCII or Latin-1 shown as is) of at most `max` bytes.
pub fn read_str(
    reader: &mut Reader<'_>,
    layout: &HeapLayout,
    object: u64,
    max: usize,
) -> Option<String> {
    if !reader.plausible(object) {
        return None;
    }
    let objects = &layout.frames.objects;
    let len = usize::try_from(reader.i64(object + objects.unicode_length)?).ok()?;
    if len > max {
        return None;
    }
    let state = reader.u8(object + objects.unicode_state)?;
    let (compact, ascii, kind) = (state & 0x20 != 0, state & 0x40 != 0, (state >> 2) & 0x7);
    if !compact || kind != 1 {
        return None;
    }
    let data = object
        + if ascii {
            objects.ascii_size
        } else {
            objects.compact_size
        };
    let mut bytes = vec![0u8; len];
    reader.read(data, &mut bytes)?;
    Some(bytes.iter().map(|&b| b as char).collect())
}

/// The bytes an object of a non-container kind keeps, itself included.
pub fn own_size(reader: &mut Reader<'_>, layout: &HeapLayout, object: u64, info: &TypeInfo) -> u64 {
    let var = reader
        .i64(object + OB_SIZE)
        .and_then(|n| u64::try_from(n).ok());
    let size = match info.kind {
        Kind::Str => {
            let len = reader
                .i64(object + layout.frames.objects.unicode_length)
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0);
            info.basicsize + len + 1
        }
        Kind::ByteArray => {
            info.basicsize
                + reader
                    .i64(object + BYTEARRAY_ALLOC)
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0)
        }
        // 3.12+ keep an int's digit count above three tag bits of `lv_tag`.
        Kind::Int if layout.minor >= 12 => {
            info.basicsize + info.itemsize * (var.unwrap_or(0) >> 3).min(1 << 20)
        }
        _ if info.itemsize > 0 => {
            // bytes, tuples, ints (3.11's digit count is `ob_size`; 3.12+ keep it in a tag,
            // read as a large number and capped here).
            let items = var.unwrap_or(0).min(1 << 20);
            info.basicsize + info.itemsize * items
        }
        _ => info.basicsize,
    };
    size.min(1 << 32)
}

/// The (key, value) pairs of a dict object, keys as the objects they are.
pub fn dict_entries(reader: &mut Reader<'_>, layout: &HeapLayout, dict: u64) -> Vec<(u64, u64)> {
    if !reader.plausible(dict) {
        return Vec::new();
    }
    let Some(keys) = reader.pointer(dict + DICT_KEYS) else {
        return Vec::new();
    };
    let values = reader.pointer(dict + DICT_VALUES);
    keys_entries(reader, layout, keys, values.map(|v| v + layout.dict_values))
}

/// Where a keys object's entries are and how to read them.
struct Table {
    entries: u64,
    nentries: usize,
    stride: u64,
    /// The key's offset in an entry (the value follows it in a combined table).
    key_at: u64,
}

/// 3.10: the index width follows `dk_size`; entries are always `{hash, key, value}`.
fn table_310(reader: &mut Reader<'_>, keys: u64) -> Option<Table> {
    let size = reader.u64(keys + keys310::SIZE)?;
    let nentries = usize::try_from(reader.i64(keys + keys310::NENTRIES)?).ok()?;
    if !size.is_power_of_two() || size > 1 << 40 {
        return None;
    }
    Some(Table {
        entries: keys + keys310::INDICES + size * index_width_310(size),
        nentries,
        stride: keys310::ENTRY,
        key_at: 8,
    })
}

/// The bytes of one index of a 3.10 table of `size` slots.
fn index_width_310(size: u64) -> u64 {
    match size {
        0..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xffff_ffff => 4,
        _ => 8,
    }
}

/// 3.11+: the indices take `1 << dk_log2_index_bytes` bytes; unicode and split tables have
/// `{key, value}` entries.
fn table_311(reader: &mut Reader<'_>, keys: u64) -> Option<Table> {
    let log2_index = reader.u8(keys + KEYS_LOG2_INDEX_BYTES)?;
    let kind = reader.u8(keys + KEYS_KIND)?;
    let nentries = usize::try_from(reader.i64(keys + KEYS_NENTRIES)?).ok()?;
    if log2_index > 40 || kind > 2 {
        return None;
    }
    let general = kind == 0;
    Some(Table {
        entries: keys + KEYS_INDICES + (1u64 << log2_index),
        nentries,
        stride: if general { 24 } else { 16 },
        key_at: if general { 8 } else { 0 },
    })
}

/// The entries of a keys object; `values`: the first value slot of a split table.
fn keys_entries(
    reader: &mut Reader<'_>,
    layout: &HeapLayout,
    keys: u64,
    values: Option<u64>,
) -> Vec<(u64, u64)> {
    if values.is_some_and(|v| !reader.plausible(v)) {
        return Vec::new();
    }
    let table = match layout.dict_keys {
        DictKeys::Sized => table_310(reader, keys),
        DictKeys::Log2 => table_311(reader, keys),
    };
    let Some(table) = table else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in 0..table.nentries.min(MAX_ENTRIES) as u64 {
        let entry = table.entries + i * table.stride;
        let Some(key) = reader.u64(entry + table.key_at) else {
            break;
        };
        let value = match values {
            Some(slots) => reader.u64(slots + i * 8),
            None => reader.u64(entry + table.key_at + 8),
        };
        if let Some(value) = value.filter(|v| *v != 0) {
            if key != 0 {
                out.push((key, value));
            }
        }
    }
    out
}

/// The attributes of an instance (name object, value), from its managed dict, inline
/// values, or `__dict__` at `tp_dictoffset`.
pub fn instance_attributes(
    reader: &mut Reader<'_>,
    layout: &HeapLayout,
    object: u64,
    ty: u64,
    info: &TypeInfo,
) -> Vec<(u64, u64)> {
    if info.flags & FLAG_MANAGED_DICT != 0 && layout.managed_dict != ManagedDict::Absent {
        let slot = object.wrapping_sub(24);
        match layout.managed_dict {
            ManagedDict::Absent => {}
            ManagedDict::Split => {
                if let Some(dict) = reader.pointer(slot) {
                    return dict_entries(reader, layout, dict);
                }
                if let Some(values) = reader.pointer(object.wrapping_sub(32)) {
                    return match reader_cached_keys(reader, layout, ty) {
                        Some(keys) => keys_entries(reader, layout, keys, Some(values)),
                        None => Vec::new(),
                    };
                }
            }
            ManagedDict::Tagged => {
                let word = reader.u64(slot).unwrap_or(0);
                if word & 1 == 0 {
                    if reader.plausible(word) {
                        return dict_entries(reader, layout, word);
                    }
                } else if let Some(keys) = reader_cached_keys(reader, layout, ty) {
                    return keys_entries(reader, layout, keys, Some(word.wrapping_add(1)));
                }
            }
            ManagedDict::Inline => {
                if let Some(dict) = reader.pointer(slot) {
                    return dict_entries(reader, layout, dict);
                }
                let values = object + info.basicsize;
                // `PyDictValues.valid` (its fourth byte) says whether the inline values are in use.
                if reader.u8(values + 3) == Some(1) {
                    if let Some(keys) = reader_cached_keys(reader, layout, ty) {
                        return keys_entries(
                            reader,
                            layout,
                            keys,
                            Some(values + layout.dict_values),
                        );
                    }
                }
            }
        }
        return Vec::new();
    }
    if info.dictoffset > 0 {
        let field = object.checked_add(info.dictoffset as u64);
        if let Some(dict) = field.and_then(|f| reader.pointer(f)) {
            return dict_entries(reader, layout, dict);
        }
    }
    Vec::new()
}

fn reader_cached_keys(reader: &mut Reader<'_>, layout: &HeapLayout, ty: u64) -> Option<u64> {
    let keys = reader.pointer(ty + layout.ht_cached_keys)?;
    // A shared-keys table is of kind split.
    (reader.u8(keys + KEYS_KIND)? == 2).then_some(keys)
}

/// The items of a list or tuple (at most `max`).
pub fn sequence_items(
    reader: &mut Reader<'_>,
    layout: &HeapLayout,
    object: u64,
    kind: Kind,
    max: usize,
) -> Vec<u64> {
    let Some(len) = reader
        .i64(object + OB_SIZE)
        .and_then(|n| usize::try_from(n).ok())
    else {
        return Vec::new();
    };
    let base = match kind {
        Kind::List => match reader.pointer(object + LIST_ITEMS) {
            Some(items) => items,
            None => return Vec::new(),
        },
        Kind::Tuple => object + layout.tuple_items,
        _ => return Vec::new(),
    };
    let count = len.min(max);
    let mut bytes = vec![0u8; count * 8];
    if reader.read(base, &mut bytes).is_none() {
        return Vec::new();
    }
    bytes
        .chunks_exact(8)
        .filter_map(|b| b.try_into().ok().map(u64::from_le_bytes))
        .filter(|p| *p != 0)
        .collect()
}

/// The keys of a set (at most `max`).
pub fn set_items(reader: &mut Reader<'_>, object: u64, max: usize) -> Vec<u64> {
    let (Some(mask), Some(table)) = (
        reader.i64(object + SET_MASK),
        reader.pointer(object + SET_TABLE),
    ) else {
        return Vec::new();
    };
    let Ok(slots) = usize::try_from(mask.saturating_add(1)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in 0..slots.min(MAX_ENTRIES) as u64 {
        if out.len() >= max {
            break;
        }
        // setentry { PyObject *key; Py_hash_t hash; }; dummies point at a static object, which
        // the caller's type check drops.
        match reader.u64(table + i * 16) {
            Some(0) => {}
            Some(key) => out.push(key),
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    //! 3.10's dicts decoded from bytes laid out as `measure/keys.py` measured them in a live
    //! 3.10 (and as Objects/dict-common.h declares them).
    use super::*;
    use crate::pyframes::layout::from_table;
    use crate::pyheap::reader::MemoryImage;

    const BASE: u64 = 0x20_0000;

    fn layout_310() -> HeapLayout {
        HeapLayout::for_version(from_table(3, 10).unwrap(), &[]).unwrap()
    }

    /// A zeroed region at `BASE` written a word at a time.
    struct Heap(Vec<u8>);

    impl Heap {
        fn new() -> Heap {
            Heap(vec![0; 0x4_0000])
        }

        fn put(&mut self, at: u64, value: u64) {
            let i = (at - BASE) as usize;
            self.0[i..i + 8].copy_from_slice(&value.to_le_bytes());
        }

        /// A 3.10 keys object at `keys` of `size` slots; `entries` as (key, value), value 0 in a
        /// split table (and in a deleted entry). Returns where the entries start.
        fn keys(&mut self, keys: u64, size: u64, entries: &[(u64, u64)]) -> u64 {
            self.put(keys, 1); // dk_refcnt
            self.put(keys + 8, size);
            self.put(keys + 16, 0x7f00_dead_0000); // dk_lookup: a function pointer
            self.put(keys + 24, size * 2 / 3 - entries.len() as u64); // dk_usable
            self.put(keys + 32, entries.len() as u64);
            let first = keys + 40 + size * index_width_310(size);
            for (i, &(key, value)) in entries.iter().enumerate() {
                let entry = first + i as u64 * 24;
                self.put(entry, key.wrapping_mul(31)); // me_hash
                self.put(entry + 8, key);
                self.put(entry + 16, value);
            }
            first
        }

        /// A dict object at `dict` using `keys`, with a split table's `values` (or 0).
        fn dict(&mut self, dict: u64, used: u64, keys: u64, values: u64) {
            self.put(dict, 1);
            self.put(dict + 16, used);
            self.put(dict + 32, keys);
            self.put(dict + 40, values);
        }

        fn image(self) -> MemoryImage {
            let mut image = MemoryImage::default();
            image.put(BASE, self.0);
            image
        }
    }

    /// Object addresses that stand for keys and values (never read: entries are addresses).
    fn object(i: u64) -> u64 {
        0x7f10_0000_0000 + i * 0x40
    }

    #[test]
    fn a_310_combined_table_gives_its_entries_and_skips_deleted_ones() {
        let (dict, keys) = (BASE + 0x100, BASE + 0x200);
        let mut heap = Heap::new();
        let entries = [
            (object(1), object(2)),
            (object(3), 0),
            (object(5), object(6)),
        ];
        let first = heap.keys(keys, 8, &entries);
        // 3.10 keeps `dk_size` itself: eight one-byte indices after the fixed 40 bytes.
        assert_eq!(first, keys + 48);
        heap.dict(dict, 2, keys, 0);
        let image = heap.image();
        let mut reader = Reader::new(&image, image.mappings());
        let got = dict_entries(&mut reader, &layout_310(), dict);
        assert_eq!(got, vec![(object(1), object(2)), (object(5), object(6))]);
    }

    #[test]
    fn a_310_table_of_512_slots_has_two_byte_indices() {
        let (dict, keys) = (BASE + 0x100, BASE + 0x1000);
        let mut heap = Heap::new();
        let entries: Vec<(u64, u64)> = (0..300)
            .map(|i| (object(2 * i), object(2 * i + 1)))
            .collect();
        let first = heap.keys(keys, 512, &entries);
        assert_eq!(first, keys + 40 + 1024);
        heap.dict(dict, 300, keys, 0);
        let image = heap.image();
        let mut reader = Reader::new(&image, image.mappings());
        assert_eq!(dict_entries(&mut reader, &layout_310(), dict), entries);
    }

    #[test]
    fn a_310_split_table_takes_its_values_from_the_plain_values_array() {
        let (dict, keys, values) = (BASE + 0x100, BASE + 0x200, BASE + 0x400);
        let mut heap = Heap::new();
        heap.keys(keys, 8, &[(object(1), 0), (object(3), 0)]);
        heap.put(values, object(2));
        heap.put(values + 8, object(4));
        heap.dict(dict, 2, keys, values);
        let image = heap.image();
        let mut reader = Reader::new(&image, image.mappings());
        let got = dict_entries(&mut reader, &layout_310(), dict);
        assert_eq!(got, vec![(object(1), object(2)), (object(3), object(4))]);
    }

    #[test]
    fn a_310_instance_keeps_its_attributes_at_tp_dictoffset_whatever_bit_4_says() {
        let (instance, dict, keys, values) =
            (BASE + 0x80, BASE + 0x100, BASE + 0x200, BASE + 0x400);
        let mut heap = Heap::new();
        heap.keys(keys, 8, &[(object(1), 0)]);
        heap.put(values, object(2));
        heap.dict(dict, 1, keys, values);
        heap.put(instance + 16, dict);
        // A managed dict's slot three words before the object must not be read on 3.10.
        heap.put(instance - 24, BASE + 0x3000);
        let image = heap.image();
        let mut reader = Reader::new(&image, image.mappings());
        let info = TypeInfo {
            name: "Session".into(),
            kind: Kind::Instance,
            basicsize: 32,
            itemsize: 0,
            flags: FLAG_HEAPTYPE | FLAG_READY | FLAG_MANAGED_DICT,
            dictoffset: 16,
        };
        let got = instance_attributes(&mut reader, &layout_310(), instance, 0, &info);
        assert_eq!(got, vec![(object(1), object(2))]);
    }

    #[test]
    fn a_310_table_read_as_311_gives_nothing_like_it() {
        let (dict, keys) = (BASE + 0x100, BASE + 0x200);
        let mut heap = Heap::new();
        let entries = [(object(1), object(2)), (object(5), object(6))];
        heap.keys(keys, 8, &entries);
        heap.dict(dict, 2, keys, 0);
        let image = heap.image();
        let mut reader = Reader::new(&image, image.mappings());
        let v311 = HeapLayout::for_version(from_table(3, 11).unwrap(), &[]).unwrap();
        assert_ne!(dict_entries(&mut reader, &v311, dict), entries.to_vec());
    }

    #[test]
    fn index_width_follows_the_310_table_size() {
        assert_eq!(index_width_310(128), 1);
        assert_eq!(index_width_310(256), 2);
        assert_eq!(index_width_310(1 << 16), 4);
        assert_eq!(index_width_310(1 << 32), 8);
    }
}

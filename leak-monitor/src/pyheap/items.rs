//! What a growing container holds: the types of a sample of its items and an estimate of the
//! bytes each keeps (the item itself, and the strings, bytes, ints and attributes it holds
//! directly), read after a census for the few containers that grow.

use super::layout::{shared::*, HeapLayout};
use super::objects::{
    dict_entries, instance_attributes, own_size, sequence_items, set_items, Kind, Types,
};
use super::reader::Reader;

/// Items sampled per container.
const SAMPLED: usize = 48;
/// Item types named.
const MAX_TYPES: usize = 4;

/// A container's items, summarised.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Items {
    /// Bytes one item keeps, on average over the sample (the container's own slot included).
    pub mean_bytes: f64,
    /// The most common item types first (a bound method as `method of Connection`).
    pub types: Vec<String>,
}

/// Summarises the items of the container at `object`.
pub fn summarise(
    reader: &mut Reader<'_>,
    layout: &HeapLayout,
    types: &mut Types,
    object: u64,
    kind: Kind,
) -> Items {
    let (items, slot): (Vec<u64>, u64) = match kind {
        Kind::List | Kind::Tuple => (
            sequence_items(reader, layout, object, kind, SAMPLED * 64)
                .into_iter()
                .rev()
                .take(SAMPLED)
                .collect(),
            8,
        ),
        // Values of a dict (the keys are usually small strings or ints, counted with the slot).
        Kind::Dict => (
            dict_entries(reader, layout, object)
                .into_iter()
                .rev()
                .take(SAMPLED)
                .map(|(_, v)| v)
                .collect(),
            36 + 48,
        ),
        Kind::Set => (set_items(reader, object, SAMPLED), 27),
        // A deque's blocks are not followed: its items are counted by slot only.
        _ => (Vec::new(), 8),
    };
    let mut counts: Vec<(String, usize)> = Vec::new();
    let mut total = 0u64;
    let mut sampled = 0u64;
    for item in items {
        let Some((ty, info)) = types.of(reader, item) else {
            continue;
        };
        let info = info.clone();
        let mut name = info.name.clone();
        let mut bytes = own_size(reader, layout, item, &info)
            + if info.kind.is_container() || matches!(info.kind, Kind::Instance | Kind::Method) {
                GC_HEAD
            } else {
                0
            };
        match info.kind {
            Kind::Instance => bytes += attributes_size(reader, layout, types, item, ty, &info),
            Kind::Method => {
                if let Some(owner) = reader.pointer(item + METHOD_SELF) {
                    if let Some((oty, oinfo)) = types.of(reader, owner) {
                        let oinfo = oinfo.clone();
                        name = format!("method of {}", oinfo.name);
                        bytes += own_size(reader, layout, owner, &oinfo) + GC_HEAD;
                        if oinfo.kind == Kind::Instance {
                            bytes += attributes_size(reader, layout, types, owner, oty, &oinfo);
                        }
                    }
                }
            }
            Kind::Dict => {
                for (_, value) in dict_entries(reader, layout, item).into_iter().take(16) {
                    if let Some((_, v)) = types.of(reader, value) {
                        let v = v.clone();
                        if !v.kind.is_container() {
                            bytes += own_size(reader, layout, value, &v);
                        }
                    }
                }
            }
            Kind::Tuple | Kind::List => {
                for inner in sequence_items(reader, layout, item, info.kind, 16) {
                    if let Some((_, i)) = types.of(reader, inner) {
                        let i = i.clone();
                        if !i.kind.is_container() {
                            bytes += own_size(reader, layout, inner, &i);
                        }
                    }
                }
            }
            _ => {}
        }
        total += bytes;
        sampled += 1;
        match counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => counts.push((name, 1)),
        }
    }
    counts.sort_by_key(|(_, c)| std::cmp::Reverse(*c));
    Items {
        mean_bytes: total.checked_div(sampled).map_or(slot, |mean| mean + slot) as f64,
        types: counts.into_iter().take(MAX_TYPES).map(|(n, _)| n).collect(),
    }
}

/// The bytes of an instance's attribute values that are not themselves containers, and of
/// its attribute table.
fn attributes_size(
    reader: &mut Reader<'_>,
    layout: &HeapLayout,
    types: &mut Types,
    object: u64,
    ty: u64,
    info: &super::objects::TypeInfo,
) -> u64 {
    let attributes = instance_attributes(reader, layout, object, ty, info);
    let mut bytes = attributes.len() as u64 * 8;
    for (_, value) in attributes {
        if let Some((_, v)) = types.of(reader, value) {
            let v = v.clone();
            if !v.kind.is_container()
                && !matches!(
                    v.kind,
                    Kind::Instance | Kind::Type | Kind::Module | Kind::Function
                )
            {
                bytes += own_size(reader, layout, value, &v);
            }
        }
    }
    bytes
}

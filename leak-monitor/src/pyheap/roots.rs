//! Names for containers: a breadth-first walk from the roots a developer recognises (the
//! globals of the application's modules, their classes' attributes, attributes of the objects
//! they hold, closure cells, default arguments, bound methods' `__self__`, and the locals of
//! every thread's frames), depth- and budget-limited. Every container met on the way is
//! recorded with the first (shortest) path that reached it and its length: this also finds
//! dicts that the collector does not track (CPython untracks dicts of atomic values), which the
//! GC lists never show.

use super::layout::{shared::*, HeapLayout};
use super::objects::{
    container_len, dict_entries, instance_attributes, read_str, sequence_items, set_items, Kind,
    Types,
};
use super::reader::Reader;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// Steps from a root.
const MAX_DEPTH: u8 = 4;
/// Objects visited per walk.
const MAX_VISITED: usize = 40_000;
/// Entries followed per container (the container itself is recorded whatever its length).
const MAX_FANOUT: usize = 256;
const MAX_MODULES: usize = 4096;
const MAX_FRAMES: usize = 256;
const MAX_NAME: usize = 200;

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Step {
    /// A module in `sys.modules`.
    Module(String),
    /// A function's frame on a thread's stack.
    Frame {
        function: String,
        file: String,
        thread: u32,
    },
    /// An attribute, a module global or a class attribute: `.name`.
    Attr(String),
    /// A dict entry with a string key: `["key"]`.
    Key(String),
    /// A sequence item: `[i]`.
    Index(usize),
    /// A local variable of a frame.
    Local(String),
    /// A closure cell's contents, or a default argument.
    Closure(usize),
    Default(usize),
    /// A bound method's object.
    SelfOf,
}

/// How a named container was reached.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Path {
    pub steps: Vec<Step>,
    /// The source files that define the path's module and the classes along it: where the
    /// lines that fill the container are searched.
    pub files: Vec<String>,
}

impl Path {
    /// `pkg.mod.SERVICE._sessions`, `worker.<locals>.seen`, `BUS._handlers[3].__self__`.
    pub fn display(&self) -> String {
        let mut out = String::new();
        for step in &self.steps {
            match step {
                Step::Module(name) => out.push_str(name),
                Step::Frame { function, .. } => {
                    out.push_str(function);
                    out.push_str(".<locals>");
                }
                Step::Attr(name) | Step::Local(name) => {
                    out.push('.');
                    out.push_str(name);
                }
                Step::Key(key) => out.push_str(&format!("[{key:?}]")),
                Step::Index(i) => out.push_str(&format!("[{i}]")),
                Step::Closure(i) => out.push_str(&format!(".__closure__[{i}]")),
                Step::Default(i) => out.push_str(&format!(".__defaults__[{i}]")),
                Step::SelfOf => out.push_str(".__self__"),
            }
        }
        out
    }

    /// The names a fill line would use for the container, outermost first (`SERVICE`,
    /// `_sessions`): attributes, globals and locals, without modules or indices.
    pub fn names(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Attr(name) | Step::Local(name) => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The function whose frame holds the container, for a frame-local path.
    pub fn frame_function(&self) -> Option<&str> {
        self.steps.iter().find_map(|s| match s {
            Step::Frame { function, .. } => Some(function.as_str()),
            _ => None,
        })
    }
}

/// A container reached from a root.
#[derive(Clone, Debug)]
pub struct Named {
    pub path: Arc<Path>,
    pub kind: Kind,
    pub type_address: u64,
    pub len: u64,
}

/// A frame of a thread: its code object and its locals' base, found by the caller.
#[derive(Clone, Copy, Debug)]
pub struct FrameRoot {
    pub thread: u32,
    pub frame: u64,
    pub code: u64,
}

/// The roots of one walk.
pub struct Roots<'a> {
    /// `sys.modules`.
    pub modules: u64,
    pub frames: &'a [FrameRoot],
    /// Whether a source file is the application's own (modules of others are not walked).
    pub is_user_file: &'a dyn Fn(&str) -> bool,
}

struct Pending {
    object: u64,
    path: Arc<Path>,
    depth: u8,
}

/// Walks from the roots; returns every container reached, by address.
pub fn walk(
    reader: &mut Reader<'_>,
    layout: &HeapLayout,
    types: &mut Types,
    roots: &Roots<'_>,
) -> HashMap<u64, Named> {
    let mut found: HashMap<u64, Named> = HashMap::new();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let module_files = module_files(reader, layout, types, roots, &mut queue);
    // Globals first, then the threads' frame locals: a container that a module global reaches
    // is named by that path (`__main__.SERVICE._sessions`), not by a frame that happens to hold
    // it (or a stale slot of an inlined comprehension); a quarter of the budget stays for frames.
    let mut frames_queued = false;
    loop {
        let globals_done = queue.is_empty() || seen.len() >= MAX_VISITED / 4 * 3;
        if !frames_queued && globals_done {
            queue.clear();
            frame_roots(reader, layout, roots, &mut queue);
            frames_queued = true;
        }
        let Some(Pending {
            object,
            path,
            depth,
        }) = queue.pop_front()
        else {
            break;
        };
        if seen.len() >= MAX_VISITED {
            break;
        }
        if !seen.insert(object) {
            continue;
        }
        let Some((ty, info)) = types.of(reader, object) else {
            continue;
        };
        let info = info.clone();
        if info.kind.is_container() {
            if let Some(len) = container_len(reader, object, info.kind) {
                found.insert(
                    object,
                    Named {
                        path: Arc::clone(&path),
                        kind: info.kind,
                        type_address: ty,
                        len,
                    },
                );
            }
        }
        if depth >= MAX_DEPTH {
            continue;
        }
        let child = |step: Step, file: Option<String>| {
            let mut next = (*path).clone();
            next.steps.push(step);
            if let Some(file) = file.filter(|f| !next.files.contains(f)) {
                next.files.push(file);
            }
            Arc::new(next)
        };
        // Unchecked here: `Types::of` refuses an implausible address when it is visited.
        let mut push = |object: u64, path: Arc<Path>| {
            queue.push_back(Pending {
                object,
                path,
                depth: depth + 1,
            });
        };
        match info.kind {
            Kind::Dict => {
                for (key, value) in dict_entries(reader, layout, object)
                    .into_iter()
                    .take(MAX_FANOUT)
                {
                    if let Some(key) = read_str(reader, layout, key, MAX_NAME) {
                        push(value, child(Step::Key(key), None));
                    }
                }
            }
            Kind::Instance | Kind::Type => {
                let entries = if info.kind == Kind::Type {
                    reader
                        .pointer(object + TP_DICT)
                        .map(|d| dict_entries(reader, layout, d))
                        .unwrap_or_default()
                } else {
                    instance_attributes(reader, layout, object, ty, &info)
                };
                let class = if info.kind == Kind::Type { object } else { ty };
                let file = class_file(reader, layout, class, &module_files);
                for (key, value) in entries.into_iter().take(MAX_FANOUT) {
                    let Some(name) = read_str(reader, layout, key, MAX_NAME) else {
                        continue;
                    };
                    if name.starts_with("__") && name.ends_with("__") {
                        continue;
                    }
                    push(value, child(Step::Attr(name), file.clone()));
                }
            }
            Kind::List | Kind::Tuple => {
                for (i, item) in
                    sequence_items(reader, layout, object, info.kind, MAX_FANOUT.min(64))
                        .into_iter()
                        .enumerate()
                {
                    push(item, child(Step::Index(i), None));
                }
            }
            Kind::Set => {
                for (i, item) in set_items(reader, object, 64).into_iter().enumerate() {
                    push(item, child(Step::Index(i), None));
                }
            }
            Kind::Function => {
                for (i, cell) in tuple_at(reader, layout, object + FUNC_CLOSURE)
                    .into_iter()
                    .enumerate()
                {
                    if let Some(value) = reader.pointer(cell + CELL_REF) {
                        push(value, child(Step::Closure(i), None));
                    }
                }
                for (i, value) in tuple_at(reader, layout, object + FUNC_DEFAULTS)
                    .into_iter()
                    .enumerate()
                {
                    push(value, child(Step::Default(i), None));
                }
            }
            Kind::Method => {
                if let Some(owner) = reader.pointer(object + METHOD_SELF) {
                    push(owner, child(Step::SelfOf, None));
                }
            }
            _ => {}
        }
    }
    found
}

/// The items of the tuple whose pointer is at `field` (closures, defaults).
fn tuple_at(reader: &mut Reader<'_>, layout: &HeapLayout, field: u64) -> Vec<u64> {
    match reader.pointer(field) {
        Some(tuple) => sequence_items(reader, layout, tuple, Kind::Tuple, 64),
        None => Vec::new(),
    }
}

/// Queues the globals of the application's modules; returns module name -> file.
fn module_files(
    reader: &mut Reader<'_>,
    layout: &HeapLayout,
    types: &mut Types,
    roots: &Roots<'_>,
    queue: &mut VecDeque<Pending>,
) -> HashMap<String, String> {
    let mut files = HashMap::new();
    let mut modules = dict_entries(reader, layout, roots.modules);
    modules.truncate(MAX_MODULES);
    let mut user: Vec<(String, String, u64)> = Vec::new();
    for (key, module) in modules {
        let Some(name) = read_str(reader, layout, key, MAX_NAME) else {
            continue;
        };
        if types.of(reader, module).map(|(_, i)| i.kind) != Some(Kind::Module) {
            continue;
        }
        let Some(dict) = reader.pointer(module + MODULE_DICT) else {
            continue;
        };
        let Some(file) = global_str(reader, layout, dict, "__file__") else {
            continue;
        };
        files.insert(name.clone(), file.clone());
        if (roots.is_user_file)(&file) {
            user.push((name, file, dict));
        }
    }
    // `__main__` first: its names are the ones a developer knows best.
    user.sort_by_key(|(name, _, _)| name != "__main__");
    for (name, file, dict) in user {
        let module = Arc::new(Path {
            steps: vec![Step::Module(name)],
            files: vec![file],
        });
        for (key, value) in dict_entries(reader, layout, dict) {
            let Some(global) = read_str(reader, layout, key, MAX_NAME) else {
                continue;
            };
            if global.starts_with("__") && global.ends_with("__") {
                continue;
            }
            let mut path = (*module).clone();
            path.steps.push(Step::Attr(global));
            queue.push_back(Pending {
                object: value,
                path: Arc::new(path),
                depth: 1,
            });
        }
    }
    files
}

/// The string value of `name` in a dict whose keys are strings.
fn global_str(
    reader: &mut Reader<'_>,
    layout: &HeapLayout,
    dict: u64,
    name: &str,
) -> Option<String> {
    dict_entries(reader, layout, dict)
        .into_iter()
        .find(|(key, _)| read_str(reader, layout, *key, MAX_NAME).as_deref() == Some(name))
        .and_then(|(_, value)| read_str(reader, layout, value, 4096))
}

/// The file of the module that defines a class (its `__module__`).
fn class_file(
    reader: &mut Reader<'_>,
    layout: &HeapLayout,
    class: u64,
    module_files: &HashMap<String, String>,
) -> Option<String> {
    let dict = reader.pointer(class + TP_DICT)?;
    let module = global_str(reader, layout, dict, "__module__")?;
    module_files.get(&module).cloned()
}

/// The names of a frame's slots in slot order, from one tuple (3.11+) or three (3.10); None
/// when a tuple of names cannot be read. A tuple read only in part ends the names there: the
/// slots after it would be misnamed.
fn slot_names(reader: &mut Reader<'_>, layout: &HeapLayout, code: u64) -> Option<Vec<u64>> {
    let mut names = Vec::new();
    for &field in layout.local_names.fields() {
        let tuple = reader.pointer(code + field)?;
        let items = sequence_items(reader, layout, tuple, Kind::Tuple, MAX_FANOUT);
        let whole = reader.i64(tuple + OB_SIZE) == i64::try_from(items.len()).ok();
        names.extend(items);
        if !whole || names.len() >= MAX_FANOUT {
            break;
        }
    }
    names.truncate(MAX_FANOUT);
    Some(names)
}

/// Queues the locals of every frame of every thread that runs the application's code.
fn frame_roots(
    reader: &mut Reader<'_>,
    layout: &HeapLayout,
    roots: &Roots<'_>,
    queue: &mut VecDeque<Pending>,
) {
    let code = &layout.frames.code;
    for root in roots.frames.iter().take(MAX_FRAMES) {
        if !reader.plausible(root.code) || !reader.plausible(root.frame) {
            continue;
        }
        let (Some(file), Some(function)) = (
            reader
                .pointer(root.code + code.filename)
                .and_then(|s| read_str(reader, layout, s, 4096)),
            reader
                .pointer(root.code + code.qualname)
                .and_then(|s| read_str(reader, layout, s, MAX_NAME)),
        ) else {
            continue;
        };
        if !(roots.is_user_file)(&file) {
            continue;
        }
        let Some(names) = slot_names(reader, layout, root.code) else {
            continue;
        };
        let frame = Arc::new(Path {
            steps: vec![Step::Frame {
                function,
                file: file.clone(),
                thread: root.thread,
            }],
            files: vec![file],
        });
        for (i, name) in names.into_iter().enumerate() {
            let Some(name) = read_str(reader, layout, name, MAX_NAME) else {
                continue;
            };
            let slot = root
                .frame
                .wrapping_add(layout.frame_localsplus)
                .wrapping_add(i as u64 * 8);
            let Some(value) = reader.u64(slot).map(|v| v & !layout.local_tag_mask) else {
                continue;
            };
            if value == 0 {
                continue;
            }
            let mut path = (*frame).clone();
            path.steps.push(Step::Local(name));
            queue.push_back(Pending {
                object: value,
                path: Arc::new(path),
                depth: 1,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pyframes::layout::from_table;
    use crate::pyheap::reader::MemoryImage;

    const BASE: u64 = 0x30_0000;

    /// A code object at `BASE` whose fields at `fields` point at tuples of the given name
    /// objects (addresses only: slot names are matched to slots, not read, here).
    fn code_with(fields: &[(u64, &[u64])]) -> MemoryImage {
        let mut bytes = vec![0u8; 0x2000];
        let mut put = |at: u64, value: u64| {
            let i = (at - BASE) as usize;
            bytes[i..i + 8].copy_from_slice(&value.to_le_bytes());
        };
        for (n, (field, names)) in fields.iter().enumerate() {
            let tuple = BASE + 0x400 + n as u64 * 0x100;
            put(BASE + field, tuple);
            put(tuple + OB_SIZE, names.len() as u64);
            for (i, name) in names.iter().enumerate() {
                put(tuple + 24 + i as u64 * 8, *name);
            }
        }
        let mut image = MemoryImage::default();
        image.put(BASE, bytes);
        image
    }

    fn heap(minor: u8) -> HeapLayout {
        HeapLayout::for_version(from_table(3, minor).unwrap(), &[]).unwrap()
    }

    #[test]
    fn a_310_frame_names_its_slots_by_varnames_then_cellvars_then_freevars() {
        // `co_varnames` at 72, `co_freevars` at 80, `co_cellvars` at 88: the cells come first.
        let image = code_with(&[(72, &[0xa0, 0xa8]), (80, &[0xf0]), (88, &[0xc0])]);
        let mut reader = Reader::new(&image, image.mappings());
        let names = slot_names(&mut reader, &heap(10), BASE);
        assert_eq!(names, Some(vec![0xa0, 0xa8, 0xc0, 0xf0]));
    }

    #[test]
    fn a_311_frame_names_its_slots_by_co_localsplusnames() {
        let image = code_with(&[(96, &[0xa0, 0xc0]), (72, &[0xee])]);
        let mut reader = Reader::new(&image, image.mappings());
        assert_eq!(
            slot_names(&mut reader, &heap(11), BASE),
            Some(vec![0xa0, 0xc0])
        );
    }

    #[test]
    fn a_missing_tuple_of_names_names_no_slot() {
        // No `co_freevars`: a frame whose names cannot all be read is not named slot by slot.
        let image = code_with(&[(72, &[0xa0]), (88, &[0xc0])]);
        let mut reader = Reader::new(&image, image.mappings());
        assert_eq!(slot_names(&mut reader, &heap(10), BASE), None);
    }
}

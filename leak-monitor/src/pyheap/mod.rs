//! The heap census: what keeps a Python process's memory, read from outside.
//!
//! While a target's memory grows, the background thread shared by every target (`background`) takes
//! censuses of its Python heap with
//! `process_vm_readv` (no ptrace stop, nothing injected): every object on the collector's
//! generation lists, counted by type, with the lengths of its containers (`census`), plus the
//! containers reachable from the application's module globals and its threads' frames, each
//! with the path that names it (`roots`). Across censuses, `growth` finds the containers that
//! keep growing and the types whose count keeps rising; `items` says what a growing container
//! holds. `layout` is the one module here that knows CPython versions; `reader` and `objects`
//! read memory in bulk, inside the target's mappings, bounded.
//!
//! The attribution joins a named holder with the lines that fill it (`attribution::held`).

pub mod census;
pub mod growth;
pub mod items;
pub mod layout;
pub mod objects;
pub mod pace;
pub mod reader;
pub mod roots;

use crate::background::{self, Paced};
use crate::pyframes::layout::DEBUG_OFFSETS_PREFIX;
use crate::pyframes::memory::{Memory, ProcessMemory};
use crate::pyframes::threads::thread_states;
use crate::pyframes::{layout_for, FramesError};
use crate::targets::runtime::PythonRuntime;
use census::{Bounds, Census};
use growth::{GrowingHolder, HeapHistory, TypeGrowth};
use items::Items;
use layout::{shared::TP_MRO, HeapLayout};
use leak_monitor_common::NO_OFFSET;
use objects::{dict_entries, read_str, sequence_items, Kind, Types};
use pace::{Finding, Pace};
use reader::{Mappings, Reader};
use roots::{FrameRoot, Named, Roots};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Growing containers whose items are summarised after each census.
const SUMMARISED: usize = 4;
/// Types kept for the metrics, by count.
const TOP_TYPES: usize = 20;

/// What the censuses of one target have found so far.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeapFindings {
    pub censuses: usize,
    /// The containers that keep growing, fastest first, with what they hold.
    pub holders: Vec<(GrowingHolder, Option<Items>)>,
    /// Types whose instance count keeps rising.
    pub types: Vec<TypeGrowth>,
    /// The most numerous types of the last census: (name, count, bytes).
    pub top_types: Vec<(String, u64, u64)>,
    pub last: Option<CensusStats>,
    /// Why the last census failed, if it did.
    pub error: Option<String>,
}

/// The cost and completeness of the last census.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CensusStats {
    pub objects: u64,
    pub partial: bool,
    pub unreadable: u64,
    pub wall_seconds: f64,
    pub reads: u64,
    pub bytes_read: u64,
}

/// A process whose heap can be read: its memory, layout and runtime.
pub struct HeapSource {
    pid: i32,
    memory: Box<dyn Memory>,
    layout: HeapLayout,
    runtime: u64,
}

impl HeapSource {
    /// Reads the interpreter `python` found in a live process, once its layout is checked
    /// against it.
    pub fn attach(python: &PythonRuntime) -> Result<HeapSource, FramesError> {
        let pid = python.pid;
        let memory = ProcessMemory { pid };
        let runtime = python.interpreter()?;
        let frames = layout_for(&memory, &runtime)?;
        let mut debug = vec![0u8; DEBUG_OFFSETS_PREFIX];
        if frames.minor >= 13 {
            memory.read(runtime.address, &mut debug)?;
        }
        let layout = HeapLayout::for_version(frames, &debug)?;
        let source = HeapSource {
            pid,
            memory: Box::new(memory),
            layout,
            runtime: runtime.address,
        };
        source.check()?;
        Ok(source)
    }

    pub fn layout(&self) -> &HeapLayout {
        &self.layout
    }

    /// Before trusting a layout: `sys.modules` must be a dict whose entries name the module
    /// `sys`, a tuple's items must be where the layout says, and the gc state must hold the
    /// generation lists. A mismatch (a patch release that moved a field) is an error, never a
    /// census read with a wrong layout.
    fn check(&self) -> Result<(), FramesError> {
        let mappings = self.mappings()?;
        let mut reader = Reader::new(self.memory.as_ref(), mappings);
        let mismatch = |what| {
            FramesError::Unsupported(format!(
                "{}.{} ({what})",
                self.layout.frames.major, self.layout.frames.minor
            ))
        };
        let interp = reader
            .pointer(self.runtime + self.layout.frames.runtime_interpreters_head)
            .ok_or_else(|| mismatch("no interpreter state"))?;
        let modules = reader
            .pointer(interp + self.layout.interp_modules)
            .ok_or_else(|| mismatch("no sys.modules"))?;
        let mut types = Types::default();
        let dict_type = match types.of(&mut reader, modules) {
            Some((address, info)) if info.kind == Kind::Dict => address,
            _ => return Err(mismatch("sys.modules is not a dict at the expected offset")),
        };
        // The keys table read back (3.10's and 3.11+'s differ): `sys.modules["sys"]` is a module.
        let sys = dict_entries(&mut reader, &self.layout, modules)
            .into_iter()
            .find(|(key, _)| {
                read_str(&mut reader, &self.layout, *key, 8).as_deref() == Some("sys")
            });
        let sys_kind = sys.and_then(|(_, module)| types.of(&mut reader, module).map(|t| t.1.kind));
        if sys_kind != Some(Kind::Module) {
            return Err(mismatch(
                "no module `sys` read from sys.modules' keys table",
            ));
        }
        // `dict.__mro__` is `(dict, object)`: where a tuple keeps its items (3.14 moved them).
        let mro = reader.pointer(dict_type + TP_MRO).unwrap_or(0);
        let mro = sequence_items(&mut reader, &self.layout, mro, Kind::Tuple, 2);
        if mro.first() != Some(&dict_type) {
            return Err(mismatch("a tuple's items are not at the expected offset"));
        }
        census::generation_heads(&mut reader, interp + self.layout.interp_gc)
            .ok_or_else(|| mismatch("no GC generation lists in the gc state"))?;
        Ok(())
    }

    fn mappings(&self) -> Result<Mappings, FramesError> {
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", self.pid))
            .map_err(|e| FramesError::Proc(format!("/proc/{}/maps: {e}", self.pid)))?;
        Ok(Mappings::parse(&maps))
    }

    /// One census, the containers named from the roots, and the reader's cost.
    pub fn census(
        &self,
        bounds: Bounds,
        is_user_file: &dyn Fn(&str) -> bool,
    ) -> Result<(Census, HashMap<u64, Named>), String> {
        let mappings = self.mappings().map_err(|e| e.to_string())?;
        let mut reader = Reader::new(self.memory.as_ref(), mappings);
        let mut census = census::take(&mut reader, &self.layout, self.runtime, bounds)
            .map_err(|e| e.to_string())?;
        let frames = self.frame_roots();
        let mut types = Types::default();
        let modules = reader
            .pointer(self.runtime + self.layout.frames.runtime_interpreters_head)
            .and_then(|interp| reader.pointer(interp + self.layout.interp_modules))
            .unwrap_or(0);
        let named = roots::walk(
            &mut reader,
            &self.layout,
            &mut types,
            &Roots {
                modules,
                frames: &frames,
                is_user_file,
            },
        );
        for n in named.values() {
            if let Some(info) = types.get(&mut reader, n.type_address) {
                census
                    .type_names
                    .entry(n.type_address)
                    .or_insert_with(|| info.name.clone());
            }
        }
        census.reads = reader.stats;
        Ok((census, named))
    }

    /// Summarises what the containers at `addresses` hold.
    pub fn items(&self, addresses: &[u64]) -> HashMap<u64, Items> {
        let Ok(mappings) = self.mappings() else {
            return HashMap::new();
        };
        let mut reader = Reader::new(self.memory.as_ref(), mappings);
        let mut types = Types::default();
        addresses
            .iter()
            .filter_map(|&address| {
                let kind = types.of(&mut reader, address)?.1.kind;
                Some((
                    address,
                    items::summarise(&mut reader, &self.layout, &mut types, address, kind),
                ))
            })
            .collect()
    }

    /// Every Python frame of every thread, innermost first per thread.
    fn frame_roots(&self) -> Vec<FrameRoot> {
        let frames = &self.layout.frames;
        let kernel = &frames.kernel;
        let Ok(threads) = thread_states(self.memory.as_ref(), frames, self.runtime) else {
            return Vec::new();
        };
        let memory = self.memory.as_ref();
        let mut out = Vec::new();
        for (tid, tstate) in threads {
            let mut frame =
                match memory.read_u64(tstate.wrapping_add(u64::from(kernel.tstate_frame))) {
                    Ok(f) if kernel.cframe_current != NO_OFFSET && f != 0 => memory
                        .read_u64(f + u64::from(kernel.cframe_current))
                        .unwrap_or(0),
                    Ok(f) => f,
                    Err(_) => 0,
                };
            for _ in 0..64 {
                if frame == 0 {
                    break;
                }
                let code = memory
                    .read_u64(frame.wrapping_add(u64::from(kernel.frame_code)))
                    .map(|c| c & !kernel.code_tag_mask)
                    .unwrap_or(0);
                let mut owner = [0u8; 1];
                let shim = kernel.owner_cstack != NO_OFFSET
                    && memory
                        .read(frame + u64::from(kernel.frame_owner), &mut owner)
                        .is_ok()
                    && u32::from(owner[0]) == kernel.owner_cstack;
                if code != 0 && !shim {
                    out.push(FrameRoot {
                        thread: tid,
                        frame,
                        code,
                    });
                }
                frame = memory
                    .read_u64(frame + u64::from(kernel.frame_previous))
                    .unwrap_or(0);
            }
        }
        out
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Shared {
    source: HeapSource,
    started: Instant,
    timing: Mutex<Timing>,
    stop: AtomicBool,
    state: Mutex<State>,
    is_user_file: fn(&str) -> bool,
}

/// When this target's next census is due.
struct Timing {
    /// Censuses are taken until this moment; `arm` moves it on while memory grows.
    armed_until: Option<Instant>,
    /// The pace: not before this moment.
    next_at: Instant,
    pace: Pace,
}

#[derive(Default)]
struct State {
    history: HeapHistory,
    items: HashMap<u64, Items>,
    last: Option<CensusStats>,
    top_types: Vec<(String, u64, u64)>,
    error: Option<String>,
    /// What `findings` made of the above, until a census changes it: every snapshot asks, and
    /// each answer walks every container followed.
    findings: Option<Arc<HeapFindings>>,
}

/// Censuses of one target, taken in the background while its memory grows.
pub struct HeapWatch {
    shared: Arc<Shared>,
}

impl HeapWatch {
    /// Hands a source to the census worker; nothing is read until `arm`.
    pub fn start(source: HeapSource, is_user_file: fn(&str) -> bool) -> std::io::Result<HeapWatch> {
        let now = Instant::now();
        let shared = Arc::new(Shared {
            source,
            started: now,
            timing: Mutex::new(Timing {
                armed_until: None,
                next_at: now,
                pace: Pace::default(),
            }),
            stop: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            is_user_file,
        });
        background::shared().add(background::weak(&shared))?;
        Ok(HeapWatch { shared })
    }

    /// Keeps taking censuses until `until`.
    pub fn arm(&self, until: Instant) {
        let extended = {
            let mut timing = lock(&self.shared.timing);
            let extends = timing.armed_until.is_none_or(|at| at < until);
            let now = Instant::now();
            if timing.armed_until.is_none_or(|at| at <= now) {
                // Growth again after the censuses stopped: a new episode, at the full pace (not
                // after the backed-off gap the last census set).
                timing.pace.restart();
                timing.next_at = timing.next_at.min(now + pace::MIN_GAP);
            }
            if extends {
                timing.armed_until = Some(until);
            }
            extends
        };
        if extended {
            background::shared().wake();
        }
    }

    pub fn findings(&self) -> Arc<HeapFindings> {
        let mut state = lock(&self.shared.state);
        if let Some(findings) = &state.findings {
            return Arc::clone(findings);
        }
        let holders = state
            .history
            .growing()
            .into_iter()
            .map(|h| {
                let items = state.items.get(&h.address).cloned();
                (h, items)
            })
            .collect();
        let findings = Arc::new(HeapFindings {
            censuses: state.history.censuses(),
            holders,
            types: state.history.type_growth(),
            top_types: state.top_types.clone(),
            last: state.last,
            error: state.error.clone(),
        });
        state.findings = Some(Arc::clone(&findings));
        findings
    }
}

impl Paced for Shared {
    /// When the next census is due, if it is armed.
    fn due_at(&self, now: Instant) -> Option<Instant> {
        let timing = lock(&self.timing);
        timing
            .armed_until
            .is_some_and(|until| now < until)
            .then_some(timing.next_at)
    }

    fn stopped(&self) -> &AtomicBool {
        &self.stop
    }

    /// Takes one census and sets when the next may start.
    fn run_once(&self) {
        let began = Instant::now();
        let at = began.duration_since(self.started).as_secs_f64();
        let finding = match self.source.census(Bounds::default(), &self.is_user_file) {
            Ok((census, named)) => {
                let mut state = lock(&self.state);
                state.findings = None;
                state.history.push(at, &census, &named);
                state.error = None;
                state.last = Some(CensusStats {
                    objects: census.objects,
                    partial: census.partial,
                    unreadable: census.unreadable,
                    wall_seconds: census.wall.as_secs_f64(),
                    reads: census.reads.reads,
                    bytes_read: census.reads.bytes,
                });
                let mut top: Vec<(String, u64, u64)> = census
                    .types
                    .iter()
                    .map(|(n, c)| (n.clone(), c.count, c.bytes))
                    .collect();
                top.sort_by_key(|(_, count, _)| std::cmp::Reverse(*count));
                top.truncate(TOP_TYPES);
                state.top_types = top;
                let growing: Vec<u64> = state
                    .history
                    .growing()
                    .iter()
                    .take(SUMMARISED)
                    .map(|h| h.address)
                    .collect();
                let types: Vec<String> = state
                    .history
                    .type_growth()
                    .into_iter()
                    .map(|t| t.type_name)
                    .collect();
                let finding =
                    Finding::of(growing.iter().copied(), types.iter().map(String::as_str));
                drop(state);
                let items = self.source.items(&growing);
                let mut state = lock(&self.state);
                state.items = items;
                state.findings = None;
                Some(finding)
            }
            Err(err) => {
                let mut state = lock(&self.state);
                state.error = Some(err);
                state.findings = None;
                None
            }
        };
        let spent = began.elapsed();
        let mut timing = lock(&self.timing);
        let gap = timing.pace.after(spent, finding);
        timing.next_at = Instant::now() + gap;
    }
}

impl Drop for HeapWatch {
    fn drop(&mut self) {
        // A census under way finishes on the worker (its results are dropped with it).
        self.shared.stop.store(true, Ordering::Relaxed);
        background::shared().wake();
    }
}

//! Python stacks read in the kernel at the event, resolved to file:line here.
//!
//! The kernel program (`leak-monitor-ebpf/src/pystack.rs`) walks a thread's CPython frame chain
//! when it creates an fd, a thread or a page, and sends the code object address and
//! instruction offset of each frame. It needs two things per process, which `PyFrames::attach`
//! installs: the struct offsets of that process's CPython (`layout`, the only module that
//! knows versions) and each thread's `PyThreadState` address (`threads`, kept current by one
//! `refresher` thread shared by every process: soon after each THREAD_NEW the resolver reports,
//! for every process when the syscall programs attach again, and on a slow shared timer; the
//! kernel drops an exiting thread's entry itself). `resolve` turns a stack into frames by reading each code object once
//! (`code`) and decoding its line table (`linetable`, pure). A layout from a table (3.10-3.12)
//! is checked against the live process first (`check`); `walk` is the kernel's walk in user
//! space, which the recorded interpreters of `fixtures` replay through.
//!
//! Unsupported versions, missing symbols and unreadable memory are errors from `attach`; the
//! caller then simply gets events without stacks.

pub mod check;
pub mod code;
pub mod layout;
pub mod linetable;
pub mod memory;
mod refresher;
pub mod threads;
pub mod walk;

#[cfg(test)]
mod fixtures;

use crate::events::{PyMaps, Tracer};
use crate::targets::runtime::{Interpreter, PythonRuntime, RuntimeError};
use code::CodeCache;
use layout::Layout;
use leak_monitor_common::PyStack;
use memory::{Memory, ProcessMemory};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// One Python frame: where a stack read from outside (or walked in the kernel) stands.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Frame {
    pub file: String,
    pub line: u32,
    pub function: String,
}

impl Frame {
    pub fn new(file: &str, line: u32, function: &str) -> Frame {
        Frame {
            file: file.to_owned(),
            line,
            function: function.to_owned(),
        }
    }
}

/// Why the frames of a process cannot be read in the kernel.
#[derive(Debug, thiserror::Error)]
pub enum FramesError {
    #[error("CPython {0} is not supported by the in-kernel frame walk")]
    Unsupported(String),
    #[error("CPython {0} has no heap census layout (the census reads 3.10-3.15)")]
    NoCensusLayout(String),
    /// `Py_GIL_DISABLED`: objects carry per-thread reference counts and frames and the
    /// collector's lists differ, so neither the walk nor the census may read it.
    #[error(
        "CPython {0} is a free-threaded build (Py_GIL_DISABLED, {1}): memory, fds, threads and \
         sockets are sampled and traced as for any process, but neither the in-kernel frame \
         walk nor the heap census reads a free-threaded interpreter"
    )]
    FreeThreaded(String, &'static str),
    #[error("the interpreter exports no `{0}` symbol")]
    NoSymbol(&'static str),
    #[error("cannot read {len} bytes at {address:#x} of the target")]
    Read { address: u64, len: usize },
    #[error("the object at {address:#x} is not a compact str")]
    NotAString { address: u64 },
    #[error("_Py_DebugOffsets: {0}")]
    DebugOffsets(&'static str),
    #[error("{0}")]
    Mismatch(String),
    #[error("{0}")]
    Proc(String),
    #[error("the loaded eBPF object has no Python frame-walk maps")]
    NoMaps,
    #[error(transparent)]
    Maps(#[from] crate::events::PyMapsError),
}

/// The same words as the discovery's, as a frames error.
impl From<RuntimeError> for FramesError {
    fn from(err: RuntimeError) -> Self {
        match err {
            RuntimeError::FreeThreaded(version, how) => FramesError::FreeThreaded(version, how),
            RuntimeError::NoSymbol(name) => FramesError::NoSymbol(name),
            RuntimeError::Proc(why) => FramesError::Proc(why),
        }
    }
}

struct Inner {
    tgid: u32,
    memory: ProcessMemory,
    layout: Layout,
    runtime: u64,
    maps: PyMaps,
    /// What PY_THREADS holds for this process.
    threads: Mutex<HashMap<u32, u64>>,
    code: Mutex<CodeCache>,
    /// Set (before the thread map is emptied) when the process is let go, so a refresh that
    /// was under way cannot put its entries back.
    stop: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One Python process whose frames the kernel reads. Dropping it stops the walk for the
/// process and takes its entries out of the kernel's maps.
pub struct PyFrames {
    inner: Arc<Inner>,
}

/// A shareable handle for the event thread: resolves stacks, hears of new threads.
#[derive(Clone)]
pub struct FrameResolver {
    inner: Arc<Inner>,
}

impl PyFrames {
    /// Installs the layout and thread map of the interpreter `python` found in the tracer's
    /// maps, and starts keeping the thread map current.
    pub fn attach(python: &PythonRuntime, tracer: &Tracer) -> Result<PyFrames, FramesError> {
        let pid = python.pid;
        let maps = tracer.python_maps().ok_or(FramesError::NoMaps)?;
        let tgid = u32::try_from(pid).map_err(|_| FramesError::Proc(format!("bad pid {pid}")))?;
        let UserSpace {
            memory,
            layout,
            runtime,
        } = attach_user_space(python)?;
        let inner = Arc::new(Inner {
            tgid,
            memory,
            layout,
            runtime,
            maps,
            threads: Mutex::new(HashMap::new()),
            code: Mutex::new(CodeCache::default()),
            stop: AtomicBool::new(false),
        });
        // Threads first, so the first stacked event already finds its thread.
        inner.refresh()?;
        inner.maps.set_layout(tgid, layout.kernel)?;
        refresher::shared()
            .add(&inner)
            .map_err(|e| FramesError::Proc(format!("starting the thread refresher: {e}")))?;
        Ok(PyFrames { inner })
    }

    /// The CPython version and offsets in use.
    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// Re-reads the thread list soon, on the shared refresher's thread (the process's thread
    /// count changed).
    pub fn refresh_soon(&self) {
        refresher::shared().soon(self.inner.tgid);
    }

    /// Re-reads the thread list now; returns the number of Python threads.
    pub fn refresh(&self) -> Result<usize, FramesError> {
        self.inner.refresh()
    }

    /// The stack's frames (innermost first) as file, line, function.
    pub fn resolve(&self, stack: &PyStack) -> Vec<Frame> {
        self.inner.resolve(stack)
    }

    /// A handle for the event thread (a `SiteResolver`).
    pub fn resolver(&self) -> FrameResolver {
        FrameResolver {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl FrameResolver {
    pub fn tgid(&self) -> u32 {
        self.inner.tgid
    }

    pub fn resolve(&self, stack: &PyStack) -> Vec<Frame> {
        self.inner.resolve(stack)
    }

    /// A THREAD_NEW event: re-read the thread list soon, once the thread has started.
    pub fn thread_created(&self) {
        refresher::shared().soon(self.inner.tgid);
    }
}

/// The syscall programs attached again after a pause: the threads started meanwhile were not
/// reported, so every process's thread list is re-read soon.
pub fn refresh_all_soon() {
    refresher::shared().all_soon();
}

impl Drop for PyFrames {
    fn drop(&mut self) {
        refresher::shared().remove(self.inner.tgid);
        self.inner.stop.store(true, Ordering::Release);
        self.inner.maps.remove_layout(self.inner.tgid);
        for tid in lock(&self.inner.threads).drain().map(|(tid, _)| tid) {
            self.inner.maps.remove_thread(tid);
        }
    }
}

/// What reading a process's Python stacks from user space needs (no kernel maps): its memory,
/// the layout of its CPython, checked as `PyFrames::attach` checks it, and `_PyRuntime`.
pub struct UserSpace {
    pub memory: ProcessMemory,
    pub layout: Layout,
    pub runtime: u64,
}

/// Checks the interpreter `python` found for reads from user space (`walk`, `code`).
pub fn attach_user_space(python: &PythonRuntime) -> Result<UserSpace, FramesError> {
    let pid = python.pid;
    let memory = ProcessMemory { pid };
    let runtime = python.interpreter()?;
    let layout = layout_for(&memory, &runtime)?;
    if !layout::has_debug_offsets(layout.major, layout.minor) {
        check_table(pid, &memory, &layout, runtime.address)?;
    }
    Ok(UserSpace {
        memory,
        layout,
        runtime: runtime.address,
    })
}

/// Checks a table layout against the live process (`check`), reading it twice before giving
/// up: a thread may start or end between the list and /proc/PID/task.
fn check_table(
    pid: i32,
    memory: &dyn Memory,
    layout: &Layout,
    runtime: u64,
) -> Result<(), FramesError> {
    let attempt = || {
        let threads = threads::thread_states(memory, layout, runtime)?;
        check::table_layout(memory, layout, &threads, &check::live_tasks(pid)?)
    };
    attempt().or_else(|_| {
        std::thread::sleep(Duration::from_millis(20));
        attempt()
    })
}

/// The layout of the interpreter: a table for 3.10-3.12, `_Py_DebugOffsets` for 3.13+.
pub(crate) fn layout_for(
    memory: &dyn Memory,
    runtime: &Interpreter,
) -> Result<Layout, FramesError> {
    let (major, minor) = runtime.major_minor();
    let layout = if let Some(table) = layout::from_table(major, minor) {
        table
    } else if layout::has_debug_offsets(major, minor) {
        let mut bytes = vec![0u8; layout::DEBUG_OFFSETS_PREFIX];
        memory.read(runtime.address, &mut bytes)?;
        layout::from_debug_offsets(&bytes)?
    } else {
        return Err(FramesError::Unsupported(format!("{major}.{minor}")));
    };
    if !layout::fits_frame_chunk(&layout.kernel) {
        return Err(FramesError::Unsupported(format!(
            "{major}.{minor} (frame fields too far apart for one read)"
        )));
    }
    Ok(layout)
}

impl Inner {
    fn refresh(&self) -> Result<usize, FramesError> {
        let live = threads::thread_states(&self.memory, &self.layout, self.runtime)?;
        let mut known = lock(&self.threads);
        if self.stop.load(Ordering::Acquire) {
            return Ok(0);
        }
        for (tid, tstate) in &live {
            if known.get(tid) != Some(tstate) {
                self.maps.set_thread(*tid, *tstate)?;
            }
        }
        for gone in known.keys().filter(|tid| !live.contains_key(tid)) {
            self.maps.remove_thread(*gone);
        }
        let count = live.len();
        *known = live;
        Ok(count)
    }

    fn resolve(&self, stack: &PyStack) -> Vec<Frame> {
        let depth = (stack.depth as usize).min(stack.code.len());
        let mut cache = lock(&self.code);
        (0..depth)
            // Code 0: a C-stack shim frame.
            .filter(|&i| stack.code[i] != 0)
            .map(|i| {
                let address = stack.code[i];
                match cache.get(&self.memory, &self.layout, address) {
                    Ok(info) => Frame {
                        file: info.filename.clone(),
                        line: info.line(&self.layout, stack.instr_offset[i]),
                        function: info.qualname.clone(),
                    },
                    Err(_) => Frame {
                        file: "<unreadable>".into(),
                        line: 0,
                        function: format!("<code {address:#x}>"),
                    },
                }
            })
            .collect()
    }
}

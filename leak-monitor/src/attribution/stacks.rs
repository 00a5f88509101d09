//! Python stacks of a live process, read from outside with py-spy used as a library.
//!
//! `StackReader` attaches once per target and then reads every thread's stack without pausing
//! the process (`LockingStrategy::NonBlocking`): the reads race with the threads, which is the
//! price of never stopping the target. A blocking read (all threads suspended for the read) is
//! an opt-in; its pause is measured, the longest one kept, and blocking is refused while the
//! last pause was longer than the stated bound.

use super::Frame;
use py_spy::config::LockingStrategy;
use py_spy::{Config, PythonSpy};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Why stacks cannot be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StackError {
    #[error("PID {pid} is not a Python process py-spy can read: {detail}")]
    NotPython { pid: i32, detail: String },
    #[error("not permitted to read the memory of PID {pid} (needs CAP_SYS_PTRACE or the same user, and ptrace_scope allowing it): {detail}")]
    PermissionDenied { pid: i32, detail: String },
    #[error("PID {pid} is gone")]
    Gone { pid: i32 },
    #[error("cannot read the Python stacks of PID {pid}: {detail}")]
    Other { pid: i32, detail: String },
}

/// One Python thread's stack at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadStack {
    /// The kernel's thread id (`/proc/PID/task/TID`); 0 when py-spy could not tell.
    pub os_tid: u32,
    /// Whether the kernel had the thread running (state R) just before the read.
    pub running: bool,
    /// Innermost frame first.
    pub frames: Vec<Frame>,
}

/// When a blocking read is allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockingPolicy {
    /// Blocking is skipped (a non-blocking read is made instead) while the last pause was longer.
    pub max_pause: Duration,
}

impl Default for BlockingPolicy {
    fn default() -> Self {
        BlockingPolicy {
            max_pause: Duration::from_millis(10),
        }
    }
}

/// Reads the Python stacks of one process.
pub struct StackReader {
    pid: i32,
    spy: PythonSpy,
    blocking: Option<BlockingPolicy>,
    last_pause: Option<Duration>,
    max_pause: Duration,
    blocked_reads: u64,
}

impl StackReader {
    /// Attaches to `pid` (reads its memory maps and finds the interpreter, ~20 ms). Non-blocking.
    pub fn attach(pid: i32) -> Result<StackReader, StackError> {
        let config = Config {
            blocking: LockingStrategy::NonBlocking,
            native: false,
            subprocesses: false,
            // Sleeping threads count: a leak often happens in a thread that is idle most of the time.
            include_idle: true,
            gil_only: false,
            collect_thread_names: false,
            dump_locals: 0,
            full_filenames: true,
            ..Config::default()
        };
        let spy = PythonSpy::new(pid, &config).map_err(|err| classify(pid, &err, true))?;
        Ok(StackReader {
            pid,
            spy,
            blocking: None,
            last_pause: None,
            max_pause: Duration::ZERO,
            blocked_reads: 0,
        })
    }

    /// Opts in to blocking reads (the target is suspended for each read) under `policy`.
    pub fn allow_blocking(&mut self, policy: BlockingPolicy) {
        self.blocking = Some(policy);
    }

    /// The interpreter's version as py-spy read it, e.g. `3.11.2`.
    pub fn python_version(&self) -> String {
        self.spy.version.to_string()
    }

    /// The longest pause a blocking read caused so far (zero without blocking reads).
    pub fn max_pause(&self) -> Duration {
        self.max_pause
    }

    /// How many reads suspended the target.
    pub fn blocked_reads(&self) -> u64 {
        self.blocked_reads
    }

    /// Every Python thread's stack, innermost frame first. Blocks (suspends the target for the
    /// read) only when blocking was allowed and the last blocking read's pause was within bound.
    pub fn all_threads(&mut self) -> Result<Vec<ThreadStack>, StackError> {
        let block = match (self.blocking, self.last_pause) {
            (Some(policy), Some(last)) => last <= policy.max_pause,
            (Some(_), None) => true,
            (None, _) => false,
        };
        self.spy.config.blocking = if block {
            LockingStrategy::Lock
        } else {
            LockingStrategy::NonBlocking
        };
        let started = Instant::now();
        let traces = self.spy.get_stack_traces();
        if block {
            // The suspension spans the read: its duration is the pause the target saw.
            let pause = started.elapsed();
            self.last_pause = Some(pause);
            self.max_pause = self.max_pause.max(pause);
            self.blocked_reads += 1;
        }
        let traces = traces.map_err(|err| classify(self.pid, &err, false))?;
        Ok(traces
            .into_iter()
            .map(|trace| ThreadStack {
                os_tid: trace
                    .os_thread_id
                    .and_then(|tid| u32::try_from(tid).ok())
                    .unwrap_or(0),
                running: trace.active,
                frames: trace.frames.iter().map(convert_frame).collect(),
            })
            .collect())
    }

    /// The stack of the thread with kernel id `os_tid`, None when it runs no Python code.
    pub fn thread(&mut self, os_tid: u32) -> Result<Option<Vec<Frame>>, StackError> {
        Ok(self
            .all_threads()?
            .into_iter()
            .find(|t| t.os_tid == os_tid)
            .map(|t| t.frames))
    }
}

fn convert_frame(frame: &py_spy::Frame) -> Frame {
    Frame {
        file: frame.filename.clone(),
        line: u32::try_from(frame.line).unwrap_or(0),
        function: frame.name.clone(),
    }
}

/// Sorts py-spy's error chain into what a caller branches on.
fn classify(pid: i32, err: &anyhow::Error, attaching: bool) -> StackError {
    let detail = format!("{err:#}");
    let pid_u = u32::try_from(pid).unwrap_or(0);
    let alive = std::path::Path::new(&format!("/proc/{pid_u}")).exists();
    if !alive {
        return StackError::Gone { pid };
    }
    for cause in err.chain() {
        let io_kind = cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind);
        if io_kind == Some(std::io::ErrorKind::PermissionDenied) {
            return StackError::PermissionDenied { pid, detail };
        }
    }
    let lower = detail.to_lowercase();
    if lower.contains("permission denied") || lower.contains("operation not permitted") {
        return StackError::PermissionDenied { pid, detail };
    }
    let not_python = [
        "python version",
        "python interpreter",
        "python binary",
        "unsupported version",
    ];
    if attaching && not_python.iter().any(|m| lower.contains(m)) {
        return StackError::NotPython { pid, detail };
    }
    StackError::Other { pid, detail }
}

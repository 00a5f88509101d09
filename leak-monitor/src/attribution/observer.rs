//! One read of a Python process for the stack probe, made of small reads (CPython 3.10+, the
//! versions the frame walk knows).
//!
//! A read first takes every Python thread's counters (`task_counters`: a `pread` or an `fstat`
//! each, on files opened once). Only a thread that ran since the previous read (its scheduled-in
//! count moved) or is running now has its stack read again; the others are where they were.
//! A stack is read by the frame walk of `pyframes::walk` (one `process_vm_readv` for the
//! thread's current frame, one per frame), and each (code object, instruction offset) is
//! resolved to file, line and function once and then kept: a read of a thread that ran is a
//! handful of small reads, and a read of a process whose threads all slept is a few `pread`s.
//! The counters of the threads read are taken again after their stacks, so the faults made
//! while a stack was read are known, as `sampled` expects.
//!
//! A read is timed to catch a thread at work: a thread found asleep in `clock_nanosleep` with
//! an absolute deadline (how `time.sleep` waits since CPython 3.11) wakes at that deadline,
//! read from its `/proc/PID/task/TID/syscall` and its memory, so the probe can read it as it
//! wakes (`next_wake`); and a thread that started running is read again at once while its run
//! is young (`following`), so a short burst of work, such as the allocation a leak makes, is
//! seen from read to read instead of caught by chance.
//!
//! The map from thread id to `PyThreadState` is read again when the thread count changes or a
//! thread is gone, and once a second otherwise. The files stay open only while the probe reads
//! (`release` closes them when it stops), so a fleet of idle targets holds none.

use super::sampled::{Observation, ThreadObservation};
use super::stacks::StackError;
use super::task_counters::{ProcessCounts, TaskFiles, TaskState};
use super::Frame;
use crate::pyframes::code::CodeCache;
use crate::pyframes::memory::Memory;
use crate::pyframes::{attach_user_space, threads, walk, FramesError, UserSpace};
use crate::targets::runtime::PythonRuntime;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The thread map is read again at least this often (a thread state can be reused).
const MAP_REFRESH: Duration = Duration::from_secs(1);
/// Resolved lines are forgotten this often, or when this many are kept (a freed code object's
/// address can be reused; a line is read again at its next sighting).
const LINES_MAX_AGE: Duration = Duration::from_secs(30);
const LINES_MAX: usize = 8192;

/// How long after a thread started running it is followed from read to read.
const FOLLOW_FOR: Duration = Duration::from_millis(1);
/// How long after its deadline a thread that has not run yet is waited for, read to read (on
/// a busy machine a woken thread waits for a CPU).
const WAKE_WAIT: Duration = Duration::from_millis(2);
/// A predicted wake-up further ahead than this is ignored (the probe reads before anyway).
const WAKE_HORIZON: Duration = Duration::from_secs(5);

/// One Python thread of the process.
struct Slot {
    tstate: u64,
    files: TaskFiles,
    /// Its scheduled-in count at the previous read.
    runs: Option<u64>,
    /// Its state at the previous read of it.
    state: Option<TaskState>,
    /// It ran since its stack was last read (or was running then).
    ran: bool,
    /// Since when it has been seen running, without a read seeing it stopped.
    running_since: Option<Instant>,
    /// When its sleep ends, when it sleeps until a deadline.
    wake_at: Option<Instant>,
    /// Its stack at the last read of it.
    frames: Option<Vec<Frame>>,
}

/// How much a read costs, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadCounts {
    /// Thread stacks read.
    pub stacks_read: u64,
    /// Thread stacks kept from the read before (the thread had not run).
    pub stacks_kept: u64,
    /// Reads that found no thread had run since the read before (nothing new to attribute).
    pub quiet_reads: u64,
    /// Lines resolved from a code object (the others came from the kept lines).
    pub lines_resolved: u64,
}

/// Reads one process for the probe.
pub struct Observer {
    pid: i32,
    space: UserSpace,
    /// Open while the probe reads.
    counts: Option<ProcessCounts>,
    threads: HashMap<u32, Slot>,
    /// The thread count when the map was read, and when.
    mapped: Option<(u64, Instant)>,
    code: CodeCache,
    lines: HashMap<(u64, u32), Frame>,
    lines_since: Instant,
    read_counts: ReadCounts,
}

impl Observer {
    /// Finds the interpreter and its threads. Fails for versions the walk does not know.
    pub fn attach(python: &PythonRuntime) -> Result<Observer, FramesError> {
        let pid = python.pid;
        let space = attach_user_space(python)?;
        let counts =
            ProcessCounts::open(pid).map_err(|e| FramesError::Proc(format!("/proc/{pid}: {e}")))?;
        let threads = counts.threads();
        let mut observer = Observer {
            pid,
            space,
            counts: Some(counts),
            threads: HashMap::new(),
            mapped: None,
            code: CodeCache::default(),
            lines: HashMap::new(),
            lines_since: Instant::now(),
            read_counts: ReadCounts::default(),
        };
        observer.map_threads(threads)?;
        observer.release();
        Ok(observer)
    }

    pub fn read_counts(&self) -> ReadCounts {
        self.read_counts
    }

    /// Closes the files and forgets the threads until the next read (the probe stopped).
    pub fn release(&mut self) {
        self.counts = None;
        self.threads.clear();
        self.mapped = None;
    }

    /// One read: which threads ran; then the counters, the stacks of the threads that ran and
    /// the counters again. None when no thread ran since the read before: nothing can have
    /// grown and no stack moved, so that read stands for this one.
    pub fn observe(&mut self) -> Result<Option<Observation>, StackError> {
        let started = Instant::now();
        if self.counts.is_none() {
            let counts =
                ProcessCounts::open(self.pid).map_err(|_| StackError::Gone { pid: self.pid })?;
            self.counts = Some(counts);
        }
        let ran = self.threads_that_ran();
        let stale = self
            .mapped
            .is_none_or(|(_, at)| at.elapsed() >= MAP_REFRESH);
        if !ran && !stale {
            self.read_counts.quiet_reads += 1;
            return Ok(None);
        }
        let Some(counts) = &self.counts else {
            return Err(StackError::Gone { pid: self.pid });
        };
        let threads_before = counts.threads();
        if threads_before == 0 {
            return Err(StackError::Gone { pid: self.pid });
        }
        if stale
            || self
                .mapped
                .is_some_and(|(count, _)| count != threads_before)
        {
            self.map_threads(threads_before)
                .map_err(|err| StackError::Other {
                    pid: self.pid,
                    detail: err.to_string(),
                })?;
        }
        let fds_before = self.counts.as_ref().and_then(ProcessCounts::open_fds);
        // Per thread: its state before its stack is read, and whether it is read. A thread
        // that has not run is where and as it was.
        let mut before: Vec<(u32, TaskState, bool)> = Vec::with_capacity(self.threads.len());
        let mut gone = Vec::new();
        for (&tid, slot) in &self.threads {
            match (slot.ran, slot.state) {
                (false, Some(state)) if slot.frames.is_some() => before.push((tid, state, false)),
                _ => match slot.files.state() {
                    Some(state) => before.push((tid, state, true)),
                    None => gone.push(tid),
                },
            }
        }
        for tid in &gone {
            self.threads.remove(tid);
            // A thread ended: read the map again at the next read.
            self.mapped = None;
        }
        for &(tid, _, read) in &before {
            match self.threads.get(&tid).map(|slot| slot.tstate) {
                Some(tstate) if read => {
                    let frames = self.read_stack(tstate);
                    if let Some(slot) = self.threads.get_mut(&tid) {
                        slot.frames = Some(frames);
                    }
                    self.read_counts.stacks_read += 1;
                }
                _ => self.read_counts.stacks_kept += 1,
            }
        }
        let mut threads = Vec::with_capacity(before.len());
        for (tid, state, read) in before {
            let Some(slot) = self.threads.get_mut(&tid) else {
                continue;
            };
            // Faults made while the stacks were read: only a thread that was read can have run.
            let after = if read { slot.files.state() } else { None };
            let faults_now = after.map_or(state.minor_faults, |a| a.minor_faults);
            slot.state = after.or(Some(state));
            slot.ran = false;
            if read {
                let running = after.is_some_and(|a| a.running);
                slot.running_since = match slot.running_since {
                    Some(since) if running => Some(since),
                    _ => running.then_some(started),
                };
                slot.wake_at = if running {
                    None
                } else {
                    sleep_deadline(&self.space.memory, &slot.files)
                };
            }
            threads.push(ThreadObservation {
                os_tid: tid,
                running: state.running,
                frames: slot.frames.clone().unwrap_or_default(),
                minor_faults: Some(faults_now),
                faults_during: faults_now.saturating_sub(state.minor_faults),
            });
        }
        let threads_after = self.counts.as_ref().map_or(0, ProcessCounts::threads);
        let fds_after = self.counts.as_ref().and_then(ProcessCounts::open_fds);
        let rise = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => 0,
        };
        Ok(Some(Observation {
            threads,
            fds_during: rise(fds_before, fds_after),
            threads_during: threads_after.saturating_sub(threads_before),
            open_fds: fds_after,
            thread_count: Some(threads_after),
            read_time: started.elapsed(),
        }))
    }

    /// Whether any thread ran since the read before (its scheduled-in count moved) or was
    /// running then (it may still be, without being scheduled in again); marks those that did.
    /// A thread whose count cannot be read counts as having run.
    fn threads_that_ran(&mut self) -> bool {
        let mut any = self.threads.is_empty();
        for slot in self.threads.values_mut() {
            let runs = slot.files.runs();
            let was_running = slot.state.is_none_or(|s| s.running);
            slot.ran |= runs.is_none() || runs != slot.runs || was_running;
            slot.runs = runs;
            any |= slot.ran;
        }
        any
    }

    /// Whether a thread started running less than `FOLLOW_FOR` ago, or is due to wake and has
    /// not run yet: read again at once.
    pub fn following(&self) -> bool {
        let now = Instant::now();
        self.threads.values().any(|slot| {
            let young = slot
                .running_since
                .is_some_and(|since| now.saturating_duration_since(since) < FOLLOW_FOR);
            let waking = slot
                .wake_at
                .is_some_and(|at| at <= now && now.saturating_duration_since(at) < WAKE_WAIT);
            young || waking
        })
    }

    /// When to read next, when the threads' sleeps tell: the earliest foreseen wake-up ahead,
    /// and whether every thread is asleep until a deadline (then nothing can run before the
    /// first of them, and no read is needed until then).
    pub fn next_wake(&self) -> Option<(Instant, bool)> {
        let now = Instant::now();
        let mut all = true;
        let mut first: Option<Instant> = None;
        for slot in self.threads.values() {
            match slot
                .wake_at
                .filter(|&at| at > now && at < now + WAKE_HORIZON)
            {
                Some(at) => first = Some(first.map_or(at, |f| f.min(at))),
                None => all = false,
            }
        }
        first.map(|at| (at, all))
    }

    /// Reads the thread id -> thread state map, keeping what is known of unchanged threads.
    fn map_threads(&mut self, count: u64) -> Result<(), FramesError> {
        let live =
            threads::thread_states(&self.space.memory, &self.space.layout, self.space.runtime)?;
        self.threads
            .retain(|tid, slot| live.get(tid) == Some(&slot.tstate));
        for (tid, tstate) in live {
            if self.threads.contains_key(&tid) {
                continue;
            }
            // A thread that ended since the list was read has no files: left out.
            if let Ok(files) = TaskFiles::open(self.pid, tid) {
                let slot = Slot {
                    tstate,
                    files,
                    runs: None,
                    state: None,
                    ran: true,
                    running_since: None,
                    wake_at: None,
                    frames: None,
                };
                self.threads.insert(tid, slot);
            }
        }
        self.mapped = Some((count, Instant::now()));
        Ok(())
    }

    /// The thread's frames, innermost first; frames whose code cannot be read (a racing read)
    /// are left out.
    fn read_stack(&mut self, tstate: u64) -> Vec<Frame> {
        if self.lines_since.elapsed() >= LINES_MAX_AGE || self.lines.len() >= LINES_MAX {
            self.lines.clear();
            self.lines_since = Instant::now();
        }
        let stack = walk::read_stack(&self.space.memory, &self.space.layout.kernel, tstate);
        let depth = (stack.depth as usize).min(stack.code.len());
        let mut frames = Vec::with_capacity(depth);
        for i in 0..depth {
            let (code, offset) = (stack.code[i], stack.instr_offset[i]);
            // Code 0: a C-stack shim frame.
            if code == 0 {
                continue;
            }
            if let Some(frame) = self.lines.get(&(code, offset)) {
                frames.push(frame.clone());
                continue;
            }
            let layout = &self.space.layout;
            let Ok(info) = self.code.get(&self.space.memory, layout, code) else {
                continue;
            };
            let frame = Frame {
                file: info.filename.clone(),
                line: info.line(layout, offset),
                function: short_name(&info.qualname).to_owned(),
            };
            self.read_counts.lines_resolved += 1;
            self.lines.insert((code, offset), frame.clone());
            frames.push(frame);
        }
        frames
    }
}

/// When a thread asleep in `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline)` wakes,
/// as an `Instant` (both count CLOCK_MONOTONIC).
fn sleep_deadline(memory: &dyn Memory, files: &TaskFiles) -> Option<Instant> {
    let call = files.syscall()?;
    let absolute_monotonic = call.number == libc::SYS_clock_nanosleep as u64
        && call.args[0] == libc::CLOCK_MONOTONIC as u64
        && call.args[1] & libc::TIMER_ABSTIME as u64 != 0;
    if !absolute_monotonic {
        return None;
    }
    let mut request = [0u8; 16];
    memory.read(call.args[2], &mut request).ok()?;
    let (secs, nanos) = request.split_at(8);
    let deadline = Duration::new(
        u64::from_le_bytes(secs.try_into().ok()?),
        u32::try_from(u64::from_le_bytes(nanos.try_into().ok()?)).ok()?,
    );
    let now = Instant::now();
    let ahead = deadline.checked_sub(monotonic_now())?;
    Some(now + ahead)
}

fn monotonic_now() -> Duration {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid, writable timespec for the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut time) } != 0 {
        return Duration::MAX;
    }
    Duration::new(
        u64::try_from(time.tv_sec).unwrap_or(0),
        u32::try_from(time.tv_nsec).unwrap_or(0),
    )
}

/// The function's own name from its qualified name (`Condition.wait` -> `wait`), as the other
/// stack reader names frames and as `frames::in_blocking_call` matches them.
fn short_name(qualname: &str) -> &str {
    qualname.rsplit('.').next().unwrap_or(qualname)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_drop_the_qualifiers() {
        assert_eq!(short_name("Condition.wait"), "wait");
        assert_eq!(short_name("outer.<locals>.inner"), "inner");
        assert_eq!(short_name("<module>"), "<module>");
    }
}

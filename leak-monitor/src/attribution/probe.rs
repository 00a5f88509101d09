//! The stack probe: while a Python target grows, its thread stacks are read in quick succession
//! together with the growth counters (per-thread page faults, open fds, thread count) and fed to
//! the target's `SampledAttributor`.
//!
//! It costs nothing while the target does not grow: the monitor arms it for a few ticks after a
//! new high or a spike, and it is not read otherwise. Reads are non-blocking, so the target is
//! never paused. Errors are carried (`last_error`), never end the run; a gone process is not
//! read again.
//!
//! Two readers. For CPython 3.10+ (`observer`), a read is a few small reads: the counters of
//! each thread, and the stacks of only the threads that ran since the read before. While armed
//! it is read every `ARMED_PERIOD`, and every `FOLLOW_PERIOD` while one of its threads runs
//! (a burst of work, such as the allocation a leak makes, is followed from read to read
//! instead of caught by chance); a budget caps what it spends: CPU time of the reading thread
//! accrues at `MAX_DUTY` of the wall time (at most `BUDGET_CAP` saved), each read spends its
//! cost, and an overdrawn probe waits until the budget is back. For older interpreters, py-spy
//! reads every thread's stack at each read (~0.1 ms and more), at most `PYSPY_MAX_DUTY` of a
//! core: after a read that took `c` it rests at least `c * (1 / PYSPY_MAX_DUTY - 1)`.
//!
//! One thread reads every probe of the process (the armed read that is due first), instead of
//! one thread per target: a fleet of idle targets costs no thread and no wake-up.

use super::observer::{Observer, ReadCounts};
use super::sampled::{Observation, SampledAttributor, ThreadObservation};
use super::stacks::{StackError, StackReader};
use crate::targets::runtime::PythonRuntime;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

/// Time between two reads while armed.
pub const ARMED_PERIOD: Duration = Duration::from_millis(1);
/// Time between two reads while a thread of the target has just started running (none: the
/// next read follows at once).
pub const FOLLOW_PERIOD: Duration = Duration::ZERO;
/// A thread foreseen to wake is read this long after its deadline (it has to be scheduled).
pub const WAKE_DELAY: Duration = Duration::from_micros(20);
/// The share of one core a probe reading with `observer` may use (CPU time of the reading
/// thread, so a loaded machine does not make it read less).
pub const MAX_DUTY: f64 = 0.009;
/// CPU time a probe may save for a burst of reads.
pub const BUDGET_CAP: Duration = Duration::from_millis(5);
/// The share of one core a probe reading with py-spy may use while armed. With py-spy's reads,
/// at 1 % the sampled line of `tests/python/rss_leak.py` was wrong; at 5 % it was wrong in 1 of
/// 2 CI runs on a loaded machine (a 100 KB allocation every 100 ms is caught by few reads).
pub const PYSPY_MAX_DUTY: f64 = 0.2;
/// How long the reader thread sleeps when no probe is armed (it is woken on arming).
const IDLE_WAIT: Duration = Duration::from_secs(3600);

#[derive(Default)]
struct State {
    armed_until: Option<Instant>,
    /// The pace: the next read not before this moment.
    next_read: Option<Instant>,
    /// Dropped by its owner, or the process is gone: never read again.
    stop: bool,
    attributor: SampledAttributor,
    last_error: Option<StackError>,
    reads: u64,
    read_time: Duration,
    cpu_time: Duration,
    budget: Budget,
}

/// What reads a target's stacks and counters.
pub enum Reader {
    /// Small reads of the threads that ran (CPython 3.10+).
    Walk(Box<Observer>),
    /// py-spy, every thread at each read (the other versions).
    PySpy(Box<StackReader>),
}

impl Reader {
    /// The walk when the interpreter `python` was found and its version allows it, else
    /// py-spy (whose error, when it cannot read either, says why).
    pub fn attach(pid: i32, python: Option<&PythonRuntime>) -> Result<Reader, StackError> {
        match python.map(Observer::attach) {
            Some(Ok(observer)) => Ok(Reader::Walk(Box::new(observer))),
            _ => StackReader::attach(pid).map(|reader| Reader::PySpy(Box::new(reader))),
        }
    }

    /// The next observation; None when nothing moved since the one before.
    fn observe(&mut self, pid: i32) -> Result<Option<Observation>, StackError> {
        match self {
            Reader::Walk(observer) => observer.observe(),
            Reader::PySpy(reader) => observe(pid, reader).map(Some),
        }
    }
}

/// CPU time a probe may spend: accrues at a duty of the wall time, up to a cap.
#[derive(Clone, Copy, Debug, Default)]
struct Budget {
    /// Seconds of CPU time; negative when overdrawn.
    seconds: f64,
    /// When it was last brought up to date; None before the first read (full then).
    at: Option<Instant>,
}

impl Budget {
    /// Spends `cost` at `now`; how long until the budget is no longer overdrawn.
    fn spend(&mut self, now: Instant, cost: Duration, duty: f64, cap: Duration) -> Duration {
        let cap = cap.as_secs_f64();
        let accrued = self.at.map_or(cap, |at| {
            self.seconds + duty * now.saturating_duration_since(at).as_secs_f64()
        });
        self.seconds = accrued.min(cap) - cost.as_secs_f64();
        self.at = Some(now);
        if self.seconds >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.seconds / duty)
        }
    }
}

struct Shared {
    pid: i32,
    reader: Mutex<Reader>,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the next read is due, if armed; a probe whose arming ran out breaks its window (the
    /// growth across the pause cannot be placed).
    fn due_at(&self, now: Instant) -> Option<Instant> {
        let mut state = self.lock();
        if state.stop {
            return None;
        }
        match state.armed_until {
            Some(until) if until > now => Some(state.next_read.unwrap_or(now)),
            Some(_) => {
                state.attributor.break_window();
                state.armed_until = None;
                drop(state);
                // Not read until armed again: its files are closed meanwhile.
                if let Reader::Walk(observer) =
                    &mut *self.reader.lock().unwrap_or_else(PoisonError::into_inner)
                {
                    observer.release();
                }
                None
            }
            None => None,
        }
    }

    /// One read; `since` is the reading thread's CPU time at the end of its previous read: what
    /// it spent since (waiting, waking, choosing the probe, reading) is charged to this read.
    /// Returns the reading thread's CPU time at the end.
    fn read_once(&self, since: Duration) -> Duration {
        let started = Instant::now();
        let mut reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let observation = reader.observe(self.pid);
        let cost = started.elapsed();
        let mut state = self.lock();
        state.reads += 1;
        state.read_time += cost;
        match observation {
            Ok(Some(observation)) => state.attributor.observe(observation),
            Ok(None) => {}
            Err(err) => {
                state.stop |= matches!(err, StackError::Gone { .. });
                state.attributor.break_window();
                state.last_error = Some(err);
            }
        }
        // The whole read is charged, the attributor's share included.
        let cpu_now = thread_cpu_time();
        let cpu = cpu_now.saturating_sub(since);
        state.cpu_time += cpu;
        let now = Instant::now();
        let rest = match &*reader {
            Reader::Walk(observer) => {
                let overdrawn = state.budget.spend(now, cpu, MAX_DUTY, BUDGET_CAP);
                let period = if observer.following() {
                    FOLLOW_PERIOD
                } else {
                    match observer.next_wake() {
                        // Every thread sleeps: nothing to read before the first wakes.
                        Some((at, true)) => at - now + WAKE_DELAY,
                        Some((at, false)) => (at - now + WAKE_DELAY).min(ARMED_PERIOD),
                        None => ARMED_PERIOD,
                    }
                };
                period.max(overdrawn)
            }
            Reader::PySpy(_) => ARMED_PERIOD.max(cost.mul_f64(1.0 / PYSPY_MAX_DUTY - 1.0)),
        };
        state.next_read = Some(now + rest);
        cpu_now
    }
}

/// CPU time of the calling thread so far.
fn thread_cpu_time() -> Duration {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid, writable timespec for the call.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) } == 0;
    if !ok {
        return Duration::ZERO;
    }
    let secs = u64::try_from(time.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(time.tv_nsec).unwrap_or(0);
    Duration::new(secs, nanos)
}

/// What the probe has done so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProbeStats {
    pub reads: u64,
    /// Total time spent reading (stacks and counters).
    pub read_time: Duration,
    /// CPU time of the reading thread for this probe's reads (attribution included).
    pub cpu_time: Duration,
    /// What the reads were made of, for the walk reader.
    pub read_counts: Option<ReadCounts>,
    pub last_error: Option<StackError>,
}

/// One target's probe; dropping it stops its reads.
pub struct Probe {
    shared: Arc<Shared>,
}

impl Probe {
    /// Hands an attached reader for `pid` to the reader thread (started with the first probe).
    pub fn start(pid: i32, reader: Reader) -> std::io::Result<Probe> {
        let shared = Arc::new(Shared {
            pid,
            reader: Mutex::new(reader),
            state: Mutex::new(State::default()),
        });
        readers().add(&shared)?;
        Ok(Probe { shared })
    }

    /// Reads stacks until `until` (extends, never shortens, the armed time).
    pub fn arm(&self, until: Instant) {
        let mut state = self.shared.lock();
        if state.armed_until.is_none_or(|at| at < until) {
            state.armed_until = Some(until);
        }
        drop(state);
        readers().wake();
    }

    /// Runs `f` on the attributor (e.g. to read its sites).
    pub fn with_attributor<T>(&self, f: impl FnOnce(&SampledAttributor) -> T) -> T {
        f(&self.shared.lock().attributor)
    }

    pub fn stats(&self) -> ProbeStats {
        let read_counts = match &*self
            .shared
            .reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            Reader::Walk(observer) => Some(observer.read_counts()),
            Reader::PySpy(_) => None,
        };
        let state = self.shared.lock();
        ProbeStats {
            reads: state.reads,
            read_time: state.read_time,
            cpu_time: state.cpu_time,
            read_counts,
            last_error: state.last_error.clone(),
        }
    }

    /// Whether reads are the walk's small ones (else py-spy's).
    pub fn walks(&self) -> bool {
        matches!(
            &*self
                .shared
                .reader
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            Reader::Walk(_)
        )
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        readers().wake();
    }
}

/// The thread that reads every probe, and the probes it reads.
struct Readers {
    members: Mutex<Members>,
    wake: Condvar,
}

#[derive(Default)]
struct Members {
    /// Weak: a probe is dropped by its monitor, never kept alive here.
    list: Vec<Weak<Shared>>,
    started: bool,
}

fn readers() -> &'static Readers {
    static READERS: OnceLock<Readers> = OnceLock::new();
    READERS.get_or_init(|| Readers {
        members: Mutex::new(Members::default()),
        wake: Condvar::new(),
    })
}

impl Readers {
    fn members(&self) -> MutexGuard<'_, Members> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&'static self, probe: &Arc<Shared>) -> std::io::Result<()> {
        let mut members = self.members();
        if !members.started {
            std::thread::Builder::new()
                .name("leak-monitor-stacks".into())
                .spawn(move || self.run())?;
            members.started = true;
        }
        members.list.push(Arc::downgrade(probe));
        Ok(())
    }

    /// A probe was armed or let go. Taking the members' lock orders this after the thread's
    /// look at the probes, so the wake-up cannot fall between that look and its wait.
    fn wake(&self) {
        let _members = self.members();
        self.wake.notify_one();
    }

    fn run(&self) {
        let mut members = self.members();
        let mut last_read_end = thread_cpu_time();
        loop {
            members
                .list
                .retain(|probe| probe.upgrade().is_some_and(|p| !p.lock().stop));
            let now = Instant::now();
            let next = members
                .list
                .iter()
                .filter_map(Weak::upgrade)
                .filter_map(|probe| probe.due_at(now).map(|at| (at, probe)))
                .min_by_key(|(at, _)| *at);
            match next {
                Some((at, probe)) if at <= now => {
                    drop(members);
                    last_read_end = probe.read_once(last_read_end);
                    drop(probe);
                    members = self.members();
                }
                next => {
                    let wait = next.map_or(IDLE_WAIT, |(at, _)| at - now);
                    members = self
                        .wake
                        .wait_timeout(members, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }
}

/// One read with py-spy: every thread's stack, with the counters that tell what grew during and
/// around it read just before and just after the stacks.
fn observe(pid: i32, reader: &mut StackReader) -> Result<Observation, StackError> {
    let started = Instant::now();
    let before = Counters::read(pid);
    let stacks = reader.all_threads()?;
    let after = Counters::read(pid);
    let threads = stacks
        .into_iter()
        .map(|stack| {
            let faults_then = before.faults.get(&stack.os_tid).copied();
            let faults_now = after.faults.get(&stack.os_tid).copied();
            ThreadObservation {
                minor_faults: faults_now,
                faults_during: match (faults_then, faults_now) {
                    (Some(then), Some(now)) => now.saturating_sub(then),
                    _ => 0,
                },
                os_tid: stack.os_tid,
                running: stack.running,
                frames: stack.frames,
            }
        })
        .collect();
    let rise = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => 0,
    };
    Ok(Observation {
        threads,
        fds_during: rise(before.open_fds, after.open_fds),
        threads_during: rise(before.thread_count, after.thread_count),
        open_fds: after.open_fds,
        thread_count: after.thread_count,
        read_time: started.elapsed(),
    })
}

/// The growth counters of a process at one moment.
struct Counters {
    /// Minor page faults per thread id.
    faults: HashMap<u32, u64>,
    open_fds: Option<u64>,
    thread_count: Option<u64>,
}

impl Counters {
    fn read(pid: i32) -> Counters {
        let mut faults = HashMap::new();
        let tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|dir| {
                dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        for &tid in &tids {
            if let Some(count) = thread_minor_faults(pid, tid) {
                faults.insert(tid, count);
            }
        }
        Counters {
            faults,
            open_fds: count_entries(&format!("/proc/{pid}/fd")),
            thread_count: (!tids.is_empty()).then_some(tids.len() as u64),
        }
    }
}

fn count_entries(dir: &str) -> Option<u64> {
    let entries = std::fs::read_dir(dir).ok()?;
    Some(entries.count() as u64)
}

/// Field 10 (`minflt`) of /proc/PID/task/TID/stat.
fn thread_minor_faults(pid: i32, tid: u32) -> Option<u64> {
    if tid == 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    parse_minor_faults(&stat)
}

fn parse_minor_faults(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(7)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_accrues_at_the_duty_and_is_spent_by_reads() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut budget = Budget::default();
        // Full at first: a burst of reads is free until the cap is spent.
        assert_eq!(budget.spend(t0, ms(4), 0.01, ms(5)), Duration::ZERO);
        let wait = budget.spend(t0, ms(2), 0.01, ms(5));
        // 1 ms overdrawn at 1 %: 100 ms to earn it back.
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        // 100 ms later it is even again; a long rest saves no more than the cap.
        assert_eq!(
            budget.spend(t0 + ms(100), Duration::ZERO, 0.01, ms(5)),
            Duration::ZERO
        );
        budget.spend(t0 + ms(100_000), Duration::ZERO, 0.01, ms(5));
        assert!((budget.seconds - 0.005).abs() < 1e-9);
        // Over any long run, the reads' cost stays within the duty of the time.
        let mut budget = Budget::default();
        let (mut now, mut spent) = (t0, Duration::ZERO);
        let cost = Duration::from_micros(30);
        while now < t0 + Duration::from_secs(10) {
            let wait = budget.spend(now, cost, 0.01, ms(5));
            spent += cost;
            now += wait.max(Duration::from_micros(100));
        }
        assert!(spent <= ms(100) + ms(5) + cost, "{spent:?}");
    }

    #[test]
    fn minor_faults_come_from_field_ten() {
        let stat = "4242 (py (worker) 1) S 1 4242 4242 0 -1 4194560 1234 0 5 0 12 3 0 0 20 0 2 0";
        assert_eq!(parse_minor_faults(stat), Some(1234));
        assert_eq!(parse_minor_faults("garbage"), None);
    }
}

//! The stack probe: while a Python target grows, its thread stacks are read in quick succession
//! together with the growth counters (per-thread page faults, open fds, thread count) and fed to
//! the target's `SampledAttributor`.
//!
//! It costs nothing while the target does not grow: the monitor arms it for a few ticks after a
//! new high or a spike, and it is not read otherwise. While armed it is read about every
//! `ARMED_PERIOD`, and never spends more than `MAX_DUTY` of a core: after a read that took `c`
//! it rests at least `c * (1 / MAX_DUTY - 1)`. Reads are non-blocking, so the target is never
//! paused. Errors are carried (`last_error`), never end the run; a gone process is not read
//! again.
//!
//! One thread reads every probe of the process (the armed read that is due first), instead of
//! one thread per target: a fleet of idle targets costs no thread and no wake-up.

use super::sampled::{Observation, SampledAttributor, ThreadObservation};
use super::stacks::{StackError, StackReader};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

/// Time between two reads while armed.
pub const ARMED_PERIOD: Duration = Duration::from_millis(1);
/// The share of one core the probe may use while armed. At 1 % the sampled line of
/// `tests/python/rss_leak.py` was wrong; at 5 % it was wrong in 1 of 2 CI runs on a loaded
/// machine (a 100 KB allocation every 100 ms is caught by few reads); 20 % has held for weeks.
pub const MAX_DUTY: f64 = 0.2;
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
}

struct Shared {
    pid: i32,
    reader: Mutex<StackReader>,
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
                None
            }
            None => None,
        }
    }

    fn read_once(&self) {
        let started = Instant::now();
        let observation = {
            let mut reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
            observe(self.pid, &mut reader)
        };
        let cost = started.elapsed();
        let mut state = self.lock();
        state.reads += 1;
        state.read_time += cost;
        match observation {
            Ok(observation) => state.attributor.observe(observation),
            Err(err) => {
                state.stop |= matches!(err, StackError::Gone { .. });
                state.attributor.break_window();
                state.last_error = Some(err);
            }
        }
        let duty_rest = cost.mul_f64(1.0 / MAX_DUTY - 1.0);
        state.next_read = Some(Instant::now() + ARMED_PERIOD.max(duty_rest));
    }
}

/// What the probe has done so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProbeStats {
    pub reads: u64,
    /// Total time spent reading (stacks and counters).
    pub read_time: Duration,
    pub last_error: Option<StackError>,
}

/// One target's probe; dropping it stops its reads.
pub struct Probe {
    shared: Arc<Shared>,
}

impl Probe {
    /// Hands an attached reader for `pid` to the reader thread (started with the first probe).
    pub fn start(pid: i32, reader: StackReader) -> std::io::Result<Probe> {
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
        let state = self.shared.lock();
        ProbeStats {
            reads: state.reads,
            read_time: state.read_time,
            last_error: state.last_error.clone(),
        }
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
                    probe.read_once();
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

/// One read: every thread's stack, with the counters that tell what grew during and around it
/// read just before and just after the stacks.
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
    fn minor_faults_come_from_field_ten() {
        let stat = "4242 (py (worker) 1) S 1 4242 4242 0 -1 4194560 1234 0 5 0 12 3 0 0 20 0 2 0";
        assert_eq!(parse_minor_faults(stat), Some(1234));
        assert_eq!(parse_minor_faults("garbage"), None);
    }
}

//! One thread keeps the thread maps of every attached process current, instead of one thread
//! per process: a fleet of hundreds of idle targets would otherwise cost hundreds of threads
//! each waking four times a second.
//!
//! A process's map is re-read soon after a THREAD_NEW the resolver reports (once the thread has
//! had time to publish its id), for every process when the syscall programs attach again (the
//! threads started while they were detached were not reported), and on a slow shared timer that
//! catches the rest: a thread started while the programs were detached only matters to the
//! kernel's walk once they attach, and that attach asks for a re-read. The monitor also asks for
//! a re-read when the thread count in /proc/PID/status changed (`PyFrames::refresh_soon`), so
//! the timer is only the last resort, and slow: re-reading hundreds of idle targets' lists every
//! few seconds was most of what they cost this thread.

use super::{lock, Inner};
use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// How often every thread map is re-read when nothing asks for it sooner.
const REFRESH_EVERY: Duration = Duration::from_secs(30);
/// After a new thread, how long to wait for it to publish its `native_thread_id`.
const NEW_THREAD_SETTLE: Duration = Duration::from_millis(5);

/// The processes whose thread maps are kept, and which of them asked for a re-read.
pub(super) struct Refresher {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// Weak: a process's frames are dropped by their owner, never kept alive by the refresher.
    members: Vec<Weak<Inner>>,
    /// Processes (tgid) that asked for a re-read.
    due: HashSet<u32>,
    all_due: bool,
    started: bool,
}

/// The refresher of this process (its thread starts with the first member).
pub(super) fn shared() -> &'static Refresher {
    static SHARED: OnceLock<Refresher> = OnceLock::new();
    SHARED.get_or_init(|| Refresher {
        state: Mutex::new(State::default()),
        wake: Condvar::new(),
    })
}

impl Refresher {
    pub(super) fn add(&'static self, inner: &Arc<Inner>) -> std::io::Result<()> {
        let mut state = lock(&self.state);
        if !state.started {
            std::thread::Builder::new()
                .name("leak-monitor-pythreads".into())
                .spawn(move || self.run())?;
            state.started = true;
        }
        state.members.push(Arc::downgrade(inner));
        Ok(())
    }

    /// Lets a process go (its owner then empties its kernel maps).
    pub(super) fn remove(&self, tgid: u32) {
        let mut state = lock(&self.state);
        state
            .members
            .retain(|member| member.upgrade().is_some_and(|inner| inner.tgid != tgid));
        state.due.remove(&tgid);
    }

    /// Re-read one process's threads soon.
    pub(super) fn soon(&self, tgid: u32) {
        lock(&self.state).due.insert(tgid);
        self.wake.notify_one();
    }

    /// Re-read every process's threads soon.
    pub(super) fn all_soon(&self) {
        lock(&self.state).all_due = true;
        self.wake.notify_one();
    }

    fn run(&self) {
        let mut next_round = Instant::now() + REFRESH_EVERY;
        loop {
            let (members, due, all) = {
                let mut state = lock(&self.state);
                loop {
                    let now = Instant::now();
                    if state.all_due || !state.due.is_empty() || now >= next_round {
                        break;
                    }
                    state = self
                        .wake
                        .wait_timeout(state, next_round - now)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0;
                }
                let round = Instant::now() >= next_round;
                let all = round || std::mem::take(&mut state.all_due);
                let due = std::mem::take(&mut state.due);
                state.members.retain(|member| member.strong_count() > 0);
                let members: Vec<Arc<Inner>> =
                    state.members.iter().filter_map(Weak::upgrade).collect();
                (members, due, all)
            };
            if !due.is_empty() {
                std::thread::sleep(NEW_THREAD_SETTLE);
            }
            if all {
                next_round = Instant::now() + REFRESH_EVERY;
            }
            for inner in members
                .iter()
                .filter(|inner| all || due.contains(&inner.tgid))
            {
                // A process that ended or a list read mid-change: try again next time.
                let _ = inner.refresh();
            }
        }
    }
}

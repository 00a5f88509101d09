//! One thread does the paced background reads of every target (heap censuses, RSS
//! breakdowns), instead of a thread per target and per kind: each job keeps its own pace, and
//! the worker runs the one that is due first, sleeping until the next is due or a job is armed.
//! The reads are `process_vm_readv` and procfs; one at a time keeps the monitor's own CPU and
//! the targets' stalls bounded however many targets there are.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

/// How long the worker sleeps when no job is due (it is woken by `wake`).
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// A target's paced read.
pub trait Paced: Send + Sync {
    /// When it is next due, if it is armed.
    fn due_at(&self, now: Instant) -> Option<Instant>;
    /// Does it once (on the worker's thread).
    fn run_once(&self);
    /// Set when its owner let it go: the worker forgets it.
    fn stopped(&self) -> &AtomicBool;
}

pub struct Worker {
    members: Mutex<Members>,
    wake: Condvar,
}

#[derive(Default)]
struct Members {
    /// Weak: a job is dropped by its owner, never kept alive here.
    list: Vec<Weak<dyn Paced>>,
    started: bool,
}

/// The daemon's one background worker.
pub fn shared() -> &'static Worker {
    static WORKER: OnceLock<Worker> = OnceLock::new();
    WORKER.get_or_init(|| Worker {
        members: Mutex::new(Members::default()),
        wake: Condvar::new(),
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Worker {
    /// Adds a job, starting the thread with the first one.
    pub fn add(&'static self, member: Weak<dyn Paced>) -> std::io::Result<()> {
        let mut members = lock(&self.members);
        if !members.started {
            std::thread::Builder::new()
                .name("leak-monitor-readers".into())
                .spawn(move || self.run())?;
            members.started = true;
        }
        members.list.push(member);
        Ok(())
    }

    /// A job was armed or let go. Taking the members' lock orders this after the worker's look
    /// at the timings, so the wake-up cannot fall between that look and its wait.
    pub fn wake(&self) {
        let _members = lock(&self.members);
        self.wake.notify_one();
    }

    fn run(&self) {
        let mut members = lock(&self.members);
        loop {
            members.list.retain(|member| {
                member
                    .upgrade()
                    .is_some_and(|m| !m.stopped().load(Ordering::Relaxed))
            });
            let now = Instant::now();
            let next = members
                .list
                .iter()
                .filter_map(Weak::upgrade)
                .filter_map(|member| member.due_at(now).map(|at| (at, member)))
                .min_by_key(|(at, _)| *at);
            match next {
                Some((at, member)) if at <= now => {
                    drop(members);
                    member.run_once();
                    drop(member);
                    members = lock(&self.members);
                }
                next => {
                    let wait = next.map_or(IDLE_WAIT, |(at, _)| at - now);
                    members = self
                        .wake
                        .wait_timeout(members, wait)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0;
                }
            }
        }
    }
}

/// Keeps the `Arc` type of a job for `add`.
pub fn weak<T: Paced + 'static>(job: &Arc<T>) -> Weak<dyn Paced> {
    let job: Arc<dyn Paced> = job.clone();
    Arc::downgrade(&job)
}

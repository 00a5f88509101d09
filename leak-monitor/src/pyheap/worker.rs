//! One thread takes the censuses of every target, instead of one thread per target: each
//! target keeps its own pace (`PACE`, `MIN_GAP`), and the worker takes the armed census that is
//! due first, sleeping until the next one is due or a target is armed.

use super::{lock, Shared};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// How long the worker sleeps when no census is armed (it is woken by `arm`).
const IDLE_WAIT: Duration = Duration::from_secs(3600);

pub(super) struct Worker {
    members: Mutex<Members>,
    wake: Condvar,
}

#[derive(Default)]
struct Members {
    /// Weak: a target's watch is dropped by its monitor, never kept alive here.
    list: Vec<Weak<Shared>>,
    started: bool,
}

pub(super) fn shared() -> &'static Worker {
    static WORKER: OnceLock<Worker> = OnceLock::new();
    WORKER.get_or_init(|| Worker {
        members: Mutex::new(Members::default()),
        wake: Condvar::new(),
    })
}

impl Worker {
    pub(super) fn add(&'static self, member: &Arc<Shared>) -> std::io::Result<()> {
        let mut members = lock(&self.members);
        if !members.started {
            std::thread::Builder::new()
                .name("leak-monitor-census".into())
                .spawn(move || self.run())?;
            members.started = true;
        }
        members.list.push(Arc::downgrade(member));
        Ok(())
    }

    /// A target was armed or let go. Taking the members' lock orders this after the worker's
    /// look at the timings, so the wake-up cannot fall between that look and its wait.
    pub(super) fn wake(&self) {
        let _members = lock(&self.members);
        self.wake.notify_one();
    }

    fn run(&self) {
        let mut members = lock(&self.members);
        loop {
            members.list.retain(|member| {
                member
                    .upgrade()
                    .is_some_and(|m| !m.stop.load(Ordering::Relaxed))
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
                    member.census_once();
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

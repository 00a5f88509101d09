//! The daemon's set of monitors: fixed PIDs plus whatever the selectors match, re-discovered
//! periodically. Ended targets are handed back once, with their last snapshot, and dropped.

use super::group::{pool_groups, TreeNode};
use super::snapshot::TargetSnapshot;
use super::target::{Attribution, Ended, TargetMonitor};
use super::tracing::Tracing;
use crate::targets::{self, Selector, TargetId, TargetInfo};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How stale a target's trends may get in the daemon: 50 targets x 4 resources cost ~90 ms of
/// CPU when all are recomputed, too much for every 1 s tick.
const TREND_REFRESH: Duration = Duration::from_secs(5);

/// A process that no selector picked is read again at every discovery for this long after it
/// was first passed over (a new process may still exec or retitle itself into a match), then
/// only this often: on a busy host most of a discovery's reads were of the same processes
/// failing the same selectors every 2 s.
const PASSED_RECHECK: Duration = Duration::from_secs(10);

/// A process the selectors passed over: when first, and when last.
struct Passed {
    first: Instant,
    last: Instant,
}

impl Passed {
    /// Whether it may be skipped by a discovery at `now`.
    fn skip(&self, now: Instant) -> bool {
        now.duration_since(self.first) >= PASSED_RECHECK
            && now.duration_since(self.last) < PASSED_RECHECK
    }
}

/// What one fleet tick changed.
#[derive(Debug, Default)]
pub struct FleetTick {
    pub added: Vec<TargetInfo>,
    /// Targets that ended this tick, with their last state.
    pub ended: Vec<(TargetSnapshot, Ended)>,
    /// Processes that matched but could not be attached (e.g. no permission), one line each.
    pub attach_errors: Vec<String>,
    /// Targets that joined a pool found from the process tree this tick, with its name.
    pub pooled: Vec<(TargetId, String)>,
}

pub struct Fleet {
    selectors: Vec<Selector>,
    interval: Duration,
    rediscover_every: Duration,
    last_discovery: Option<Instant>,
    monitors: BTreeMap<TargetId, TargetMonitor>,
    /// Processes that matched but failed to attach: not retried until they are gone, so one
    /// unreadable process does not produce an error every discovery.
    refused: BTreeSet<TargetId>,
    /// New targets are traced with it too, when tracing is on.
    tracer: Option<Arc<Tracing>>,
    /// What new targets are attached with.
    attribution: Attribution,
    /// The name each pool found from the process tree got, by its master: kept while the
    /// master lives, so a second pool of the same program gets a name of its own.
    pool_names: BTreeMap<TargetId, String>,
    /// The processes no selector picked, by PID (`PASSED_RECHECK`).
    passed: HashMap<i32, Passed>,
}

impl Fleet {
    /// `initial` are targets already identified (fixed PIDs); `selectors` are re-evaluated every
    /// `rediscover_every`.
    pub fn new(
        initial: Vec<TargetMonitor>,
        selectors: Vec<Selector>,
        interval: Duration,
        rediscover_every: Duration,
    ) -> Self {
        let mut fleet = Fleet {
            selectors,
            interval,
            rediscover_every,
            last_discovery: None,
            monitors: initial
                .into_iter()
                .map(|mut m| {
                    m.set_trend_refresh(TREND_REFRESH);
                    (m.info().id, m)
                })
                .collect(),
            refused: BTreeSet::new(),
            tracer: None,
            attribution: Attribution::default(),
            pool_names: BTreeMap::new(),
            passed: HashMap::new(),
        };
        fleet.group_pools();
        fleet
    }

    /// Puts each followed Python process the fleet's Python targets forked into its master's
    /// pool (`group::pool_groups`), named from the master; a second pool of the same program
    /// gets its master's PID after the name (`gunicorn-4242`).
    fn group_pools(&mut self) -> Vec<(TargetId, String)> {
        let nodes: Vec<TreeNode> = self
            .monitors
            .values()
            .map(|m| {
                let info = m.info();
                TreeNode {
                    id: info.id,
                    ppid: info.ppid,
                    python: targets::is_python(info),
                    group: info.group.clone(),
                    source: info.group_source,
                    cmdline: info.cmdline.clone(),
                }
            })
            .collect();
        let members = pool_groups(&nodes);
        let mut joined = Vec::new();
        self.pool_names
            .retain(|master, _| members.iter().any(|m| m.master == *master));
        for member in members {
            let name = match self.pool_names.get(&member.master) {
                Some(name) => name.clone(),
                None => {
                    let taken = self.pool_names.values().any(|n| *n == member.name);
                    let name = if taken {
                        format!("{}-{}", member.name, member.master.pid)
                    } else {
                        member.name
                    };
                    self.pool_names.insert(member.master, name.clone());
                    name
                }
            };
            if let Some(monitor) = self.monitors.get_mut(&member.id) {
                if monitor.join_pool(&name) {
                    joined.push((member.id, name));
                }
            }
        }
        joined
    }

    /// Attaches the targets discovered from now on with `attribution`.
    pub fn set_attribution(&mut self, attribution: Attribution) {
        self.attribution = attribution;
    }

    /// Traces the targets discovered from now on with `tracer`.
    pub fn set_tracer(&mut self, tracer: Option<Arc<Tracing>>) {
        self.tracer = tracer;
    }

    pub fn len(&self) -> usize {
        self.monitors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.monitors.is_empty()
    }

    pub fn monitors(&self) -> impl Iterator<Item = &TargetMonitor> {
        self.monitors.values()
    }

    pub fn monitors_mut(&mut self) -> impl Iterator<Item = &mut TargetMonitor> {
        self.monitors.values_mut()
    }

    pub fn snapshots(&self) -> Vec<TargetSnapshot> {
        self.monitors
            .values()
            .map(TargetMonitor::snapshot)
            .collect()
    }

    /// Samples every target once, then drops the ended ones, then discovers new ones when due.
    /// Ended targets go first: a process that took over an ended target's PID is followed in
    /// the kernel under that PID, and the ended monitor's unfollow must not undo that.
    pub fn tick(&mut self, now: Instant) -> FleetTick {
        let mut result = FleetTick::default();
        for monitor in self.monitors.values_mut() {
            // A failed tick is recorded in the monitor (ended) or transient; it never stops the
            // fleet.
            let _ = monitor.tick(now);
        }
        let ended: Vec<TargetId> = self
            .monitors
            .iter()
            .filter(|(_, m)| m.ended().is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in ended {
            if let Some(monitor) = self.monitors.remove(&id) {
                let why = monitor.ended().cloned().unwrap_or(Ended::Exited);
                result.ended.push((monitor.snapshot(), why));
                // Dropping it unfollows its PID in the kernel.
                drop(monitor);
                self.retrace_pid(id.pid, &mut result);
            }
        }
        let due = self
            .last_discovery
            .is_none_or(|at| now.duration_since(at) >= self.rediscover_every);
        if due && !self.selectors.is_empty() {
            self.discover(now, &mut result);
            result.pooled = self.group_pools();
        }
        result
    }

    /// Follows again, in the kernel, a still-followed process whose PID an ended target had
    /// (the PID was reused before the old target was seen to end).
    fn retrace_pid(&mut self, pid: i32, result: &mut FleetTick) {
        for monitor in self.monitors.values_mut() {
            if monitor.info().id.pid != pid {
                continue;
            }
            if let Some(tracer) = monitor.tracing().cloned() {
                if let Err(err) = monitor.trace_with(tracer) {
                    result.attach_errors.push(err.to_string());
                }
            }
        }
    }

    fn discover(&mut self, now: Instant, result: &mut FleetTick) {
        self.last_discovery = Some(now);
        self.refused.retain(|id| targets::is_alive(*id));
        // The ended monitors were dropped before this: a followed PID is still its process.
        let followed: HashSet<i32> = self.monitors.keys().map(|id| id.pid).collect();
        let mut passed = Vec::new();
        let found = targets::discover_new_beside(
            &self.selectors,
            |pid| followed.contains(&pid) || self.passed.get(&pid).is_some_and(|p| p.skip(now)),
            |id| self.monitors.contains_key(&id) || self.refused.contains(&id),
            &mut passed,
        );
        for pid in passed {
            self.passed
                .entry(pid)
                .and_modify(|p| p.last = now)
                .or_insert(Passed {
                    first: now,
                    last: now,
                });
        }
        // A PID not read again when due is gone (or followed now): forget it, so a process that
        // reuses it is read as new.
        self.passed
            .retain(|_, p| now.duration_since(p.last) < 2 * PASSED_RECHECK);
        for info in found {
            let id = info.id;
            match TargetMonitor::attach_with(info.clone(), self.interval, self.attribution) {
                Ok(mut monitor) => {
                    monitor.set_trend_refresh(TREND_REFRESH);
                    if let Some(tracer) = &self.tracer {
                        // Without the kernel's view the target is still sampled from procfs.
                        if let Err(err) = monitor.trace_with(Arc::clone(tracer)) {
                            result.attach_errors.push(err.to_string());
                        }
                    }
                    self.monitors.insert(id, monitor);
                    result.added.push(info);
                }
                Err(err) => {
                    self.refused.insert(id);
                    result.attach_errors.push(err.to_string());
                }
            }
        }
    }
}

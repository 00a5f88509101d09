//! Groups of targets (one `target` group name: a `--match NAME=` or the process name), seen as
//! one service: its members current and ended, their lives, group totals and a verdict per
//! resource that also sees a leak hidden by worker recycling (`verdict`). Pure: the caller
//! passes the time (seconds since the epoch) with every call, so it is tested on generated
//! member histories without a clock.

mod member;
#[cfg(test)]
mod tests;
mod tree;
mod verdict;

pub use member::{MemberSample, ResourceSample};
pub use tree::{pool_groups, program_name, PoolMember, TreeNode};
pub use verdict::GroupResource;

use crate::resource::Resource;
use crate::targets::GroupSource;
use member::Member;
use std::collections::{BTreeMap, VecDeque};
use verdict::Judged;

/// Ended members kept per group: the latest.
pub const MAX_ENDED: usize = 64;

/// A group with no current member is forgotten this long after its last one ended.
const FORGET_AFTER_SECONDS: f64 = 600.0;

/// One member as the outputs see it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberView {
    pub pid: i32,
    pub start_unix: f64,
    pub end_unix: Option<f64>,
    pub life_seconds: f64,
    /// Growth over its observed life, per resource.
    pub growth: Vec<(Resource, f64)>,
}

/// One group at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupView {
    pub group: String,
    /// What named it: a `--match` name, the process tree (a master and its workers), or a
    /// process name shared by unrelated processes.
    pub source: GroupSource,
    /// Current members.
    pub members: usize,
    /// Members seen to end since the group was first seen (not bounded by `MAX_ENDED`).
    pub recycles_total: u64,
    /// Every member seen (current, and the latest ended), oldest start first.
    pub member_views: Vec<MemberView>,
    pub resources: Vec<GroupResource>,
}

impl GroupView {
    /// More than one process was ever seen in it: a pool, not a lone process.
    pub fn is_pool(&self) -> bool {
        self.member_views.len() > 1
    }
}

#[derive(Debug, Default)]
struct Group {
    source: GroupSource,
    current: BTreeMap<(i32, u64), Member>,
    ended: VecDeque<Member>,
    ended_total: u64,
    first_seen: Option<f64>,
    last_seen: f64,
    /// Group totals per resource at the first observation.
    first_totals: BTreeMap<Resource, f64>,
}

/// Every group's members.
#[derive(Debug, Default)]
pub struct GroupTracker {
    groups: BTreeMap<String, Group>,
}

fn key(pid: i32, start_unix: f64) -> (i32, u64) {
    (pid, start_unix.to_bits())
}

impl GroupTracker {
    pub fn new() -> Self {
        GroupTracker::default()
    }

    /// Records what `sample` shows of a current member of `group` at `at`.
    pub fn observe(&mut self, group: &str, at: f64, sample: &MemberSample) {
        let entry = self.groups.entry(group.to_string()).or_default();
        entry.first_seen.get_or_insert(at);
        entry.last_seen = entry.last_seen.max(at);
        entry
            .current
            .entry(key(sample.pid, sample.start_unix))
            .and_modify(|m| m.observe(at, sample))
            .or_insert_with(|| Member::new(at, sample));
        if entry.first_totals.is_empty() {
            entry.first_totals = totals(entry.current.values());
        }
    }

    /// Records what named a member of `group` (its `group_source`). A group whose master a
    /// `--match NAME=` named and whose workers joined it from the process tree is `match`: the
    /// most explicit source of its members wins.
    pub fn set_source(&mut self, group: &str, source: GroupSource) {
        if let Some(entry) = self.groups.get_mut(group) {
            entry.source = entry.source.min(source);
        }
    }

    /// Forgets the member `pid` (started at `start_unix`) of `group`, which now belongs to
    /// another group (it joined a pool found from the process tree): not a recycle. A group
    /// left with no member at all goes with it.
    pub fn moved(&mut self, group: &str, pid: i32, start_unix: f64) {
        let Some(entry) = self.groups.get_mut(group) else {
            return;
        };
        entry.current.remove(&key(pid, start_unix));
        if entry.current.is_empty() && entry.ended.is_empty() {
            self.groups.remove(group);
        }
    }

    /// Records that the member `pid` (started at `start_unix`) of `group` ended at `at`.
    pub fn ended(&mut self, group: &str, pid: i32, start_unix: f64, at: f64) {
        let Some(entry) = self.groups.get_mut(group) else {
            return;
        };
        if let Some(mut member) = entry.current.remove(&key(pid, start_unix)) {
            member.end = Some(at);
            entry.ended_total += 1;
            entry.last_seen = entry.last_seen.max(at);
            if entry.ended.len() >= MAX_ENDED {
                entry.ended.pop_front();
            }
            entry.ended.push_back(member);
        }
    }

    /// Every group as of `now`; groups long without a member are forgotten first.
    pub fn views(&mut self, now: f64) -> Vec<GroupView> {
        self.groups
            .retain(|_, g| !g.current.is_empty() || now - g.last_seen < FORGET_AFTER_SECONDS);
        self.groups
            .iter()
            .map(|(name, group)| group.view(name, now))
            .collect()
    }
}

fn totals<'a>(members: impl Iterator<Item = &'a Member>) -> BTreeMap<Resource, f64> {
    let mut sums = BTreeMap::new();
    for member in members {
        for r in &member.resources {
            *sums.entry(r.resource).or_insert(0.0) += r.last();
        }
    }
    sums
}

impl Group {
    fn view(&self, name: &str, now: f64) -> GroupView {
        let current: Vec<&Member> = self.current.values().collect();
        let ended: Vec<&Member> = self.ended.iter().collect();
        let since = ended
            .iter()
            .map(|m| m.first_seen)
            .fold(f64::INFINITY, f64::min);
        let span = now - since;
        let recycles_per_minute = if span.is_finite() && span > 0.0 {
            ended.len() as f64 * 60.0 / span
        } else {
            0.0
        };
        let now_totals = totals(current.iter().copied());
        let mut resources: Vec<Resource> = current
            .iter()
            .chain(ended.iter())
            .flat_map(|m| m.resources.iter().map(|r| r.resource))
            .collect();
        resources.sort();
        resources.dedup();
        let resources = resources
            .into_iter()
            .map(|resource| {
                Judged {
                    resource,
                    current: current.clone(),
                    ended: ended.clone(),
                    first: self.first_totals.get(&resource).copied().unwrap_or(0.0),
                    last: now_totals.get(&resource).copied().unwrap_or(0.0),
                    recycles_per_minute,
                }
                .verdict()
            })
            .collect();
        let mut member_views: Vec<MemberView> = current
            .iter()
            .chain(ended.iter())
            .map(|m| MemberView {
                pid: m.pid,
                start_unix: m.start_unix,
                end_unix: m.end,
                life_seconds: m.life(),
                growth: m
                    .resources
                    .iter()
                    .map(|r| (r.resource, r.growth()))
                    .collect(),
            })
            .collect();
        member_views.sort_by(|a, b| a.start_unix.total_cmp(&b.start_unix));
        GroupView {
            group: name.to_string(),
            source: self.source,
            members: current.len(),
            recycles_total: self.ended_total,
            member_views,
            resources,
        }
    }
}

impl From<&crate::monitor::TargetSnapshot> for MemberSample {
    fn from(snapshot: &crate::monitor::TargetSnapshot) -> Self {
        MemberSample {
            pid: snapshot.info.id.pid,
            start_unix: snapshot.info.start_time_unix,
            resources: snapshot
                .resources
                .iter()
                .map(|r| ResourceSample {
                    resource: r.resource,
                    value: r.last.0,
                    verdict: r.trend.verdict,
                    sites: r.sites.iter().take(member::MAX_SITES).cloned().collect(),
                })
                .collect(),
            requests: snapshot.ledgers.as_ref().map(|l| l.accepts),
        }
    }
}

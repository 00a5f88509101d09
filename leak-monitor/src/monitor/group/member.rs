//! One member of a group as the group tracker keeps it: when it was seen, and a bounded,
//! decimated history of each resource over its life.

use crate::attribution::Site;
use crate::detection::Verdict;
use crate::resource::Resource;

/// Points kept per resource of a member; when full, every other one is dropped (first and last
/// stay), so a long-lived member costs the same as a short one.
const MAX_POINTS: usize = 32;

/// Sites kept per resource of a member: the largest.
pub(super) const MAX_SITES: usize = 5;

/// What the daemon saw of one member at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberSample {
    pub pid: i32,
    /// The process's start time, seconds since the epoch: with `pid`, it names the process.
    pub start_unix: f64,
    pub resources: Vec<ResourceSample>,
    /// Requests counted so far (accepted connections), when the kernel counts them.
    pub requests: Option<u64>,
}

/// One resource of a member at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceSample {
    pub resource: Resource,
    pub value: f64,
    /// The member's own verdict for the resource.
    pub verdict: Verdict,
    /// Largest first.
    pub sites: Vec<Site>,
}

/// A member's history of one resource.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct MemberResource {
    pub resource: Resource,
    /// (seconds since the epoch, value), oldest first.
    pub points: Vec<(f64, f64)>,
    pub verdict: Verdict,
    /// The most severe verdict the member ever had for the resource.
    pub worst: Verdict,
    pub sites: Vec<Site>,
}

impl MemberResource {
    pub fn first(&self) -> f64 {
        self.points.first().map_or(0.0, |p| p.1)
    }

    pub fn last(&self) -> f64 {
        self.points.last().map_or(0.0, |p| p.1)
    }

    pub fn growth(&self) -> f64 {
        self.last() - self.first()
    }

    /// Seconds between the first and the last point.
    pub fn span(&self) -> f64 {
        match (self.points.first(), self.points.last()) {
            (Some(a), Some(b)) => b.0 - a.0,
            _ => 0.0,
        }
    }

    /// The value halfway through the observed life, interpolated between the points around it.
    pub fn middle(&self) -> f64 {
        let (Some(&(t0, v0)), Some(&(t1, _))) = (self.points.first(), self.points.last()) else {
            return 0.0;
        };
        let mid = (t0 + t1) / 2.0;
        let mut before = (t0, v0);
        for &(t, v) in &self.points {
            if t >= mid {
                let dt = t - before.0;
                return if dt > 0.0 {
                    before.1 + (v - before.1) * (mid - before.0) / dt
                } else {
                    v
                };
            }
            before = (t, v);
        }
        self.last()
    }

    fn push(&mut self, at: f64, sample: &ResourceSample) {
        if self.points.last().is_some_and(|p| p.0 >= at) {
            return;
        }
        if self.points.len() >= MAX_POINTS {
            let last = self.points.len() - 1;
            let mut i = 0;
            self.points.retain(|_| {
                let keep = i % 2 == 0 || i == last;
                i += 1;
                keep
            });
        }
        self.points.push((at, sample.value));
        self.verdict = sample.verdict;
        self.worst = self.worst.max(sample.verdict);
        // A member's sites only grow with its life; the latest non-empty ones are the fullest.
        if !sample.sites.is_empty() {
            self.sites = sample.sites.iter().take(MAX_SITES).cloned().collect();
        }
    }
}

/// One process of a group.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Member {
    pub pid: i32,
    pub start_unix: f64,
    pub first_seen: f64,
    pub last_seen: f64,
    /// When it was seen to end (seconds since the epoch).
    pub end: Option<f64>,
    pub resources: Vec<MemberResource>,
    pub requests: Option<(u64, u64)>,
}

impl Member {
    pub fn new(at: f64, sample: &MemberSample) -> Member {
        let mut member = Member {
            pid: sample.pid,
            start_unix: sample.start_unix,
            first_seen: at,
            last_seen: at,
            end: None,
            resources: Vec::new(),
            requests: None,
        };
        member.observe(at, sample);
        member
    }

    pub fn observe(&mut self, at: f64, sample: &MemberSample) {
        self.last_seen = self.last_seen.max(at);
        for r in &sample.resources {
            let index = match self.resources.iter().position(|m| m.resource == r.resource) {
                Some(i) => i,
                None => {
                    self.resources.push(MemberResource {
                        resource: r.resource,
                        points: Vec::new(),
                        verdict: r.verdict,
                        worst: r.verdict,
                        sites: Vec::new(),
                    });
                    self.resources.len() - 1
                }
            };
            self.resources[index].push(at, r);
        }
        if let Some(count) = sample.requests {
            self.requests = Some(match self.requests {
                Some((first, _)) => (first, count),
                None => (count, count),
            });
        }
    }

    pub fn resource(&self, resource: Resource) -> Option<&MemberResource> {
        self.resources.iter().find(|r| r.resource == resource)
    }

    /// Requests it handled while observed, when counted.
    pub fn requests_handled(&self) -> Option<u64> {
        self.requests
            .map(|(first, last)| last.saturating_sub(first))
    }

    /// Seconds from its start to its end (or to when it was last seen).
    pub fn life(&self) -> f64 {
        (self.end.unwrap_or(self.last_seen) - self.start_unix).max(0.0)
    }
}

//! The group's verdict for one resource. A pool that recycles its workers hides a leak from
//! the per-process detector: no worker lives long enough to be called a leak. The pool is
//! still seen to leak when most of its recycled workers grew steadily over their whole life.

use super::member::{Member, MemberResource};
use crate::attribution::Site;
use crate::detection::{DetectorConfig, Verdict};
use crate::resource::{Amount, PerSecond, Resource, Share};
use std::collections::BTreeMap;

/// Ended members needed before recycling can be told from a process that just ended.
const MIN_ENDED: usize = 2;
/// A member is judged on its life only with this many points over this many seconds.
const MIN_POINTS: usize = 3;
const MIN_MEMBER_SECONDS: f64 = 2.0;
/// Share of the judged members that must have grown steadily.
const GROWN_SHARE: f64 = 0.8;
/// A leak the recycled workers show is masked by recycling while fewer than this share of them
/// were called a leak on their own (on a loaded machine, a worker that serves its requests
/// slowly lives long enough for its own verdict now and then).
const CALLED_SHARE: f64 = 0.5;
/// Each half of a member's life must hold this share of its growth: a warm-up (all at the
/// start) or one late step is not a steady rate.
const HALF_SHARE: f64 = 0.25;
/// Merged sites kept per resource.
const MAX_SITES: usize = 5;

/// A group's view of one resource.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupResource {
    pub resource: Resource,
    pub verdict: Verdict,
    /// The verdict is `leak` only from the recycled workers' growth: none was called a leak.
    pub masked_by_recycling: bool,
    /// The sum over the current members, when the group was first seen and now.
    pub first: f64,
    pub last: f64,
    /// Median growth per second of a recycled worker over its life (0 when none is judged).
    pub per_worker_rate_per_second: PerSecond,
    /// Median growth of a recycled worker over its life.
    pub per_worker_growth: f64,
    /// Median growth per request and requests per worker, where requests are counted.
    pub per_request: Option<f64>,
    pub requests_per_worker: Option<f64>,
    /// Median life of the recycled workers, seconds.
    pub median_lifetime_seconds: Option<f64>,
    pub recycles_per_minute: f64,
    /// Recycled workers judged on their life, how many of them grew steadily, and how many
    /// were called a leak on their own.
    pub members_judged: usize,
    pub members_grown: usize,
    pub members_called: usize,
    /// The members' top sites merged by file:line, amounts summed; largest first.
    pub sites: Vec<Site>,
    /// One line that says what the group does.
    pub summary: String,
}

/// How a group's members are judged for one resource.
pub(super) struct Judged<'a> {
    pub resource: Resource,
    pub current: Vec<&'a Member>,
    pub ended: Vec<&'a Member>,
    /// Group totals at first sight and now.
    pub first: f64,
    pub last: f64,
    pub recycles_per_minute: f64,
}

impl Judged<'_> {
    pub fn verdict(&self) -> GroupResource {
        let config = DetectorConfig::for_unit(self.resource.unit());
        let floor = (4.0 * config.resolution).max(config.min_leak_growth / 8.0);
        let judged: Vec<(&Member, &MemberResource)> = self
            .ended
            .iter()
            .filter_map(|m| m.resource(self.resource).map(|r| (*m, r)))
            .filter(|(_, r)| r.points.len() >= MIN_POINTS && r.span() >= MIN_MEMBER_SECONDS)
            .collect();
        let grown: Vec<&(&Member, &MemberResource)> = judged
            .iter()
            .filter(|(_, r)| grew_steadily(r, floor))
            .collect();
        let members = || self.current.iter().chain(self.ended.iter());
        let own = self
            .current
            .iter()
            .filter_map(|m| m.resource(self.resource))
            .map(|r| r.verdict)
            .max()
            .unwrap_or(Verdict::Stable);
        let called = judged
            .iter()
            .filter(|(_, r)| r.worst == Verdict::Leak)
            .count();
        let total_grown: f64 = grown.iter().map(|(_, r)| r.growth()).sum();
        // The recycled workers grew steadily over their lives, enough for a leak.
        let recycled_leak = self.ended.len() >= MIN_ENDED
            && judged.len() >= MIN_ENDED
            && grown.len() as f64 >= GROWN_SHARE * judged.len() as f64
            && total_grown >= config.min_leak_growth;
        let masked = recycled_leak && (called as f64) < CALLED_SHARE * judged.len() as f64;

        let per_worker_rate = median(
            grown
                .iter()
                .map(|(_, r)| r.growth() / r.span().max(f64::EPSILON)),
        )
        .map(PerSecond);
        let per_worker_growth = median(grown.iter().map(|(_, r)| r.growth()));
        let requests: Vec<(f64, f64)> = grown
            .iter()
            .filter_map(|(m, r)| {
                m.requests_handled()
                    .filter(|n| *n > 0)
                    .map(|n| (r.growth() / n as f64, n as f64))
            })
            .collect();
        let per_request = median(requests.iter().map(|p| p.0));
        let requests_per_worker = median(requests.iter().map(|p| p.1));
        let lifetime = median(self.ended.iter().map(|m| m.life()));
        let verdict = if recycled_leak { Verdict::Leak } else { own };
        let mut view = GroupResource {
            resource: self.resource,
            verdict,
            masked_by_recycling: masked,
            first: self.first,
            last: self.last,
            per_worker_rate_per_second: per_worker_rate.unwrap_or(PerSecond::ZERO),
            per_worker_growth: per_worker_growth.unwrap_or(0.0),
            per_request,
            requests_per_worker,
            median_lifetime_seconds: lifetime,
            recycles_per_minute: self.recycles_per_minute,
            members_judged: judged.len(),
            members_grown: grown.len(),
            members_called: called,
            sites: merge_sites(members().filter_map(|m| m.resource(self.resource))),
            summary: String::new(),
        };
        view.summary = summary(&view);
        view
    }
}

/// Grew by at least `floor` over its life, in both halves of it.
fn grew_steadily(r: &MemberResource, floor: f64) -> bool {
    let growth = r.growth();
    let first_half = r.middle() - r.first();
    let second_half = r.last() - r.middle();
    growth >= floor && first_half >= HALF_SHARE * growth && second_half >= HALF_SHARE * growth
}

fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut values: Vec<f64> = values.filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// The members' sites by file:line, amounts summed, shares of the merged total.
fn merge_sites<'a>(members: impl Iterator<Item = &'a MemberResource>) -> Vec<Site> {
    let mut merged: BTreeMap<(String, u32), Site> = BTreeMap::new();
    for site in members.flat_map(|r| r.sites.iter()) {
        merged
            .entry((site.file.clone(), site.line))
            .and_modify(|s| s.amount += site.amount)
            .or_insert_with(|| site.clone());
    }
    let total: Amount = merged.values().map(|s| s.amount.max(Amount::ZERO)).sum();
    let mut sites: Vec<Site> = merged
        .into_values()
        .map(|mut s| {
            s.share = Share::of(s.amount.0, total.0);
            s
        })
        .collect();
    sites.sort_by(|a, b| b.amount.total_cmp(&a.amount));
    sites.truncate(MAX_SITES);
    sites
}

/// "each worker grows 20 KB per request and is recycled after ~300: leak masked by recycling,
/// 1.2 restarts/min".
fn summary(view: &GroupResource) -> String {
    let unit = view.resource.unit();
    let restarts = format!("{:.1} restarts/min", view.recycles_per_minute);
    let recycled_leak = view.verdict == Verdict::Leak && view.members_grown > 0;
    if !view.masked_by_recycling && !recycled_leak {
        return format!(
            "{}: {} from its members' own verdicts ({restarts})",
            view.resource,
            view.verdict.as_str()
        );
    }
    let growth = match (view.per_request, view.requests_per_worker) {
        (Some(amount), Some(requests)) => format!(
            "grows {} per request and is recycled after ~{requests:.0}",
            unit.format(amount)
        ),
        _ => format!(
            "grows {}/s and is recycled after ~{:.0} s ({} over its life)",
            unit.format(view.per_worker_rate_per_second.0),
            view.median_lifetime_seconds.unwrap_or(0.0),
            unit.format(view.per_worker_growth)
        ),
    };
    if !view.masked_by_recycling {
        return format!(
            "{}: each worker {growth}: leak, {} of {} recycled workers called a leak on their own, {restarts}",
            view.resource, view.members_called, view.members_judged
        );
    }
    format!(
        "{}: each worker {growth}: leak masked by recycling, {restarts}",
        view.resource
    )
}

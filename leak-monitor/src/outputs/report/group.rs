//! The group report, schema `leak-monitor/group-report/v1` (CONTRACT.md "Planned"): a pool of
//! workers as one service. `resources` are those of a target report, with the group's own
//! numbers beside them; `rate_per_second` there is the median growth rate of a recycled worker
//! over its life (a pool's total does not grow when its workers are recycled).

use super::model::{ResourceReport, Timestamp};
use crate::detection::{GrowthPattern, Trend, Verdict};
use crate::monitor::group::{GroupResource, GroupView};
use crate::monitor::ResourceSnapshot;
use crate::resource::Amount;
use crate::targets::GroupSource;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// The value of the group report's `schema` field.
pub const GROUP_SCHEMA: &str = "leak-monitor/group-report/v1";

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupReport {
    pub schema: &'static str,
    pub generated_at: Timestamp,
    pub group: String,
    /// What named the group: `match` (a selector's `NAME=`), `parent` (a master and the
    /// workers it forked, found from the process tree) or `process` (a shared process name).
    pub source: GroupSource,
    /// Current members and the latest ended ones, oldest start first.
    pub members: Vec<GroupMember>,
    /// Members seen to end since the group was first seen.
    pub recycles_total: u64,
    pub resources: Vec<GroupResourceReport>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupMember {
    pub pid: i32,
    /// Seconds since the epoch; `end` is null while it runs.
    pub start: f64,
    pub end: Option<f64>,
    pub life_seconds: f64,
    /// Growth over its observed life, by resource name, in the resource's unit.
    pub growth: BTreeMap<String, f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupResourceReport {
    #[serde(flatten)]
    pub report: ResourceReport,
    /// `leak` found only from the recycled workers' growth over their lives: no worker was
    /// called a leak on its own.
    pub masked_by_recycling: bool,
    pub per_worker_growth: f64,
    pub median_lifetime_seconds: Option<f64>,
    pub requests_per_worker: Option<f64>,
    pub recycles_per_minute: f64,
    pub members_judged: usize,
    pub members_grown: usize,
    pub summary: String,
}

impl GroupReport {
    pub fn build(view: &GroupView, generated_at: SystemTime) -> GroupReport {
        GroupReport {
            schema: GROUP_SCHEMA,
            generated_at: Timestamp::new(generated_at),
            group: view.group.clone(),
            source: view.source,
            members: view
                .member_views
                .iter()
                .map(|m| GroupMember {
                    pid: m.pid,
                    start: m.start_unix,
                    end: m.end_unix,
                    life_seconds: m.life_seconds,
                    growth: m
                        .growth
                        .iter()
                        .map(|(r, g)| (r.as_str().to_string(), *g))
                        .collect(),
                })
                .collect(),
            recycles_total: view.recycles_total,
            resources: view.resources.iter().map(resource_report).collect(),
        }
    }

    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}

fn resource_report(r: &GroupResource) -> GroupResourceReport {
    let trend = Trend {
        verdict: r.verdict,
        pattern: if r.per_worker_growth > 0.0 {
            GrowthPattern::Linear
        } else {
            GrowthPattern::Flat
        },
        rate_per_second: r.per_worker_rate_per_second,
        confidence: if r.masked_by_recycling && r.members_judged > 0 {
            r.members_grown as f64 / r.members_judged as f64
        } else {
            0.0
        },
        seconds_to_limit: None,
        early_leak: false,
    };
    let snapshot = ResourceSnapshot {
        resource: r.resource,
        trend,
        first: Amount(r.first),
        last: Amount(r.last),
        limit: None,
        leak_since_seconds: None,
        sites: r.sites.clone(),
        heap_growth: Vec::new(),
        verdict_changes: Vec::new(),
        verdict_changes_total: 0,
    };
    let mut report = ResourceReport::build(&snapshot, None);
    if let (Some(amount), true) = (r.per_request, r.verdict == Verdict::Leak) {
        report.per_event = Some(super::PerEvent {
            event: "request".to_string(),
            amount,
        });
    }
    GroupResourceReport {
        report,
        masked_by_recycling: r.masked_by_recycling,
        per_worker_growth: r.per_worker_growth,
        median_lifetime_seconds: r.median_lifetime_seconds,
        requests_per_worker: r.requests_per_worker,
        recycles_per_minute: r.recycles_per_minute,
        members_judged: r.members_judged,
        members_grown: r.members_grown,
        summary: r.summary.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that fails on unwrap says where.
mod tests {
    use super::*;
    use crate::outputs::fixtures::leaking_web_group;
    use std::time::UNIX_EPOCH;

    #[test]
    fn the_json_has_the_contracts_fields() {
        let view = &leaking_web_group();
        let json = GroupReport::build(view, UNIX_EPOCH).to_json().unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["schema"], GROUP_SCHEMA);
        assert_eq!(value["group"], "web");
        let members = value["members"].as_array().unwrap();
        assert_eq!(members.len(), 2);
        let ended = members.iter().find(|m| m["pid"] == 42).unwrap();
        assert_eq!(ended["end"], 101.0);
        assert!(ended["start"].is_number() && ended["growth"]["rss_bytes"].is_number());
        let rss = value["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "rss_bytes")
            .unwrap();
        // A worker called a leak on its own: the members' verdict, not masked.
        assert_eq!(rss["verdict"], "leak");
        assert_eq!(rss["masked_by_recycling"], false);
        assert!(rss["sites"][0]["file"].is_string(), "{rss}");
        assert!(rss["summary"].is_string());
    }
}

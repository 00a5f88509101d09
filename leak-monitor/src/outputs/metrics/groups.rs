//! The group families (CONTRACT.md "Planned": group metrics): one series set per group of
//! targets, labelled `target` = the group name and no `pid`. Pure: views in, families out.

use super::series::{label_value, metric};
use crate::detection::Verdict;
use crate::monitor::group::GroupView;
use prometheus::proto::{MetricFamily, MetricType};

/// (name, help, labels, type) of each group family, in exposition order.
pub const FAMILIES: [(&str, &str, &[&str], MetricType); 3] = [
    (
        "leak_monitor_group_leak_suspected",
        "1 when the group's verdict for the resource is leak (including a leak masked by \
         worker recycling: each recycled worker grew steadily over its life), else 0.",
        &["target", "resource"],
        MetricType::GAUGE,
    ),
    (
        "leak_monitor_group_members",
        "Processes of the group currently followed.",
        &["target"],
        MetricType::GAUGE,
    ),
    (
        "leak_monitor_worker_recycles_total",
        "Members of the group seen to end (workers recycled) since the group was first seen.",
        &["target"],
        MetricType::COUNTER,
    ),
];

/// The group families for `views`; empty when there are no groups.
pub fn group_families(views: &[GroupView]) -> Vec<MetricFamily> {
    if views.is_empty() {
        return Vec::new();
    }
    let mut rows: [Vec<(Vec<String>, f64)>; 3] = Default::default();
    for view in views {
        let target = label_value(&view.group).into_owned();
        for r in &view.resources {
            let leak = f64::from(u8::from(r.verdict == Verdict::Leak));
            rows[0].push((vec![target.clone(), r.resource.as_str().to_string()], leak));
        }
        rows[1].push((vec![target.clone()], view.members as f64));
        rows[2].push((vec![target], view.recycles_total as f64));
    }
    FAMILIES
        .iter()
        .zip(rows)
        .filter(|(_, rows)| !rows.is_empty())
        .map(|((name, help, labels, kind), rows)| {
            let mut family = MetricFamily::default();
            family.set_name(name.to_string());
            family.set_help(help.to_string());
            family.set_field_type(*kind);
            family.set_metric(
                rows.into_iter()
                    .map(|(values, value)| metric(*kind, labels, values, Vec::new(), value))
                    .collect(),
            );
            family
        })
        .collect()
}

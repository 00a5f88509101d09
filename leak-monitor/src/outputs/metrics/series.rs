//! From target snapshots to the contract's per-process metric families. Pure: no registry, no I/O.
//!
//! Label values are bounded (length, control characters) and every label set is unique within its
//! family, since a scrape with duplicate series is rejected by Prometheus.

use crate::attribution::SiteMethod;
use crate::detection::Verdict;
use crate::memory::parts::Part;
use crate::monitor::{ResourceSnapshot, TargetSnapshot};
use crate::pyheap::HeapFindings;
use crate::sampling::FdKind;
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// At most this many `leak_monitor_heap_objects` series per target.
pub const MAX_HEAP_TYPES: usize = 10;

/// At most this many `leak_monitor_site_amount` series per resource per target: the largest.
pub const MAX_SITES_PER_RESOURCE: usize = 5;

/// Label values longer than this many characters are shortened (paths keep their end).
pub const MAX_LABEL_CHARS: usize = 128;

/// Marks where a label value was shortened.
const ELLIPSIS: &str = "...";

/// The per-process metric families, in exposition order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    ResidentMemory,
    OpenFds,
    MaxFds,
    Sockets,
    Threads,
    GrowthRate,
    LeakSuspected,
    LeakConfidence,
    SecondsToLimit,
    SiteAmount,
    HeapObjects,
    VerdictChanges,
    MemoryBreakdown,
}

impl Family {
    pub const ALL: [Family; 13] = [
        Family::ResidentMemory,
        Family::OpenFds,
        Family::MaxFds,
        Family::Sockets,
        Family::Threads,
        Family::GrowthRate,
        Family::LeakSuspected,
        Family::LeakConfidence,
        Family::SecondsToLimit,
        Family::SiteAmount,
        Family::HeapObjects,
        Family::VerdictChanges,
        Family::MemoryBreakdown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::ResidentMemory => "leak_monitor_resident_memory_bytes",
            Family::OpenFds => "leak_monitor_open_fds",
            Family::MaxFds => "leak_monitor_max_fds",
            Family::Sockets => "leak_monitor_sockets",
            Family::Threads => "leak_monitor_threads",
            Family::GrowthRate => "leak_monitor_growth_rate_per_second",
            Family::LeakSuspected => "leak_monitor_leak_suspected",
            Family::LeakConfidence => "leak_monitor_leak_confidence",
            Family::SecondsToLimit => "leak_monitor_seconds_to_limit",
            Family::SiteAmount => "leak_monitor_site_amount",
            Family::HeapObjects => "leak_monitor_heap_objects",
            Family::VerdictChanges => "leak_monitor_verdict_changes_total",
            Family::MemoryBreakdown => "leak_monitor_memory_breakdown_bytes",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            Family::ResidentMemory => {
                "Resident memory of the process in bytes, by kind (total, anon, file, shmem), \
                 from /proc/PID/status."
            }
            Family::OpenFds => {
                "Open file descriptors of the process, by what they point at \
                 (file, socket, pipe, anon_inode, other)."
            }
            Family::MaxFds => {
                "Soft limit on open file descriptors of the process (Max open files)."
            }
            Family::Sockets => "Sockets held by the process, by protocol and state.",
            Family::Threads => "Threads of the process.",
            Family::GrowthRate => {
                "Current growth rate of the resource, in its unit (bytes or count) per second; \
                 negative when shrinking."
            }
            Family::LeakSuspected => {
                "1 when the detector's verdict for the resource is leak, else 0."
            }
            Family::LeakConfidence => {
                "Confidence of the detector's verdict for the resource, 0 to 1."
            }
            Family::SecondsToLimit => {
                "Seconds until the resource reaches its limit at the current growth rate; \
                 absent when not growing or no limit is known."
            }
            Family::SiteAmount => {
                "Growth attributed to a Python source line (site = file:line), in the resource's \
                 unit (bytes or count); the largest sites only."
            }
            Family::HeapObjects => {
                "Python objects of a type on the collector's lists at the last heap census (read \
                 from outside while memory grows); the types that keep growing and the most \
                 numerous only."
            }
            Family::VerdictChanges => {
                "Changes of the resource's published verdict since the process was first \
                 followed (a verdict changes at once to a more severe one, and to a less severe \
                 one only after it has held for 20 s)."
            }
            Family::MemoryBreakdown => {
                "Resident memory of the process at the last breakdown, by part: python_objects \
                 (pymalloc blocks in use), python_allocator_free, c_allocator (glibc heap in \
                 use), c_allocator_free, native (other anonymous), file, shmem. Read from smaps \
                 and the allocators' state at moments of growth, so it lags the other gauges."
            }
        }
    }

    /// Counters only count up; every other family is a gauge.
    fn metric_type(self) -> MetricType {
        match self {
            Family::VerdictChanges => MetricType::COUNTER,
            _ => MetricType::GAUGE,
        }
    }

    /// The label names, in the order `Series::set` takes their values.
    pub fn label_names(self) -> &'static [&'static str] {
        match self {
            Family::ResidentMemory | Family::OpenFds => &["target", "pid", "kind"],
            Family::MaxFds | Family::Threads => &["target", "pid"],
            Family::Sockets => &["target", "pid", "protocol", "state"],
            Family::GrowthRate
            | Family::LeakSuspected
            | Family::LeakConfidence
            | Family::SecondsToLimit
            | Family::VerdictChanges => &["target", "pid", "resource"],
            Family::SiteAmount => &["target", "pid", "resource", "site", "function"],
            Family::HeapObjects => &["target", "pid", "type"],
            Family::MemoryBreakdown => &["target", "pid", "part"],
        }
    }
}

/// Builds every per-process family for `snapshots`. Families without series are left out.
pub fn per_target_families(snapshots: &[TargetSnapshot]) -> Vec<MetricFamily> {
    let mut series = Series::default();
    for snapshot in snapshots {
        add_target(&mut series, snapshot);
    }
    series.into_families()
}

fn add_target(series: &mut Series, snapshot: &TargetSnapshot) {
    // The owner's labels follow the family's own on every series of this target; unknown ones
    // are left out rather than set empty.
    let info = &snapshot.info;
    series.owner = info
        .labels
        .pairs()
        .map(|(name, value)| (name, label_value(value).into_owned()))
        .collect();
    // A process with an owner keeps `identity` across restarts; a bare host process has none to
    // keep, and its series stay as they were before labels existed.
    if let Some(identity) = info.identity() {
        series.owner.push(("identity", identity));
    }
    let target = label_value(&snapshot.info.group);
    let pid = snapshot.info.id.pid.to_string();
    let (target, pid) = (target.as_ref(), pid.as_str());
    let sample = &snapshot.latest;

    let memory = &sample.memory;
    for (kind, bytes) in [
        ("total", memory.total),
        ("anon", memory.anon),
        ("file", memory.file),
        ("shmem", memory.shmem),
    ] {
        series.set(Family::ResidentMemory, &[target, pid, kind], bytes.as_f64());
    }
    // Every kind, zeros included, so a kind that appears later does not start a new series.
    for kind in FdKind::ALL {
        let count = sample.fds.get(kind) as f64;
        series.set(Family::OpenFds, &[target, pid, kind.as_str()], count);
    }
    if let Some(max_fds) = snapshot.limits.max_fds {
        series.set(Family::MaxFds, &[target, pid], max_fds as f64);
    }
    // A process without sockets still has a series, at 0, so a sum over it is 0 and not
    // "no data"; the empty labels are absent labels to Prometheus.
    if sample.sockets.by_protocol_state.is_empty() {
        series.set(Family::Sockets, &[target, pid, "", ""], 0.0);
    }
    for (&(protocol, state), &count) in &sample.sockets.by_protocol_state {
        let state = label_value(state);
        series.set(
            Family::Sockets,
            &[target, pid, protocol.as_str(), &state],
            count as f64,
        );
    }
    series.set(Family::Threads, &[target, pid], sample.threads as f64);

    for resource in &snapshot.resources {
        add_resource(series, target, pid, resource);
    }
    if let Some(Ok(findings)) = &snapshot.heap {
        add_heap_types(series, target, pid, findings);
    }
    if let Some(last) = snapshot.memory.as_ref().ok().and_then(|m| m.series.last()) {
        for part in Part::ALL {
            series.set(
                Family::MemoryBreakdown,
                &[target, pid, part.as_str()],
                last.get(part) as f64,
            );
        }
    }
}

/// The types that keep growing first, then the most numerous, `MAX_HEAP_TYPES` in all.
fn add_heap_types(series: &mut Series, target: &str, pid: &str, findings: &HeapFindings) {
    let counts: std::collections::HashMap<&str, u64> = findings
        .top_types
        .iter()
        .map(|(name, count, _)| (name.as_str(), *count))
        .collect();
    let growing = findings
        .types
        .iter()
        .map(|t| (t.type_name.as_str(), t.count_last));
    let numerous = findings.top_types.iter().map(|(n, c, _)| (n.as_str(), *c));
    let mut shown: Vec<&str> = Vec::new();
    for (name, count) in growing.take(MAX_HEAP_TYPES / 2).chain(numerous) {
        if shown.len() == MAX_HEAP_TYPES {
            break;
        }
        if shown.contains(&name) {
            continue;
        }
        shown.push(name);
        let count = counts.get(name).copied().unwrap_or(count);
        let name = label_value(name);
        series.set(Family::HeapObjects, &[target, pid, &name], count as f64);
    }
}

fn add_resource(series: &mut Series, target: &str, pid: &str, snapshot: &ResourceSnapshot) {
    let resource = snapshot.resource.as_str();
    let trend = &snapshot.trend;
    let labels = [target, pid, resource];
    series.set(Family::GrowthRate, &labels, trend.rate_per_second.0);
    let suspected = if trend.verdict == Verdict::Leak {
        1.0
    } else {
        0.0
    };
    series.set(Family::LeakSuspected, &labels, suspected);
    series.set(Family::LeakConfidence, &labels, trend.confidence);
    if let Some(seconds) = trend.seconds_to_limit.filter(|s| s.is_finite()) {
        series.set(Family::SecondsToLimit, &labels, seconds.0);
    }
    series.set(
        Family::VerdictChanges,
        &labels,
        snapshot.verdict_changes_total as f64,
    );

    // Sites with the same labels are one series. Two methods' views of one line (the heap
    // census's and the runtime's) are the same growth seen twice: the larger is kept, not both
    // added; sites of one method that shorten to the same labels are summed.
    let mut by_labels: BTreeMap<(String, String, Option<SiteMethod>), f64> = BTreeMap::new();
    for site in &snapshot.sites {
        let key = (
            path_label_value(&format!("{}:{}", site.file, site.line)).into_owned(),
            label_value(&site.function).into_owned(),
            site.method,
        );
        *by_labels.entry(key).or_default() += site.amount.0;
    }
    let mut merged: BTreeMap<(String, String), f64> = BTreeMap::new();
    for ((site, function, _), amount) in by_labels {
        let kept = merged.entry((site, function)).or_default();
        *kept = kept.max(amount);
    }
    let mut sites: Vec<_> = merged.into_iter().collect();
    sites.sort_by(|a, b| b.1.total_cmp(&a.1));
    for ((site, function), amount) in sites.into_iter().take(MAX_SITES_PER_RESOURCE) {
        series.set(
            Family::SiteAmount,
            &[target, pid, resource, &site, &function],
            amount,
        );
    }
}

/// The family's label values, then the owner's (name, value) pairs.
type LabelKey = (Vec<String>, Vec<(&'static str, String)>);

/// The series of one update, keyed by family and label values; the first value set for a label
/// set wins (two snapshots of one pid would otherwise make a duplicate series).
#[derive(Default)]
struct Series {
    values: BTreeMap<Family, BTreeMap<LabelKey, f64>>,
    /// The owner labels of the target being added (`TargetLabels::pairs`).
    owner: Vec<(&'static str, String)>,
}

impl Series {
    fn set(&mut self, family: Family, labels: &[&str], value: f64) {
        debug_assert_eq!(
            labels.len(),
            family.label_names().len(),
            "{}",
            family.name()
        );
        let key = (
            labels.iter().map(|l| l.to_string()).collect(),
            self.owner.clone(),
        );
        self.values
            .entry(family)
            .or_default()
            .entry(key)
            .or_insert(value);
    }

    fn into_families(self) -> Vec<MetricFamily> {
        self.values
            .into_iter()
            .map(|(family, series)| {
                let kind = family.metric_type();
                let metrics = series
                    .into_iter()
                    .map(|((values, owner), value)| {
                        metric(kind, family.label_names(), values, owner, value)
                    })
                    .collect();
                let mut proto = MetricFamily::default();
                proto.set_name(family.name().to_string());
                proto.set_help(family.help().to_string());
                proto.set_field_type(kind);
                proto.set_metric(metrics);
                proto
            })
            .collect()
    }
}

pub(super) fn metric(
    kind: MetricType,
    names: &[&str],
    values: Vec<String>,
    owner: Vec<(&'static str, String)>,
    value: f64,
) -> Metric {
    let labels = names
        .iter()
        .copied()
        .zip(values)
        .chain(owner)
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name(name.to_string());
            pair.set_value(value);
            pair
        })
        .collect();
    let mut metric = Metric::from_label(labels);
    if kind == MetricType::COUNTER {
        let mut counter = Counter::default();
        counter.set_value(value);
        metric.set_counter(counter);
    } else {
        let mut gauge = Gauge::default();
        gauge.set_value(value);
        metric.set_gauge(gauge);
    }
    metric
}

/// A label value fit for a scrape: control characters become spaces (they would split or garble
/// the line), and long values keep their first `MAX_LABEL_CHARS` characters.
pub fn label_value(raw: &str) -> Cow<'_, str> {
    let clean = without_control_chars(raw);
    if clean.chars().count() <= MAX_LABEL_CHARS {
        return clean;
    }
    let keep = MAX_LABEL_CHARS - ELLIPSIS.len();
    Cow::Owned(clean.chars().take(keep).collect::<String>() + ELLIPSIS)
}

/// Like `label_value`, but a long path keeps its end: the file name and line tell more than the
/// directories above them.
fn path_label_value(raw: &str) -> Cow<'_, str> {
    let clean = without_control_chars(raw);
    let count = clean.chars().count();
    if count <= MAX_LABEL_CHARS {
        return clean;
    }
    let skip = count - (MAX_LABEL_CHARS - ELLIPSIS.len());
    Cow::Owned(ELLIPSIS.to_string() + &clean.chars().skip(skip).collect::<String>())
}

fn without_control_chars(raw: &str) -> Cow<'_, str> {
    if raw.chars().any(char::is_control) {
        Cow::Owned(
            raw.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(raw)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that fails on unwrap says where.
mod tests {
    use super::*;

    #[test]
    fn short_label_values_pass_unchanged() {
        assert!(matches!(label_value("web"), Cow::Borrowed("web")));
        assert_eq!(label_value("a\tb\nc"), "a b c");
    }

    #[test]
    fn long_label_values_are_cut_to_the_bound() {
        let long = "é".repeat(300);
        let cut = label_value(&long);
        assert_eq!(cut.chars().count(), MAX_LABEL_CHARS);
        assert!(cut.ends_with(ELLIPSIS));

        let path = format!("/{}/render.py:17", "d".repeat(300));
        let cut = path_label_value(&path);
        assert_eq!(cut.chars().count(), MAX_LABEL_CHARS);
        assert!(
            cut.starts_with(ELLIPSIS) && cut.ends_with("/render.py:17"),
            "{cut}"
        );
    }

    #[test]
    fn every_family_has_help_and_the_per_process_labels() {
        for family in Family::ALL {
            assert!(family.name().starts_with("leak_monitor_"));
            assert!(!family.help().is_empty());
            assert_eq!(&family.label_names()[..2], ["target", "pid"]);
        }
    }
}

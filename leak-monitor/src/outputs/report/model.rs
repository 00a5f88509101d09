//! The JSON report, schema `leak-monitor/report/v1`: exactly the fields of CONTRACT.md "JSON
//! report". These types are the contract, kept apart from the engine's internal types so that an
//! internal change cannot silently change the JSON; `Report::build` maps one onto the other.

use super::breakdown::{self, BreakdownReport, CallingLine};
use crate::attribution::{Holder, LeakType, Site, SiteMethod};
use crate::capabilities::Capabilities;
use crate::detection::{GrowthPattern, Verdict};
use crate::events::{Engagement, GateStats, LedgerCounts};
use crate::memory::kind::MemoryKind;
use crate::monitor::{ResourceSnapshot, StacksStatus, TargetSnapshot};
use crate::pyheap::HeapFindings;
use crate::resource::{Amount, PerSecond, Resource, Seconds, Share};
use crate::targets::TargetLabels;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The value of the report's `schema` field.
pub const SCHEMA: &str = "leak-monitor/report/v1";

/// One target's leak report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: Schema,
    pub generated_at: Timestamp,
    pub target: ReportTarget,
    pub observation: Observation,
    pub capabilities: ReportCapabilities,
    pub resources: Vec<ResourceReport>,
    /// The eBPF ledgers at the end of the observation (an addition to v1; absent without eBPF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledgers: Option<LedgerReport>,
}

/// What the kernel saw created since attach and still live. Pre-existing entries were there
/// before the monitor attached (or appeared while events were lost) and are never blamed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LedgerReport {
    pub fds: u64,
    pub fds_preexisting: u64,
    pub sockets: u64,
    pub threads: u64,
    pub threads_preexisting: u64,
    /// Pages made resident since attach and still mapped.
    pub new_resident_pages: u64,
    /// New pages past the ledger's cap: counted, not tracked.
    pub untracked_pages: u64,
    /// Connections accepted since attach.
    pub accepts: u64,
    /// With `--track-allocations`: live heap blocks allocated since attach, and their bytes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub heap_blocks: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub heap_bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The `schema` field: serializes as `SCHEMA`, and a report of another schema does not parse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Schema;

/// A moment, as RFC 3339 UTC with whole seconds (`2026-11-23T12:00:00Z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(SystemTime);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportTarget {
    pub pid: i32,
    pub cmdline: Vec<String>,
    pub exe: Option<String>,
    pub python_version: Option<String>,
    pub start_time_unix: f64,
    /// Who owns the process: container, pod, namespace, QoS class, systemd unit (an addition
    /// agreed in 2026-12; absent for a plain host process and in older reports).
    #[serde(default, skip_serializing_if = "TargetLabels::is_empty")]
    pub labels: TargetLabels,
    /// The same program in the same container or unit across restarts: the `identity` series
    /// label (absent in older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub duration_seconds: Seconds,
    pub interval_seconds: Seconds,
    pub samples: u64,
    /// True when SIGINT or SIGTERM ended the run before its `--duration` (an addition agreed in
    /// 2026-12; absent in reports that predate it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_short: Option<bool>,
    /// Seconds into the observation when the target exited; absent when it lived to the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_exited_after_seconds: Option<f64>,
    /// Kernel events lost during the run (ring buffer full), per kind, 0 included; the ring
    /// buffer is shared by the run's targets. Absent without eBPF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_events: Option<BTreeMap<String, u64>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportCapabilities {
    pub procfs: bool,
    pub ebpf: bool,
    pub python_stacks: bool,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResourceReport {
    pub resource: Resource,
    pub verdict: Verdict,
    /// First and last observed values.
    #[serde(serialize_with = "number::integral")]
    pub first: Amount,
    #[serde(serialize_with = "number::integral")]
    pub last: Amount,
    pub rate_per_second: PerSecond,
    pub growth_pattern: GrowthPattern,
    pub confidence: f64,
    #[serde(serialize_with = "number::integral_opt")]
    pub limit: Option<Amount>,
    pub seconds_to_limit: Option<Seconds>,
    /// Growth per counted event; null until the monitor counts events.
    #[serde(default)]
    pub per_event: Option<PerEvent>,
    /// Seconds of observation it took to reach verdict `leak` (an addition to v1; absent unless
    /// the verdict is `leak`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict_since_seconds: Option<Seconds>,
    /// Types whose count kept rising across the heap censuses, most bytes gained first
    /// (`rss_bytes` only; an addition agreed in 2026-12).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heap_growth: Vec<HeapGrowthRow>,
    /// Each change of the published verdict, oldest first (an addition; absent when the verdict
    /// never changed from the first one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verdict_changes: Vec<VerdictChangeRow>,
    /// The kind of memory behind `rss_bytes` (an addition agreed in 2026-12; absent for other
    /// resources and without breakdowns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_kind: Option<MemoryKind>,
    /// Resident memory split into parts at the first and last breakdown (`rss_bytes` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<BreakdownReport>,
    /// Largest first.
    pub sites: Vec<SiteReport>,
}

/// One change of the published verdict (`verdict_changes`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerdictChangeRow {
    /// Seconds into the observation.
    pub at_seconds: f64,
    /// Samples taken by then (an addition: the observation's length in ticks, which a loaded
    /// machine cannot stretch as it can `at_seconds`).
    #[serde(default)]
    pub samples: u64,
    pub from: Verdict,
    pub to: Verdict,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerEvent {
    pub event: String,
    pub amount: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteReport {
    pub file: String,
    pub line: u32,
    pub function: String,
    pub share: Share,
    #[serde(serialize_with = "number::integral")]
    pub amount: Amount,
    pub leak_type: LeakType,
    pub evidence: String,
    pub fix: String,
    /// Innermost frame first.
    pub stack: Vec<StackFrame>,
    /// How the site was attributed (`sampled_at_growth`, `ebpf_ledger`, `ebpf_frames`). An
    /// addition to the contract's example: absent in reports that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<SiteMethod>,
    /// What keeps the memory, for a site found by the heap census (an addition agreed in
    /// 2026-12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<Holder>,
}

/// A type whose instance count kept rising across the heap censuses (`heap_growth`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeapGrowthRow {
    #[serde(rename = "type")]
    pub type_name: String,
    pub count_first: u64,
    pub count_last: u64,
    pub bytes_estimate: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StackFrame {
    pub file: String,
    pub line: u32,
    pub function: String,
}

impl Report {
    /// The report of one target as the snapshot sees it.
    pub fn build(
        snapshot: &TargetSnapshot,
        capabilities: &Capabilities,
        generated_at: SystemTime,
    ) -> Report {
        let info = &snapshot.info;
        Report {
            schema: Schema,
            generated_at: Timestamp::new(generated_at),
            target: ReportTarget {
                pid: info.id.pid,
                cmdline: info.cmdline.clone(),
                exe: info.exe.as_ref().map(|p| p.to_string_lossy().into_owned()),
                python_version: info.python_version.clone(),
                start_time_unix: info.start_time_unix,
                labels: info.labels.clone(),
                identity: info.identity(),
            },
            observation: Observation {
                duration_seconds: snapshot.observed_seconds,
                interval_seconds: snapshot.interval_seconds,
                samples: snapshot.samples,
                cut_short: Some(false),
                target_exited_after_seconds: None,
                dropped_events: None,
            },
            capabilities: ReportCapabilities::build(capabilities, snapshot),
            resources: snapshot
                .resources
                .iter()
                .map(|r| {
                    let mut report = ResourceReport::build(r, snapshot.ledgers.as_ref());
                    if let (Resource::RssBytes, Ok(findings)) = (r.resource, &snapshot.memory) {
                        let census_growth = match &snapshot.heap {
                            Some(Ok(heap)) => Some(census_growth(heap)),
                            _ => None,
                        };
                        let calling = report.sites.first().map(|s| CallingLine {
                            file: &s.file,
                            line: s.line,
                            evidence: &s.evidence,
                        });
                        let built = breakdown::build(
                            findings,
                            report.verdict,
                            calling.as_ref(),
                            census_growth,
                        );
                        if let Some((kind, breakdown)) = built {
                            report.memory_kind = Some(kind);
                            report.breakdown = Some(breakdown);
                        }
                    }
                    report
                })
                .collect(),
            ledgers: snapshot.ledgers.as_ref().map(LedgerReport::build),
        }
    }

    /// Pretty-printed JSON.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    pub fn from_json(json: &str) -> Result<Report, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// True when any resource has verdict `leak` (what `--fail-on-leak` checks).
    pub fn has_leak(&self) -> bool {
        self.resources.iter().any(|r| r.verdict == Verdict::Leak)
    }
}

/// Bytes of Python objects the heap census saw added: the growing containers' new items at
/// their mean size, or the growing types' bytes, whichever is more (they overlap).
fn census_growth(heap: &HeapFindings) -> u64 {
    let held: f64 = heap
        .holders
        .iter()
        .filter_map(|(h, items)| {
            let added = h.len_last.saturating_sub(h.len_first) as f64;
            items.as_ref().map(|i| added * i.mean_bytes)
        })
        .sum();
    let types: u64 = heap
        .types
        .iter()
        .map(|t| t.bytes_last.saturating_sub(t.bytes_first))
        .sum();
    (held as u64).max(types)
}

impl LedgerReport {
    fn build(counts: &LedgerCounts) -> LedgerReport {
        LedgerReport {
            fds: counts.fds,
            fds_preexisting: counts.fds_preexisting,
            sockets: counts.sockets,
            threads: counts.threads,
            threads_preexisting: counts.threads_preexisting,
            new_resident_pages: counts.pages,
            untracked_pages: counts.pages_untracked,
            accepts: counts.accepts,
            heap_blocks: counts.heap_blocks,
            heap_bytes: counts.heap_bytes,
        }
    }
}

/// What the heap census did for this target, for the report's notes.
fn heap_notes(heap: Option<&Result<std::sync::Arc<HeapFindings>, String>>) -> Vec<String> {
    let findings = match heap {
        None => return Vec::new(),
        Some(Err(why)) => {
            return vec![format!(
                "{why}; rss_bytes sites come from the runtime's view alone"
            )]
        }
        Some(Ok(findings)) => findings,
    };
    let mut notes = Vec::new();
    match (&findings.last, findings.censuses) {
        (_, 0) => notes.push(
            "heap census: none taken (memory did not grow, or the run was too short)".to_string(),
        ),
        (Some(last), n) => notes.push(format!(
            "heap census: {n} census(es) of the Python heap read from outside while memory grew; the last counted {} objects in {:.0} ms with {} reads{}",
            last.objects,
            last.wall_seconds * 1000.0,
            last.reads,
            if last.partial { " (partial: the heap changed under the walk or a bound was hit)" } else { "" },
        )),
        (None, _) => {}
    }
    if let Some(error) = &findings.error {
        notes.push(format!("heap census: the last one failed: {error}"));
    }
    // Named holders are the sites' "Held by"; listed here too, so a holder whose filling line
    // could not be found (and so has no site) is still reported.
    for (holder, _) in findings.holders.iter().take(3) {
        if let Some(path) = &holder.path {
            notes.push(format!(
                "heap census: {} ({}) grew from {} to {} entries",
                path.display(),
                holder.type_name,
                holder.len_first,
                holder.len_last
            ));
        }
    }
    for (holder, _) in findings
        .holders
        .iter()
        .filter(|(h, _)| h.path.is_none())
        .take(3)
    {
        notes.push(format!(
            "heap census: an unnamed {} at {:#x} grew from {} to {} entries (no path from a module global or a thread's frame reaches it)",
            holder.type_name, holder.address, holder.len_first, holder.len_last
        ));
    }
    notes
}

impl ReportCapabilities {
    /// The run's capabilities with this target's stack reading: on when its reader attached,
    /// else off with the reason among the notes.
    fn build(capabilities: &Capabilities, snapshot: &TargetSnapshot) -> ReportCapabilities {
        let stacks = &snapshot.stacks;
        let mut notes = capabilities.notes.clone();
        if let StacksStatus::Off(why) = stacks {
            notes.push(format!("Python stacks are off for this target: {why}"));
        }
        if let Some(why) = &snapshot.kernel_frames_off {
            notes.push(format!(
                "the kernel does not walk this target's Python frames ({why}): sites come from stacks sampled while it grows"
            ));
        }
        match &snapshot.allocations {
            Some(Ok(())) => notes.push(
                "allocation tracking is on: rss_bytes sites are the live heap blocks (over 512 bytes) per allocating line; smaller objects live in CPython's arenas and are blamed by page faults"
                    .to_string(),
            ),
            Some(Err(why)) => notes.push(format!(
                "allocation tracking is off for this target ({why}): rss_bytes sites come from page faults"
            )),
            None => {}
        }
        if let Some(note) = snapshot
            .kernel_tracing
            .as_ref()
            .and_then(kernel_tracing_note)
        {
            notes.push(note);
        }
        notes.extend(heap_notes(snapshot.heap.as_ref()));
        ReportCapabilities {
            procfs: capabilities.procfs,
            ebpf: capabilities.ebpf,
            python_stacks: *stacks == StacksStatus::On,
            notes,
        }
    }
}

/// What the gated kernel programs traced, unless they were attached throughout.
fn kernel_tracing_note((stats, failed): &(GateStats, Option<String>)) -> Option<String> {
    if let Some(why) = failed {
        return Some(format!(
            "the kernel could not trace this target's growth ({why}): its fds, threads and pages created since are pre-existing"
        ));
    }
    match (stats.policy, stats.engagements) {
        (Engagement::Always, _) => None,
        (Engagement::OnGrowth, 0) => Some(
            "no growth engaged the kernel's fd, thread and page tracing (--kernel-tracing on-growth): the ledgers hold what procfs listed"
                .to_string(),
        ),
        (Engagement::OnGrowth, times) => Some(format!(
            "the kernel traced fds, threads and pages while growth lasted (--kernel-tracing on-growth): engaged {times} time{}, {:.0} s in all; what was created before is pre-existing",
            if times == 1 { "" } else { "s" },
            stats.attached_seconds
        )),
    }
}

/// Accepted connections below which growth per connection is too noisy to state.
const MIN_ACCEPTS_FOR_PER_EVENT: u64 = 10;

/// Growth per accepted connection, when the kernel counted enough of them.
fn per_accept(snapshot: &ResourceSnapshot, ledgers: Option<&LedgerCounts>) -> Option<PerEvent> {
    let accepts = ledgers?.accepts;
    let grown = snapshot.last - snapshot.first;
    (accepts >= MIN_ACCEPTS_FOR_PER_EVENT && grown > Amount::ZERO).then(|| PerEvent {
        event: "accept".to_string(),
        amount: grown.0 / accepts as f64,
    })
}

impl ResourceReport {
    pub(super) fn build(
        snapshot: &ResourceSnapshot,
        ledgers: Option<&LedgerCounts>,
    ) -> ResourceReport {
        let trend = &snapshot.trend;
        ResourceReport {
            resource: snapshot.resource,
            verdict: trend.verdict,
            first: snapshot.first,
            last: snapshot.last,
            rate_per_second: trend.rate_per_second,
            growth_pattern: trend.pattern,
            confidence: trend.confidence,
            limit: snapshot.limit,
            // Infinitely far is never: the contract's null.
            seconds_to_limit: trend.seconds_to_limit.filter(|s| s.is_finite()),
            per_event: per_accept(snapshot, ledgers),
            verdict_since_seconds: snapshot.leak_since_seconds,
            heap_growth: snapshot
                .heap_growth
                .iter()
                .map(|t| HeapGrowthRow {
                    type_name: t.type_name.clone(),
                    count_first: t.count_first,
                    count_last: t.count_last,
                    bytes_estimate: t.bytes_last,
                })
                .collect(),
            verdict_changes: snapshot
                .verdict_changes
                .iter()
                .map(|c| VerdictChangeRow {
                    at_seconds: c.at_seconds,
                    samples: c.samples,
                    from: c.from,
                    to: c.to,
                })
                .collect(),
            memory_kind: None,
            breakdown: None,
            sites: snapshot.sites.iter().map(SiteReport::build).collect(),
        }
    }
}

impl SiteReport {
    fn build(site: &Site) -> SiteReport {
        SiteReport {
            file: site.file.clone(),
            line: site.line,
            function: site.function.clone(),
            share: site.share,
            amount: site.amount,
            leak_type: site.leak_type,
            evidence: site.evidence.clone(),
            fix: site.fix.clone(),
            stack: site
                .stack
                .iter()
                .map(|frame| StackFrame {
                    file: frame.file.clone(),
                    line: frame.line,
                    function: frame.function.clone(),
                })
                .collect(),
            method: site.method,
            holder: site.holder.clone(),
        }
    }
}

impl Serialize for Schema {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(SCHEMA)
    }
}

impl<'de> Deserialize<'de> for Schema {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        if name == SCHEMA {
            Ok(Schema)
        } else {
            Err(serde::de::Error::custom(format!(
                "unsupported report schema {name:?} (this build reads {SCHEMA:?})"
            )))
        }
    }
}

impl Timestamp {
    /// `time` truncated to whole seconds, the precision the report keeps.
    pub fn new(time: SystemTime) -> Timestamp {
        let whole = match time.duration_since(UNIX_EPOCH) {
            Ok(since) => UNIX_EPOCH + Duration::from_secs(since.as_secs()),
            // Before 1970: nothing to truncate that matters for a report.
            Err(_) => time,
        };
        Timestamp(whole)
    }

    pub fn system_time(self) -> SystemTime {
        self.0
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_seconds(self.0))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_rfc3339(&text)
            .map(Timestamp::new)
            .map_err(|err| serde::de::Error::custom(format!("generated_at {text:?}: {err}")))
    }
}

/// Amounts of bytes and counts are whole numbers: written as JSON integers when they are.
mod number {
    use crate::resource::Amount;
    use serde::Serializer;

    /// The largest integer an f64 holds exactly.
    const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

    pub fn integral<S: Serializer>(value: &Amount, serializer: S) -> Result<S::Ok, S::Error> {
        let Amount(value) = value;
        if value.fract() == 0.0 && value.abs() <= MAX_EXACT {
            // Exact: the value is a whole number within i64's range.
            serializer.serialize_i64(*value as i64)
        } else {
            serializer.serialize_f64(*value)
        }
    }

    pub fn integral_opt<S: Serializer>(
        value: &Option<Amount>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => integral(value, serializer),
            None => serializer.serialize_none(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that fails on unwrap says where.
mod tests {
    use super::*;
    use crate::outputs::fixtures::{leaking_worker, quiet_process};
    use serde_json::Value;

    /// The example of CONTRACT.md "JSON report", verbatim.
    const CONTRACT_EXAMPLE: &str = include_str!("fixtures/contract_example.json");

    fn capabilities() -> Capabilities {
        Capabilities {
            procfs: true,
            ebpf: false,
            python_stacks: false,
            notes: vec!["eBPF off: not root".to_string()],
        }
    }

    /// 2026-11-23T12:00:00Z, plus a fraction the report drops.
    fn generated_at() -> SystemTime {
        UNIX_EPOCH + Duration::new(1_795_435_200, 750_000_000)
    }

    /// Fails unless `ours` has exactly the keys of `theirs`, at every depth where both are
    /// objects (arrays: element-wise as far as both go).
    /// Keys this build adds to the contract's example.
    const ADDITIONS: &[&str] = &[
        "method",
        "cut_short",
        "verdict_changes",
        "memory_kind",
        "breakdown",
    ];

    fn assert_same_keys(path: &str, ours: &Value, theirs: &Value) {
        match (ours, theirs) {
            (Value::Object(a), Value::Object(b)) => {
                // Fields added to the contract (additions are allowed, renames are not).
                let keys_a: Vec<_> = a
                    .keys()
                    .filter(|k| !ADDITIONS.contains(&k.as_str()))
                    .collect();
                let keys_b: Vec<_> = b.keys().collect();
                assert_eq!(keys_a, keys_b, "keys of {path}");
                for key in keys_a {
                    assert_same_keys(&format!("{path}.{key}"), &a[key], &b[key]);
                }
            }
            (Value::Array(a), Value::Array(b)) => {
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    assert_same_keys(&format!("{path}[{i}]"), x, y);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn json_has_exactly_the_contract_keys() {
        let mut report = Report::build(&leaking_worker(1234), &capabilities(), generated_at());
        report.resources[0].per_event = Some(PerEvent {
            event: "accept".to_string(),
            amount: 102_400.0,
        });
        let ours: Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
        let theirs: Value = serde_json::from_str(CONTRACT_EXAMPLE).unwrap();
        assert_same_keys("report", &ours, &theirs);
        // Every level was compared, down to the stack frames.
        assert!(ours["resources"][0]["sites"][0]["stack"][0]["function"].is_string());
        assert_eq!(
            ours["resources"][0]["sites"][0]["method"],
            "sampled_at_growth"
        );
    }

    #[test]
    fn the_contract_example_reads_and_writes_back_unchanged() {
        let report = Report::from_json(CONTRACT_EXAMPLE).unwrap();
        assert_eq!(report.resources[0].verdict, Verdict::Leak);
        assert_eq!(
            report.resources[0].sites[0].leak_type,
            LeakType::UnboundedCollection
        );
        let written: Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
        let example: Value = serde_json::from_str(CONTRACT_EXAMPLE).unwrap();
        assert_eq!(written, example);
    }

    #[test]
    fn a_built_report_round_trips() {
        for snapshot in [leaking_worker(1234), quiet_process(77, "batch")] {
            let report = Report::build(&snapshot, &capabilities(), generated_at());
            let json = report.to_json().unwrap();
            assert_eq!(Report::from_json(&json).unwrap(), report, "{json}");
        }
    }

    #[test]
    fn owner_labels_and_identity_are_under_the_target() {
        let mut snapshot = leaking_worker(1234);
        snapshot.info.labels = TargetLabels {
            container_id: Some("c0ffee".into()),
            pod: Some("web-7d9f".into()),
            namespace: Some("shop".into()),
            ..TargetLabels::default()
        };
        let report = Report::build(&snapshot, &capabilities(), generated_at());
        let json: Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
        let target = &json["target"];
        assert_eq!(
            target["labels"],
            serde_json::json!({"container_id": "c0ffee", "pod": "web-7d9f", "namespace": "shop"})
        );
        assert_eq!(
            target["identity"].as_str(),
            snapshot.info.identity().as_deref()
        );
        assert_eq!(
            Report::from_json(&report.to_json().unwrap()).unwrap(),
            report
        );
        // A report of a version without labels still reads, with none.
        let mut old = json.clone();
        old["target"].as_object_mut().unwrap().remove("labels");
        old["target"].as_object_mut().unwrap().remove("identity");
        let read = Report::from_json(&old.to_string()).unwrap();
        assert!(read.target.labels.is_empty());
        assert_eq!(read.target.identity, None);
    }

    #[test]
    fn unknowns_are_null_and_whole_amounts_are_integers() {
        let report = Report::build(&quiet_process(77, "batch"), &capabilities(), generated_at());
        let json: Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
        assert_eq!(json["generated_at"], "2026-11-23T12:00:00Z");
        assert_eq!(json["target"]["exe"], Value::Null);
        assert_eq!(json["target"]["python_version"], Value::Null);
        let resource = &json["resources"][0];
        for key in ["limit", "seconds_to_limit", "per_event"] {
            assert_eq!(resource[key], Value::Null, "{key}");
        }
        assert!(resource["first"].is_u64(), "{resource}");

        let report = Report::build(&leaking_worker(1), &capabilities(), generated_at());
        let json: Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
        let rss = &json["resources"][0];
        assert_eq!(rss["limit"].as_u64(), Some(8 * 1024 * 1024 * 1024));
        assert_eq!(rss["sites"][0]["amount"].as_u64(), Some(145_227_776));
        assert!(rss["rate_per_second"].is_f64());
    }

    #[test]
    fn stacks_are_per_target_with_the_reason_when_off() {
        let report = Report::build(&leaking_worker(1), &capabilities(), generated_at());
        assert!(report.capabilities.python_stacks);
        let mut snapshot = leaking_worker(1);
        snapshot.stacks = StacksStatus::Off("not permitted".to_string());
        let report = Report::build(&snapshot, &capabilities(), generated_at());
        assert!(!report.capabilities.python_stacks);
        assert!(report
            .capabilities
            .notes
            .contains(&"Python stacks are off for this target: not permitted".to_string()));
    }

    #[test]
    fn another_schema_does_not_parse() {
        let other = CONTRACT_EXAMPLE.replace("report/v1", "report/v2");
        let err = Report::from_json(&other).unwrap_err();
        assert!(
            err.to_string().contains("unsupported report schema"),
            "{err}"
        );
    }

    #[test]
    fn kernel_tracing_is_noted_unless_it_ran_throughout() {
        let stats = |policy, engagements, attached_seconds| GateStats {
            policy,
            attached: false,
            engagements,
            attached_seconds,
        };
        assert_eq!(
            kernel_tracing_note(&(stats(Engagement::Always, 1, 30.0), None)),
            None
        );
        let idle = kernel_tracing_note(&(stats(Engagement::OnGrowth, 0, 0.0), None)).unwrap();
        assert!(idle.contains("no growth engaged"), "{idle}");
        let twice = kernel_tracing_note(&(stats(Engagement::OnGrowth, 2, 41.4), None)).unwrap();
        assert!(twice.contains("engaged 2 times, 41 s"), "{twice}");
        let failed = kernel_tracing_note(&(
            stats(Engagement::OnGrowth, 0, 0.0),
            Some("the kernel refused".into()),
        ))
        .unwrap();
        assert!(
            failed.contains("could not trace") && failed.contains("refused"),
            "{failed}"
        );
    }
}

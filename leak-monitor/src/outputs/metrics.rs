//! Prometheus metrics with the contract's names and labels (CONTRACT.md "Prometheus metrics").
//!
//! The per-process series are built from the snapshots of the last `update`, swapped in whole, so
//! a scrape sees one complete update and a departed target's series disappear at once: a daemon
//! that follows short-lived processes neither serves stale series nor grows without bound. They
//! are built when scraped, not at every update: a daemon ticks every second and is scraped every
//! 15 s or more, and building ~28 series per target was most of a large fleet's tick. The event
//! counters are ordinary prometheus counters that only ever go up.

mod groups;
mod series;

use crate::monitor::group::GroupView;
use crate::monitor::TargetSnapshot;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, PoisonError, RwLock};

pub use series::{MAX_LABEL_CHARS, MAX_SITES_PER_RESOURCE};

/// The metrics a daemon or demo serves, in their own registry.
pub struct Metrics {
    registry: Registry,
    per_target: PerTargetCollector<Vec<TargetSnapshot>>,
    groups: PerTargetCollector<Vec<MetricFamily>>,
    targets: IntGauge,
    kernel_tracing: IntGauge,
    events: IntCounterVec,
    dropped: IntCounterVec,
    pairing: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let per_target = PerTargetCollector::new(
            series::Family::ALL
                .iter()
                .map(|family| (family.name(), family.help(), family.label_names())),
            |snapshots: &Vec<TargetSnapshot>| series::per_target_families(snapshots),
        )?;
        registry.register(Box::new(per_target.clone()))?;
        let groups = PerTargetCollector::new(
            groups::FAMILIES
                .iter()
                .map(|(name, help, labels, _)| (*name, *help, *labels)),
            Clone::clone,
        )?;
        registry.register(Box::new(groups.clone()))?;

        let targets = IntGauge::new(
            "leak_monitor_targets",
            "Number of processes leak-monitor currently follows.",
        )?;
        let kernel_tracing = IntGauge::new(
            "leak_monitor_kernel_tracing_engaged",
            "1 while the kernel traces the targets' fds, threads and pages (with --kernel-tracing \
             on-growth: while one grows), else 0.",
        )?;
        let events = IntCounterVec::new(
            Opts::new(
                "leak_monitor_events_total",
                "Kernel events received from the targets, by kind (fd and socket creation, \
                 thread start, page faults, ...).",
            ),
            &["kind"],
        )?;
        let dropped = IntCounterVec::new(
            Opts::new(
                "leak_monitor_events_dropped_total",
                "Kernel events lost before leak-monitor could read them (ring buffer full), by kind.",
            ),
            &["kind"],
        )?;
        let pairing = IntCounterVec::new(
            Opts::new(
                "leak_monitor_fd_pairing_total",
                "What the kernel did with the targets' fd opens and closes instead of sending \
                 events, by what: opens_paired, closes_paired (an open and its close both stayed \
                 in the kernel), stacks_sampled, stacks_skipped (opens whose Python stack was \
                 walked or not), stacks_lost, over_cap (fds too high to pair, sent as events), \
                 survivors (opens still open after 500 ms, handed to the ledgers).",
            ),
            &["what"],
        )?;
        registry.register(Box::new(targets.clone()))?;
        registry.register(Box::new(pairing.clone()))?;
        registry.register(Box::new(kernel_tracing.clone()))?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(dropped.clone()))?;

        Ok(Metrics {
            registry,
            per_target,
            groups,
            targets,
            kernel_tracing,
            events,
            dropped,
            pairing,
        })
    }

    /// Replaces every per-target series with those of `snapshots`: series of targets that are no
    /// longer present are removed.
    pub fn update(&self, snapshots: &[TargetSnapshot]) {
        self.update_owned(snapshots.to_vec());
    }

    /// `update`, keeping `snapshots` (the daemon's tick hands over the ones it made) to build the
    /// series from when scraped.
    pub fn update_owned(&self, snapshots: Vec<TargetSnapshot>) {
        self.targets
            .set(i64::try_from(snapshots.len()).unwrap_or(i64::MAX));
        let old = std::mem::replace(
            &mut *self
                .per_target
                .state
                .write()
                .unwrap_or_else(PoisonError::into_inner),
            snapshots,
        );
        // Freed after the lock is let go, so a scrape does not wait for it.
        drop(old);
    }

    /// Replaces every group series with those of `views` (series of forgotten groups go).
    pub fn update_groups(&self, views: &[GroupView]) {
        *self
            .groups
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner) = groups::group_families(views);
    }

    /// Starts both event counters of `kind` at 0, so they are scraped (and `rate()` works) before
    /// the first event or drop of that kind.
    pub fn declare_event_kind(&self, kind: &str) {
        add(&self.events, kind, 0);
        add(&self.dropped, kind, 0);
    }

    pub fn set_kernel_tracing(&self, engaged: bool) {
        self.kernel_tracing.set(i64::from(engaged));
    }

    pub fn add_events(&self, kind: &str, count: u64) {
        add(&self.events, kind, count);
    }

    pub fn add_dropped(&self, kind: &str, count: u64) {
        add(&self.dropped, kind, count);
    }

    /// Adds to the fd pairing's count `what` (0 declares it).
    pub fn add_pairing(&self, what: &str, count: u64) {
        add(&self.pairing, what, count);
    }

    /// Everything in the text exposition format (version 0.0.4).
    pub fn encode(&self) -> String {
        let encoder = TextEncoder::new();
        let mut out = String::new();
        // One family at a time, so a family the encoder rejects costs that family, not the scrape.
        for family in self.registry.gather() {
            if let Err(err) = encoder.encode_utf8(std::slice::from_ref(&family), &mut out) {
                let _ = writeln!(
                    out,
                    "# leak-monitor: cannot encode {}: {err}",
                    family.name()
                );
            }
        }
        out
    }
}

fn add(counters: &IntCounterVec, kind: &str, count: u64) {
    let kind = series::label_value(kind);
    // The vector has exactly one label, so the lookup cannot fail on cardinality.
    if let Ok(counter) = counters.get_metric_with_label_values(&[&kind]) {
        counter.inc_by(count);
    }
}

/// Serves the families built from what the last `update` (or `update_groups`) handed over, built
/// when collected. Clones share the same state: the registry owns one, `Metrics` keeps another to
/// swap new state in.
struct PerTargetCollector<T> {
    descs: Arc<Vec<Desc>>,
    state: Arc<RwLock<T>>,
    build: fn(&T) -> Vec<MetricFamily>,
}

impl<T> Clone for PerTargetCollector<T> {
    fn clone(&self) -> Self {
        PerTargetCollector {
            descs: Arc::clone(&self.descs),
            state: Arc::clone(&self.state),
            build: self.build,
        }
    }
}

impl<T: Default> PerTargetCollector<T> {
    /// `families`: (name, help, label names) of every family it may serve; `build`: the
    /// families of a state.
    fn new<'a>(
        families: impl Iterator<Item = (&'a str, &'a str, &'a [&'a str])>,
        build: fn(&T) -> Vec<MetricFamily>,
    ) -> Result<Self, prometheus::Error> {
        let descs = families
            .map(|(name, help, labels)| {
                Desc::new(
                    name.to_string(),
                    help.to_string(),
                    labels.iter().map(|l| l.to_string()).collect(),
                    HashMap::new(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PerTargetCollector {
            descs: Arc::new(descs),
            state: Arc::new(RwLock::new(T::default())),
            build,
        })
    }
}

impl<T: Send + Sync> Collector for PerTargetCollector<T> {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        (self.build)(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that fails on unwrap says where.
mod tests {
    use super::*;
    use crate::outputs::fixtures::{leaking_worker, quiet_process, site};
    use crate::resource::Resource;
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// Runs the real `promtool check metrics` on `exposition`; returns its exit status and output.
    fn promtool_check(exposition: &str) -> (bool, String) {
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot run promtool ({err}); install it: \
                     apt-get update && apt-get install -y prometheus"
                )
            });
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin
            .write_all(exposition.as_bytes())
            .expect("write to promtool");
        drop(stdin);
        let output = child.wait_with_output().expect("promtool runs");
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    }

    /// A worker with more sites than exported, long and hostile label values.
    fn busy_snapshots() -> Vec<TargetSnapshot> {
        let mut worker = leaking_worker(100);
        let long_dir = "d".repeat(300);
        let rss = &mut worker.resources[0];
        for i in 0..8 {
            rss.sites.push(site(
                &format!("/srv/{long_dir}/view{i}.py"),
                10 + i,
                "handle \"quoted\" \\ back\nslash",
                0.001,
                1000.0 * f64::from(i + 1),
            ));
        }
        let mut other = quiet_process(200, &"g".repeat(500));
        other.info.group.push('\n');
        vec![worker, other]
    }

    fn lines_of<'a>(text: &'a str, metric: &str) -> Vec<&'a str> {
        let prefix = format!("{metric}{{");
        text.lines().filter(|l| l.starts_with(&prefix)).collect()
    }

    #[test]
    fn group_series_carry_the_group_name_and_no_pid() {
        use crate::monitor::group::{GroupTracker, MemberSample};
        let mut tracker = GroupTracker::new();
        let (a, b) = (leaking_worker(41), leaking_worker(42));
        tracker.observe("web", 100.0, &MemberSample::from(&a));
        tracker.observe("web", 100.0, &MemberSample::from(&b));
        tracker.ended("web", 42, b.info.start_time_unix, 101.0);
        let metrics = Metrics::new().unwrap();
        metrics.update_groups(&tracker.views(101.0));
        let text = metrics.encode();
        assert!(
            text.contains(
                "leak_monitor_group_leak_suspected{target=\"web\",resource=\"rss_bytes\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("leak_monitor_group_members{target=\"web\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("leak_monitor_worker_recycles_total{target=\"web\"} 1"),
            "{text}"
        );
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("leak_monitor_group") && l.contains("pid=")),
            "{text}"
        );
        let (ok, complaints) = promtool_check(&text);
        assert!(ok, "promtool: {complaints}\n{text}");
        // A forgotten group's series go.
        metrics.update_groups(&[]);
        assert!(!metrics.encode().contains("leak_monitor_group_members"));
    }

    #[test]
    fn promtool_accepts_a_scrape() {
        let metrics = Metrics::new().unwrap();
        metrics.update(&busy_snapshots());
        metrics.add_events("fd_open", 12);
        metrics.add_dropped("page_fault", 3);
        let text = metrics.encode();

        let (ok, complaints) = promtool_check(&text);
        assert!(ok, "promtool failed:\n{complaints}\non:\n{text}");
        assert_eq!(complaints, "", "promtool complained on:\n{text}");
    }

    #[test]
    fn every_contract_series_is_present() {
        let metrics = Metrics::new().unwrap();
        metrics.update(&[leaking_worker(100)]);
        metrics.add_events("fd_open", 1);
        metrics.add_dropped("fd_open", 1);
        let text = metrics.encode();

        let expected = [
            r#"leak_monitor_resident_memory_bytes{target="web",pid="100",kind="total"} 182452224"#,
            r#"leak_monitor_resident_memory_bytes{target="web",pid="100",kind="shmem"} 1048576"#,
            r#"leak_monitor_open_fds{target="web",pid="100",kind="file"} 40"#,
            r#"leak_monitor_open_fds{target="web",pid="100",kind="pipe"} 0"#,
            r#"leak_monitor_max_fds{target="web",pid="100"} 1024"#,
            r#"leak_monitor_sockets{target="web",pid="100",protocol="tcp",state="established"} 2"#,
            r#"leak_monitor_threads{target="web",pid="100"} 4"#,
            r#"leak_monitor_growth_rate_per_second{target="web",pid="100",resource="rss_bytes"} 2603827.2"#,
            r#"leak_monitor_leak_suspected{target="web",pid="100",resource="rss_bytes"} 1"#,
            r#"leak_monitor_leak_suspected{target="web",pid="100",resource="open_fds"} 0"#,
            r#"leak_monitor_leak_confidence{target="web",pid="100",resource="rss_bytes"} 0.99"#,
            r#"leak_monitor_seconds_to_limit{target="web",pid="100",resource="rss_bytes"} 3228.1"#,
            r#"leak_monitor_site_amount{target="web",pid="100",resource="rss_bytes",site="/srv/app/render.py:17",function="handle"} 145227776"#,
            r#"leak_monitor_heap_objects{target="web",pid="100",type="Session"} 9800"#,
            r#"leak_monitor_heap_objects{target="web",pid="100",type="dict"} 20000"#,
            r#"leak_monitor_memory_breakdown_bytes{target="web",pid="100",part="python_objects"} 77594624"#,
            r#"leak_monitor_memory_breakdown_bytes{target="web",pid="100",part="c_allocator_free"} 1048576"#,
            r#"leak_monitor_memory_breakdown_bytes{target="web",pid="100",part="shmem"} 0"#,
            r#"leak_monitor_verdict_changes_total{target="web",pid="100",resource="rss_bytes"} 2"#,
            r#"leak_monitor_verdict_changes_total{target="web",pid="100",resource="open_fds"} 0"#,
            "# TYPE leak_monitor_verdict_changes_total counter",
            "leak_monitor_targets 1",
            r#"leak_monitor_events_total{kind="fd_open"} 1"#,
            r#"leak_monitor_events_dropped_total{kind="fd_open"} 1"#,
        ];
        for line in expected {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line} in:\n{text}"
            );
        }
        assert_eq!(lines_of(&text, "leak_monitor_open_fds").len(), 5);
        assert_eq!(
            lines_of(&text, "leak_monitor_resident_memory_bytes").len(),
            4
        );
        // Threads have no known limit: no seconds_to_limit series for them.
        assert!(!text.contains(
            r#"leak_monitor_seconds_to_limit{target="web",pid="100",resource="threads"}"#
        ));
        assert!(text.contains("# HELP leak_monitor_resident_memory_bytes Resident memory"));
    }

    #[test]
    fn sites_and_label_values_are_bounded() {
        let metrics = Metrics::new().unwrap();
        metrics.update(&busy_snapshots());
        let text = metrics.encode();

        let sites = lines_of(&text, "leak_monitor_site_amount");
        assert_eq!(sites.len(), MAX_SITES_PER_RESOURCE, "{text}");
        // The two fixture sites are the largest; the long ones keep the end of their path.
        assert!(sites
            .iter()
            .any(|l| l.contains(r#"site="/srv/app/render.py:17""#)));
        assert!(
            sites.iter().any(|l| l.contains("/view7.py:17\"")),
            "{sites:#?}"
        );
        assert!(!sites.iter().any(|l| l.contains("/view0.py")), "{sites:#?}");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            for value in line.split('"').skip(1).step_by(2) {
                assert!(value.chars().count() <= MAX_LABEL_CHARS + 8, "{value}");
            }
        }
        // Quotes, backslashes and newlines arrive escaped.
        assert!(
            text.contains(r#"function="handle \"quoted\" \\ back slash""#),
            "{text}"
        );
    }

    #[test]
    fn a_process_without_sockets_has_a_sockets_series_at_zero() {
        let metrics = Metrics::new().unwrap();
        metrics.update(&[quiet_process(200, "batch")]);
        let text = metrics.encode();
        let zero = r#"leak_monitor_sockets{target="batch",pid="200",protocol="",state=""} 0"#;
        assert!(text.lines().any(|l| l == zero), "{text}");
        // With sockets, only the real ones.
        metrics.update(&[leaking_worker(100)]);
        let text = metrics.encode();
        assert!(!text.contains(r#"protocol="""#), "{text}");
    }

    #[test]
    fn a_departed_target_loses_all_its_series() {
        let metrics = Metrics::new().unwrap();
        metrics.update(&[leaking_worker(100), quiet_process(200, "batch")]);
        let before = metrics.encode();
        assert!(before.contains(r#"pid="200""#));
        assert!(before.lines().any(|l| l == "leak_monitor_targets 2"));

        metrics.update(&[leaking_worker(100)]);
        let after = metrics.encode();
        assert!(!after.contains(r#"pid="200""#), "{after}");
        assert!(!after.contains("batch"), "{after}");
        assert!(after.contains(r#"pid="100""#));
        assert!(after.lines().any(|l| l == "leak_monitor_targets 1"));

        metrics.update(&[]);
        let empty = metrics.encode();
        assert!(!empty.contains("pid="), "{empty}");
        assert!(empty.lines().any(|l| l == "leak_monitor_targets 0"));
    }

    #[test]
    fn a_resource_that_stops_leaking_loses_its_time_to_limit() {
        let metrics = Metrics::new().unwrap();
        let mut worker = leaking_worker(100);
        metrics.update(std::slice::from_ref(&worker));
        worker.resources[0].trend.seconds_to_limit = None;
        worker.resources[0].sites.clear();
        metrics.update(&[worker]);
        let text = metrics.encode();
        assert!(!text.contains(r#"resource="rss_bytes"} 3228.1"#), "{text}");
        assert!(
            lines_of(&text, "leak_monitor_site_amount").is_empty(),
            "{text}"
        );
        assert!(text.contains(&format!(
            r#"leak_monitor_growth_rate_per_second{{target="web",pid="100",resource="{}"}}"#,
            Resource::RssBytes
        )));
    }

    #[test]
    fn owner_labels_follow_the_family_labels_and_unknown_ones_are_left_out() {
        let metrics = Metrics::new().unwrap();
        let mut pod = leaking_worker(100);
        pod.info.labels = crate::targets::TargetLabels {
            container_id: Some("c0ffee".into()),
            container_runtime: Some("containerd".into()),
            pod_uid: Some("8c5f1d2e-7a3b-4c9d-9e0f-1a2b3c4d5e6f".into()),
            pod: Some("web-7d9f".into()),
            namespace: Some("shop".into()),
            qos_class: Some("burstable".into()),
            unit: None,
        };
        let mut service = quiet_process(200, "batch");
        service.info.labels.unit = Some("batch\nrun.service".into());
        let pod_identity = pod.info.identity().unwrap();
        let service_identity = service.info.identity().unwrap();
        metrics.update(&[pod, service, quiet_process(300, "bare")]);
        let text = metrics.encode();

        let owner = format!(
            r#"container_id="c0ffee",pod="web-7d9f",namespace="shop",pod_uid="8c5f1d2e-7a3b-4c9d-9e0f-1a2b3c4d5e6f",qos_class="burstable",identity="{pod_identity}""#
        );
        for line in [
            format!(r#"leak_monitor_threads{{target="web",pid="100",{owner}}} 4"#),
            format!(
                r#"leak_monitor_leak_suspected{{target="web",pid="100",resource="rss_bytes",{owner}}} 1"#
            ),
            // Control characters are made spaces, as in every label value.
            format!(
                r#"leak_monitor_threads{{target="batch",pid="200",unit="batch run.service",identity="{service_identity}"}} 0"#
            ),
            r#"leak_monitor_threads{target="bare",pid="300"} 0"#.to_owned(),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line} in:\n{text}"
            );
        }
        // Every series of the pod carries its labels, none of the runtime's.
        for line in text.lines().filter(|l| l.contains(r#"pid="100""#)) {
            assert!(line.contains(&owner), "{line}");
        }
        assert!(!text.contains("containerd"), "{text}");
        assert!(!text.contains(r#"unit="""#), "{text}");
        let (ok, complaints) = promtool_check(&text);
        assert!(ok && complaints.is_empty(), "{complaints}\n{text}");
    }

    #[test]
    fn event_counters_accumulate() {
        let metrics = Metrics::new().unwrap();
        metrics.declare_event_kind("thread_start");
        metrics.add_events("accept", 2);
        metrics.add_events("accept", 5);
        metrics.add_dropped("accept", 1);
        let text = metrics.encode();
        assert!(text
            .lines()
            .any(|l| l == r#"leak_monitor_events_total{kind="accept"} 7"#));
        assert!(text
            .lines()
            .any(|l| l == r#"leak_monitor_events_dropped_total{kind="accept"} 1"#));
        assert!(text
            .lines()
            .any(|l| l == r#"leak_monitor_events_total{kind="thread_start"} 0"#));
        assert!(text
            .lines()
            .any(|l| l == r#"leak_monitor_events_dropped_total{kind="thread_start"} 0"#));
    }
}

//! `leak-monitor serve`: the daemon. Follows targets, exports metrics, writes a report whenever
//! a resource reaches verdict `leak` and when a target with a leak exits; the same for groups of
//! targets (pools of workers, `group_alerts`).

use super::group_alerts::GroupAlerts;
use super::metrics_server::MetricsServer;
use super::record::FleetRecordings;
use super::report_files::{create_private_dir, sanitize, write_private};
use super::resolve::attach_pids;
use super::serve_config::ServeConfig;
use super::ticker::{StopFlag, Ticker};
use super::tracing;
use super::UsageError;
use crate::capabilities::{Capabilities, Privileges};
use crate::cli::ServeArgs;
use crate::detection::Verdict;
use crate::monitor::{Ended, Fleet, TargetMonitor, TargetSnapshot};
use crate::outputs::metrics::Metrics;
use crate::outputs::report::{render_markdown, Report};
use crate::recording::format::ReportInputs;
use crate::resource::Resource;
use crate::targets::{TargetId, TargetInfo};
use anyhow::Context;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often `--match`/`--python` look for new processes. Scanning /proc costs ~1 ms per
/// hundred processes; new workers are picked up within this delay (a process passed over is
/// read again less often, `fleet::PASSED_RECHECK`).
const REDISCOVER_EVERY: Duration = Duration::from_secs(2);

/// How often freed heap memory is given back to the system besides when a target ends: the
/// background reads (heap censuses, breakdowns) free what they read, and glibc would keep it.
const GIVE_BACK_EVERY: Duration = Duration::from_secs(30);

/// Large buffers (the heap census's 64 KiB chunks, smaps texts) are mapped on their own and
/// unmapped when freed, instead of staying in a thread's arena after the read that needed them.
const OWN_MAPPING_FROM: i32 = 64 * 1024;

pub fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = ServeConfig::resolve(&args)?;
    limit_heap_retention();
    let stop = StopFlag::on_signals()?;
    for dir in [&config.report_dir, &config.record_dir]
        .into_iter()
        .flatten()
    {
        // A path the user gave that cannot be used: exit 2, as an unwritable `run --json`.
        create_private_dir(dir).map_err(|err| UsageError(format!("{err:#}")))?;
    }
    let mut initial = attach_pids(&config.pids, config.interval, config.attribution)?;
    let mut capabilities = Capabilities::procfs_only(Privileges::current());
    let tracer = tracing::start_following(
        &mut capabilities,
        config.tracing,
        config.engagement,
        &mut initial,
    );
    capabilities.announce();

    let metrics = Arc::new(Metrics::new().context("creating the metrics registry")?);
    let server = MetricsServer::start(config.listen, Arc::clone(&metrics), log)?;
    log(&format!(
        "serving metrics on http://{}/metrics",
        server.addr()
    ));

    let mut event_counters = tracing::EventCounters::declare(&metrics);
    let mut fleet = Fleet::new(initial, config.selectors, config.interval, REDISCOVER_EVERY);
    fleet.set_tracer(tracer.clone());
    fleet.set_attribution(config.attribution);
    for monitor in fleet.monitors() {
        log(&format!("following {}", describe_target(monitor.info())));
    }
    let mut groups = GroupAlerts::new(config.report_dir.clone(), log);
    let recordings = config
        .record_dir
        .clone()
        .map(|dir| FleetRecordings::new(dir, capabilities.clone(), log));
    let mut alerts = LeakAlerts::new(config.report_dir.clone(), capabilities, recordings);
    // The samples the first targets took when they attached.
    alerts.observe(fleet.monitors());
    let mut ticker = Ticker::new(config.interval);
    let mut given_back_at = std::time::Instant::now();
    while let Some(now) = ticker.wait(&stop) {
        server.ensure_running()?;
        let tick = fleet.tick(now);
        alerts.observe(fleet.monitors());
        for info in &tick.added {
            log(&format!("following {}", describe_target(info)));
        }
        for (id, pool) in &tick.pooled {
            log(&format!(
                "pid {} is in pool {pool} (a master and the workers it forked)",
                id.pid
            ));
        }
        for error in &tick.attach_errors {
            log(&format!("cannot follow a matching process: {error}"));
        }
        for (snapshot, why) in &tick.ended {
            let how = match why {
                Ended::Exited => "exited".to_string(),
                Ended::Failed(reason) => format!("can no longer be observed ({reason})"),
            };
            log(&format!(
                "pid {} {how}; its series are dropped",
                snapshot.info.id.pid
            ));
            alerts.target_ended(snapshot);
        }
        let snapshots = fleet.snapshots();
        for snapshot in &snapshots {
            alerts.check(snapshot);
        }
        metrics.update_groups(&groups.update(&tick.ended, &snapshots));
        metrics.update_owned(snapshots);
        event_counters.update(tracer.as_ref(), &metrics);
        if !tick.ended.is_empty() || now.duration_since(given_back_at) >= GIVE_BACK_EVERY {
            drop(tick);
            give_back_freed_memory();
            given_back_at = now;
        }
    }
    log("stopping");
    Ok(ExitCode::SUCCESS)
}

/// Makes glibc keep less freed memory: large blocks get mappings of their own (returned when
/// freed), and the daemon's few threads share two arenas instead of one each (a thread's arena
/// keeps what the thread freed).
fn limit_heap_retention() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes the allocator's tunables; it has no preconditions.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, OWN_MAPPING_FROM);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns the heap freed by ended targets and by the background reads to the system: glibc
/// keeps freed memory in its arenas for reuse, so a daemon whose fleet shrank would otherwise stay
/// at its largest. Called when a target ended and every `GIVE_BACK_EVERY`, so its cost (a walk of
/// the free lists) is rare.
fn give_back_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Writes a report when a resource first reaches `leak` (again after it recovered), and when a
/// target ends with a leak.
/// With `--record-dir`, each target's recording gets what those reports are built from.
struct LeakAlerts {
    report_dir: Option<PathBuf>,
    capabilities: Capabilities,
    leaking: BTreeMap<TargetId, BTreeSet<Resource>>,
    recordings: Option<FleetRecordings>,
}

impl LeakAlerts {
    fn new(
        report_dir: Option<PathBuf>,
        capabilities: Capabilities,
        recordings: Option<FleetRecordings>,
    ) -> Self {
        LeakAlerts {
            report_dir,
            capabilities,
            leaking: BTreeMap::new(),
            recordings,
        }
    }

    /// Records what the monitors' last tick saw.
    fn observe<'a>(&mut self, monitors: impl Iterator<Item = &'a TargetMonitor>) {
        if let Some(recordings) = self.recordings.as_mut() {
            recordings.observe(monitors);
        }
    }

    fn check(&mut self, snapshot: &TargetSnapshot) {
        let now_leaking: BTreeSet<Resource> = leaking_resources(snapshot);
        let before = self.leaking.entry(snapshot.info.id).or_default();
        let new: Vec<Resource> = now_leaking.difference(before).copied().collect();
        *before = now_leaking;
        if new.is_empty() {
            return;
        }
        for resource in &new {
            if let Some(r) = snapshot.resources.iter().find(|r| r.resource == *resource) {
                log(&format!(
                    "leak: pid {} {} growing {}/s (confidence {:.2})",
                    snapshot.info.id.pid,
                    resource,
                    resource.unit().format(r.trend.rate_per_second.0),
                    r.trend.confidence
                ));
            }
        }
        self.write(snapshot, "leak", None);
    }

    fn target_ended(&mut self, snapshot: &TargetSnapshot) {
        self.leaking.remove(&snapshot.info.id);
        if !leaking_resources(snapshot).is_empty() {
            self.write(
                snapshot,
                "exited",
                Some("the target exited with a leak verdict"),
            );
        } else if let Some(recordings) = self.recordings.as_mut() {
            // No report is written, but the recording ends as the target did.
            let mut capabilities = self.capabilities.for_target(&snapshot.info);
            capabilities.note("the target exited");
            recordings.report(snapshot, ReportInputs::new(SystemTime::now(), capabilities));
        }
        if let Some(recordings) = self.recordings.as_mut() {
            recordings.ended(snapshot.info.id);
        }
    }

    fn write(&mut self, snapshot: &TargetSnapshot, why: &str, note: Option<&str>) {
        let mut capabilities = self.capabilities.for_target(&snapshot.info);
        if let Some(note) = note {
            capabilities.note(note);
        }
        let now = SystemTime::now();
        if let Some(recordings) = self.recordings.as_mut() {
            recordings.report(snapshot, ReportInputs::new(now, capabilities.clone()));
        }
        let Some(dir) = &self.report_dir else {
            return;
        };
        let report = Report::build(snapshot, &capabilities, now);
        let stamp = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let base = format!(
            "{}-{}-{why}-{stamp}",
            sanitize(&snapshot.info.group),
            snapshot.info.id.pid
        );
        let result = report
            .to_json()
            .map_err(anyhow::Error::from)
            .and_then(|json| write_private(&dir.join(format!("{base}.json")), &json))
            .and_then(|()| {
                write_private(
                    &dir.join(format!("{base}.md")),
                    &render_markdown(std::slice::from_ref(&report)),
                )
            });
        match result {
            Ok(()) => log(&format!(
                "report written: {}",
                Path::new(dir).join(base).display()
            )),
            Err(err) => log(&format!("cannot write report: {err:#}")),
        }
    }
}

fn leaking_resources(snapshot: &TargetSnapshot) -> BTreeSet<Resource> {
    snapshot
        .resources
        .iter()
        .filter(|r| r.trend.verdict == Verdict::Leak)
        .map(|r| r.resource)
        .collect()
}

/// `pid 42 (python3 app.py) in container 3f4a5b6c7d8e (containerd), pod shop/web-7d9f`.
fn describe_target(info: &TargetInfo) -> String {
    let mut text = describe(info.id.pid, &info.cmdline);
    let owner: Vec<String> = info
        .labels
        .owner_parts()
        .into_iter()
        .map(|(what, name, detail)| match detail {
            Some(detail) => format!("{what} {name} ({detail})"),
            None => format!("{what} {name}"),
        })
        .collect();
    if !owner.is_empty() {
        text.push_str(" in ");
        text.push_str(&owner.join(", "));
    }
    text
}

fn describe(pid: i32, cmdline: &[String]) -> String {
    let mut text = format!("pid {pid}");
    if !cmdline.is_empty() {
        text.push_str(&format!(" ({})", cmdline.join(" ")));
    }
    text
}

fn log(message: &str) {
    eprintln!(
        "{} {message}",
        humantime::format_rfc3339_seconds(SystemTime::now())
    );
}

//! Pools that recycle their workers, followed by `serve --match web=...`: a leak no worker lives
//! long enough to show is found from each worker's growth over its life (the group verdict
//! `leak`, masked by recycling, with the leaking line), and the same pool without the leak
//! raises no group alarm. The pool is `tests/python/prefork_recycling.py`: 2 workers of 300
//! requests at 60 a second (~5 s each), 20 KB kept per request with `--leak`.

use crate::scrape::{self, Series};
use crate::support::{http_get, python_script, read_json, serve, wait_until, Workload};
use serde_json::Value;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// The issue asks for the verdict within 3 minutes.
const VERDICT_DEADLINE: Duration = Duration::from_secs(180);

/// Starts the pool under a name of its own and `serve` following that pool alone (tests run
/// in parallel, and a daemon that followed both pools would judge them as one group).
fn pool_and_daemon(
    kind: &str,
    extra: &[&str],
) -> (
    Workload,
    crate::support::LeakMonitor,
    SocketAddr,
    tempfile::TempDir,
) {
    let name = format!("{kind}-{}", std::process::id());
    let dir = tempfile::tempdir().expect("temp dir");
    let dir_arg = dir.path().to_str().expect("utf-8 temp dir");
    // The escaped dot keeps the pattern from matching the daemon's own command line.
    let pattern = format!(r"web=prefork_recycling\.py .*--name {name}$");
    let (daemon, addr) = serve(&[
        "--match",
        &pattern,
        "--interval",
        "500",
        "--report-dir",
        dir_arg,
    ]);
    // The name last, where the pattern expects it.
    let mut args = extra.to_vec();
    args.extend(["--name", &name]);
    let pool = Workload::start("prefork_recycling.py", &args);
    (pool, daemon, addr, dir)
}

fn scrape(addr: SocketAddr) -> Vec<Series> {
    let (status, body) = http_get(addr, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    scrape::parse(&body)
}

/// The value of the group series `name` of group `web` with `labels`, when scraped.
fn group_value(series: &[Series], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut with = vec![("target", "web")];
    with.extend_from_slice(labels);
    let found = scrape::find(series, name, &with);
    for s in &found {
        assert!(s.label("pid").is_none(), "a group series with a pid: {s:?}");
    }
    found.first().map(|s| s.value)
}

fn group_reports(dir: &Path) -> Vec<Value> {
    fs::read_dir(dir)
        .expect("read the report dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("web-group-") && n.ends_with(".json"))
        })
        .map(|p| read_json(&p))
        .collect()
}

/// The line of the script marked `# LEAK`.
fn leak_line() -> u64 {
    let source = fs::read_to_string(python_script("prefork_recycling.py")).expect("the script");
    source
        .lines()
        .position(|l| l.contains("# LEAK"))
        .expect("a # LEAK line") as u64
        + 1
}

#[test]
fn a_leak_masked_by_worker_recycling_gets_a_group_verdict_with_its_line() {
    let started = Instant::now();
    let (_pool, daemon, addr, dir) = pool_and_daemon("leaky", &["--leak"]);
    let report = wait_until(VERDICT_DEADLINE, "a group report of web", || {
        group_reports(dir.path()).into_iter().next()
    });
    let took = started.elapsed();
    eprintln!("group verdict after {took:?}");

    assert_eq!(report["schema"], "leak-monitor/group-report/v1");
    assert_eq!(report["group"], "web");
    let rss = report["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["resource"] == "rss_bytes")
        .expect("rss_bytes in the group report");
    assert_eq!(rss["verdict"], "leak", "{rss:#}");
    assert_eq!(rss["masked_by_recycling"], true, "{rss:#}");
    assert!(
        rss["summary"]
            .as_str()
            .is_some_and(|s| s.contains("leak masked by recycling")),
        "{rss:#}"
    );
    // ~1.2 MB/s per worker (20 KB x 60/s); generous bounds for a loaded machine.
    let rate = rss["rate_per_second"].as_f64().expect("rate");
    assert!(
        (300e3..=3e6).contains(&rate),
        "per-worker rate {rate}: {rss:#}"
    );
    let members = report["members"].as_array().expect("members");
    let ended = members.iter().filter(|m| !m["end"].is_null()).count();
    assert!(ended >= 2, "recycled workers: {members:#?}");
    // The line, merged across the workers' attribution.
    let line = leak_line();
    let sites = rss["sites"].as_array().expect("sites");
    assert!(
        sites.iter().any(|s| s["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("prefork_recycling.py"))
            && s["line"] == line),
        "no site at prefork_recycling.py:{line}: {sites:#?}"
    );

    let series = scrape(addr);
    let suspected = group_value(
        &series,
        "leak_monitor_group_leak_suspected",
        &[("resource", "rss_bytes")],
    );
    assert_eq!(suspected, Some(1.0));
    let recycles = group_value(&series, "leak_monitor_worker_recycles_total", &[]);
    assert!(recycles.is_some_and(|n| n >= 2.0), "{recycles:?}");
    let current = group_value(&series, "leak_monitor_group_members", &[]);
    assert!(current.is_some_and(|n| n >= 1.0), "{current:?}");
    let log = daemon.output_so_far();
    assert!(log.contains("group web ("), "{log}");
    assert!(log.contains("leak masked by recycling"), "{log}");
}

#[test]
fn the_same_pool_without_the_leak_raises_no_group_alarm() {
    let (_pool, daemon, addr, dir) = pool_and_daemon("tidy", &[]);
    // As many recycles as the leaking pool needs for its verdict, and more: ~80 s of them.
    wait_until(VERDICT_DEADLINE, "30 recycled workers", || {
        let series = scrape(addr);
        let suspected = group_value(
            &series,
            "leak_monitor_group_leak_suspected",
            &[("resource", "rss_bytes")],
        );
        assert_ne!(suspected, Some(1.0), "{}", daemon.output_so_far());
        group_value(&series, "leak_monitor_worker_recycles_total", &[]).filter(|n| *n >= 30.0)
    });
    let reports = group_reports(dir.path());
    assert!(reports.is_empty(), "{reports:#?}");
    let log = daemon.output_so_far();
    assert!(!log.contains("group web ("), "{log}");
}

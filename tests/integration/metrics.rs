//! The `serve` daemon over real HTTP: the contract's metric names and labels on a real target,
//! a scrape that `promtool check metrics` accepts, series that go away with their process,
//! processes picked up by `--match`, and reports written into `--report-dir`.

use crate::scrape::{self, Series};
use crate::support::{http_get, promtool_check_metrics, serve, wait_until, Workload};
use std::fs;
use std::net::SocketAddr;
use std::time::Duration;

/// Generous bounds for a loaded machine; the checks inside are about content, not speed.
const SETTLE: Duration = Duration::from_secs(60);

/// The per-process gauges every followed process has from its first samples on.
const PER_PROCESS: [&str; 8] = [
    "leak_monitor_resident_memory_bytes",
    "leak_monitor_open_fds",
    "leak_monitor_max_fds",
    "leak_monitor_sockets",
    "leak_monitor_threads",
    "leak_monitor_growth_rate_per_second",
    "leak_monitor_leak_suspected",
    "leak_monitor_leak_confidence",
];

/// One scrape of /metrics, which must answer 200.
fn scrape(addr: SocketAddr) -> (String, Vec<Series>) {
    let (status, body) = http_get(addr, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    let series = scrape::parse(&body);
    (body, series)
}

fn with_pid<'a>(series: &'a [Series], pid: &str) -> Vec<&'a Series> {
    series
        .iter()
        .filter(|s| s.label("pid") == Some(pid))
        .collect()
}

/// Scrapes until every PER_PROCESS gauge has a series for `pid`; returns that scrape.
fn scrape_when_complete(addr: SocketAddr, pid: &str) -> (String, Vec<Series>) {
    wait_until(SETTLE, "all per-process metrics of the target", || {
        let (body, series) = scrape(addr);
        let complete = PER_PROCESS
            .iter()
            .all(|name| !scrape::find(&series, name, &[("pid", pid)]).is_empty());
        complete.then_some((body, series))
    })
}

fn wait_for_series_to_go(addr: SocketAddr, pid: &str) {
    wait_until(SETTLE, "the ended target's series to go away", || {
        with_pid(&scrape(addr).1, pid).is_empty().then_some(())
    });
}

#[test]
fn serve_exports_the_contract_metrics_and_promtool_accepts_them() {
    let mut workload = Workload::start("socket_tcp_leak.py", &["--rate", "5"]);
    let pid = workload.pid_arg();
    let (_daemon, addr) = serve(&["--pid", &pid, "--interval", "500"]);
    let (body, series) = scrape_when_complete(addr, &pid);

    let (ok, complaints) = promtool_check_metrics(&body);
    assert!(
        ok && complaints.trim().is_empty(),
        "promtool: {complaints}\n{body}"
    );

    for s in with_pid(&series, &pid) {
        assert!(
            s.label("target").is_some_and(|t| !t.is_empty()),
            "no target label: {s:?}"
        );
    }
    let has = |name: &str, labels: &[(&str, &str)]| {
        let mut wanted = vec![("pid", pid.as_str())];
        wanted.extend_from_slice(labels);
        !scrape::find(&series, name, &wanted).is_empty()
    };
    for kind in ["total", "anon", "file", "shmem"] {
        assert!(
            has("leak_monitor_resident_memory_bytes", &[("kind", kind)]),
            "kind {kind}\n{body}"
        );
    }
    assert!(
        has("leak_monitor_open_fds", &[("kind", "socket")]),
        "{body}"
    );
    let tcp = scrape::find(
        &series,
        "leak_monitor_sockets",
        &[("pid", &pid), ("protocol", "tcp")],
    );
    assert!(
        tcp.iter()
            .any(|s| s.label("state").is_some() && s.value >= 1.0),
        "{body}"
    );
    for resource in ["rss_bytes", "open_fds", "sockets", "threads"] {
        assert!(
            has(
                "leak_monitor_growth_rate_per_second",
                &[("resource", resource)]
            ),
            "growth rate of {resource}\n{body}"
        );
    }
    let threads = scrape::find(&series, "leak_monitor_threads", &[("pid", &pid)]);
    assert_eq!(threads[0].value, 2.0, "the workload runs 2 threads\n{body}");
    let targets = scrape::find(&series, "leak_monitor_targets", &[]);
    assert_eq!(targets.len(), 1, "{body}");
    assert_eq!(targets[0].value, 1.0, "{body}");
    assert!(targets[0].labels.is_empty(), "{body}");

    workload.kill();
    wait_for_series_to_go(addr, &pid);
    let (_, after) = scrape(addr);
    assert_eq!(
        scrape::find(&after, "leak_monitor_targets", &[])[0].value,
        0.0
    );
}

#[test]
fn serve_follows_processes_matching_a_pattern_under_the_group_name() {
    // The escaped dot keeps the pattern from matching the daemon's own command line.
    let (_daemon, addr) = serve(&[
        "--match",
        r"udpleak=socket_udp_leak\.py",
        "--interval",
        "500",
    ]);
    let mut workload = Workload::start("socket_udp_leak.py", &[]);
    let pid = workload.pid_arg();
    let threads = wait_until(SETTLE, "the matching process to be followed", || {
        let (_, series) = scrape(addr);
        let found = scrape::find(&series, "leak_monitor_threads", &[("pid", &pid)]);
        found.first().map(|s| s.label("target").map(str::to_owned))
    });
    assert_eq!(threads.as_deref(), Some("udpleak"));

    workload.kill();
    wait_for_series_to_go(addr, &pid);
}

#[test]
fn serve_writes_a_report_when_a_leak_is_found() {
    let workload = Workload::start("fd_leak.py", &["--rate", "20"]);
    let reports = tempfile::tempdir().expect("report dir");
    let report_dir = reports.path().to_str().expect("UTF-8 path");
    let pid = workload.pid_arg();
    let (_daemon, _addr) = serve(&["--pid", &pid, "--report-dir", report_dir]);
    // Waits for the content, not just the file, in case a report is written in pieces.
    wait_until(
        Duration::from_secs(120),
        "a report naming the PID in --report-dir",
        || {
            fs::read_dir(reports.path())
                .expect("read report dir")
                .filter_map(Result::ok)
                .find(|entry| {
                    fs::read_to_string(entry.path()).is_ok_and(|text| text.contains(&pid))
                })
        },
    );
}

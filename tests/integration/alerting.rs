//! End to end alerting: `leak-monitor serve` follows a leaking and a steady Python process, a
//! real Prometheus scrapes it every second and evaluates the shipped rules
//! (deploy/prometheus/leak-monitor.rules.yml), and the leak alert fires for the leaking pid
//! only, as read from Prometheus's own `GET /api/v1/alerts`.

use crate::prometheus::Prometheus;
use crate::support::{
    cpu_heavy_slot, free_local_addr, http_get, wait_until, LeakMonitor, Workload,
};
use regex::Regex;
use serde_json::Value;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// How long the leak alert may take to fire: the detector's verdict (tens of seconds of
/// samples) plus the shortened `for:`. A liveness bound for a loaded machine.
const FIRING_TIMEOUT: Duration = Duration::from_secs(150);

/// The `for:` every rule gets in the test copy.
const TEST_FOR: &str = "3s";

/// The shipped rules with every `for:` shortened to TEST_FOR. The shipped durations (2-10
/// minutes) are right for production and far too long for a test; only the `for:` field is
/// rewritten, expressions, labels and annotations are tested as shipped.
fn rules_with_short_for() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/leak-monitor.rules.yml");
    let shipped = std::fs::read_to_string(&path).unwrap();
    let for_field = Regex::new(r"(?m)^(\s+)for:\s*\S+\s*$").unwrap();
    assert!(
        for_field.find_iter(&shipped).count() >= 5,
        "expected a `for:` on every alert in {}",
        path.display()
    );
    for_field
        .replace_all(&shipped, format!("${{1}}for: {TEST_FOR}"))
        .into_owned()
}

fn label<'a>(alert: &'a Value, key: &str) -> &'a str {
    alert["labels"][key].as_str().unwrap_or("")
}

fn leak_alerts_for<'a>(alerts: &'a [Value], pid: &str) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| label(a, "alertname") == "LeakMonitorLeakSuspected" && label(a, "pid") == pid)
        .collect()
}

#[test]
fn leak_alert_fires_for_the_leaking_pid_and_not_for_the_steady_one() {
    let _cpu = cpu_heavy_slot();
    // 5 fds/s: a clean linear leak that stays far from a 1024 fd soft limit for the whole test.
    let leaking = Workload::start("fd_leak.py", &["--rate", "5"]);
    let steady = Workload::start("steady.py", &[]);
    let (leaking_pid, steady_pid) = (leaking.pid_arg(), steady.pid_arg());

    let addr = free_local_addr();
    let listen = addr.to_string();
    let mut daemon = LeakMonitor::spawn(&[
        "serve",
        "--pid",
        &leaking_pid,
        "--pid",
        &steady_pid,
        "--listen",
        &listen,
    ]);
    wait_until(Duration::from_secs(30), "/healthz to answer 200", || {
        assert!(
            !daemon.has_exited(),
            "serve exited:\n{}",
            daemon.output_so_far()
        );
        matches!(http_get(addr, "/healthz"), Ok((200, _))).then_some(())
    });

    let prometheus = Prometheus::start(addr, &rules_with_short_for());
    eprintln!("alerting: Prometheus in {}", prometheus.dir().display());
    wait_until(
        Duration::from_secs(30),
        "Prometheus to scrape leak-monitor",
        || {
            let up = prometheus.query("up{job=\"leak-monitor\"} == 1");
            (!up.is_empty()).then_some(())
        },
    );

    let started = Instant::now();
    let firing = loop {
        assert!(
            !daemon.has_exited(),
            "serve exited:\n{}",
            daemon.output_so_far()
        );
        let alerts = prometheus.alerts();
        let steady_alerts = leak_alerts_for(&alerts, &steady_pid);
        assert!(
            steady_alerts.is_empty(),
            "a leak alert for the steady pid {steady_pid}: {steady_alerts:#?}"
        );
        // fd_leak.py keeps each file object (and its buffer), so an rss_bytes alert may
        // rightly fire too; this test is about the fd one.
        let firing = leak_alerts_for(&alerts, &leaking_pid)
            .into_iter()
            .find(|a| a["state"] == "firing" && label(a, "resource") == "open_fds")
            .cloned();
        if let Some(alert) = firing {
            break alert;
        }
        assert!(
            started.elapsed() < FIRING_TIMEOUT,
            "no firing open_fds LeakMonitorLeakSuspected for pid {leaking_pid} after {FIRING_TIMEOUT:?}; \
             alerts: {alerts:#?}\nleak-monitor:\n{}\nPrometheus:\n{}",
            daemon.output_so_far(),
            prometheus.log()
        );
        thread::sleep(Duration::from_secs(1));
    };
    eprintln!(
        "alerting: leak alert firing after {:.0?}: {firing}",
        started.elapsed()
    );

    // The alert names the resource, target and pid, and quotes the rate.
    assert_eq!(label(&firing, "resource"), "open_fds", "{firing:#}");
    assert_eq!(label(&firing, "severity"), "warning", "{firing:#}");
    let target = label(&firing, "target");
    assert!(!target.is_empty(), "{firing:#}");
    let summary = firing["annotations"]["summary"].as_str().unwrap_or("");
    assert_eq!(
        summary,
        format!("open_fds leak in {target} (pid {leaking_pid})")
    );
    let description = firing["annotations"]["description"].as_str().unwrap_or("");
    let rate: f64 = firing["value"]
        .as_str()
        .unwrap_or("")
        .parse()
        .unwrap_or(0.0);
    assert!(
        (2.5..=10.0).contains(&rate),
        "alert value should be the fd growth rate (about 5/s): {firing:#}"
    );
    assert!(
        description.contains("per second") && description.contains(&format!("--pid {leaking_pid}")),
        "{description}"
    );

    // The steady process was scraped the whole time (its absence of alerts means something),
    // and is judged not to leak; the monitor itself is healthy.
    let steady_series = prometheus.query(&format!(
        "leak_monitor_leak_suspected{{pid=\"{steady_pid}\"}}"
    ));
    assert!(
        steady_series.len() >= 4,
        "Prometheus has no verdicts for the steady pid: {steady_series:#?}"
    );
    let alerts = prometheus.alerts();
    assert!(
        leak_alerts_for(&alerts, &steady_pid).is_empty(),
        "{alerts:#?}"
    );
    assert!(
        !alerts
            .iter()
            .any(|a| label(a, "alertname") == "LeakMonitorDown"),
        "{alerts:#?}"
    );
}

//! The deploy/ artifacts: Prometheus rules pass `promtool check rules` and their own unit tests
//! (`promtool test rules`), and the Grafana dashboard is valid JSON whose queries name only
//! metrics leak-monitor exports (or the rules record).

use regex::Regex;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The contract's metric names (CONTRACT.md "Prometheus metrics").
const CONTRACT_METRICS: &[&str] = &[
    "leak_monitor_resident_memory_bytes",
    "leak_monitor_open_fds",
    "leak_monitor_max_fds",
    "leak_monitor_sockets",
    "leak_monitor_threads",
    "leak_monitor_growth_rate_per_second",
    "leak_monitor_leak_suspected",
    "leak_monitor_leak_confidence",
    "leak_monitor_seconds_to_limit",
    "leak_monitor_site_amount",
    "leak_monitor_targets",
    "leak_monitor_events_total",
    "leak_monitor_events_dropped_total",
];

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

fn promtool(args: &[&str]) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(deploy("prometheus"))
        .output()
        .expect("promtool must be installed (Debian package prometheus; `cargo xtask setup`)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// Metric names in a PromQL expression: identifiers that start a selector, minus functions,
/// keywords and label names.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let in_braces = Regex::new(r"\{[^}]*\}").unwrap();
    let in_by = Regex::new(r"(?:by|without|on|ignoring)\s*\([^)]*\)").unwrap();
    let strings = Regex::new(r#""[^"]*""#).unwrap();
    let expr = strings.replace_all(expr, "");
    let expr = in_braces.replace_all(&expr, "{}");
    let expr = in_by.replace_all(&expr, "");
    let ident = Regex::new(r"[a-zA-Z_:][a-zA-Z0-9_:]*").unwrap();
    ident
        .find_iter(&expr)
        .map(|m| m.as_str().to_string())
        .filter(|name| name.starts_with("leak_monitor") || name == "up")
        .collect()
}

fn recorded_metrics() -> BTreeSet<String> {
    let rules = std::fs::read_to_string(deploy("prometheus/leak-monitor.rules.yml")).unwrap();
    Regex::new(r"record:\s*(\S+)")
        .unwrap()
        .captures_iter(&rules)
        .map(|c| c[1].to_string())
        .collect()
}

#[test]
fn prometheus_rules_pass_promtool_check_and_their_unit_tests() {
    let check = promtool(&["check", "rules", "leak-monitor.rules.yml"]);
    assert!(check.contains("SUCCESS"), "{check}");
    let test = promtool(&["test", "rules", "leak-monitor.rules.test.yml"]);
    assert!(test.contains("SUCCESS"), "{test}");
}

#[test]
fn rules_query_only_exported_metrics() {
    let rules = std::fs::read_to_string(deploy("prometheus/leak-monitor.rules.yml")).unwrap();
    let known: BTreeSet<String> = CONTRACT_METRICS
        .iter()
        .map(|s| s.to_string())
        .chain(recorded_metrics())
        .chain(["up".to_string()])
        .collect();
    let expr = Regex::new(
        r"(?s)expr:\s*\|?\s*\n?(.*?)(?:\n\s*(?:for|labels|record|- alert|- record):|\z)",
    )
    .unwrap();
    let mut seen = 0;
    for capture in expr.captures_iter(&rules) {
        for name in metric_names(&capture[1]) {
            assert!(known.contains(&name), "rules query unknown metric {name}");
            seen += 1;
        }
    }
    assert!(
        seen >= 8,
        "found only {seen} metric references in the rules"
    );
}

#[test]
fn grafana_dashboard_is_valid_and_queries_only_exported_metrics() {
    let text = std::fs::read_to_string(deploy("grafana/leak-monitor.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let known: BTreeSet<String> = CONTRACT_METRICS
        .iter()
        .map(|s| s.to_string())
        .chain(recorded_metrics())
        .collect();
    let mut used = BTreeSet::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("every target has an expr");
            for name in metric_names(expr) {
                assert!(
                    known.contains(&name),
                    "panel {:?} queries unknown metric {name}",
                    panel["title"]
                );
                used.insert(name);
            }
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if let Some(query) = variable["definition"].as_str() {
            for name in metric_names(query) {
                assert!(
                    known.contains(&name),
                    "variable queries unknown metric {name}"
                );
            }
        }
    }
    let names: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(
        names.contains(&"target") && names.contains(&"pid"),
        "{names:?}"
    );
    for metric in CONTRACT_METRICS {
        assert!(
            used.contains(*metric),
            "the dashboard shows no panel for {metric}"
        );
    }
}

/// The dashboard narrows by the fleet labels: every per-process query that filters by target
/// also filters by namespace, pod and unit, with variables for them.
#[test]
fn grafana_dashboard_filters_by_namespace_pod_and_unit() {
    let text = std::fs::read_to_string(deploy("grafana/leak-monitor.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for name in ["namespace", "pod", "unit"] {
        assert!(
            variables.contains(&name),
            "no ${name} variable: {variables:?}"
        );
    }
    let mut filtered = 0;
    let mut by_workload = false;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            by_workload |= expr.contains("leak_monitor:leaks_by_workload:count");
            if expr.contains("target=~\"$target\"") {
                filtered += 1;
                for owner in [
                    "namespace=~\"$namespace\"",
                    "pod=~\"$pod\"",
                    "unit=~\"$unit\"",
                ] {
                    assert!(expr.contains(owner), "{expr} does not filter by {owner}");
                }
            }
        }
    }
    assert!(filtered >= 10, "only {filtered} per-process queries");
    assert!(by_workload, "no panel shows leaks by workload");
}

/// The PodMonitor keeps the series' own namespace/pod/container labels: the DaemonSet's own
/// target labels of those names are dropped, not merged over them.
#[test]
fn pod_monitor_drops_its_own_pod_labels() {
    let yaml = std::fs::read_to_string(deploy("kubernetes/leak-monitor-daemonset.yaml")).unwrap();
    let monitor = yaml
        .split("\n---\n")
        .find(|doc| doc.contains("kind: PodMonitor"))
        .expect("a PodMonitor");
    let drop = Regex::new(r"(?m)action: labeldrop\s*\n\s*regex: \((\S+)\)").unwrap();
    let dropped = &drop.captures(monitor).expect("a labeldrop relabeling")[1];
    let mut names: Vec<&str> = dropped.split('|').collect();
    names.sort_unstable();
    assert_eq!(names, ["container", "namespace", "pod"]);
}

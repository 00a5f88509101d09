//! The `run` command as scripts see it: exit codes, where reports go, the JSON report's
//! contract shape, and a target that exits mid-run.

use crate::support::{
    leak_monitor, read_json, resource, run_json_report, run_json_report_samples, samples_in,
    LeakMonitor, Workload,
};
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::thread;
use std::time::Duration;

const VERDICTS: [&str; 3] = ["leak", "growing", "stable"];
const GROWTH_PATTERNS: [&str; 7] = [
    "linear",
    "quadratic",
    "exponential",
    "step",
    "sawtooth",
    "plateau",
    "flat",
];
const LEAK_TYPES: [&str; 8] = [
    "unbounded_collection",
    "unbounded_cache",
    "circular_reference",
    "event_handler",
    "resource_not_closed",
    "tensor_accumulation",
    "thread_not_joined",
    "unknown",
];

#[test]
fn missing_pid_exits_2_with_a_one_line_message() {
    // pid_max is far below this on these machines; make sure before relying on it.
    assert!(!Path::new("/proc/999999").exists());
    let outcome = leak_monitor(&["run", "--pid", "999999", "--duration", "1"]);
    assert_eq!(outcome.code, Some(2), "{outcome}");
    let message = outcome.stderr.trim();
    assert_eq!(message.lines().count(), 1, "{outcome}");
    assert!(
        message.contains("999999"),
        "message does not name the PID: {outcome}"
    );
}

#[test]
fn bad_arguments_exit_2() {
    let cases: &[&[&str]] = &[
        &["run", "--bogus"],
        &["run", "--duration", "5"],
        &["run", "--pid", "abc", "--duration", "5"],
        &["run", "--pid", "1", "--duration", "abc"],
        &["run", "--pid", "1", "--duration=-5"],
        &["run", "--pid", "1", "--duration", "5", "--interval", "0"],
        &["serve", "--listen", "not-an-address"],
        &["frobnicate"],
    ];
    for args in cases {
        let outcome = leak_monitor(args);
        assert_eq!(outcome.code, Some(2), "{args:?}: {outcome}");
        assert!(!outcome.stderr.trim().is_empty(), "{args:?}: {outcome}");
    }
}

#[test]
fn fail_on_leak_exits_3_on_an_fd_leak() {
    let workload = Workload::start("fd_leak.py", &["--rate", "20"]);
    let samples = samples_in(30, 1000);
    let (outcome, report) =
        run_json_report_samples(workload.pid(), samples, 1000, &["--fail-on-leak"]);
    assert_eq!(outcome.code, Some(3), "{outcome}");
    assert_eq!(resource(&report, "open_fds")["verdict"], "leak");
}

#[test]
fn markdown_report_goes_to_stdout_without_json() {
    let workload = Workload::start("fd_leak.py", &[]);
    let pid = workload.pid_arg();
    let outcome = leak_monitor(&["run", "--pid", &pid, "--duration", "5", "--interval", "500"]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    assert!(
        outcome.stdout.contains("## Memory Leak Report"),
        "{outcome}"
    );
}

#[test]
fn json_report_has_the_contract_shape() {
    let workload = Workload::start("rss_leak.py", &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let markdown = dir.path().join("report.md");
    let html = dir.path().join("report.html");
    let (outcome, report) = run_json_report(
        workload.pid(),
        5,
        500,
        &[
            "--markdown",
            markdown.to_str().expect("UTF-8 path"),
            "--html",
            html.to_str().expect("UTF-8 path"),
        ],
    );
    assert_eq!(outcome.code, Some(0), "{outcome}");
    assert!(
        !outcome.stdout.contains("## Memory Leak Report"),
        "report printed although files were asked for: {outcome}"
    );
    let markdown = fs::read_to_string(&markdown).expect("Markdown report written");
    assert!(markdown.contains("## Memory Leak Report"), "{markdown}");
    let html = fs::read_to_string(&html).expect("HTML report written");
    assert!(html.to_ascii_lowercase().contains("<html"), "{html}");

    assert_eq!(report["schema"], "leak-monitor/report/v1");
    assert_timestamp(&report["generated_at"]);
    assert_target(&report["target"], workload.pid(), "rss_leak.py");

    let observation = &report["observation"];
    assert!(
        number(observation, "duration_seconds") > 0.0,
        "{observation}"
    );
    assert_eq!(
        observation["interval_seconds"].as_f64(),
        Some(0.5),
        "{observation}"
    );
    let samples = observation["samples"]
        .as_u64()
        .expect("samples is an integer");
    assert!(samples >= 2, "{observation}");

    let capabilities = &report["capabilities"];
    assert_eq!(capabilities["procfs"], true, "{capabilities}");
    assert!(capabilities["ebpf"].is_boolean(), "{capabilities}");
    assert!(capabilities["python_stacks"].is_boolean(), "{capabilities}");
    let notes = capabilities["notes"].as_array().expect("notes is an array");
    assert!(notes.iter().all(Value::is_string), "{capabilities}");

    for name in ["rss_bytes", "open_fds", "sockets", "threads"] {
        assert_resource_shape(resource(&report, name));
    }
    // Limits are read from the target: memory is always bounded by something, fds by the
    // soft limit.
    assert!(number(resource(&report, "rss_bytes"), "limit") > 0.0);
    assert_eq!(
        resource(&report, "open_fds")["limit"].as_f64(),
        Some(soft_fd_limit(workload.pid()))
    );
}

#[test]
fn target_exiting_mid_run_still_gets_a_report() {
    let mut workload = Workload::start("rss_leak.py", &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("report.json");
    let pid = workload.pid_arg();
    let monitor = LeakMonitor::spawn(&[
        "run",
        "--pid",
        &pid,
        "--duration",
        "10",
        "--interval",
        "500",
        "--json",
        json.to_str().expect("UTF-8 path"),
    ]);
    thread::sleep(Duration::from_secs(3));
    workload.kill();
    let outcome = monitor.finish();
    assert_eq!(outcome.code, Some(0), "{outcome}");
    let report = read_json(&json);
    assert_eq!(
        report["target"]["pid"].as_u64(),
        Some(u64::from(workload.pid()))
    );
    // The contract's place for remarks on the observation is `capabilities.notes`.
    let notes = report["capabilities"]["notes"]
        .as_array()
        .expect("notes is an array");
    assert!(
        notes.iter().any(|note| note
            .as_str()
            .is_some_and(|n| n.to_lowercase().contains("exit"))),
        "no note says the target exited:\n{report:#}"
    );
}

fn number(object: &Value, key: &str) -> f64 {
    object[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {object:#}"))
}

fn assert_timestamp(value: &Value) {
    // RFC 3339 in UTC, like 2026-11-23T12:00:00Z.
    let text = value.as_str().expect("generated_at is a string");
    let bytes = text.as_bytes();
    assert!(
        text.len() >= 20 && bytes[4] == b'-' && bytes[10] == b'T' && text.ends_with('Z'),
        "generated_at {text:?} is not an RFC 3339 UTC time"
    );
}

fn assert_target(target: &Value, pid: u32, script: &str) {
    assert_eq!(target["pid"].as_u64(), Some(u64::from(pid)), "{target:#}");
    let cmdline = target["cmdline"].as_array().expect("cmdline is an array");
    assert!(
        cmdline
            .iter()
            .any(|arg| arg.as_str().is_some_and(|arg| arg.ends_with(script))),
        "{target:#}"
    );
    assert!(
        target["exe"]
            .as_str()
            .is_some_and(|exe| exe.contains("python")),
        "{target:#}"
    );
    assert!(
        target["python_version"]
            .as_str()
            .is_some_and(|version| version.starts_with("3.11")),
        "{target:#}"
    );
    assert!(number(target, "start_time_unix") > 1.0e9, "{target:#}");
}

fn assert_resource_shape(entry: &Value) {
    let verdict = entry["verdict"].as_str().expect("verdict is a string");
    assert!(VERDICTS.contains(&verdict), "{entry:#}");
    let pattern = entry["growth_pattern"]
        .as_str()
        .expect("growth_pattern is a string");
    assert!(GROWTH_PATTERNS.contains(&pattern), "{entry:#}");
    for key in ["first", "last", "rate_per_second"] {
        number(entry, key);
    }
    let confidence = number(entry, "confidence");
    assert!((0.0..=1.0).contains(&confidence), "{entry:#}");
    for key in ["limit", "seconds_to_limit"] {
        assert!(
            entry[key].is_number() || entry[key].is_null(),
            "{key}: {entry:#}"
        );
    }
    match &entry["per_event"] {
        Value::Null => {}
        per_event => {
            assert!(per_event["event"].is_string(), "{entry:#}");
            number(per_event, "amount");
        }
    }
    for site in entry["sites"].as_array().expect("sites is an array") {
        assert_site_shape(site);
    }
}

fn assert_site_shape(site: &Value) {
    for key in ["file", "function", "evidence", "fix"] {
        assert!(site[key].is_string(), "{key}: {site:#}");
    }
    assert!(
        site["line"].as_u64().is_some_and(|line| line >= 1),
        "{site:#}"
    );
    assert!((0.0..=1.0).contains(&number(site, "share")), "{site:#}");
    number(site, "amount");
    let leak_type = site["leak_type"].as_str().expect("leak_type is a string");
    assert!(LEAK_TYPES.contains(&leak_type), "{site:#}");
    for frame in site["stack"].as_array().expect("stack is an array") {
        assert!(
            frame["file"].is_string() && frame["function"].is_string(),
            "{frame:#}"
        );
        assert!(frame["line"].is_u64(), "{frame:#}");
    }
}

/// The `Max open files` soft limit from /proc/PID/limits.
fn soft_fd_limit(pid: u32) -> f64 {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).expect("read limits");
    limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .expect("Max open files soft limit")
}

//! `run` under abuse: huge and missing arguments, a PID it may not read, signals, report paths
//! that cannot be created or vanish during the run. Whatever happens, the user gets one clear
//! line, the usual exit code, and never loses the observation.

use crate::support::{
    leak_monitor, read_json, resource, run_json_report, LeakMonitor, Outcome, Workload,
};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

const IDLE: &str = "import time\nprint('READY', flush=True)\nwhile True: time.sleep(1)";

fn idle_python() -> Workload {
    let mut command = Command::new("python3");
    command.args(["-c", IDLE, "abuse.run"]);
    Workload::spawn("idle", command)
}

/// Exit 2 with exactly one line on stderr whose message (before the usage reminder) names
/// `names`.
fn assert_usage_error(outcome: &Outcome, names: &str) {
    assert_eq!(outcome.code, Some(2), "{outcome}");
    let message = outcome.stderr.trim();
    assert_eq!(message.lines().count(), 1, "{outcome}");
    let said = message.split(" (usage:").next().unwrap_or_default();
    assert!(said.contains(names), "not naming {names}: {outcome}");
}

#[test]
fn huge_and_senseless_durations_are_one_line_usage_errors() {
    let workload = idle_python();
    let pid = workload.pid_arg();
    for duration in ["1e19", "1e300", "inf", "NaN", "0", "-1", "ten"] {
        let outcome = leak_monitor(&["run", "--pid", &pid, "--duration", duration]);
        assert_usage_error(&outcome, "--duration");
    }
}

#[test]
fn a_missing_flag_is_named() {
    assert_usage_error(&leak_monitor(&["run", "--duration", "5"]), "--pid");
    assert_usage_error(&leak_monitor(&["run", "--pid", "1"]), "--duration");
}

#[test]
fn root_is_not_told_to_run_as_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the abuse tests run as root");
    // PID 1 of these machines (a VM's init) denies its fds even to root; where it does not,
    // the run simply works.
    let outcome = leak_monitor(&["run", "--pid", "1", "--duration", "1"]);
    if outcome.code == Some(2) {
        assert_usage_error(&outcome, "PID 1");
        assert!(!outcome.stderr.contains("as root"), "{outcome}");
    } else {
        assert_eq!(outcome.code, Some(0), "{outcome}");
    }
}

#[test]
fn an_uncreatable_report_dir_and_an_unwritable_json_exit_alike() {
    let workload = idle_python();
    let pid = workload.pid_arg();
    let json = leak_monitor(&[
        "run",
        "--pid",
        &pid,
        "--duration",
        "1",
        "--json",
        "/proc/no-such-dir/r.json",
    ]);
    assert_usage_error(&json, "/proc/no-such-dir");
    let serve = leak_monitor(&[
        "serve",
        "--pid",
        &pid,
        "--listen",
        "127.0.0.1:0",
        "--report-dir",
        "/proc/no-such-dir",
    ]);
    assert_usage_error(&serve, "/proc/no-such-dir");
}

/// Starts `run` on an idle target for 60 s, waits until it samples, sends `signal`.
fn run_cut_short_by(signal: libc::c_int, extra: &[&str]) -> Outcome {
    let workload = idle_python();
    let mut args = vec!["run", "--pid", &workload.pid_arg(), "--duration", "60"]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let daemon = LeakMonitor::spawn(&args);
    // Attach and a few samples; no timing is asserted, the run has 60 s.
    thread::sleep(Duration::from_secs(4));
    // SAFETY: kill(2) on the PID of a child this test started and has not reaped.
    unsafe { libc::kill(daemon.pid() as i32, signal) };
    daemon.finish()
}

#[test]
fn a_run_ended_by_sigterm_says_it_was_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let outcome = run_cut_short_by(libc::SIGTERM, &["--json", json.to_str().unwrap()]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    let report = read_json(&json);
    assert_eq!(report["observation"]["cut_short"], true, "{report:#}");
    let notes = report["capabilities"]["notes"].to_string();
    assert!(notes.contains("SIGTERM"), "{notes}");
}

#[test]
fn a_run_ended_by_sigint_says_it_was_cut_short_in_markdown() {
    let outcome = run_cut_short_by(libc::SIGINT, &[]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    assert!(
        outcome.stdout.contains("## Memory Leak Report"),
        "{outcome}"
    );
    assert!(outcome.stdout.contains("cut short by SIGINT"), "{outcome}");
}

#[test]
fn a_run_that_ends_on_time_is_not_cut_short() {
    let workload = idle_python();
    let (outcome, report) = run_json_report(workload.pid(), 2, 1000, &[]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    assert_eq!(report["observation"]["cut_short"], false, "{report:#}");
}

#[test]
fn a_report_dir_that_vanishes_during_the_run_falls_back_and_exits_1() {
    let workload = idle_python();
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    std::fs::create_dir(&reports).unwrap();
    let fallback_dir = tempfile::tempdir().unwrap();
    let json = reports.join("r.json");
    let markdown = reports.join("r.md");
    let mut command = Command::new(env!("CARGO_BIN_EXE_leak-monitor"));
    command
        .env("TMPDIR", fallback_dir.path())
        .args(["run", "--pid", &workload.pid_arg(), "--duration", "8"])
        .args(["--json", json.to_str().unwrap()])
        .args(["--markdown", markdown.to_str().unwrap()]);
    let daemon = LeakMonitor::spawn_command(&mut command);
    // The paths are checked at start-up, before attaching: long done after 2 s.
    thread::sleep(Duration::from_secs(2));
    std::fs::remove_dir(&reports).unwrap();
    let outcome = daemon.finish();

    assert_eq!(outcome.code, Some(1), "{outcome}");
    let fallbacks: Vec<_> = std::fs::read_dir(fallback_dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    let json_fallback = fallbacks
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap_or_else(|| panic!("no JSON fallback in {fallbacks:?}\n{outcome}"));
    let report = read_json(json_fallback);
    assert_eq!(report["target"]["pid"], workload.pid(), "{report:#}");
    assert!(
        fallbacks
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "md")),
        "no Markdown fallback in {fallbacks:?}\n{outcome}"
    );
    // Stderr names the path that failed and where the report went instead.
    assert!(outcome.stderr.contains(json.to_str().unwrap()), "{outcome}");
    assert!(
        outcome.stderr.contains(json_fallback.to_str().unwrap()),
        "{outcome}"
    );
    assert!(!Path::new(&json).exists());
}

#[test]
fn a_report_says_which_kernel_events_it_lost_per_kind() {
    let workload = idle_python();
    let (outcome, report) = run_json_report(workload.pid(), 2, 1000, &[]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    assert_eq!(report["capabilities"]["ebpf"], true, "as root: {report:#}");
    let dropped = report["observation"]["dropped_events"]
        .as_object()
        .unwrap_or_else(|| panic!("no observation.dropped_events:\n{report:#}"));
    for kind in [
        "fd_open",
        "fd_close",
        "thread_new",
        "thread_exit",
        "page_fault",
    ] {
        assert!(dropped[kind].is_u64(), "{kind} in {dropped:?}");
    }
    // Without eBPF there is nothing to lose, and no such field.
    let (outcome, report) = run_json_report(workload.pid(), 1, 1000, &["--no-ebpf"]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    assert!(report["observation"].get("dropped_events").is_none());
}

#[test]
fn a_target_that_exits_mid_run_keeps_its_sites() {
    let workload = Workload::start("leak_then_exit.py", &["--seconds", "25"]);
    let (outcome, report) = run_json_report(workload.pid(), 90, 500, &[]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    assert!(
        report["observation"]["target_exited_after_seconds"].is_f64(),
        "{report:#}"
    );
    // Its exit ended every thread and closed every fd; the report is as of its last sample.
    for (name, line) in [("open_fds", 20), ("threads", 22)] {
        let entry = resource(&report, name);
        assert_ne!(entry["verdict"], "stable", "{entry:#}");
        let sites = entry["sites"].as_array().unwrap();
        assert!(
            sites.iter().any(|site| site["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("leak_then_exit.py"))
                && site["line"] == line),
            "{name}: no site at leak_then_exit.py:{line}: {entry:#}"
        );
    }
}

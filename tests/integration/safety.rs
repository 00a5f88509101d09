//! Safety properties of a real run: metrics bind to loopback by default, reports and
//! `--report-dir` are private to their owner, and label values from process names and flags are
//! escaped and bounded so the scrape stays valid.

use crate::scrape;
use crate::support::{
    free_local_addr, http_get, promtool_check_metrics, read_json, wait_until, LeakMonitor, Workload,
};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const IDLE: &str = "import time\nprint('READY', flush=True)\nwhile True: time.sleep(1)";

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn serve_listens_on_loopback_only_by_default() {
    let workload = Workload::spawn("idle", {
        let mut command = Command::new("python3");
        command.args(["-c", IDLE]);
        command
    });
    // A network namespace of its own: port 9464 is free there whatever else runs on the host
    // (the demo test uses it too), so the default address is exercised without flaking.
    let script = format!(
        "ip link set lo up && exec {} serve --pid {}",
        env!("CARGO_BIN_EXE_leak-monitor"),
        workload.pid()
    );
    let mut daemon =
        LeakMonitor::spawn_command(Command::new("unshare").args(["--net", "sh", "-c", &script]));
    let log = wait_until(
        Duration::from_secs(30),
        "the daemon to log its address",
        || {
            assert!(!daemon.has_exited(), "{}", daemon.output_so_far());
            let log = daemon.output_so_far();
            log.contains("serving metrics on").then_some(log)
        },
    );
    assert!(
        log.contains("serving metrics on http://127.0.0.1:9464/metrics"),
        "{log}"
    );
    let listening = Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", daemon.pid()))
        .args(["ss", "-Hltn"])
        .output()
        .expect("nsenter ss");
    let sockets = String::from_utf8_lossy(&listening.stdout);
    let locals: Vec<&str> = sockets
        .lines()
        .filter_map(|line| line.split_whitespace().nth(3))
        .collect();
    assert_eq!(locals, ["127.0.0.1:9464"], "{sockets}");
}

#[test]
fn reports_are_mode_0600_and_the_report_dir_0700() {
    let workload = Workload::start("fd_leak.py", &["--rate", "20"]);
    let pid = workload.pid_arg();
    let dir = tempfile::tempdir().expect("temp dir");
    let (json, markdown, html) = (
        dir.path().join("r.json"),
        dir.path().join("r.md"),
        dir.path().join("r.html"),
    );
    let run = LeakMonitor::spawn(&[
        "run",
        "--pid",
        &pid,
        "--duration",
        "3",
        "--interval",
        "500",
        "--json",
        json.to_str().expect("UTF-8"),
        "--markdown",
        markdown.to_str().expect("UTF-8"),
        "--html",
        html.to_str().expect("UTF-8"),
    ])
    .finish();
    assert_eq!(run.code, Some(0), "{run}");
    for file in [&json, &markdown, &html] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }

    // serve creates the directory (and a missing parent) itself.
    let report_dir = dir.path().join("reports/leaks");
    let addr = free_local_addr();
    let daemon = LeakMonitor::spawn(&[
        "serve",
        "--pid",
        &pid,
        "--listen",
        &addr.to_string(),
        "--report-dir",
        report_dir.to_str().expect("UTF-8"),
    ]);
    let reports = wait_until(
        Duration::from_secs(120),
        "a JSON and a Markdown report",
        || {
            let names: Vec<_> = fs::read_dir(&report_dir)
                .ok()?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| !p.to_string_lossy().contains(".tmp-"))
                .collect();
            (names.len() >= 2).then_some(names)
        },
    );
    assert_eq!(mode(&report_dir), 0o700, "{}", daemon.output_so_far());
    for report in &reports {
        assert_eq!(mode(report), 0o600, "{}", report.display());
    }
    let json = reports
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a JSON report");
    assert_eq!(
        read_json(json)["target"]["pid"].as_u64(),
        Some(u64::from(workload.pid()))
    );
}

/// A process name (comm: the executable's file name, 15 bytes at most) with a quote, a
/// backslash and a newline.
const ODD_NAME: &str = "q\"u\\o\nte";

#[test]
fn label_values_are_escaped_and_bounded() {
    let marker = format!("safety.labels.{}", std::process::id());
    let pattern = marker.replace('.', r"\.");
    let long_name = format!("g{}", "x".repeat(400));
    let addr = free_local_addr();
    let _daemon = LeakMonitor::spawn(&[
        "serve",
        "--listen",
        &addr.to_string(),
        "--interval",
        "500",
        "--match",
        &format!("{long_name}={pattern}\\.long"),
        "--match",
        &format!("{pattern}\\.odd"),
    ]);
    // The interpreter itself, under an odd name: pyenv's `python3` is a bash shim (a process
    // found while still the shim would be grouped as `bash`), and the name is set at exec.
    let links = tempfile::tempdir().expect("temp dir");
    let odd_python = links.path().join(ODD_NAME);
    std::os::unix::fs::symlink(python_executable(), &odd_python).expect("symlink");
    let start = |suffix: &str, python: &Path| {
        let mut command = Command::new(python);
        command.args(["-c", IDLE, &format!("{marker}.{suffix}")]);
        Workload::spawn(suffix, command)
    };
    let long = start("long", Path::new(&python_executable()));
    let odd = start("odd", &odd_python);
    let (body, series) = wait_until(Duration::from_secs(60), "both targets in /metrics", || {
        let (status, body) = http_get(addr, "/metrics").ok()?;
        assert_eq!(status, 200, "{body}");
        let series = scrape::parse(&body);
        let both = [long.pid(), odd.pid()].iter().all(|pid| {
            !scrape::find(
                &series,
                "leak_monitor_threads",
                &[("pid", &pid.to_string())],
            )
            .is_empty()
        });
        both.then_some((body, series))
    });
    let (ok, complaints) = promtool_check_metrics(&body);
    assert!(
        ok && complaints.trim().is_empty(),
        "promtool: {complaints}\n{body}"
    );
    let label_of = |pid: u32| {
        scrape::find(
            &series,
            "leak_monitor_threads",
            &[("pid", &pid.to_string())],
        )[0]
        .label("target")
        .expect("target label")
        .to_owned()
    };
    let long_label = label_of(long.pid());
    assert!(
        long_label.chars().count() <= 128 && long_label.starts_with("gxxx"),
        "{long_label}"
    );
    let odd_label = label_of(odd.pid());
    assert!(odd_label.starts_with("q\"u\\o"), "{odd_label:?}");
    assert!(
        body.contains(r#"target="q\"u\\o"#),
        "escaped in the scrape:\n{body}"
    );
    assert!(body.lines().all(|line| line.len() < 4096));
}

/// The real interpreter behind `python3` (`sys.executable`).
fn python_executable() -> String {
    let output = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

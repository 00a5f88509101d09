//! `leak-monitor demo` end to end, and the one property of its bundled workload the demo
//! relies on: it never outlives its parent.

use crate::scrape;
use crate::support::{
    assert_replay_gives, demo_workload_script, free_local_addr, http_get, process_ended,
    promtool_check_metrics, read_json, resource, wait_until, LeakMonitor, Workload,
};
use std::process::Command;
use std::time::Duration;

#[test]
fn demo_runs_end_to_end_and_leaves_no_process_behind() {
    let addr = free_local_addr();
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("demo.html");
    let recording = dir.path().join("demo.jsonl");
    let mut demo = LeakMonitor::spawn(&[
        "demo",
        "--duration",
        "40",
        "--listen",
        &addr.to_string(),
        "--html",
        html.to_str().unwrap(),
        "--record",
        recording.to_str().unwrap(),
    ]);
    let (pid, body) = wait_until(Duration::from_secs(60), "the demo's metrics", || {
        assert!(
            !demo.has_exited(),
            "demo exited early:\n{}",
            demo.output_so_far()
        );
        let (status, body) = http_get(addr, "/metrics").ok()?;
        let series = scrape::parse(&body);
        let threads = scrape::find(&series, "leak_monitor_threads", &[]);
        let pid = threads.first()?.label("pid")?.parse::<u32>().ok()?;
        (status == 200).then_some((pid, body))
    });
    let (ok, complaints) = promtool_check_metrics(&body);
    assert!(
        ok && complaints.trim().is_empty(),
        "promtool: {complaints}\n{body}"
    );

    let outcome = demo.finish();
    assert_eq!(outcome.code, Some(0), "{outcome}");
    assert!(
        outcome.stdout.contains("## Memory Leak Report"),
        "{outcome}"
    );
    // `--html` writes the HTML report of the same run, with its leak's charts.
    let page = std::fs::read_to_string(&html).unwrap_or_else(|err| panic!("{err}: {outcome}"));
    assert!(
        page.contains(&format!("Memory Leak Report: pid {pid}")),
        "{page}"
    );
    assert!(page.contains("<svg class=\"chart\""), "{page}");
    wait_until(Duration::from_secs(15), "the demo workload to end", || {
        process_ended(pid).then_some(())
    });

    // Each of the three leaks is called and named at the line its `# LEAK` comment marks.
    let reports_dir = outcome
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("leak-monitor: demo reports written to "))
        .unwrap_or_else(|| panic!("no reports dir said: {outcome}"));
    let report_path = std::path::Path::new(reports_dir).join("report.json");
    let report = read_json(&report_path);
    let script = std::fs::read_to_string(demo_workload_script()).unwrap();
    for (name, marked) in [
        ("rss_bytes", "self._page_cache"),
        ("open_fds", "log = open("),
        ("threads", "threading.Thread("),
    ] {
        let line = script
            .lines()
            .position(|l| l.contains(marked) && l.contains("# LEAK"))
            .unwrap_or_else(|| panic!("no `# LEAK` line with {marked}"))
            + 1;
        let found = resource(&report, name);
        assert_eq!(found["verdict"], "leak", "{name}: {found:#}");
        assert_eq!(found["sites"][0]["line"], line, "{name}: {found:#}");
    }

    // Its recording replays to the same report, byte for byte.
    assert_replay_gives(&recording, &report_path);
}

#[test]
fn demo_workload_exits_when_its_parent_dies() {
    // A shell starts the workload in the background and prints its PID; killing the shell
    // orphans the workload, which must notice and exit.
    let mut command = Command::new("sh");
    command
        .args(["-c", r#"python3 "$0" & echo "$!"; wait"#])
        .arg(demo_workload_script());
    let mut parent = Workload::spawn("sh running demo_workload.py", command);
    let pid: u32 = parent
        .startup_lines()
        .iter()
        .find_map(|line| line.trim().parse().ok())
        .unwrap_or_else(|| panic!("the shell printed no PID: {:?}", parent.startup_lines()));
    assert!(!process_ended(pid), "the workload ended before its parent");
    parent.kill();
    wait_until(
        Duration::from_secs(15),
        "the orphaned workload to exit",
        || process_ended(pid).then_some(()),
    );
}

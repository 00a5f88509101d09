//! `run --record` and `replay` end to end: a live run's reports rebuilt from its recording,
//! byte for byte (the daemon's too), and what `replay` says of files that are not recordings.

use crate::support::{assert_replay_gives, leak_monitor, serve, wait_until, LeakMonitor, Workload};
use std::fs;
use std::time::Duration;

#[test]
fn a_replay_writes_the_reports_the_live_run_wrote() {
    let workload = Workload::start("fd_leak.py", &[]);
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let live = leak_monitor(&[
        "run",
        "--pid",
        &workload.pid_arg(),
        "--duration",
        "15",
        "--json",
        &path("live.json"),
        "--markdown",
        &path("live.md"),
        "--record",
        &path("run.lmrec"),
    ]);
    assert_eq!(live.code, Some(0), "{live}");
    assert!(live.stderr.contains("recording written to"), "{live}");
    drop(workload);

    // Offline: the workload is gone, the report is the same.
    let replayed = leak_monitor(&[
        "replay",
        &path("run.lmrec"),
        "--json",
        &path("replay.json"),
        "--markdown",
        &path("replay.md"),
        "--html",
        &path("replay.html"),
        "--fail-on-leak",
    ]);
    assert_eq!(replayed.code, Some(3), "the fd leak is a leak: {replayed}");
    for (a, b) in [("live.json", "replay.json"), ("live.md", "replay.md")] {
        assert_eq!(
            fs::read_to_string(path(a)).unwrap(),
            fs::read_to_string(path(b)).unwrap(),
            "{a} and {b} differ"
        );
    }
    let page = fs::read_to_string(path("replay.html")).unwrap();
    assert!(page.contains("<svg class=\"chart\""), "{page}");
}

#[test]
fn replay_refuses_what_is_not_a_recording_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    fs::write(&report, "{\"schema\":\"leak-monitor/report/v1\"}\n").unwrap();
    let truncated = dir.path().join("cut.lmrec");
    fs::write(
        &truncated,
        "{\"format\":\"leak-monitor/recording/v1\",\"recorded_by\":\"0\",\"started_unix\":0,\
         \"capabilities\":{\"procfs\":true,\"ebpf\":false,\"python_stacks\":false,\"notes\":[]}}\n\
         {\"kind\":\"sample\",\"pid\":1,\"t\":0,\"sa",
    )
    .unwrap();
    for (file, says) in [
        (dir.path().join("missing.lmrec"), "No such file"),
        (report, "no `format` field"),
        (truncated, "cut.lmrec:2: "),
        (dir.path().to_path_buf(), "Is a directory"),
    ] {
        let outcome = leak_monitor(&["replay", file.to_str().unwrap()]);
        assert_eq!(outcome.code, Some(2), "{outcome}");
        let stderr = outcome.stderr.trim();
        assert!(
            stderr.lines().count() == 1 && stderr.contains(says),
            "{says}: {outcome}"
        );
    }
}

#[test]
fn the_daemon_records_each_target_and_its_recording_replays_to_its_last_report() {
    let mut workload = Workload::start("fd_leak.py", &["--rate", "20"]);
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    let recordings = dir.path().join("recordings");
    let pid = workload.pid_arg();
    let (daemon, _addr) = serve(&[
        "--pid",
        &pid,
        "--report-dir",
        reports.to_str().unwrap(),
        "--record-dir",
        recordings.to_str().unwrap(),
    ]);
    // The leak report, then the target's exit with its leak: a second report, and the end of
    // its recording.
    let leak_report = |why: &str| {
        fs::read_dir(&reports)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.contains(&format!("-{pid}-{why}-")) && name.ends_with(".json")
            })
    };
    wait_until(Duration::from_secs(120), "a leak report", || {
        leak_report("leak")
    });
    workload.kill();
    let exited = wait_until(Duration::from_secs(30), "the exit report", || {
        leak_report("exited")
    });
    wait_until(Duration::from_secs(30), "the recording to close", || {
        daemon
            .output_so_far()
            .contains(&format!("recording of pid {pid} closed"))
            .then_some(())
    });
    let recording = fs::read_dir(&recordings)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains(&format!("-{pid}-")))
        .expect("a recording named for the PID");
    // The replay differs from the daemon's last report in nothing.
    assert_replay_gives(&recording, &exited);
}

#[test]
fn a_watch_ended_by_ctrl_c_records_the_report_it_printed() {
    let workload = Workload::start("fd_leak.py", &["--rate", "20"]);
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("watch.lmrec");
    let watch = LeakMonitor::spawn(&[
        "watch",
        "--pid",
        &workload.pid_arg(),
        "--record",
        recording.to_str().unwrap(),
    ]);
    // A few ticks, then Ctrl-C.
    wait_until(Duration::from_secs(60), "a few status lines", || {
        (watch.output_so_far().matches("| fds ").count() >= 6).then_some(())
    });
    // SAFETY: kill(2) on a child this test started and still holds.
    assert_eq!(unsafe { libc::kill(watch.pid() as i32, libc::SIGINT) }, 0);
    let outcome = watch.finish();
    assert_eq!(outcome.code, Some(0), "{outcome}");
    // The replay prints the report the watch printed after its live lines.
    let replayed = leak_monitor(&["replay", recording.to_str().unwrap()]);
    assert_eq!(replayed.code, Some(0), "{replayed}");
    assert!(
        replayed.stdout.contains("## Memory Leak Report"),
        "{replayed}"
    );
    assert!(
        outcome.stdout.ends_with(&replayed.stdout),
        "{outcome}\n--- replayed ---\n{}",
        replayed.stdout
    );
}

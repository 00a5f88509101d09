//! `leak-monitor diff` on the reports of two releases of one service (tests/python/release.py):
//! release 2 fixes release 1's fd leak and brings a thread leak; the diff names both, with
//! their lines, in JSON and Markdown, given the two files or the directory that holds them.

use crate::support::{
    leak_monitor, python_script, read_json, run_until_samples, samples_in, Workload,
};
use serde_json::Value;
use std::process::Command;

/// Long enough for both leaks to reach verdict `leak` on a loaded machine.
const RUN_SECONDS: u32 = 30;

/// The line of `tests/python/release.py` that carries `marker`.
fn line_of(marker: &str) -> u64 {
    let text = std::fs::read_to_string(python_script("release.py")).unwrap();
    let index = text
        .lines()
        .position(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker} in release.py"));
    index as u64 + 1
}

/// `python3 release.py` with RELEASE=`release` in its environment.
fn start_release(release: &str) -> Workload {
    let mut command = Command::new("python3");
    command
        .arg(python_script("release.py"))
        .env("RELEASE", release);
    Workload::spawn("release.py", command)
}

fn resource<'a>(diff: &'a Value, name: &str) -> &'a Value {
    diff["resources"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["resource"] == name))
        .unwrap_or_else(|| panic!("no {name} in:\n{diff:#}"))
}

#[test]
fn diff_names_the_fixed_leak_and_the_new_one_with_their_lines() {
    let first = start_release("1");
    let second = start_release("2");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let outcome = run_until_samples(
        &[
            "--pid".to_string(),
            first.pid_arg(),
            "--pid".to_string(),
            second.pid_arg(),
            "--json".to_string(),
            json.display().to_string(),
        ],
        &[first.pid(), second.pid()],
        samples_in(RUN_SECONDS, 1000),
        1000,
    );
    assert_eq!(outcome.code, Some(0), "{outcome}");
    let old = dir.path().join(format!("r.{}.json", first.pid()));
    let new = dir.path().join(format!("r.{}.json", second.pid()));
    let (old_report, new_report) = (read_json(&old), read_json(&new));
    let verdict = |r: &Value, name: &str| crate::support::resource(r, name)["verdict"].clone();
    assert_eq!(verdict(&old_report, "open_fds"), "leak", "{old_report:#}");
    assert_eq!(verdict(&new_report, "threads"), "leak", "{new_report:#}");

    let (old, new) = (old.display().to_string(), new.display().to_string());
    let outcome = leak_monitor(&["diff", &old, &new, "--json"]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    let diff: Value = serde_json::from_str(&outcome.stdout).expect("diff --json is JSON");
    assert_eq!(diff["schema"], "leak-monitor/diff/v1");

    let fds = resource(&diff, "open_fds");
    assert_eq!(fds["change"], "fixed", "{diff:#}");
    let fixed_line = line_of("# LEAK release 1");
    let fixed = fds["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["line"] == fixed_line)
        .unwrap_or_else(|| panic!("the fixed line {fixed_line} is not named:\n{diff:#}"));
    assert_eq!(fixed["change"], "fixed", "{diff:#}");
    assert_eq!(fixed["function"], "handle_v1", "{diff:#}");
    assert!(fixed["file"].as_str().unwrap().ends_with("release.py"));

    let threads = resource(&diff, "threads");
    assert_eq!(threads["change"], "new_leak", "{diff:#}");
    let new_line = line_of("# LEAK release 2");
    let leaking = threads["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["line"] == new_line)
        .unwrap_or_else(|| panic!("the new leaking line {new_line} is not named:\n{diff:#}"));
    assert_eq!(leaking["change"], "new_leak", "{diff:#}");
    assert!(leaking["new_rate_per_second"].as_f64().unwrap() > 0.0);
    assert!(diff["summary"]["new_leaks"].as_u64().unwrap() >= 1);
    assert!(diff["summary"]["fixed_leaks"].as_u64().unwrap() >= 1);

    // Markdown names both lines with what happened to them; --fail-on-new-leak says so.
    let outcome = leak_monitor(&["diff", &old, &new, "--fail-on-new-leak"]);
    assert_eq!(outcome.code, Some(3), "{outcome}");
    for needle in [
        format!("release.py:{fixed_line}` | `handle_v1` | fixed |"),
        format!("release.py:{new_line}` | `handle_v2` | new leak |"),
        "| open_fds | fixed |".to_string(),
        "| threads | new leak |".to_string(),
    ] {
        assert!(
            outcome.stdout.contains(&needle),
            "no {needle:?} in:\n{}",
            outcome.stdout
        );
    }
    // The other way round, the same pair of reports reads as a regression fixed.
    let outcome = leak_monitor(&["diff", &new, &old, "--json", "--fail-on-new-leak"]);
    assert_eq!(
        outcome.code,
        Some(3),
        "the fd leak is new that way:\n{outcome}"
    );
    let back: Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(resource(&back, "threads")["change"], "fixed");
    assert_eq!(resource(&back, "open_fds")["change"], "new_leak");

    // The directory: one program (same command line), its newer process against the older.
    let reports = dir.path().display().to_string();
    let outcome = leak_monitor(&["diff", "--report-dir", &reports, "--json"]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    let all: Value = serde_json::from_str(&outcome.stdout).unwrap();
    let all = all.as_array().expect("an array of diffs");
    assert_eq!(all.len(), 1, "{outcome}");
    assert_eq!(all[0]["old"]["pid"], first.pid(), "release 1 started first");
    assert_eq!(all[0]["new"]["pid"], second.pid());
    assert_eq!(all[0]["resources"], diff["resources"]);
}

#[test]
fn diff_refuses_what_is_not_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.json");
    std::fs::write(&bogus, "{\"schema\": \"something/else\"}").unwrap();
    let bogus = bogus.display().to_string();
    let missing = dir.path().join("missing.json").display().to_string();
    for (old, new, says) in [
        (&bogus, &bogus, "is not a leak-monitor report"),
        (&missing, &bogus, "cannot read report"),
    ] {
        let outcome = leak_monitor(&["diff", old, new]);
        assert_eq!(outcome.code, Some(2), "{outcome}");
        assert!(outcome.stderr.contains(says), "{outcome}");
        assert_eq!(outcome.stderr.trim().lines().count(), 1, "{outcome}");
    }
    let outcome = leak_monitor(&["diff", "--report-dir", &missing]);
    assert_eq!(outcome.code, Some(2), "{outcome}");
    assert!(
        outcome.stderr.contains("cannot read report directory"),
        "{outcome}"
    );
    // One report alone, or a directory and a file, is a usage error.
    for args in [
        vec!["diff", bogus.as_str()],
        vec!["diff", "--report-dir", ".", &bogus],
    ] {
        assert_eq!(leak_monitor(&args).code, Some(2), "{args:?}");
    }
}

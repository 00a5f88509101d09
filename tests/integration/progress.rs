//! `run`'s progress line: drawn in place on a terminal (a pseudo-terminal from util-linux
//! `script`), absent when stderr is a file, so logs and CI output stay clean.

use crate::support::{leak_monitor, Workload};
use std::process::{Command, Stdio};

#[test]
fn progress_line_is_drawn_on_a_terminal() {
    let workload = Workload::start("fd_leak.py", &["--rate", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let pid = workload.pid_arg();
    let run = format!(
        "'{}' run --pid {pid} --duration 4 --json '{}'",
        env!("CARGO_BIN_EXE_leak-monitor"),
        json.display()
    );
    // script runs the command on a new pty (stdin, stdout and stderr are the terminal) and
    // copies what it wrote to our stdout; -e passes on its exit code.
    let output = Command::new("script")
        .args(["-q", "-f", "-e", "-c", &run, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}: {text}", output.status);
    assert!(
        text.contains("\r\x1b[2Kobserving: "),
        "no progress line redrawn in place: {text:?}"
    );
    assert!(text.contains(" s left | pid "), "{text:?}");
    assert!(text.contains(&format!("pid {pid}: ")), "{text:?}");
    assert!(json.exists(), "the report is still written");
}

#[test]
fn no_progress_line_off_a_terminal() {
    let workload = Workload::start("fd_leak.py", &["--rate", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let outcome = leak_monitor(&[
        "run",
        "--pid",
        &workload.pid_arg(),
        "--duration",
        "3",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    assert!(!outcome.stderr.contains("observing"), "{outcome}");
    assert!(
        !outcome.stderr.contains(['\r', '\x1b']),
        "terminal control characters in a log: {:?}",
        outcome.stderr
    );
}

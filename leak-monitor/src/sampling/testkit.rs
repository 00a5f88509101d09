//! Test helpers: real Python children driven over stdin, always killed (and reaped) on drop.
//!
//! A child runs a small driver: it prints `ready`, then executes each line it receives (a JSON
//! string of Python code) in one shared namespace and answers `["ok", repr(result)]` or
//! `["error", repr(exception)]`. Objects the test wants kept alive go into the list `keep`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

const DRIVER: &str = r#"
import json, os, select, socket, sys, threading, time
ns = {"os": os, "select": select, "socket": socket, "threading": threading, "time": time,
      "keep": [], "result": None}
print("ready", flush=True)
for line in sys.stdin:
    ns["result"] = None
    try:
        exec(json.loads(line), ns)
        print(json.dumps(["ok", repr(ns["result"])]), flush=True)
    except Exception as e:
        print(json.dumps(["error", repr(e)]), flush=True)
"#;

/// The real interpreter behind `python3` (pyenv's shim is a shell script; resolving it once
/// makes every spawn cheaper and the child's executable the interpreter itself).
pub(crate) fn python3() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 must be installed for these tests");
        String::from_utf8(out.stdout)
            .expect("utf-8 path")
            .trim()
            .to_owned()
    })
}

pub(crate) struct PyChild {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    reaped: bool,
}

impl PyChild {
    /// `python3 -c DRIVER ARGS...` (ARGS let a test find its child by command line).
    pub(crate) fn spawn(args: &[&str]) -> Self {
        Self::spawn_with(python3(), args)
    }

    pub(crate) fn spawn_with(interpreter: &str, args: &[&str]) -> Self {
        let mut child = Command::new(interpreter)
            .arg("-c")
            .arg(DRIVER)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn python");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut this = Self {
            child,
            stdin,
            stdout,
            reaped: false,
        };
        let mut line = String::new();
        this.stdout.read_line(&mut line).expect("read ready");
        assert_eq!(line.trim(), "ready", "driver did not start");
        this
    }

    pub(crate) fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits i32")
    }

    /// Runs `code` in the child; returns `repr(result)`. Panics when the code raised.
    pub(crate) fn run(&mut self, code: &str) -> String {
        let line = serde_json::to_string(code).expect("json");
        writeln!(self.stdin, "{line}").expect("write to child");
        self.stdin.flush().expect("flush");
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).expect("read answer");
        let (status, value): (String, String) =
            serde_json::from_str(&answer).unwrap_or_else(|e| panic!("bad answer {answer:?}: {e}"));
        assert_eq!(status, "ok", "child raised {value} running:\n{code}");
        value
    }

    /// Kills the child and reaps it: its PID is gone afterwards.
    pub(crate) fn kill_and_reap(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reaped = true;
    }

    /// Kills the child without reaping it, and waits until it is a zombie.
    pub(crate) fn kill_leave_zombie(&mut self) {
        let _ = self.child.kill();
        let path = format!("/proc/{}/stat", self.pid());
        for _ in 0..500 {
            let stat = std::fs::read_to_string(&path).unwrap_or_default();
            if stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("child {} did not become a zombie", self.pid());
    }
}

impl Drop for PyChild {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A marker unique to this test process and call, for finding children by command line.
pub(crate) fn unique_marker(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "leakmon-test-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

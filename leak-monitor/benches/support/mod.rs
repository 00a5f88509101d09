//! Helpers shared by the benches: Python children that die with the bench (a `Drop` guard, and
//! `PR_SET_PDEATHSIG` for when the bench itself is killed), the bundled Python workloads, and
//! order statistics for printing figures.

#![allow(dead_code)] // Each bench uses its own subset.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// A Python process started by a bench; killed and reaped on drop, so a panic leaves none behind.
pub struct Python {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Python {
    /// Starts `python3 ARGS...` and waits for its `READY` line.
    pub fn start<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Python {
        let mut command = Command::new("python3");
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent; it only asks
        // the kernel to SIGKILL the child when this bench's thread exits.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().expect("starting python3");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut python = Python {
            child,
            stdin,
            stdout,
        };
        let ready = python.read_line();
        assert_eq!(
            ready.trim(),
            "READY",
            "python3 {:?} did not start",
            args_text(args)
        );
        python
    }

    /// An idle interpreter: prints READY and sleeps.
    pub fn idle() -> Python {
        Python::start(&[
            "-c",
            "import time\nprint('READY', flush=True)\ntime.sleep(1e9)",
        ])
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits i32")
    }

    /// The next line the program prints (empty at end of output).
    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("reading python3 output");
        line
    }

    /// Sends one line on its stdin.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("writing to python3");
        stdin.flush().expect("flushing to python3");
    }

    /// Waits for the program to end by itself (after closing its stdin).
    pub fn wait(mut self) {
        self.stdin = None;
        let _ = self.child.wait();
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn args_text<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Vec<String> {
    args.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect()
}

/// A Python program from `tests/python/`.
pub fn workload(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/python")
        .join(name)
}

/// The `q`-quantile (0..=1) of sorted values, nearest rank.
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> T {
    assert!(!sorted.is_empty(), "quantile of nothing");
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The median of unsorted floats.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile(&sorted, 0.5)
}

pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

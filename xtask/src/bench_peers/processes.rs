//! The processes of a run: the Python workload (started, told to go, its rates read) and the
//! monitor (started, reaped with `wait4` for its CPU and peak RSS, stopped like Ctrl-C).

use super::{Env, Monitor, Throughput, ToolCost};
use crate::children::{cpu_seconds, die_with_parent};
use anyhow::{bail, Context};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// A workload process, killed and reaped on drop.
pub(super) struct Target {
    child: Child,
    pub(super) stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Target {
    /// Starts the venv's Python on `tests/python/SCRIPT ARGS` and waits for its READY.
    pub(super) fn start(env: &Env, script: &str, args: &[&str]) -> anyhow::Result<Target> {
        let path = env.root.join("tests/python").join(script);
        let mut child = die_with_parent(&mut Command::new(env.program("python")))
            .arg(&path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;
        let stdin = child.stdin.take().context("target stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("target stdout")?);
        let mut target = Target {
            child,
            stdin,
            stdout,
        };
        let ready = target.line()?;
        if ready.trim() != "READY" {
            bail!("{script} printed {ready:?} instead of READY");
        }
        Ok(target)
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .context("reading the workload's output")?;
        Ok(line)
    }

    /// Says go and reads the window rates it prints.
    pub(super) fn measure(&mut self, windows: u32, window: f64) -> anyhow::Result<Throughput> {
        let cpu_before = cpu_seconds(self.pid())?;
        writeln!(self.stdin, "go").context("telling the workload to go")?;
        let line = self.line()?;
        let rates: Vec<f64> = line
            .strip_prefix("RESULT ")
            .with_context(|| format!("expected RESULT, got {line:?}"))?
            .split_whitespace()
            .map(|v| v.parse::<f64>().context("a rate in RESULT"))
            .collect::<anyhow::Result<_>>()?;
        if rates.is_empty() {
            bail!("empty RESULT");
        }
        let cpu = cpu_seconds(self.pid())? - cpu_before;
        let rate = rates.iter().sum::<f64>() / rates.len() as f64;
        Ok(Throughput {
            rate,
            per_cpu: rate * f64::from(windows) * window / cpu.max(0.01),
        })
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A monitor's process, reaped with `wait4` for its resource use; killed on drop.
pub(super) struct Tool {
    pid: libc::pid_t,
    /// Its scratch directory; also holds its stdout and stderr.
    pub(super) dir: tempfile::TempDir,
    /// The command returns once attached (see `Monitor::detaches`).
    detaches: bool,
    /// Set once reaped: exit code (128 + signal when killed) and its resource use.
    ended: Option<(i32, ToolCost)>,
}

impl Tool {
    pub(super) fn start(
        env: &Env,
        monitor: &Monitor,
        pid: u32,
        seconds: u64,
    ) -> anyhow::Result<Tool> {
        let dir = tempfile::tempdir().context("a scratch directory")?;
        let dir_text = dir.path().to_string_lossy().into_owned();
        let args: Vec<String> = monitor
            .args
            .iter()
            .map(|a| {
                a.replace("{pid}", &pid.to_string())
                    .replace("{secs}", &seconds.to_string())
                    .replace("{dir}", &dir_text)
            })
            .collect();
        let log = |name: &str| {
            std::fs::File::create(dir.path().join(name)).context("creating a log file")
        };
        let program = env.program(monitor.program);
        let child = die_with_parent(&mut Command::new(&program))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log("stdout")?)
            .stderr(log("stderr")?)
            .spawn()
            .with_context(|| format!("{} not installed", program.display()))?;
        let pid = libc::pid_t::try_from(child.id()).context("pid")?;
        // Reaped with wait4 from now on, never through `child`.
        drop(child);
        Ok(Tool {
            pid,
            detaches: monitor.detaches,
            dir,
            ended: None,
        })
    }

    /// True once a detaching tool has returned from attaching.
    pub(super) fn detached(&self) -> bool {
        self.detaches && self.ended.is_some()
    }

    /// Waits up to `timeout` for it to end; its exit code once it has.
    pub(super) fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while self.ended.is_none() {
            let mut status = 0;
            // SAFETY: rusage is plain data, filled by the kernel; pid is our own child.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: both pointers are to live locals of the right types.
            let reaped = unsafe { libc::wait4(self.pid, &mut status, libc::WNOHANG, &mut usage) };
            if reaped == self.pid {
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    128 + libc::WTERMSIG(status)
                };
                let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
                let cost = ToolCost {
                    cpu_seconds: seconds(usage.ru_utime) + seconds(usage.ru_stime),
                    peak_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
                };
                self.ended = Some((code, cost));
            } else if reaped < 0 || Instant::now() >= deadline {
                break;
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.ended.map(|(code, _)| code)
    }

    /// Ends it like Ctrl-C (so it writes its output), SIGKILL after 10 s; what it cost.
    pub(super) fn stop(mut self) -> ToolCost {
        if self.ended.is_none() {
            // SAFETY: kill has no memory effects; the pid is our unreaped child.
            unsafe { libc::kill(self.pid, libc::SIGINT) };
            if self.wait(Duration::from_secs(10)).is_none() {
                // SAFETY: as above.
                unsafe { libc::kill(self.pid, libc::SIGKILL) };
                self.wait(Duration::from_secs(5));
            }
        }
        self.ended.map(|(_, cost)| cost).unwrap_or(ToolCost {
            cpu_seconds: f64::NAN,
            peak_kib: 0,
        })
    }

    /// One line of its output that says why it stopped: the first that reads like an error,
    /// else the last.
    pub(super) fn reason(&self) -> String {
        let mut text = String::new();
        for name in ["stderr", "stdout"] {
            text += &std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        }
        let lines: Vec<String> = text
            .lines()
            .map(strip_ansi)
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        // In this order: the most telling words first.
        let errorish = [
            "unable",
            "cannot",
            "can't",
            "not permitted",
            "denied",
            "error",
            "fail",
        ];
        let line = errorish
            .iter()
            .find_map(|e| lines.iter().find(|l| l.to_lowercase().contains(e)))
            .or(lines.last())
            .cloned()
            .unwrap_or_else(|| "exited without a word".into());
        line.chars().take(200).collect()
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        if self.ended.is_none() {
            // SAFETY: kill has no memory effects; the pid is our unreaped child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            self.wait(Duration::from_secs(5));
        }
    }
}

/// The text without terminal colour sequences (ESC [ ... letter).
fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

//! `cargo xtask bench-peers`: what each monitor costs the same Python workloads, side by side
//! in one run. leak-monitor (procfs only, and full: eBPF with the in-kernel frame walk) against
//! py-spy record (non-blocking and blocking), memray attach, Austin's memory mode and BCC's
//! memleak, each attached by PID to a fresh target per run.
//!
//! A run starts the workload, attaches the monitor, waits `--settle` seconds (attach time is
//! not measured), then tells the workload to go: it prints its throughput over fixed windows.
//! Rounds are interleaved (the monitor order rotates each round); a ratio is the monitored
//! run's throughput over the unmonitored run's of the same round, the figure is the median of
//! the rounds. The tool's own CPU seconds and peak RSS come from `wait4` on it (its reaped
//! children included). A monitor that cannot install, start or keep running gets its reason
//! instead of a figure. Then leak-monitor's two modes watch one slow leak together for
//! `--verdict-seconds` to time their verdicts. Prints the Markdown tables (also written to
//! `--markdown`); asserts nothing.
//!
//! The peers are installed when missing: py-spy, memray and austin-dist into a venv at
//! `target/peers-venv` (its Python is `/usr/bin/python3`; the workloads run on it, so memray can
//! import itself in the target), gdb and bpfcc-tools with apt-get (root only).

use crate::bench_daemon::{cpu_seconds, die_with_parent, workspace_root};
use crate::setup::{have, is_root};
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// Options of `cargo xtask bench-peers`.
#[derive(clap::Args)]
pub struct Options {
    /// Rounds per workload (each runs every monitor once).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Measurement windows per run.
    #[arg(long, default_value_t = 4)]
    windows: u32,
    /// Seconds per window.
    #[arg(long, default_value_t = 1.0)]
    window: f64,
    /// Seconds between attaching a monitor and measuring.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// Seconds leak-monitor watches the slow leak for its time to verdict (0: skip).
    #[arg(long, default_value_t = 60)]
    verdict_seconds: u64,
    /// Only the monitors whose name contains this text (the unmonitored baseline always runs).
    #[arg(long)]
    only: Option<String>,
    /// Only the workloads whose name contains this text ("steady", "fd", "leak").
    #[arg(long)]
    workload: Option<String>,
    /// Where the Markdown tables are written too.
    #[arg(long, default_value = "target/bench-peers.md")]
    markdown: PathBuf,
}

/// A monitor: a program and its arguments, `{pid}`, `{secs}` and `{dir}` (a scratch directory)
/// filled in per run.
struct Monitor {
    name: &'static str,
    program: &'static str,
    args: &'static [&'static str],
    /// The command returns once attached and the monitoring goes on inside the target.
    detaches: bool,
}

const MONITORS: &[Monitor] = &[
    Monitor {
        name: "leak-monitor, procfs only",
        program: "leak-monitor",
        args: &[
            "run",
            "--pid",
            "{pid}",
            "--no-ebpf",
            "--duration",
            "{secs}",
            "--json",
            "{dir}/r.json",
        ],
        detaches: false,
    },
    Monitor {
        name: "leak-monitor, full (eBPF + kernel frame walk)",
        program: "leak-monitor",
        args: &[
            "run",
            "--pid",
            "{pid}",
            "--duration",
            "{secs}",
            "--json",
            "{dir}/r.json",
        ],
        detaches: false,
    },
    Monitor {
        name: "py-spy record, non-blocking",
        program: "py-spy",
        args: &[
            "record",
            "--pid",
            "{pid}",
            "--nonblocking",
            "-o",
            "/dev/null",
            "-d",
            "{secs}",
        ],
        detaches: false,
    },
    Monitor {
        name: "py-spy record, blocking (default)",
        program: "py-spy",
        args: &[
            "record",
            "--pid",
            "{pid}",
            "-o",
            "/dev/null",
            "-d",
            "{secs}",
        ],
        detaches: false,
    },
    Monitor {
        name: "memray attach",
        program: "memray",
        args: &[
            "attach",
            "{pid}",
            "-o",
            "{dir}/memray.bin",
            "-f",
            "--duration",
            "{secs}",
        ],
        detaches: true,
    },
    Monitor {
        name: "Austin, memory mode",
        program: "austin",
        args: &["-m", "-p", "{pid}", "-x", "{secs}", "-o", "/dev/null"],
        detaches: false,
    },
    Monitor {
        name: "BCC memleak",
        program: "memleak-bpfcc",
        args: &["-p", "{pid}"],
        detaches: false,
    },
];

/// A workload of `tests/python/` that prints `RESULT` and one rate per window.
struct Workload {
    name: &'static str,
    script: &'static str,
    args: &'static [&'static str],
    unit: &'static str,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "steady request loop",
        script: "bench_requests.py",
        args: &[],
        unit: "requests/s",
    },
    Workload {
        name: "fd churn",
        script: "bench_fd_churn.py",
        args: &[],
        unit: "opens/s",
    },
    Workload {
        name: "slow leak (300 KB/s) under churn",
        script: "bench_requests.py",
        args: &["--leak-bytes", "30720"],
        unit: "requests/s",
    },
];

/// The PyPI packages of the venv, pinned where the newest does not run here (austin-dist
/// 4.0.0's binary needs glibc 2.38; Debian 12 has 2.36).
const PYPI: &[&str] = &["py-spy", "memray", "austin-dist==3.7.0"];

/// Debian packages and the command each provides.
const DEBIAN: &[(&str, &str)] = &[("gdb", "gdb"), ("memleak-bpfcc", "bpfcc-tools")];

/// Paths the runs need.
struct Env {
    root: PathBuf,
    venv_bin: PathBuf,
}

impl Env {
    fn program(&self, name: &str) -> PathBuf {
        match name {
            "leak-monitor" => self.root.join("target/release/leak-monitor"),
            "py-spy" | "memray" | "austin" | "python" => self.venv_bin.join(name),
            other => PathBuf::from(other),
        }
    }
}

/// What one monitored run cost the tool itself.
#[derive(Clone, Copy)]
struct ToolCost {
    cpu_seconds: f64,
    peak_kib: u64,
}

/// What the workload did in one run's windows.
#[derive(Clone, Copy)]
struct Throughput {
    /// Mean of the windows' rates (work per wall-clock second).
    rate: f64,
    /// Work per CPU second the target itself used (user + system, which includes the eBPF
    /// programs run in its syscalls), less sensitive to other load on the machine.
    per_cpu: f64,
}

/// Figures gathered for one monitor on one workload: ratios to the round's unmonitored run.
#[derive(Default)]
struct Cell {
    ratios: Vec<f64>,
    per_cpu_ratios: Vec<f64>,
    costs: Vec<ToolCost>,
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    let env = Env {
        root: workspace_root(),
        venv_bin: workspace_root().join("target/peers-venv/bin"),
    };
    let mut notes = install(&env);
    build_leak_monitor()?;
    let monitors: Vec<&Monitor> = MONITORS
        .iter()
        .filter(|m| options.only.as_deref().is_none_or(|o| m.name.contains(o)))
        .collect();
    let load_before = load_average();
    let started = Instant::now();
    let mut failed: BTreeMap<&str, String> = BTreeMap::new();
    let mut cells: BTreeMap<(&str, &str), Cell> = BTreeMap::new();
    let workloads: Vec<&Workload> = WORKLOADS
        .iter()
        .filter(|w| {
            options
                .workload
                .as_deref()
                .is_none_or(|o| w.name.contains(o))
        })
        .collect();
    for workload in &workloads {
        println!(
            "{} ({} rounds, order rotating):",
            workload.name, options.rounds
        );
        for round in 0..options.rounds {
            // None is the baseline; the rest rotate with it.
            let slots: Vec<Option<&Monitor>> = std::iter::once(None)
                .chain(monitors.iter().map(|m| Some(*m)))
                .collect();
            let mut baseline = None;
            let mut rates: Vec<(&Monitor, Throughput, Option<ToolCost>)> = Vec::new();
            for k in 0..slots.len() {
                let slot = slots[(round + k) % slots.len()];
                if slot.is_some_and(|m| failed.contains_key(m.name)) {
                    continue;
                }
                match run_once(&env, options, workload, slot) {
                    Ok((throughput, cost)) => match slot {
                        None => baseline = Some(throughput),
                        Some(m) => rates.push((m, throughput, cost)),
                    },
                    Err(err) => match slot {
                        Some(m) => {
                            println!("  {}: cannot run: {err:#}", m.name);
                            failed.insert(m.name, format!("{err:#}"));
                        }
                        None => return Err(err.context("the unmonitored run")),
                    },
                }
            }
            let base = baseline.context("no unmonitored figure")?;
            println!(
                "  round {}: unmonitored {:.1} {}, {:.0} per target CPU s",
                round + 1,
                base.rate,
                workload.unit,
                base.per_cpu
            );
            for (m, t, cost) in rates {
                let cell = cells.entry((m.name, workload.name)).or_default();
                cell.ratios.push(t.rate / base.rate);
                cell.per_cpu_ratios.push(t.per_cpu / base.per_cpu);
                cell.costs.extend(cost);
                println!(
                    "    {:<46} {:>10.1}  ratio {:.3}  per CPU s {:.3}",
                    m.name,
                    t.rate,
                    t.rate / base.rate,
                    t.per_cpu / base.per_cpu
                );
            }
        }
    }
    let verdicts = if options.verdict_seconds > 0 && is_root() {
        time_to_verdict(&env, options.verdict_seconds)?
    } else {
        notes.push("time to verdict skipped (--verdict-seconds 0 or not root)".into());
        Vec::new()
    };
    let markdown = render(&Report {
        options,
        env: &env,
        monitors: &monitors,
        workloads: &workloads,
        cells: &cells,
        failed: &failed,
        verdicts: &verdicts,
        notes: &notes,
        load: (load_before, load_average()),
        minutes: started.elapsed().as_secs_f64() / 60.0,
    });
    println!("\n{markdown}");
    let path = env.root.join(&options.markdown);
    std::fs::write(&path, &markdown).with_context(|| format!("writing {}", path.display()))?;
    println!("(written to {})", path.display());
    Ok(())
}

/// Installs what is missing, idempotently; what cannot be installed is returned as notes (its
/// monitor then fails to start and its row says why).
fn install(env: &Env) -> Vec<String> {
    let mut notes = Vec::new();
    let venv_python = env.venv_bin.join("python");
    if !venv_python.exists() {
        println!("bench-peers: creating the venv {}", env.venv_bin.display());
        let venv = env.venv_bin.parent().unwrap_or(&env.root);
        if let Err(err) = quiet(
            Command::new("/usr/bin/python3")
                .args(["-m", "venv"])
                .arg(venv),
        ) {
            notes.push(format!("venv not created: {err:#}"));
        }
    }
    let missing: Vec<&str> = PYPI
        .iter()
        .filter(|p| {
            let program = p.split_once("-dist").map_or(**p, |(name, _)| name);
            !env.program(program).exists()
        })
        .copied()
        .collect();
    if !missing.is_empty() {
        println!("bench-peers: pip install {}", missing.join(" "));
        let mut pip = Command::new(&venv_python);
        pip.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ]);
        if let Err(err) = quiet(pip.args(&missing)) {
            notes.push(format!("pip install {}: {err:#}", missing.join(" ")));
        }
    }
    let debian: Vec<&str> = DEBIAN
        .iter()
        .filter(|(command, _)| !have(command))
        .map(|(_, package)| *package)
        .collect();
    if !debian.is_empty() {
        if is_root() {
            println!("bench-peers: apt-get install {}", debian.join(" "));
            let result = quiet(Command::new("apt-get").args(["update", "-qq"])).and_then(|()| {
                quiet(
                    Command::new("apt-get")
                        .args(["install", "-y", "-qq", "--no-install-recommends"])
                        .args(&debian)
                        .env("DEBIAN_FRONTEND", "noninteractive"),
                )
            });
            if let Err(err) = result {
                notes.push(format!("apt-get install {}: {err:#}", debian.join(" ")));
            }
        } else {
            notes.push(format!("{} not installed (needs root)", debian.join(" ")));
        }
    }
    notes
}

fn build_leak_monitor() -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    quiet(Command::new(cargo).args(["build", "--release", "-p", "leak-monitor"]))
        .context("building leak-monitor")
}

/// Runs a command to the end, its output hidden unless it fails.
fn quiet(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// One run: a fresh target, the monitor attached (or none), settle, measure. Returns the mean
/// rate of the windows and what the tool cost.
fn run_once(
    env: &Env,
    options: &Options,
    workload: &Workload,
    monitor: Option<&Monitor>,
) -> anyhow::Result<(Throughput, Option<ToolCost>)> {
    let windows = options.windows.to_string();
    let window = options.window.to_string();
    let mut args = vec!["--windows", windows.as_str(), "--window", window.as_str()];
    args.extend(workload.args);
    let mut target = Target::start(env, workload.script, &args)?;
    let seconds = (options.settle + f64::from(options.windows) * options.window).ceil() as u64 + 5;
    let mut tool = match monitor {
        Some(m) => Some(Tool::start(env, m, target.pid(), seconds)?),
        None => None,
    };
    if let (Some(tool), Some(m)) = (&mut tool, monitor) {
        if m.detaches {
            match tool.wait(Duration::from_secs(30)) {
                Some(0) => {}
                Some(code) => bail!("{} (exit status {code})", tool.reason()),
                None => bail!("did not attach within 30 s"),
            }
        }
    }
    std::thread::sleep(Duration::from_secs_f64(options.settle));
    if let Some(tool) = &mut tool {
        if !tool.detached() && tool.wait(Duration::ZERO).is_some() {
            bail!("{}", tool.reason());
        }
    }
    let throughput = target.measure(options.windows, options.window)?;
    let cost = match tool {
        Some(mut tool) => {
            if !tool.detached() && tool.wait(Duration::ZERO).is_some() {
                bail!("exited before the measurement ended: {}", tool.reason());
            }
            Some(tool.stop())
        }
        None => None,
    };
    Ok((throughput, cost))
}

/// A workload process, killed and reaped on drop.
struct Target {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Target {
    /// Starts the venv's Python on `tests/python/SCRIPT ARGS` and waits for its READY.
    fn start(env: &Env, script: &str, args: &[&str]) -> anyhow::Result<Target> {
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

    fn pid(&self) -> u32 {
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
    fn measure(&mut self, windows: u32, window: f64) -> anyhow::Result<Throughput> {
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
struct Tool {
    pid: libc::pid_t,
    /// Its scratch directory; also holds its stdout and stderr.
    dir: tempfile::TempDir,
    /// The command returns once attached (see `Monitor::detaches`).
    detaches: bool,
    /// Set once reaped: exit code (128 + signal when killed) and its resource use.
    ended: Option<(i32, ToolCost)>,
}

impl Tool {
    fn start(env: &Env, monitor: &Monitor, pid: u32, seconds: u64) -> anyhow::Result<Tool> {
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
    fn detached(&self) -> bool {
        self.detaches && self.ended.is_some()
    }

    /// Waits up to `timeout` for it to end; its exit code once it has.
    fn wait(&mut self, timeout: Duration) -> Option<i32> {
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
    fn stop(mut self) -> ToolCost {
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
    fn reason(&self) -> String {
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

/// leak-monitor's verdict on the slow leak, per mode: (mode, verdict, seconds to `leak`).
struct Verdict {
    mode: &'static str,
    verdict: String,
    seconds: Option<f64>,
    /// The top site, `file:line`.
    site: String,
}

/// Both leak-monitor modes watch one slow-leak target at once for `seconds`.
fn time_to_verdict(env: &Env, seconds: u64) -> anyhow::Result<Vec<Verdict>> {
    println!("time to verdict: both leak-monitor modes on one slow leak for {seconds} s");
    let windows = (seconds + 15).to_string();
    let args = [
        "--windows",
        &windows,
        "--window",
        "1",
        "--leak-bytes",
        "30720",
    ];
    let mut target = Target::start(env, "bench_requests.py", &args)?;
    writeln!(target.stdin, "go").context("telling the workload to go")?;
    let modes: Vec<&Monitor> = MONITORS
        .iter()
        .filter(|m| m.program == "leak-monitor")
        .collect();
    let mut tools = Vec::new();
    for m in &modes {
        tools.push(Tool::start(env, m, target.pid(), seconds)?);
    }
    let mut verdicts = Vec::new();
    for (m, mut tool) in modes.iter().zip(tools) {
        tool.wait(Duration::from_secs(seconds + 60));
        let path = tool.dir.path().join("r.json");
        let report: serde_json::Value = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .with_context(|| format!("{}: no report ({})", m.name, tool.reason()))?;
        let rss = report["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["resource"] == "rss_bytes");
        verdicts.push(Verdict {
            mode: m.name,
            verdict: rss
                .and_then(|r| r["verdict"].as_str())
                .unwrap_or("none")
                .to_string(),
            seconds: rss.and_then(|r| r["verdict_since_seconds"].as_f64()),
            site: rss
                .map(|r| &r["sites"][0])
                .and_then(|s| Some(format!("{}:{}", s["file"].as_str()?, s["line"].as_u64()?)))
                .map(|s| s.rsplit('/').next().unwrap_or_default().to_string())
                .unwrap_or_else(|| "none".into()),
        });
    }
    Ok(verdicts)
}

/// Everything the Markdown needs.
struct Report<'a> {
    options: &'a Options,
    env: &'a Env,
    monitors: &'a [&'a Monitor],
    workloads: &'a [&'a Workload],
    cells: &'a BTreeMap<(&'a str, &'a str), Cell>,
    failed: &'a BTreeMap<&'a str, String>,
    verdicts: &'a [Verdict],
    notes: &'a [String],
    load: (String, String),
    minutes: f64,
}

fn render(r: &Report) -> String {
    let o = r.options;
    let mut md = String::new();
    let mut line = |text: String| {
        md += &text;
        md += "\n";
    };
    let only = [("only", &o.only), ("workload", &o.workload)]
        .iter()
        .filter_map(|(flag, value)| Some(format!(" --{flag} '{}'", value.as_ref()?)))
        .collect::<String>();
    line(format!(
        "Command: `cargo xtask bench-peers --rounds {} --windows {} --window {} --settle {} \
         --verdict-seconds {}{only}` ({:.1} minutes)  ",
        o.rounds, o.windows, o.window, o.settle, o.verdict_seconds, r.minutes
    ));
    line(format!(
        "Date: {}  ",
        output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
    ));
    line(format!(
        "Machine: {} CPUs, kernel {}, load average {} before, {} after  ",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        r.load.0,
        r.load.1
    ));
    line(format!("Versions: {}", versions(r.env)));
    line(String::new());
    line(format!(
        "Throughput ratio to the unmonitored run of the same round: **median** of {} rounds \
         (min..max), and the median ratio of work per CPU second of the target (less sensitive \
         to other load; misses what a monitor costs by pausing the target or taking a core). \
         Higher is better, 1.00 = no cost.",
        o.rounds
    ));
    line(String::new());
    let mut header = "| monitor |".to_string();
    let mut rule = "| --- |".to_string();
    for w in r.workloads {
        header += &format!(" {} |", w.name);
        rule += " --- |";
    }
    header += " tool CPU s per run | tool peak RSS |";
    rule += " --- | --- |";
    line(header);
    line(rule);
    for m in r.monitors {
        if let Some(reason) = r.failed.get(m.name) {
            line(format!(
                "| {} | could not run: {} |",
                m.name,
                reason.replace('|', "\\|")
            ));
            continue;
        }
        let mut row = format!("| {} |", m.name);
        let mut cpu = Vec::new();
        let mut peak = 0;
        for w in r.workloads {
            match r.cells.get(&(m.name, w.name)) {
                Some(cell) if !cell.ratios.is_empty() => {
                    row += &format!(
                        " {} (per CPU s {:.2}) |",
                        spread(&cell.ratios),
                        median(&cell.per_cpu_ratios)
                    );
                    let c: Vec<f64> = cell.costs.iter().map(|c| c.cpu_seconds).collect();
                    cpu.push(format!("{:.2}", median(&c)));
                    peak = cell.costs.iter().map(|c| c.peak_kib).fold(peak, u64::max);
                }
                _ => row += " - |",
            }
        }
        row += &format!(" {} | {:.1} MiB |", cpu.join(" / "), peak as f64 / 1024.0);
        line(row);
    }
    line(String::new());
    line(format!(
        "A monitored run: attach, {} s settle, then {} windows of {} s measured. Tool CPU is the \
         median per run, one figure per workload in column order, from wait4 on the tool \
         (its children included); peak RSS is the largest over all runs. memray attach returns \
         once it has injected its tracker: its CPU and RSS are the attach's (memray and gdb), \
         the tracking itself runs inside the target and shows in the throughput.",
        o.settle, o.windows, o.window
    ));
    line(String::new());
    line("Commands (P = the target's PID, D = the run's seconds):".into());
    line(String::new());
    for m in r.monitors {
        let args = m
            .args
            .join(" ")
            .replace("{pid}", "P")
            .replace("{secs}", "D");
        line(format!(
            "- {}: `{} {}`",
            m.name,
            m.program,
            args.replace("{dir}/", "")
        ));
    }
    if !r.verdicts.is_empty() {
        line(String::new());
        line(format!(
            "Time to verdict on the slow leak (both modes on one target, {} s):",
            o.verdict_seconds
        ));
        line(String::new());
        for v in r.verdicts {
            let when = v
                .seconds
                .map(|s| format!(" after {s:.0} s of observation"))
                .unwrap_or_default();
            line(format!(
                "- {}: rss_bytes `{}`{when}, top site {}",
                v.mode, v.verdict, v.site
            ));
        }
    }
    for note in r.notes {
        line(format!("\nNote: {note}"));
    }
    md
}

fn versions(env: &Env) -> String {
    let first_line = |program: PathBuf, args: &[&str]| {
        output(&program.to_string_lossy(), args)
            .lines()
            .next()
            .unwrap_or("?")
            .to_string()
    };
    let commit = output(
        "git",
        &[
            "-C",
            &env.root.to_string_lossy(),
            "rev-parse",
            "--short",
            "HEAD",
        ],
    );
    [
        format!(
            "{} ({commit})",
            first_line(env.program("leak-monitor"), &["--version"])
        ),
        first_line(env.program("python"), &["--version"]),
        first_line(env.program("py-spy"), &["--version"]),
        format!(
            "memray {}",
            first_line(env.program("memray"), &["--version"])
        ),
        first_line(env.program("austin"), &["--version"]),
        format!(
            "bpfcc-tools {}",
            output("dpkg-query", &["-W", "-f", "${Version}", "bpfcc-tools"])
        ),
        first_line("gdb".into(), &["--version"]),
    ]
    .join(", ")
}

/// A command's stdout, trimmed; `?` when it cannot run.
fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".into())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// `median (min..max)`.
fn spread(values: &[f64]) -> String {
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    format!("**{:.2}** ({lo:.2}..{hi:.2})", median(values))
}

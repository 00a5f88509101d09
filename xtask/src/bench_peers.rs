//! `cargo xtask bench-peers`: what each monitor costs the same Python workloads, side by side
//! in one run. leak-monitor (procfs only; full: eBPF with the in-kernel frame walk, on growth and
//! always; full with allocation tracking) against
//! py-spy record (non-blocking and blocking), memray attach, Austin's memory mode and BCC's
//! memleak, each attached by PID to a fresh target per run.
//!
//! A run starts the workload, attaches the monitor, waits `--settle` seconds (attach time is
//! not measured), then tells the workload to go: it prints its throughput over fixed windows.
//! Rounds are interleaved (the monitor order rotates each round); a ratio is the monitored
//! run's throughput over the unmonitored run's of the same round, the figure is the median of
//! the rounds. The tool's own CPU seconds and peak RSS come from `wait4` on it (its reaped
//! children included). A monitor that cannot install, start or keep running gets its reason
//! instead of a figure. Then leak-monitor's modes watch one slow leak together for
//! `--verdict-seconds` to time their verdicts. Prints the Markdown tables (also written to
//! `--markdown`); asserts nothing.
//!
//! The peers are installed when missing: py-spy, memray and austin-dist into a venv at
//! `target/peers-venv` (its Python is `/usr/bin/python3`; the workloads run on it, so memray can
//! import itself in the target), gdb and bpfcc-tools with apt-get (root only).

mod markdown;
mod processes;

use markdown::{load_average, render, Report};
use processes::{Target, Tool};

use crate::setup::{have, is_root};
use crate::workspace_root;
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
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
        name: "leak-monitor, full (eBPF on growth + kernel frame walk + heap census)",
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
        name: "leak-monitor, full, --no-heap-census",
        program: "leak-monitor",
        args: &[
            "run",
            "--pid",
            "{pid}",
            "--no-heap-census",
            "--duration",
            "{secs}",
            "--json",
            "{dir}/r.json",
        ],
        detaches: false,
    },
    Monitor {
        name: "leak-monitor, full, --kernel-tracing always",
        program: "leak-monitor",
        args: &[
            "run",
            "--pid",
            "{pid}",
            "--kernel-tracing",
            "always",
            "--duration",
            "{secs}",
            "--json",
            "{dir}/r.json",
        ],
        detaches: false,
    },
    Monitor {
        name: "leak-monitor, full + --track-allocations",
        program: "leak-monitor",
        args: &[
            "run",
            "--pid",
            "{pid}",
            "--track-allocations",
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
    }, // The leak engages the on-growth tracing, which then sees every open and close.
    Workload {
        name: "slow fd leak (1/s) under fd churn",
        script: "bench_fd_churn.py",
        args: &["--leak-fds-per-second", "1"],
        unit: "opens/s",
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

/// leak-monitor's verdict on the slow leak, per mode: (mode, verdict, seconds to `leak`).
struct Verdict {
    mode: &'static str,
    verdict: String,
    seconds: Option<f64>,
    /// The top site, `file:line`.
    site: String,
}

/// Every leak-monitor mode watches one slow-leak target at once for `seconds`.
fn time_to_verdict(env: &Env, seconds: u64) -> anyhow::Result<Vec<Verdict>> {
    println!("time to verdict: every leak-monitor mode on one slow leak for {seconds} s");
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

//! `cargo xtask matrix`: the leak workloads (RSS, fds, threads, sockets) and the heap census
//! workload under every CPython found here (pyenv's, Debian's static 3.11, 3.14 and 3.15
//! from /opt/newer-python, installed when missing), each observed with
//! `leak-monitor run --pid ... --json`. Prints interpreter x resource -> verdict, top site's
//! line, method, and whether that is the workload's `# LEAK` line; exits non-zero when a row
//! lost what it should have: a leak verdict, the line, an `ebpf_frames` site at that line for
//! the leak workloads (an RSS leak's top site may be the census's, which names the same line),
//! a `heap_census` top site for the census workload (3.10: the census does not read it).

use crate::children::{die_with_parent, Reaped};
use anyhow::{bail, Context};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One workload: its script, the resource it leaks, and how long to observe it.
struct Workload {
    script: &'static str,
    resource: &'static str,
    /// The census workload: its top `rss_bytes` site must come from the census.
    census: bool,
}

const WORKLOADS: [Workload; 5] = [
    Workload {
        script: "rss_leak.py",
        resource: "rss_bytes",
        census: false,
    },
    Workload {
        script: "fd_leak.py",
        resource: "open_fds",
        census: false,
    },
    Workload {
        script: "thread_leak.py",
        resource: "threads",
        census: false,
    },
    Workload {
        script: "socket_tcp_leak.py",
        resource: "sockets",
        census: false,
    },
    Workload {
        script: "held_service_dict.py",
        resource: "rss_bytes",
        census: true,
    },
];

/// How long a READY line may take.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone, Debug, clap::Args)]
pub struct Options {
    /// Seconds each leak workload is observed (the census workload gets twice as long).
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Leak workloads observed at once (census workloads, which burn CPU, run two at a time).
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    /// Only interpreters whose label contains this text (`3.10`, `debian`).
    #[arg(long)]
    only: Option<String>,
}

/// The interpreters to run: (label, path), pyenv's newest of each minor version, Debian's.
fn interpreters() -> anyhow::Result<Vec<(String, PathBuf)>> {
    crate::setup::install_newer_pythons()?;
    let pyenv = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pyenv")))
        .context("PYENV_ROOT or HOME")?
        .join("versions");
    let mut found = Vec::new();
    for minor in 10..=13 {
        let newest = std::fs::read_dir(&pyenv)
            .with_context(|| format!("{} (pyenv's Pythons)", pyenv.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("3.{minor}.")))
            })
            .max();
        match newest {
            Some(dir) => found.push(("pyenv".to_owned(), dir.join("bin/python3"))),
            None => eprintln!("xtask matrix: pyenv has no CPython 3.{minor}; skipped"),
        }
        if minor == 11 && Path::new("/usr/bin/python3.11").exists() {
            found.push(("debian static".into(), "/usr/bin/python3.11".into()));
        }
    }
    for minor in [14, 15] {
        let python = format!("/opt/newer-python/3.{minor}/usr/bin/python3.{minor}");
        found.push(("debian".to_owned(), python.into()));
    }
    // The full version of each, as the interpreter says it.
    for (label, python) in &mut found {
        let out = Command::new(&*python)
            .arg("-c")
            .arg("import platform; print(platform.python_version())")
            .output()
            .with_context(|| format!("{}", python.display()))?;
        let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        *label = format!("{version} {label}");
    }
    Ok(found)
}

/// One cell of the table.
struct Row {
    interpreter: String,
    resource: &'static str,
    script: &'static str,
    verdict: String,
    line: String,
    method: String,
    /// `Some(true)`: the workload's marked line; `None`: not judged (see `note`).
    right_line: Option<bool>,
    note: String,
}

impl Row {
    fn passed(&self) -> bool {
        self.note.is_empty() || self.right_line.is_none() && self.note.starts_with("n/a")
    }
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    let root = crate::workspace_root();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "leak-monitor"])
        .current_dir(&root)
        .status()
        .context("building leak-monitor")?;
    if !status.success() {
        bail!("building leak-monitor failed");
    }
    let interpreters: Vec<(String, PathBuf)> = interpreters()?
        .into_iter()
        .filter(|(label, _)| options.only.as_ref().is_none_or(|o| label.contains(o)))
        .collect();
    let started = Instant::now();
    let jobs: Vec<(String, PathBuf, &'static Workload)> = interpreters
        .iter()
        .flat_map(|(label, python)| WORKLOADS.iter().map(|w| (label.clone(), python.clone(), w)))
        .collect();
    let (census, leaks): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|(_, _, w)| w.census);
    let mut rows = run_jobs(&root, leaks, options.parallel, options.seconds);
    rows.extend(run_jobs(&root, census, 2, options.seconds * 2));
    rows.sort_by(|a, b| (&a.interpreter, a.script).cmp(&(&b.interpreter, b.script)));
    print_table(&rows);
    let failed = rows.iter().filter(|r| !r.passed()).count();
    println!(
        "\n{} of {} rows as expected; {:.0} s",
        rows.len() - failed,
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        bail!("{failed} row(s) lost their verdict, method or line");
    }
    Ok(())
}

fn run_jobs(
    root: &Path,
    jobs: Vec<(String, PathBuf, &'static Workload)>,
    parallel: usize,
    seconds: u64,
) -> Vec<Row> {
    let (sender, results) = mpsc::channel();
    let total = jobs.len();
    let mut pending = jobs.into_iter();
    let mut running = 0;
    let mut rows = Vec::new();
    while rows.len() < total {
        while running < parallel.max(1) {
            let Some((label, python, workload)) = pending.next() else {
                break;
            };
            let sender = sender.clone();
            let root = root.to_path_buf();
            std::thread::spawn(move || {
                let row =
                    observe(&root, &label, &python, workload, seconds).unwrap_or_else(|e| Row {
                        interpreter: label,
                        resource: workload.resource,
                        script: workload.script,
                        verdict: "-".into(),
                        line: "-".into(),
                        method: "-".into(),
                        right_line: Some(false),
                        note: format!("error: {e:#}"),
                    });
                let _ = sender.send(row);
            });
            running += 1;
        }
        match results.recv() {
            Ok(row) => {
                running -= 1;
                rows.push(row);
            }
            Err(_) => break,
        }
    }
    rows
}

/// The 1-based line of `script` marked `# LEAK`.
fn leak_line(script: &Path) -> anyhow::Result<u32> {
    let text = std::fs::read_to_string(script).with_context(|| script.display().to_string())?;
    text.lines()
        .position(|l| l.contains("# LEAK"))
        .map(|i| i as u32 + 1)
        .with_context(|| format!("no # LEAK line in {}", script.display()))
}

fn observe(
    root: &Path,
    label: &str,
    python: &Path,
    workload: &Workload,
    seconds: u64,
) -> anyhow::Result<Row> {
    let script = root.join("tests/python").join(workload.script);
    let line = leak_line(&script)?;
    let mut child = die_with_parent(
        Command::new(python)
            .arg(&script)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )
    .spawn()
    .with_context(|| format!("starting {}", python.display()))?;
    let stdout = child.stdout.take().context("workload stdout")?;
    let child = Reaped(child);
    let (ready, said_ready) = mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end, so the workload never writes into a closed pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.trim() == "READY" {
                let _ = ready.send(true);
            }
        }
    });
    if said_ready.recv_timeout(READY_TIMEOUT) != Ok(true) {
        bail!("{} printed no READY", workload.script);
    }
    let dir = tempfile::tempdir()?;
    let json = dir.path().join("report.json");
    let out = Command::new(root.join("target/release/leak-monitor"))
        .args(["run", "--pid", &child.0.id().to_string()])
        .args(["--duration", &seconds.to_string(), "--json"])
        .arg(&json)
        .stdout(Stdio::null())
        .output()
        .context("running leak-monitor")?;
    drop(child);
    let report: Value = serde_json::from_slice(
        &std::fs::read(&json)
            .with_context(|| format!("no report: {}", String::from_utf8_lossy(&out.stderr)))?,
    )?;
    Ok(judge(label, workload, line, &report))
}

fn judge(label: &str, workload: &Workload, line: u32, report: &Value) -> Row {
    let resource = report["resources"]
        .as_array()
        .and_then(|all| all.iter().find(|r| r["resource"] == workload.resource));
    let text = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_else(|| "-".into());
    let verdict = resource.map(|r| text(&r["verdict"])).unwrap_or_default();
    let sites: &[Value] = resource
        .and_then(|r| r["sites"].as_array())
        .map_or(&[], Vec::as_slice);
    let place = |s: &Value| (text(&s["file"]), s["line"].as_u64(), text(&s["method"]));
    let (file, at, method) = sites
        .first()
        .map(place)
        .unwrap_or_else(|| ("-".into(), None, "-".into()));
    let is_line = |file: &str, at: Option<u64>| {
        file.ends_with(workload.script) && at == Some(u64::from(line))
    };
    let right = is_line(&file, at);
    // On 3.11+ the census may name an RSS leak's holder first; the kernel walk's own site
    // must still be there, at the line.
    let walked = sites.iter().map(place).find(|(_, _, m)| m == "ebpf_frames");
    let notes = report["capabilities"]["notes"].to_string();
    let no_census = workload.census && notes.contains("no heap census layout");
    let expected_method = if workload.census {
        "heap_census"
    } else {
        "ebpf_frames"
    };
    let mut note = Vec::new();
    if verdict != "leak" {
        note.push(format!("verdict {verdict}"));
    }
    let right_line = if no_census {
        note.clear();
        note.push("n/a: the census does not read this version".to_owned());
        None
    } else {
        if workload.census && method != expected_method {
            note.push(format!("method {method}, not {expected_method}"));
        }
        if !workload.census {
            match &walked {
                Some((f, l, _)) if is_line(f, *l) => {}
                Some((f, l, _)) => note.push(format!("ebpf_frames site at {f}:{l:?}")),
                None => note.push("no ebpf_frames site".to_owned()),
            }
        }
        if !right {
            note.push(format!("line {at:?} of {file}, not {line}"));
        }
        Some(right)
    };
    let method = match &walked {
        Some(_) if method == "heap_census" && !workload.census => {
            "heap_census + ebpf_frames".to_owned()
        }
        _ => method,
    };
    Row {
        interpreter: label.to_owned(),
        resource: workload.resource,
        script: workload.script,
        verdict,
        line: at.map_or("-".into(), |l| l.to_string()),
        method,
        right_line,
        note: note.join("; "),
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "\n{:<22} {:<34} {:<8} {:<5} {:<25} {:<5} note",
        "interpreter", "resource (workload)", "verdict", "line", "method", "right"
    );
    for r in rows {
        let right = match r.right_line {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "n/a",
        };
        let workload = format!("{} ({})", r.resource, r.script.trim_end_matches(".py"));
        println!(
            "{:<22} {:<34} {:<8} {:<5} {:<25} {:<5} {}",
            r.interpreter, workload, r.verdict, r.line, r.method, right, r.note
        );
    }
}

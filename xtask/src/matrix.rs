//! `cargo xtask matrix`: the leak workloads (RSS, fds, threads, sockets) and the heap census
//! workload under every CPython users run (pyenv's, Debian's static 3.11, 3.14 and 3.15 from
//! /opt/newer-python, installed when missing, Debian's non-PIE 3.14, venvs), each observed with
//! `leak-monitor run --pid ... --json`. The rows are `xtask/matrix-baseline.txt`'s, each with
//! what it must keep (`matrix_baseline`). Prints interpreter x resource -> verdict, top site's
//! line, method, and whether that is the workload's `# LEAK` line; exits non-zero when a row
//! lost what its baseline says it has (a leak verdict and an `ebpf_frames` site at the line for
//! the leak workloads, the census's holder line on top for the census workload), when the
//! report names another Python version than the interpreter's own, or when an interpreter is
//! missing.

use crate::children::{die_with_parent, Reaped};
use crate::matrix_baseline::{self, Expect, Expected};
use crate::matrix_interpreters::{self, Interpreter};
use anyhow::{bail, Context};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One workload: its script, the resource it leaks, and how long to observe it.
struct Workload {
    script: &'static str,
    resource: &'static str,
    /// The census workload: it burns CPU, so fewer run at once, each observed twice as long.
    census: bool,
    /// A WSGI app, run by an embedding server (uWSGI) and driven by requests from here.
    wsgi: bool,
}

const WORKLOADS: [Workload; 6] = [
    Workload {
        script: "rss_leak.py",
        resource: "rss_bytes",
        census: false,
        wsgi: false,
    },
    Workload {
        script: "fd_leak.py",
        resource: "open_fds",
        census: false,
        wsgi: false,
    },
    Workload {
        script: "thread_leak.py",
        resource: "threads",
        census: false,
        wsgi: false,
    },
    Workload {
        script: "socket_tcp_leak.py",
        resource: "sockets",
        census: false,
        wsgi: false,
    },
    Workload {
        script: "held_service_dict.py",
        resource: "rss_bytes",
        census: true,
        wsgi: false,
    },
    Workload {
        script: "wsgi_rss_leak.py",
        resource: "rss_bytes",
        census: false,
        wsgi: true,
    },
];

fn workload(name: &str) -> anyhow::Result<&'static Workload> {
    WORKLOADS
        .iter()
        .find(|w| w.script.strip_suffix(".py") == Some(name))
        .with_context(|| format!("the matrix has no workload {name:?}"))
}

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
    /// Only the baseline's interpreters whose key contains this text (`3.10`, `debian`, `venv`).
    #[arg(long)]
    only: Option<String>,
}

/// One job: a baseline row with its interpreter (or why there is none).
struct Job {
    expected: Expected,
    workload: &'static Workload,
    interpreter: Prepared,
}

/// An interpreter prepared on its own thread, shared by its rows: building uWSGI takes a
/// minute, during which the rows of the other interpreters run.
#[derive(Clone)]
struct Prepared(Arc<(Mutex<Option<Resolved>>, Condvar)>);

/// An interpreter, or why there is none.
type Resolved = Result<Interpreter, String>;

impl Prepared {
    fn start(key: String, scratch: PathBuf) -> Self {
        let prepared = Prepared(Arc::default());
        let done = prepared.clone();
        std::thread::spawn(move || {
            let result = matrix_interpreters::resolve(&key, &scratch).map_err(|e| format!("{e:#}"));
            let (slot, ready) = &*done.0;
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            ready.notify_all();
        });
        prepared
    }

    fn wait(&self) -> Resolved {
        let (slot, ready) = &*self.0;
        let mut guard = slot.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(result) = guard.as_ref() {
                return result.clone();
            }
            guard = ready.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
    }
}

#[cfg(test)]
impl Prepared {
    fn ready(result: Resolved) -> Self {
        Prepared(Arc::new((Mutex::new(Some(result)), Condvar::new())))
    }
}

/// One cell of the table.
struct Row {
    interpreter: String,
    resource: &'static str,
    script: &'static str,
    expect: Expect,
    verdict: String,
    line: String,
    method: String,
    /// The top site is at the workload's `# LEAK` line.
    right_line: bool,
    /// Why the row does not meet its baseline; empty when it does.
    failures: Vec<String>,
    /// What else is worth saying (a row judged `none`).
    note: String,
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
    let started = Instant::now();
    let baseline: Vec<Expected> = matrix_baseline::load()?
        .into_iter()
        .filter(|e| {
            options
                .only
                .as_ref()
                .is_none_or(|o| e.interpreter.contains(o.as_str()))
        })
        .collect();
    if baseline.is_empty() {
        bail!("no baseline row matches --only {:?}", options.only);
    }
    // 3.14 and 3.15 (and 3.14's non-PIE build) come from Debian unstable when missing; a
    // machine that cannot install them fails their rows below, it does not skip them.
    if let Err(e) = crate::setup::install_newer_pythons() {
        eprintln!("xtask matrix: {e:#}");
    }
    // Kept until every row is done: the venvs and uWSGI live in it.
    let scratch = tempfile::tempdir()?;
    let mut interpreters: HashMap<String, Prepared> = HashMap::new();
    for e in &baseline {
        interpreters
            .entry(e.interpreter.clone())
            .or_insert_with(|| Prepared::start(e.interpreter.clone(), scratch.path().into()));
    }
    let mut jobs = Vec::new();
    for expected in baseline {
        let interpreter = interpreters[&expected.interpreter].clone();
        jobs.push(Job {
            workload: workload(&expected.workload)?,
            interpreter,
            expected,
        });
    }
    let (census, leaks): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|j| j.workload.census);
    let mut rows = run_jobs(&root, leaks, options.parallel, options.seconds);
    rows.extend(run_jobs(&root, census, 2, options.seconds * 2));
    rows.sort_by(|a, b| (&a.interpreter, a.script).cmp(&(&b.interpreter, b.script)));
    print_table(&rows);
    let failed = rows.iter().filter(|r| !r.failures.is_empty()).count();
    println!(
        "\n{} of {} rows as their baseline ({}); matrix time {:.0} s",
        rows.len() - failed,
        rows.len(),
        matrix_baseline::PATH,
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        bail!("{failed} row(s) lost what their baseline says they have");
    }
    Ok(())
}

fn run_jobs(root: &Path, jobs: Vec<Job>, parallel: usize, seconds: u64) -> Vec<Row> {
    let (sender, results) = mpsc::channel();
    let total = jobs.len();
    let mut pending = jobs.into_iter();
    let mut running = 0;
    let mut rows = Vec::new();
    while rows.len() < total {
        while running < parallel.max(1) {
            let Some(job) = pending.next() else {
                break;
            };
            let sender = sender.clone();
            let root = root.to_path_buf();
            std::thread::spawn(move || {
                let interpreter = job.interpreter.wait();
                let label = interpreter
                    .as_ref()
                    .map_or_else(|_| job.expected.interpreter.clone(), |i| i.label.clone());
                let observed = interpreter
                    .as_ref()
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .and_then(|i| observe(&root, i, &job, seconds));
                let row = observed.unwrap_or_else(|e| Row {
                    interpreter: label,
                    resource: job.workload.resource,
                    script: job.workload.script,
                    expect: job.expected.expect,
                    verdict: "-".into(),
                    line: "-".into(),
                    method: "-".into(),
                    right_line: false,
                    failures: vec![format!("error: {e:#}")],
                    note: String::new(),
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

fn observe(root: &Path, interpreter: &Interpreter, job: &Job, seconds: u64) -> anyhow::Result<Row> {
    let workload = job.workload;
    let script = root.join("tests/python").join(workload.script);
    let line = leak_line(&script)?;
    let mut command = Command::new(&interpreter.program);
    let address = match (interpreter.embedded, workload.wsgi) {
        (false, false) => {
            command.arg(&script);
            None
        }
        (true, true) => {
            let address = free_address()?;
            // One process, no master: the PID watched is the one that runs the app.
            command
                .args(["--http-socket", &address, "--wsgi-file"])
                .arg(&script)
                .args(["--processes", "1", "--need-app", "--disable-logging"]);
            Some(address)
        }
        (embedded, _) => bail!(
            "{} {} an embedded interpreter",
            workload.script,
            if embedded {
                "needs a script for"
            } else {
                "runs under"
            }
        ),
    };
    // uWSGI sends the app's standard output to its log, on standard error.
    if workload.wsgi {
        command.stdout(Stdio::null()).stderr(Stdio::piped());
    } else {
        command.stdout(Stdio::piped()).stderr(Stdio::null());
    }
    let mut child = die_with_parent(&mut command)
        .spawn()
        .with_context(|| format!("starting {}", interpreter.program.display()))?;
    let output: Box<dyn std::io::Read + Send> = match (child.stdout.take(), child.stderr.take()) {
        (Some(stdout), _) => Box::new(stdout),
        (None, Some(stderr)) => Box::new(stderr),
        (None, None) => bail!("no output from {}", workload.script),
    };
    let child = Reaped(child);
    let (ready, said_ready) = mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end, so the workload never writes into a closed pipe.
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if line.trim() == "READY" {
                let _ = ready.send(true);
            }
        }
    });
    if said_ready.recv_timeout(READY_TIMEOUT) != Ok(true) {
        bail!("{} printed no READY", workload.script);
    }
    let requests = address.map(Requests::start);
    let dir = tempfile::tempdir()?;
    let json = dir.path().join("report.json");
    let out = Command::new(root.join("target/release/leak-monitor"))
        .args(["run", "--pid", &child.0.id().to_string()])
        .args(["--duration", &seconds.to_string(), "--json"])
        .arg(&json)
        .stdout(Stdio::null())
        .output()
        .context("running leak-monitor")?;
    drop(requests);
    drop(child);
    let report: Value = serde_json::from_slice(
        &std::fs::read(&json)
            .with_context(|| format!("no report: {}", String::from_utf8_lossy(&out.stderr)))?,
    )?;
    Ok(judge(interpreter, job, line, &report))
}

/// A loopback address nothing listens on (the port is free when this returns).
fn free_address() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("a free port")?;
    Ok(listener.local_addr()?.to_string())
}

/// HTTP requests to a WSGI server, ten a second, until dropped.
struct Requests(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Requests {
    const PERIOD: Duration = Duration::from_millis(100);

    fn start(address: String) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut next = Instant::now();
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                // A failed request is the server's business (the report judges it).
                let _ = get(&address);
                next += Self::PERIOD;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        });
        Requests(stop)
    }
}

impl Drop for Requests {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn get(address: &str) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: matrix\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    Ok(())
}

fn judge(interpreter: &Interpreter, job: &Job, line: u32, report: &Value) -> Row {
    let workload = job.workload;
    let expect = job.expected.expect;
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
    let right_line = is_line(&file, at);
    // The census may name an RSS leak's holder first (3.11+); the kernel walk's own site must
    // still be there, at the line.
    let walked = sites.iter().map(place).find(|(_, _, m)| m == "ebpf_frames");
    let mut failures = Vec::new();
    // The interpreter as leak-monitor identified it: a venv's copy, a non-PIE build or an
    // embedding program must still be this CPython (3.10 has no `Py_Version`: its file name
    // gives `3.10`, without the micro version).
    let named = text(&report["target"]["python_version"]);
    let minor_only = named.matches('.').count() == 1;
    if !(named == interpreter.version
        || minor_only && interpreter.version.starts_with(&format!("{named}.")))
    {
        failures.push(format!(
            "the report names Python {named}, not {}",
            interpreter.version
        ));
    }
    let mut note = String::new();
    match expect {
        Expect::Nothing => {
            let notes = report["capabilities"]["notes"].to_string();
            if notes.contains("heap census cannot read") || notes.contains("no heap census") {
                note = "the census does not read this version (the report says so)".into();
            }
        }
        Expect::EbpfFrames | Expect::HeapCensus => {
            if verdict != "leak" {
                failures.push(format!("verdict {verdict}"));
            }
            if expect == Expect::HeapCensus && method != "heap_census" {
                failures.push(format!("method {method}, not heap_census"));
            }
            if expect == Expect::EbpfFrames {
                match &walked {
                    Some((f, l, _)) if is_line(f, *l) => {}
                    Some((f, l, _)) => failures.push(format!("ebpf_frames site at {f}:{l:?}")),
                    None => failures.push("no ebpf_frames site".to_owned()),
                }
            }
            if !right_line {
                failures.push(format!("top line {at:?} of {file}, not {line}"));
            }
        }
    }
    let method = match &walked {
        Some(_) if method == "heap_census" && !workload.census => {
            "heap_census + ebpf_frames".to_owned()
        }
        _ => method,
    };
    Row {
        interpreter: interpreter.label.clone(),
        resource: workload.resource,
        script: workload.script,
        expect,
        verdict,
        line: at.map_or("-".into(), |l| l.to_string()),
        method,
        right_line,
        failures,
        note,
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "\n{:<26} {:<34} {:<8} {:<5} {:<25} {:<5} {:<12} note",
        "interpreter", "resource (workload)", "verdict", "line", "method", "right", "baseline"
    );
    for r in rows {
        let right = if r.right_line { "yes" } else { "NO" };
        let workload = format!("{} ({})", r.resource, r.script.trim_end_matches(".py"));
        let baseline = if r.failures.is_empty() {
            format!("{} ok", r.expect.name())
        } else {
            format!("{} LOST", r.expect.name())
        };
        let note = if r.failures.is_empty() {
            r.note.clone()
        } else {
            r.failures.join("; ")
        };
        println!(
            "{:<26} {:<34} {:<8} {:<5} {:<25} {:<5} {:<12} {}",
            r.interpreter, workload, r.verdict, r.line, r.method, right, baseline, note
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(workload_name: &str, expect: Expect) -> (Interpreter, Job) {
        let interpreter = Interpreter {
            label: "3.14.10 debian".into(),
            version: "3.14.10".into(),
            program: "/opt/newer-python/3.14/usr/bin/python3.14".into(),
            embedded: false,
        };
        let job = Job {
            expected: Expected {
                interpreter: "3.14 debian".into(),
                workload: workload_name.into(),
                expect,
            },
            workload: workload(workload_name).unwrap(),
            interpreter: Prepared::ready(Ok(interpreter.clone())),
        };
        (interpreter, job)
    }

    fn report(version: &str, verdict: &str, sites: Value) -> Value {
        json!({
            "target": {"python_version": version},
            "capabilities": {"notes": []},
            "resources": [{"resource": "open_fds", "verdict": verdict, "sites": sites}],
        })
    }

    fn site(line: u64, method: &str) -> Value {
        json!({"file": "/w/tests/python/fd_leak.py", "line": line, "method": method})
    }

    #[test]
    fn a_row_keeps_its_baseline_only_with_the_walked_site_at_the_line() {
        let (interpreter, job) = job("fd_leak", Expect::EbpfFrames);
        let exact = report("3.14.10", "leak", json!([site(18, "ebpf_frames")]));
        assert!(judge(&interpreter, &job, 18, &exact).failures.is_empty());
        // Fell back to sampled stacks: the right line, but not from the kernel walk.
        let sampled = report("3.14.10", "leak", json!([site(18, "sampled_stacks")]));
        let row = judge(&interpreter, &job, 18, &sampled);
        assert_eq!(row.failures, vec!["no ebpf_frames site".to_owned()]);
        // The kernel walk at a wrong line (a layout one field off).
        let wrong = report("3.14.10", "leak", json!([site(30, "ebpf_frames")]));
        assert_eq!(judge(&interpreter, &job, 18, &wrong).failures.len(), 2);
        assert!(!judge(
            &interpreter,
            &job,
            18,
            &report("3.14.10", "growing", json!([site(18, "ebpf_frames")]))
        )
        .failures
        .is_empty());
    }

    #[test]
    fn a_report_naming_another_python_fails_the_row() {
        let (interpreter, job) = job("fd_leak", Expect::EbpfFrames);
        let other = report("3.11.2", "leak", json!([site(18, "ebpf_frames")]));
        assert_eq!(judge(&interpreter, &job, 18, &other).failures.len(), 1);
        let unnamed = report("-", "leak", json!([site(18, "ebpf_frames")]));
        assert_eq!(judge(&interpreter, &job, 18, &unnamed).failures.len(), 1);
        // 3.10 has no Py_Version: its minor version is all a report can say.
        let (mut old, job) = (interpreter, job);
        old.version = "3.10.13".into();
        let minor = report("3.10", "leak", json!([site(18, "ebpf_frames")]));
        assert!(judge(&old, &job, 18, &minor).failures.is_empty());
    }

    #[test]
    fn nothing_expected_is_shown_not_judged() {
        let (interpreter, job) = job("fd_leak", Expect::Nothing);
        let row = judge(
            &interpreter,
            &job,
            18,
            &report("3.14.10", "stable", json!([])),
        );
        assert!(row.failures.is_empty());
    }
}

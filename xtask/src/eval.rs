//! `cargo xtask eval`: leak-monitor against the accuracy corpus (`tests/corpus/cases.toml`).
//! Each case is a real Python program with its expected leaking resource and line, or "none".
//! Prints, per case, whether the leak was detected, attributed to its line (with the right leak
//! type), any false alarm, and the time to the verdict; then a summary. Exits non-zero when any
//! case is wrong.

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DEFAULT_DURATION: u64 = 40;
/// Seconds a program that prints nothing gets before the monitor attaches.
const SETTLE: Duration = Duration::from_secs(2);

#[derive(Debug, Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

#[derive(Clone, Debug, Deserialize)]
struct Case {
    name: String,
    program: String,
    #[serde(default)]
    args: Vec<String>,
    /// Extra leak-monitor flags for this case (e.g. `--track-allocations`).
    #[serde(default)]
    monitor_flags: Vec<String>,
    expect: String,
    /// Resources that leak along with `expect` by nature (a socket is an fd; a thread has a
    /// stack): a `leak` verdict on them is right, not a false alarm.
    #[serde(default)]
    also: Vec<String>,
    leak_type: Option<String>,
    /// The holder path the heap census must name on the top site (`__main__.SERVICE._sessions`).
    holder: Option<String>,
    #[serde(default = "yes")]
    ready: bool,
    duration: Option<u64>,
    #[serde(default)]
    mode: Mode,
    /// A Python module the case needs (installed by `cargo xtask setup` where possible).
    needs: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Run,
    Serve,
}

/// What came out of one case.
#[derive(Debug)]
struct Outcome {
    name: String,
    expect: String,
    detected: bool,
    attributed: Option<bool>,
    leak_type_ok: Option<bool>,
    /// Whether the top site's holder is the expected one, for cases that name one.
    holder_ok: Option<bool>,
    false_alarms: Vec<String>,
    seconds_to_verdict: Option<f64>,
    top_site: String,
    error: Option<String>,
}

impl Outcome {
    fn passed(&self) -> bool {
        self.error.is_none()
            && self.false_alarms.is_empty()
            && (self.expect == "none"
                || (self.detected
                    && self.attributed.unwrap_or(false)
                    && self.leak_type_ok.unwrap_or(true)
                    && self.holder_ok.unwrap_or(true)))
    }
}

pub fn run(filter: Option<&str>, parallel: usize) -> anyhow::Result<()> {
    let root = crate::workspace_root();
    build(&root)?;
    let text = std::fs::read_to_string(root.join("tests/corpus/cases.toml"))
        .context("reading tests/corpus/cases.toml")?;
    let corpus: Corpus = toml::from_str(&text).context("parsing tests/corpus/cases.toml")?;
    let cases: Vec<Case> = corpus
        .case
        .into_iter()
        .filter(|c| filter.is_none_or(|f| c.name.contains(f)))
        .collect();
    eprintln!(
        "xtask: evaluating {} cases, {} at a time",
        cases.len(),
        parallel
    );
    let started = Instant::now();
    let outcomes = run_all(&root, cases, parallel.max(1));
    print_table(&outcomes);
    let passed = outcomes.iter().filter(|o| o.passed()).count();
    let leaks: Vec<&Outcome> = outcomes.iter().filter(|o| o.expect != "none").collect();
    let detected = leaks.iter().filter(|o| o.detected).count();
    let attributed = leaks
        .iter()
        .filter(|o| o.attributed == Some(true) && o.leak_type_ok != Some(false))
        .count();
    let false_alarms: usize = outcomes.iter().map(|o| o.false_alarms.len()).sum();
    let holders = outcomes.iter().filter(|o| o.holder_ok.is_some()).count();
    let holders_named = outcomes
        .iter()
        .filter(|o| o.holder_ok == Some(true))
        .count();
    let census_cases = leaks.iter().filter(|o| o.expect == "rss_bytes").count();
    println!(
        "\nsummary: {passed}/{} cases right; leaks detected {detected}/{n}, attributed to their line {attributed}/{n}; holders named {holders_named}/{holders} (of {census_cases} rss cases); false alarms {false_alarms}; {:.0} s",
        outcomes.len(),
        started.elapsed().as_secs_f64(),
        n = leaks.len(),
    );
    if passed != outcomes.len() {
        bail!("{} case(s) wrong", outcomes.len() - passed);
    }
    Ok(())
}

pub(crate) fn build(root: &Path) -> anyhow::Result<()> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "leak-monitor"])
        .current_dir(root)
        .status()
        .context("building leak-monitor")?;
    if !status.success() {
        bail!("building leak-monitor failed");
    }
    Ok(())
}

fn run_all(root: &Path, cases: Vec<Case>, parallel: usize) -> Vec<Outcome> {
    let (sender, results) = mpsc::channel();
    let mut pending = cases.into_iter().enumerate();
    let mut running = 0;
    let mut outcomes: Vec<(usize, Outcome)> = Vec::new();
    loop {
        while running < parallel {
            let Some((index, case)) = pending.next() else {
                break;
            };
            let sender = sender.clone();
            let root = root.to_path_buf();
            std::thread::spawn(move || {
                let outcome = evaluate(&root, &case);
                eprintln!(
                    "xtask: {} {}",
                    if outcome.passed() { "ok  " } else { "FAIL" },
                    outcome.name
                );
                let _ = sender.send((index, outcome));
            });
            running += 1;
        }
        if running == 0 {
            break;
        }
        match results.recv() {
            Ok(result) => {
                outcomes.push(result);
                running -= 1;
            }
            Err(_) => break,
        }
    }
    outcomes.sort_by_key(|(index, _)| *index);
    outcomes.into_iter().map(|(_, o)| o).collect()
}

/// Kills its processes (and their process group) when dropped.
struct Guard(Vec<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn evaluate(root: &Path, case: &Case) -> Outcome {
    let mut outcome = Outcome {
        name: case.name.clone(),
        expect: case.expect.clone(),
        detected: false,
        attributed: None,
        leak_type_ok: None,
        holder_ok: None,
        false_alarms: Vec::new(),
        seconds_to_verdict: None,
        top_site: String::new(),
        error: None,
    };
    if let Err(err) = evaluate_into(root, case, &mut outcome) {
        outcome.error = Some(format!("{err:#}"));
    }
    outcome
}

fn evaluate_into(root: &Path, case: &Case, outcome: &mut Outcome) -> anyhow::Result<()> {
    if let Some(module) = &case.needs {
        let ok = Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            bail!("needs the Python module {module} (pip install {module})");
        }
    }
    let program = root.join(&case.program);
    let expected_line = marker_line(&program)?;
    let mut child = Command::new("python3")
        .arg(&program)
        .args(&case.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    let stdout = child.stdout.take().context("stdout")?;
    let pid = child.id();
    let guard = Guard(vec![child]);
    if case.ready {
        wait_ready(stdout)?;
    } else {
        std::thread::sleep(SETTLE);
    }
    let duration = case.duration.unwrap_or(DEFAULT_DURATION);
    let dir = tempfile::tempdir().context("temp dir")?;
    let reports = match case.mode {
        Mode::Run => vec![run_report(root, case, pid, duration, dir.path())?],
        Mode::Serve => serve_reports(root, case, duration, dir.path())?,
    };
    drop(guard);
    judge(case, expected_line, &reports, outcome);
    Ok(())
}

/// The 1-based line of `program` marked `# LEAK`, if any.
fn marker_line(program: &Path) -> anyhow::Result<Option<u32>> {
    let text = std::fs::read_to_string(program)
        .with_context(|| format!("reading {}", program.display()))?;
    Ok(text
        .lines()
        .position(|l| l.contains("# LEAK"))
        .map(|i| i as u32 + 1))
}

pub(crate) fn wait_ready(stdout: std::process::ChildStdout) -> anyhow::Result<()> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("READY") {
                let _ = sender.send(());
            }
        }
    });
    receiver
        .recv_timeout(Duration::from_secs(60))
        .context("the program printed no READY within 60 s")
}

pub(crate) fn binary(root: &Path) -> PathBuf {
    root.join("target/release/leak-monitor")
}

fn run_report(
    root: &Path,
    case: &Case,
    pid: u32,
    duration: u64,
    dir: &Path,
) -> anyhow::Result<Value> {
    let json = dir.join("report.json");
    let output = Command::new(binary(root))
        .args([
            "run",
            "--pid",
            &pid.to_string(),
            "--duration",
            &duration.to_string(),
        ])
        .args(&case.monitor_flags)
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .output()
        .context("running leak-monitor run")?;
    if !output.status.success() {
        bail!(
            "leak-monitor run failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    read_json(&json)
}

/// `serve --match <program> --report-dir`, then the last report of each process that wrote one.
fn serve_reports(
    root: &Path,
    case: &Case,
    duration: u64,
    dir: &Path,
) -> anyhow::Result<Vec<Value>> {
    let file_name = Path::new(&case.program)
        .file_name()
        .and_then(|n| n.to_str())
        .context("program file name")?;
    let reports = dir.join("reports");
    let listen = free_local_addr()?;
    let daemon = Command::new(binary(root))
        .args([
            "serve",
            "--match",
            &regex_escape(file_name),
            "--listen",
            &listen,
        ])
        .args(&case.monitor_flags)
        .arg("--report-dir")
        .arg(&reports)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting leak-monitor serve")?;
    let guard = Guard(vec![daemon]);
    std::thread::sleep(Duration::from_secs(duration));
    drop(guard);
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&reports) {
        for entry in entries.filter_map(Result::ok) {
            if entry.path().extension().is_some_and(|e| e == "json") {
                found.push(read_json(&entry.path())?);
            }
        }
    }
    if found.is_empty() {
        bail!("the daemon wrote no report in {duration} s");
    }
    Ok(found)
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

fn free_local_addr() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.to_string())
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn judge(case: &Case, expected_line: Option<u32>, reports: &[Value], outcome: &mut Outcome) {
    let program_name = Path::new(&case.program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    for report in reports {
        let pid = report["target"]["pid"].as_i64().unwrap_or(0);
        for resource in report["resources"].as_array().into_iter().flatten() {
            let name = resource["resource"].as_str().unwrap_or("?");
            let leak = resource["verdict"] == "leak";
            if name == case.expect {
                if leak {
                    outcome.detected = true;
                    outcome.seconds_to_verdict = resource["verdict_since_seconds"].as_f64();
                    let top = &resource["sites"][0];
                    let file = top["file"].as_str().unwrap_or("");
                    let line = top["line"].as_u64().map(|l| l as u32);
                    outcome.top_site = format!(
                        "{}:{} {}",
                        Path::new(file)
                            .file_name()
                            .and_then(|n| n.to_str())
                            .unwrap_or("-"),
                        line.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
                        top["leak_type"].as_str().unwrap_or("")
                    );
                    outcome.attributed = Some(
                        file.ends_with(program_name) && line.is_some() && line == expected_line,
                    );
                    if let Some(expected) = &case.leak_type {
                        outcome.leak_type_ok = Some(top["leak_type"] == expected.as_str());
                    }
                    if let Some(expected) = &case.holder {
                        outcome.holder_ok = Some(top["holder"]["path"] == expected.as_str());
                    }
                }
            } else if leak && !case.also.iter().any(|a| a == name) {
                outcome.false_alarms.push(format!("{name} (pid {pid})"));
            }
        }
    }
}

fn print_table(outcomes: &[Outcome]) {
    println!(
        "\n| case | expected | detected | attributed | holder | false alarms | time to verdict | top site |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for o in outcomes {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let attributed = match (o.attributed, o.leak_type_ok) {
            (None, _) => "-".to_string(),
            (Some(a), Some(t)) => format!("{} (type {})", yes_no(a), yes_no(t)),
            (Some(a), None) => yes_no(a).to_string(),
        };
        let detected = if o.expect == "none" {
            "-".to_string()
        } else {
            yes_no(o.detected).to_string()
        };
        let alarms = if o.false_alarms.is_empty() {
            "none".to_string()
        } else {
            o.false_alarms.join(", ")
        };
        let holder = o.holder_ok.map_or("-", yes_no);
        let time = o
            .seconds_to_verdict
            .map(|s| format!("{s:.0} s"))
            .unwrap_or_else(|| "-".into());
        let site = match &o.error {
            Some(err) => format!("error: {err}"),
            None => o.top_site.clone(),
        };
        println!(
            "| {} | {} | {detected} | {attributed} | {holder} | {alarms} | {time} | {site} |",
            o.name, o.expect
        );
    }
}

//! Helpers shared by the integration tests: Python workloads that die with the test, the
//! `leak-monitor` binary run to completion or in the background, JSON reports, a minimal HTTP
//! client for /metrics, and promtool.

use serde_json::Value;
use std::fmt;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long a workload may take to print READY (start-up on a loaded 2-core machine).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A Python workload from `tests/python/`.
pub fn python_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/python")
        .join(name)
}

/// Where `cargo xtask setup` installs the CPython releases newer than pyenv has.
pub const NEWER_PYTHON: &str = "/opt/newer-python";

/// The CPython interpreters besides the default `python3` (3.11): pyenv's 3.12 and 3.13 and
/// Debian's 3.14 and 3.15 from `cargo xtask setup`, as (version, interpreter). Missing ones
/// are a failure, never a skip: the tests are meant to cover them all.
pub fn other_interpreters() -> Vec<(&'static str, PathBuf)> {
    let from_pyenv = |version: &'static str| (version, pyenv_python(version));
    let from_debian = |version: &'static str| {
        let python = Path::new(NEWER_PYTHON).join(format!("{version}/usr/bin/python{version}"));
        assert!(
            python.exists(),
            "{} is missing: run `cargo xtask setup`",
            python.display()
        );
        (version, python)
    };
    vec![
        from_pyenv("3.12"),
        from_pyenv("3.13"),
        from_debian("3.14"),
        from_debian("3.15"),
    ]
}

/// pyenv's newest CPython `version` (`3.10`): its `bin/python3`.
pub fn pyenv_python(version: &str) -> PathBuf {
    let pyenv = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pyenv")))
        .expect("PYENV_ROOT or HOME")
        .join("versions");
    let dir = fs::read_dir(&pyenv)
        .unwrap_or_else(|err| panic!("{}: {err} (pyenv's Pythons)", pyenv.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{version}.")))
        })
        .max()
        .unwrap_or_else(|| panic!("pyenv has no CPython {version} in {}", pyenv.display()));
    dir.join("bin/python3")
}

/// The workload `leak-monitor demo` embeds.
pub fn demo_workload_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/commands/demo_workload.py")
}

/// Makes the child get SIGKILL when the test thread that spawned it ends, so no workload
/// outlives a test binary that is killed or aborts (Drop covers the ordinary paths).
pub fn die_with_parent(command: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe and the closure touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Serialises the runs whose workload burns CPU (steady, slow churn, busy main thread): the
/// machine has 2 cores, and two of them at once would starve the monitors and each other.
pub fn cpu_heavy_slot() -> MutexGuard<'static, ()> {
    static CPU_HEAVY: Mutex<()> = Mutex::new(());
    CPU_HEAVY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running Python process that printed READY. Killed and reaped on drop.
pub struct Workload {
    child: Child,
    name: String,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    /// What it printed on stdout before READY.
    startup_lines: Vec<String>,
}

impl Workload {
    /// Starts `python3 tests/python/NAME ARGS...` and waits for READY.
    pub fn start(name: &str, args: &[&str]) -> Workload {
        Workload::start_with(Path::new("python3"), name, args)
    }

    /// Starts `PYTHON tests/python/NAME ARGS...` and waits for READY.
    pub fn start_with(python: &Path, name: &str, args: &[&str]) -> Workload {
        let mut command = Command::new(python);
        command.arg(python_script(name)).args(args);
        Workload::spawn(name, command)
    }

    /// Starts an arbitrary command that prints READY when warmed up.
    pub fn spawn(name: &str, mut command: Command) -> Workload {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = die_with_parent(&mut command)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start workload {name}: {err}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (sender, lines) = mpsc::channel();
        // Both pipes are drained for the workload's whole life, so it never blocks on them.
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let captured = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&captured);
        thread::spawn(move || {
            let mut text = String::new();
            let mut reader = BufReader::new(stderr);
            while let Ok(n) = reader.read_line(&mut text) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_str(&text);
                text.clear();
            }
        });
        let mut workload = Workload {
            child,
            name: name.to_owned(),
            lines,
            stderr: captured,
            startup_lines: Vec::new(),
        };
        workload.startup_lines = workload.wait_for_line("READY");
        workload
    }

    /// What it printed on stdout before READY.
    pub fn startup_lines(&self) -> &[String] {
        &self.startup_lines
    }

    /// Waits for a stdout line equal to `expected` after READY (a workload's next phase).
    pub fn wait_for(&mut self, expected: &str) -> Vec<String> {
        self.wait_for_line(expected)
    }

    /// Waits for a stdout line equal to `expected`, returning the lines seen before it.
    fn wait_for_line(&mut self, expected: &str) -> Vec<String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.trim() == expected => return before,
                Ok(line) => before.push(line),
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{} printed no {expected} within {READY_TIMEOUT:?}; stdout so far: {before:?}; stderr: {}",
                    self.name,
                    self.stderr()
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{} closed stdout before {expected} (exit: {:?}); stdout: {before:?}; stderr: {}",
                    self.name,
                    self.child.try_wait(),
                    self.stderr()
                ),
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The PID as a command-line argument.
    pub fn pid_arg(&self) -> String {
        self.pid().to_string()
    }

    /// What the workload wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// SIGKILL and reap, so the PID disappears from /proc at once (no zombie).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How a `leak-monitor` invocation ended.
pub struct Outcome {
    /// None when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A `leak-monitor` process whose output goes to files in its own temp dir (a daemon may
/// print more than a pipe holds). Killed and reaped on drop if still running.
pub struct LeakMonitor {
    child: Child,
    logs: TempDir,
}

impl LeakMonitor {
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> LeakMonitor {
        let mut command = Command::new(env!("CARGO_BIN_EXE_leak-monitor"));
        command.args(args);
        LeakMonitor::spawn_command(&mut command)
    }

    /// Runs `command`, a wrapper that execs the binary (e.g. `unshare`), the same way.
    pub fn spawn_command(command: &mut Command) -> LeakMonitor {
        let logs = tempfile::tempdir().expect("temp dir for leak-monitor output");
        let stdout = File::create(logs.path().join("stdout")).expect("stdout file");
        let stderr = File::create(logs.path().join("stderr")).expect("stderr file");
        command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        let child = die_with_parent(command)
            .spawn()
            .expect("cannot start leak-monitor");
        LeakMonitor { child, logs }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for it to exit on its own.
    pub fn finish(mut self) -> Outcome {
        let status = self.child.wait().expect("wait for leak-monitor");
        Outcome {
            code: status.code(),
            stdout: self.read_log("stdout"),
            stderr: self.read_log("stderr"),
        }
    }

    /// Whether it has exited, without waiting.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// What it printed so far, for failure messages.
    pub fn output_so_far(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.read_log("stdout"),
            self.read_log("stderr")
        )
    }

    fn read_log(&self, name: &str) -> String {
        fs::read_to_string(self.logs.path().join(name)).unwrap_or_default()
    }
}

impl Drop for LeakMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `leak-monitor ARGS...` to completion.
pub fn leak_monitor<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Outcome {
    LeakMonitor::spawn(args).finish()
}

/// `run --pid PID --duration SECONDS --interval MS --json DIR/report.json` plus `extra`,
/// returning the outcome and the parsed report. Panics if no report was written.
pub fn run_json_report(
    pid: u32,
    seconds: u32,
    interval_ms: u32,
    extra: &[&str],
) -> (Outcome, Value) {
    let dir = tempfile::tempdir().expect("temp dir for the report");
    let json = dir.path().join("report.json");
    let mut args = vec![
        "run".to_owned(),
        "--pid".to_owned(),
        pid.to_string(),
        "--duration".to_owned(),
        seconds.to_string(),
        "--interval".to_owned(),
        interval_ms.to_string(),
        "--json".to_owned(),
        json.display().to_string(),
    ];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let outcome = leak_monitor(&args);
    assert!(json.exists(), "no JSON report written\n{outcome}");
    let report = read_json(&json);
    (outcome, report)
}

/// `run_json_report` ended by samples, not by wall time (`run_until_samples`).
pub fn run_json_report_samples(
    pid: u32,
    samples: u32,
    interval_ms: u32,
    extra: &[&str],
) -> (Outcome, Value) {
    let dir = tempfile::tempdir().expect("temp dir for the report");
    let json = dir.path().join("report.json");
    let mut args = vec![
        "--pid".to_owned(),
        pid.to_string(),
        "--interval".to_owned(),
        interval_ms.to_string(),
        "--json".to_owned(),
        json.display().to_string(),
    ];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let outcome = run_until_samples(&args, &[pid], samples, interval_ms);
    assert!(json.exists(), "no JSON report written\n{outcome}");
    let report = read_json(&json);
    (outcome, report)
}

/// `leak-monitor run ARGS...` (its targets `pids`, sampled every `interval_ms`) ended by
/// samples, not by wall time: the run records what it samples and is stopped (SIGINT, after
/// which it writes its reports) once it has taken `samples` of each target, so a loaded
/// machine whose ticks come late gives the detectors the same evidence later instead of less
/// of it. Its `--duration` is only a bound (4x the nominal time plus a minute); a run that ends
/// first (its targets exited) reports as it is.
pub fn run_until_samples(args: &[String], pids: &[u32], samples: u32, interval_ms: u32) -> Outcome {
    let binary = Command::new(env!("CARGO_BIN_EXE_leak-monitor"));
    run_until_samples_with(binary, args, pids, samples, interval_ms)
}

/// `run_until_samples` through `command`, a wrapper that execs the binary (e.g. `setpriv`); the
/// recording's directory is writable by anyone, for a wrapper that drops privileges.
pub fn run_until_samples_with(
    mut command: Command,
    args: &[String],
    pids: &[u32],
    samples: u32,
    interval_ms: u32,
) -> Outcome {
    let dir = tempfile::tempdir().expect("temp dir for the recording");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod 777");
    let recording = dir.path().join("run.lmrec");
    let nominal = Duration::from_millis(u64::from(samples) * u64::from(interval_ms));
    let bound = nominal * 4 + Duration::from_secs(60);
    let mut all = vec![
        "run".to_owned(),
        "--duration".to_owned(),
        bound.as_secs().to_string(),
        "--record".to_owned(),
        recording.display().to_string(),
    ];
    all.extend(args.iter().cloned());
    let mut monitor = LeakMonitor::spawn_command(command.args(&all));
    let ended = wait_until(bound, &format!("{samples} samples"), || {
        if monitor.has_exited() {
            return Some(true);
        }
        let text = fs::read_to_string(&recording).unwrap_or_default();
        let taken = |pid: &u32| {
            let prefix = format!(r#"{{"kind":"sample","pid":{pid},"#);
            text.lines().filter(|l| l.starts_with(&prefix)).count() as u32
        };
        pids.iter()
            .all(|pid| taken(pid) >= samples)
            .then_some(false)
    });
    if !ended {
        // SAFETY: kill(2) on a child this test started and has not reaped.
        let sent = unsafe { libc::kill(monitor.pid() as libc::pid_t, libc::SIGINT) };
        assert_eq!(sent, 0, "SIGINT to leak-monitor");
    }
    let outcome = monitor.finish();
    keep_recording(&recording);
    outcome
}

/// Copies a run's recording under the target directory and says where (a failing test's
/// output is shown), so a verdict that failed in CI can be replayed offline.
fn keep_recording(recording: &Path) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("recordings");
    let test = thread::current()
        .name()
        .unwrap_or("unnamed")
        .replace("::", "-");
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let kept = dir.join(format!("{test}-{}-{run}.lmrec", std::process::id()));
    match fs::create_dir_all(&dir).and_then(|()| fs::copy(recording, &kept)) {
        Ok(_) => eprintln!("recording kept at {}", kept.display()),
        Err(err) => eprintln!("recording not kept ({}): {err}", kept.display()),
    }
}

/// The samples `run` takes in `seconds` at one per `interval_ms`: one at attach, then one per
/// interval.
pub fn samples_in(seconds: u32, interval_ms: u32) -> u32 {
    seconds * 1000 / interval_ms + 1
}

pub fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("{} is not JSON ({err}):\n{text}", path.display()))
}

/// The entry of `resources` for `name` (`rss_bytes`, `open_fds`, `sockets`, `threads`).
pub fn resource<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["resources"]
        .as_array()
        .and_then(|resources| resources.iter().find(|r| r["resource"] == name))
        .unwrap_or_else(|| panic!("report has no resource {name}:\n{report:#}"))
}

/// A free TCP port on 127.0.0.1 (free when asked; the OS does not hand it out again at once).
pub fn free_local_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind an ephemeral port")
}

/// A plain HTTP/1.0 GET (the server closes after the response, so reading to EOF frames it).
/// Returns the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no end of headers"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no status code"))?;
    Ok((status, body.to_owned()))
}

/// Polls `probe` every 200 ms until it returns Some, or panics after `timeout` saying what
/// was awaited. A liveness bound for slow machines, not a timing assertion.
pub fn wait_until<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Whether the PID is gone or only a zombie waiting for its parent to reap it.
pub fn process_ended(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// Pipes a scrape through `promtool check metrics`; returns (success, everything it printed).
pub fn promtool_check_metrics(scrape: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| {
            panic!("cannot run promtool ({err}); install it with `apt-get install -y prometheus`")
        });
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(scrape.as_bytes())
        .expect("write the scrape to promtool");
    let output = child.wait_with_output().expect("wait for promtool");
    let mut printed = String::from_utf8_lossy(&output.stdout).into_owned();
    printed.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), printed)
}

/// How long `serve` may take to answer /healthz on a loaded machine.
const SERVE_STARTUP: Duration = Duration::from_secs(30);

/// Starts `leak-monitor serve --listen <a free port> EXTRA...` and waits until /healthz answers.
pub fn serve(extra: &[&str]) -> (LeakMonitor, SocketAddr) {
    let addr = free_local_addr();
    let mut args = vec!["serve".to_owned(), "--listen".to_owned(), addr.to_string()];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let mut daemon = LeakMonitor::spawn(&args);
    wait_until(SERVE_STARTUP, "/healthz to answer 200", || {
        assert!(
            !daemon.has_exited(),
            "serve exited:\n{}",
            daemon.output_so_far()
        );
        matches!(http_get(addr, "/healthz"), Ok((200, _))).then_some(())
    });
    (daemon, addr)
}

/// `serve --match PATTERN --interval 500 --report-dir DIR` into a temp dir of its own.
pub fn serve_matching(pattern: &str) -> (LeakMonitor, SocketAddr, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir_arg = dir.path().to_str().expect("utf-8 temp dir");
    let (daemon, addr) = serve(&[
        "--match",
        pattern,
        "--interval",
        "500",
        "--report-dir",
        dir_arg,
    ]);
    (daemon, addr, dir)
}

/// gunicorn + Flask (`tests/python/flask_pool_app.py`) with 2 sync workers recycled after 300
/// requests, the app preloaded in the master (as in production: a worker's growth is then its
/// requests', not its imports'), followed by `serve_matching` and under steady load from the
/// test. Dropped: the load stops, then the daemon, then gunicorn.
pub struct GunicornPool {
    _load: Load,
    pub daemon: LeakMonitor,
    /// The daemon's reports.
    pub dir: TempDir,
    pub gunicorn: Workload,
    /// Where the daemon listens.
    pub addr: SocketAddr,
}

impl GunicornPool {
    /// Keeps `leak_bytes` per request; `pattern` is the daemon's `--match`, from gunicorn's
    /// address.
    pub fn start(leak_bytes: u32, pattern: impl FnOnce(SocketAddr) -> String) -> GunicornPool {
        let app = free_local_addr();
        let dir = python_script("flask_pool_app.py")
            .parent()
            .expect("tests/python")
            .to_path_buf();
        let mut command = Command::new("python3");
        command
            .args(["-m", "gunicorn", "--preload", "--workers", "2"])
            .args(["--max-requests", "300", "--bind", &app.to_string()])
            .args(["--config", "python:flask_pool_gunicorn", "--chdir"])
            .arg(&dir)
            .arg("flask_pool_app:app")
            .env("LEAK_BYTES", leak_bytes.to_string())
            .env("PYTHONPATH", &dir);
        let gunicorn = Workload::spawn("gunicorn", command);
        let (daemon, addr, dir) = serve_matching(&pattern(app));
        GunicornPool {
            _load: Load::start(app),
            daemon,
            dir,
            gunicorn,
            addr,
        }
    }
}

/// Sends GET / to `addr` about 150 times a second until dropped; errors (a worker being
/// replaced) are retried by the next request.
struct Load(Arc<AtomicBool>);

impl Load {
    fn start(addr: SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let _ = http_get(addr, "/");
                thread::sleep(Duration::from_micros(6_600));
            }
        });
        Load(stop)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// `replay RECORDING --json` gives the JSON report at `report`, byte for byte.
pub fn assert_replay_gives(recording: &Path, report: &Path) {
    let dir = tempfile::tempdir().expect("temp dir for the replay");
    let replayed = dir.path().join("replayed.json");
    let outcome = leak_monitor(&[
        "replay",
        recording.to_str().expect("utf-8 path"),
        "--json",
        replayed.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    assert_eq!(
        fs::read_to_string(&replayed).expect("the replayed report"),
        fs::read_to_string(report).expect("the live report"),
        "the replay of {} differs from {}",
        recording.display(),
        report.display()
    );
}

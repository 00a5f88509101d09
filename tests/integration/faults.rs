//! The monitor's own reliability under faults, with real processes: a followed process replaced
//! by a new one (also under the very same PID), targets that fork and exec, a target it may not
//! read, a non-Python target, a target with 50k open fds, an fd and page-fault storm against the
//! ring buffer, 50 concurrent scrapes, and malformed flags. What `cli` covers already (missing
//! PID, a target exiting mid-run) is not repeated.

use crate::scrape::{self, Series};
use crate::support::{
    cpu_heavy_slot, http_get, leak_monitor, promtool_check_metrics, read_json, resource,
    run_json_report, run_json_report_samples, samples_in, serve, wait_until, LeakMonitor, Workload,
};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::Duration;

const SETTLE: Duration = Duration::from_secs(60);

/// `python3 -c CODE MARKER`: an inline workload whose command line carries `marker`.
fn inline_python(name: &str, code: &str, marker: &str) -> Workload {
    let mut command = Command::new("python3");
    command.args(["-c", code, marker]);
    Workload::spawn(name, command)
}

/// A marker no other test's process has (the escaped dot keeps `--match` from matching the
/// daemon's own command line, which holds the pattern with a backslash).
fn marker(test: &str) -> (String, String) {
    let marker = format!("faults.{test}.{}", std::process::id());
    let pattern = marker.replace('.', r"\.");
    (marker, pattern)
}

fn scrape(addr: SocketAddr) -> Vec<Series> {
    let (status, body) = http_get(addr, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    scrape::parse(&body)
}

fn threads_series_of(series: &[Series], pid: u32) -> Option<&Series> {
    scrape::find(series, "leak_monitor_threads", &[("pid", &pid.to_string())])
        .into_iter()
        .next()
}

fn procfs_fds(pid: u32) -> i64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as i64)
        .unwrap_or(-1)
}

/// The `ledgers` object of a report, which must be there (eBPF on, as root).
fn ledgers(report: &Value) -> &Value {
    let ledgers = &report["ledgers"];
    assert!(
        ledgers.is_object(),
        "no eBPF ledgers in the report (tests run as root):\n{report:#}"
    );
    ledgers
}

const IDLE: &str = "import time\nprint('READY', flush=True)\nwhile True: time.sleep(1)";

#[test]
fn a_matching_process_that_replaces_an_ended_one_is_a_new_target() {
    let (marker, pattern) = marker("replaced");
    let (daemon, addr) = serve(&["--match", &format!("grp={pattern}"), "--interval", "500"]);
    let mut old = inline_python("old idle", IDLE, &marker);
    let old_pid = old.pid();
    wait_until(SETTLE, "the first process to be followed", || {
        threads_series_of(&scrape(addr), old_pid).map(|_| ())
    });
    old.kill();
    let new = inline_python("new idle", IDLE, &marker);
    let new_pid = new.pid();
    let series = wait_until(SETTLE, "the new process in, the old one out", || {
        let series = scrape(addr);
        let swapped = threads_series_of(&series, new_pid).is_some()
            && threads_series_of(&series, old_pid).is_none();
        swapped.then_some(series)
    });
    let label = threads_series_of(&series, new_pid).and_then(|s| s.label("target"));
    assert_eq!(label, Some("grp"));
    let targets = scrape::find(&series, "leak_monitor_targets", &[]);
    assert_eq!(targets[0].value, 1.0, "only the new process is followed");
    let log = daemon.output_so_far();
    assert!(
        log.contains(&format!("pid {old_pid} exited; its series are dropped")),
        "{log}"
    );
    assert!(log.contains(&format!("following pid {new_pid}")), "{log}");
}

/// Makes the kernel hand out `pid` to the next process (root: ns_last_pid), then starts it.
/// Returns None when another process took the PID first.
fn spawn_with_pid(pid: u32, name: &str, code: &str, marker: &str) -> Option<Workload> {
    std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
        .expect("write ns_last_pid (needs root)");
    let workload = inline_python(name, code, marker);
    (workload.pid() == pid).then_some(workload)
}

/// Leaks 20 fds/s after READY.
const FD_LEAK: &str = "import time\nprint('READY', flush=True)\nkeep=[]\n\
while True:\n    keep.append(open('/dev/null'))\n    time.sleep(0.05)";

#[test]
fn a_reused_pid_is_a_new_target_with_its_own_ledgers() {
    let (marker, pattern) = marker("reused");
    let reports = tempfile::tempdir().expect("report dir");
    let report_dir = reports.path().to_str().expect("UTF-8 path");
    // Ticks longer than the daemon's 2 s rediscovery period: every tick discovers, so the tick
    // that sees the old target gone is also the one that finds the new process under its PID
    // (the order in which a lost kernel ledger was once the result).
    let (daemon, addr) = serve(&[
        "--match",
        &format!("reuse={pattern}"),
        "--interval",
        "2500",
        "--report-dir",
        report_dir,
    ]);
    let mut new = None;
    for _attempt in 0..20 {
        let mut old = inline_python("old idle", IDLE, &marker);
        let pid = old.pid();
        wait_until(SETTLE, "the first process to be followed", || {
            threads_series_of(&scrape(addr), pid).map(|_| ())
        });
        old.kill();
        new = spawn_with_pid(pid, "fd leak on a reused pid", FD_LEAK, &marker);
        if new.is_some() {
            break;
        }
    }
    let new = new.expect("the kernel never handed out the same PID again in 20 tries");
    let pid = new.pid();
    let start_ticks = start_ticks(pid);
    // The leak report of the new process proves it was followed as a target of its own, with
    // its own eBPF ledger (the old target's end must not unfollow it in the kernel).
    let report = wait_until(
        Duration::from_secs(150),
        "a leak report for the new process",
        || {
            std::fs::read_dir(reports.path())
                .expect("read report dir")
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .map(|e| read_json(&e.path()))
                .find(|r| r["target"]["pid"].as_u64() == Some(u64::from(pid)))
        },
    );
    let procfs = procfs_fds(pid);
    assert_eq!(
        start_ticks,
        self::start_ticks(pid),
        "still the same process"
    );
    let ledgers = ledgers(&report);
    let fds = ledgers["fds"].as_i64().expect("ledger fds");
    // The report is a few ticks old by now: at 20 fds/s it lags procfs, never leads it.
    assert!(
        fds > 40 && fds <= procfs,
        "ledger {fds} fds vs procfs {procfs}:\n{report:#}\n{}",
        daemon.output_so_far()
    );
    assert_eq!(resource(&report, "open_fds")["verdict"], "leak");
}

fn start_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = stat.rsplit_once(')').expect("comm").1;
    rest.split_whitespace()
        .nth(19)
        .and_then(|f| f.parse().ok())
        .expect("starttime")
}

/// Forks every 0.5 s; the child execs a short-lived Python, the parent leaks fds meanwhile.
const FORK_EXEC: &str = r#"
import os, sys, time
print('READY', flush=True)
keep = []
for round in range(1000):
    pid = os.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(0.3)'])
    keep.append(open('/dev/null'))
    time.sleep(0.5)
    os.waitpid(pid, 0)
"#;

#[test]
fn a_target_that_forks_children_which_exec_is_followed_to_the_end() {
    let (marker, _) = marker("forkexec");
    let workload = inline_python("fork and exec", FORK_EXEC, &marker);
    let (outcome, report) = run_json_report(workload.pid(), 10, 500, &[]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    assert_eq!(
        report["target"]["pid"].as_u64(),
        Some(u64::from(workload.pid()))
    );
    let fds = resource(&report, "open_fds");
    assert!(
        fds["last"].as_f64() > fds["first"].as_f64(),
        "the parent's fds grew: {fds}"
    );
    let ledger_fds = ledgers(&report)["fds"].as_i64().expect("fds");
    let procfs = procfs_fds(workload.pid());
    // The children are other processes: the parent's ledger counts only its own fds.
    assert!(
        (ledger_fds - procfs).abs() <= 3,
        "ledger {ledger_fds} vs procfs {procfs}: {:#}",
        report["ledgers"]
    );
}

/// Opens 40 fds (close-on-exec, Python's default), then execs itself into another program that
/// opens 5 and idles: the ledger must drop the 40 that exec closed without a close(2).
const EXEC_SELF: &str = r#"
import os, sys, time
print('READY', flush=True)
keep = [open('/dev/null') for _ in range(40)]
time.sleep(3)
after = "import time\nkeep = [open('/dev/null') for _ in range(5)]\nwhile True: time.sleep(1)"
os.execv(sys.executable, [sys.executable, '-c', after, sys.argv[1] + '.exec'])
"#;

#[test]
fn a_target_that_execs_itself_into_another_program_is_resynced() {
    let (marker, _) = marker("execself");
    let workload = inline_python("exec itself", EXEC_SELF, &marker);
    let (outcome, report) = run_json_report(workload.pid(), 8, 500, &[]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    let cmdline =
        std::fs::read_to_string(format!("/proc/{}/cmdline", workload.pid())).expect("cmdline");
    assert!(
        cmdline.contains(".exec"),
        "the target did exec: {cmdline:?}"
    );
    let fds = resource(&report, "open_fds");
    let procfs = procfs_fds(workload.pid());
    assert_eq!(fds["last"].as_f64(), Some(procfs as f64), "{fds}");
    let ledger_fds = ledgers(&report)["fds"].as_i64().expect("fds");
    assert!(
        (ledger_fds - procfs).abs() <= 2,
        "after exec the ledger has {ledger_fds} fds, procfs {procfs}: {:#}",
        report["ledgers"]
    );
}

#[test]
fn a_process_it_may_not_read_is_exit_2_with_what_to_do() {
    let (marker, _) = marker("denied");
    // Root's process; the monitor runs as nobody with no capabilities.
    let workload = inline_python("root idle", IDLE, &marker);
    let output = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
            env!("CARGO_BIN_EXE_leak-monitor"),
            "run",
            "--pid",
            &workload.pid_arg(),
            "--duration",
            "2",
        ])
        .output()
        .expect("setpriv");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let message = stderr.trim();
    assert_eq!(message.lines().count(), 1, "one line: {stderr}");
    assert!(
        message.contains("not permitted")
            && message.contains(&workload.pid_arg())
            && message.contains("as root"),
        "says what to do: {message}"
    );
}

#[test]
fn a_non_python_target_gets_procfs_verdicts_and_a_note() {
    let mut command = Command::new("bash");
    command.args([
        "-c",
        "echo READY; exec 3</dev/null; while sleep 0.05; do exec {fd}</dev/null; done",
    ]);
    let workload = Workload::spawn("bash fd leak", command);
    let samples = samples_in(30, 1000);
    let (outcome, report) = run_json_report_samples(workload.pid(), samples, 1000, &[]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    let capabilities = &report["capabilities"];
    assert_eq!(capabilities["python_stacks"], false, "{capabilities}");
    assert!(report["target"]["python_version"].is_null(), "{report:#}");
    assert!(
        capabilities["notes"]
            .to_string()
            .contains("not a Python process"),
        "{capabilities}"
    );
    let fds = resource(&report, "open_fds");
    assert_eq!(fds["verdict"], "leak", "{fds}");
}

/// Raises its fd limit and opens 50,000 fds, then idles. Without CAP_SYS_RESOURCE the hard
/// limit cannot be raised (a container may cap it at 20,000): then it opens as many as the hard
/// limit allows, keeping 100 spare. Prints the count before READY.
const FIFTY_K_FDS: &str = r#"
import os, resource, time
wanted = 50000
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted + 1000, wanted + 1000))
except (ValueError, OSError):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    wanted = min(wanted, hard - 100)
keep = [os.open('/dev/null', os.O_RDONLY) for _ in range(wanted)]
print(len(os.listdir('/proc/self/fd')), flush=True)
print('READY', flush=True)
while True: time.sleep(1)
"#;

#[test]
fn a_target_with_50k_open_fds_is_sampled_at_a_sane_cost() {
    let (marker, _) = marker("fiftyk");
    let workload = inline_python("50k fds", FIFTY_K_FDS, &marker);
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("report.json");
    // bash's `times` gives the CPU time of the monitor alone.
    let script = format!(
        "{} run --pid {} --duration 10 --json {}; code=$?; times; exit $code",
        env!("CARGO_BIN_EXE_leak-monitor"),
        workload.pid(),
        json.display()
    );
    let output = Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = read_json(&json);
    let fds = resource(&report, "open_fds");
    let last = fds["last"].as_f64().expect("last");
    let opened: f64 = workload.startup_lines()[0].parse().expect("fd count");
    assert!(opened >= 19_000.0, "too few fds for the test: {opened}");
    assert!((last - opened).abs() <= 2.0, "{fds} vs {opened} open");
    let samples = report["observation"]["samples"].as_f64().expect("samples");
    assert!(samples >= 5.0, "{report:#}");
    let cpu = children_cpu_seconds(&stdout);
    println!(
        "{opened} fds: {samples} samples, monitor CPU {cpu:.2} s in all, {:.1} ms per tick",
        1000.0 * cpu / samples
    );
}

/// The second line of bash's `times`: the children's user and system time, `0m1.234s 0m0.5s`.
fn children_cpu_seconds(times: &str) -> f64 {
    let line = times.lines().last().unwrap_or_default();
    line.split_whitespace()
        .filter_map(|t| {
            let (m, s) = t.strip_suffix('s')?.split_once('m')?;
            Some(m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
        })
        .sum()
}

/// On SIGUSR1, four threads open and close as fast as they can and one touches fresh pages,
/// for 8 s; then the process keeps 10 extra fds, prints CALM and idles, so the ledgers can be
/// compared with procfs.
const STORM: &str = r#"
import mmap, os, signal, threading, time
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
print('READY', flush=True)
signal.sigwait({signal.SIGUSR1})
stop = time.monotonic() + 8
def fds():
    while time.monotonic() < stop:
        for _ in range(1000):
            os.close(os.open('/dev/null', os.O_RDONLY))
def pages():
    while time.monotonic() < stop:
        m = mmap.mmap(-1, 16 << 20)
        for off in range(0, 16 << 20, 4096):
            m[off] = 1
        m.close()
workers = [threading.Thread(target=fds) for _ in range(4)] + [threading.Thread(target=pages)]
for w in workers: w.start()
for w in workers: w.join()
keep = [open('/dev/null') for _ in range(10)]
print('CALM', flush=True)
while True: time.sleep(1)
"#;

#[test]
fn an_fd_and_page_storm_is_survived_with_drops_counted_and_ledgers_resynced() {
    let _slot = cpu_heavy_slot();
    let (marker, _) = marker("storm");
    let mut workload = inline_python("fd storm", STORM, &marker);
    let pid = workload.pid_arg();
    let (mut daemon, addr) = serve(&["--pid", &pid, "--interval", "500"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("report.json");
    let mut run = LeakMonitor::spawn(&[
        "run",
        "--pid",
        &pid,
        "--duration",
        "16",
        "--interval",
        "500",
        "--json",
        json.to_str().expect("UTF-8 path"),
    ]);
    // The run attaches within its first tick (a root run with every capability on prints no
    // notes to wait for).
    std::thread::sleep(Duration::from_secs(3));
    assert!(!run.has_exited(), "{}", run.output_so_far());
    let before = scrape(addr);
    // SAFETY: kill(2) on the workload's own PID, which this test holds (not yet reaped).
    assert_eq!(
        unsafe { libc::kill(workload.pid() as i32, libc::SIGUSR1) },
        0
    );
    workload.wait_for("CALM");
    let outcome = run.finish();
    assert_eq!(outcome.code, Some(0), "{outcome}");
    assert!(!daemon.has_exited(), "{}", daemon.output_so_far());
    // One more tick for the daemon's counters.
    std::thread::sleep(Duration::from_secs(1));
    let after = scrape(addr);
    let sum = |series: &[Series], name: &str| -> f64 {
        scrape::find(series, name, &[])
            .iter()
            .map(|s| s.value)
            .sum()
    };
    let received =
        sum(&after, "leak_monitor_events_total") - sum(&before, "leak_monitor_events_total");
    // The fd churn is mostly paired in the kernel: counted there, not sent.
    let paired = sum(&after, "leak_monitor_fd_pairing_total")
        - sum(&before, "leak_monitor_fd_pairing_total");
    let dropped = sum(&after, "leak_monitor_events_dropped_total");
    println!(
        "fd storm: serve received {received} events in the storm ({paired} pairing counts), \
         dropped {dropped} in all"
    );
    assert!(
        received + paired > 50_000.0,
        "the storm made events or paired fds: {received} + {paired}"
    );
    let procfs = procfs_fds(workload.pid());
    let report = read_json(&json);
    // The run's own losses, per kind (its ring buffer is not the daemon's).
    let run_dropped = &report["observation"]["dropped_events"];
    assert!(run_dropped["fd_open"].is_u64(), "{report:#}");
    let ledger_fds = ledgers(&report)["fds"].as_i64().expect("fds");
    assert!(
        (ledger_fds - procfs).abs() <= 2,
        "after the storm the ledger has {ledger_fds} fds, procfs {procfs}: {:#}",
        report["ledgers"]
    );
}

#[test]
fn fifty_clients_scraping_at_once_all_get_a_valid_scrape() {
    let (marker, _) = marker("scrapers");
    let workload = inline_python("idle", IDLE, &marker);
    let pid = workload.pid_arg();
    let (_daemon, addr) = serve(&["--pid", &pid, "--interval", "500"]);
    wait_until(SETTLE, "the target's series", || {
        threads_series_of(&scrape(addr), workload.pid()).map(|_| ())
    });
    let barrier = Arc::new(Barrier::new(50));
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                http_get(addr, "/metrics")
            })
        })
        .collect();
    let bodies: Vec<String> = clients
        .into_iter()
        .map(|client| {
            let (status, body) = client.join().expect("client thread").expect("GET");
            assert_eq!(status, 200, "{body}");
            assert!(
                !scrape::find(&scrape::parse(&body), "leak_monitor_targets", &[]).is_empty(),
                "{body}"
            );
            body
        })
        .collect();
    assert_eq!(bodies.len(), 50);
    let (ok, complaints) = promtool_check_metrics(&bodies[49]);
    assert!(
        ok && complaints.trim().is_empty(),
        "promtool: {complaints}\n{}",
        bodies[49]
    );
}

#[test]
fn malformed_flags_exit_2_with_one_line_on_stderr() {
    // `cli::bad_arguments_exit_2` checks the codes of the `run` cases; here every verb's
    // malformed flags, and that the message is one line.
    let cases: &[&[&str]] = &[
        &["run", "--pid", "1", "--duration", "5", "--interval", "0"],
        &["run", "--pid", "1", "--duration", "-1"],
        &["run", "--pid", "1", "--duration", "5", "--bogus"],
        &["serve", "--pid", "1", "--interval", "0"],
        &["serve", "--pid", "1", "--listen", "notanaddr"],
        &["serve", "--pid", "1", "--listen", "127.0.0.1"],
        &["serve", "--bogus"],
        &["watch", "--pid", "1", "--interval", "0"],
        &["watch", "--pid", "x"],
        &["frobnicate"],
    ];
    for args in cases {
        let outcome = leak_monitor(args);
        assert_eq!(outcome.code, Some(2), "{args:?}: {outcome}");
        let message = outcome.stderr.trim();
        assert!(!message.is_empty(), "{args:?}: {outcome}");
        assert_eq!(message.lines().count(), 1, "{args:?}: {outcome}");
    }
}

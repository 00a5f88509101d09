//! The HTTP endpoint of `serve` under abuse: fd exhaustion (under prlimit, and with the limit
//! lowered under a running daemon), and thousands of connections that send half a request or
//! nothing. After each, `/metrics` must answer again, the target's series must still be there,
//! and the daemon's memory must come back near where it was.

use crate::support::{
    free_local_addr, http_get, serve, wait_until, LeakMonitor, Outcome, Workload,
};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

/// A liveness bound on a loaded 2-core machine, not a timing.
const ANSWERS_WITHIN: Duration = Duration::from_secs(30);

const IDLE: &str = "import time\nprint('READY', flush=True)\nwhile True: time.sleep(1)";

fn idle_python() -> Workload {
    let mut command = Command::new("python3");
    command.args(["-c", IDLE, "abuse.endpoint"]);
    Workload::spawn("idle", command)
}

/// Starts `prlimit --nofile=N:N leak-monitor serve --listen ADDR EXTRA...` and waits for /healthz.
fn serve_with_fd_limit(limit: u32, extra: &[&str]) -> (LeakMonitor, SocketAddr) {
    let addr = free_local_addr();
    let mut command = Command::new("prlimit");
    command
        .arg(format!("--nofile={limit}:{limit}"))
        .arg(env!("CARGO_BIN_EXE_leak-monitor"))
        .args(["serve", "--listen", &addr.to_string()])
        .args(extra);
    let mut daemon = LeakMonitor::spawn_command(&mut command);
    wait_until(ANSWERS_WITHIN, "/healthz to answer 200", || {
        assert!(
            !daemon.has_exited(),
            "serve exited:\n{}",
            daemon.output_so_far()
        );
        matches!(http_get(addr, "/healthz"), Ok((200, _))).then_some(())
    });
    (daemon, addr)
}

/// Waits until /metrics answers 200 with the target's threads series; panics (with the daemon's
/// output) if the daemon exits or the deadline passes.
fn assert_metrics_answer_with_target(daemon: &mut LeakMonitor, addr: SocketAddr, pid: u32) {
    let series = format!("leak_monitor_threads{{target=\"python3\",pid=\"{pid}\"}}");
    let deadline = Instant::now() + ANSWERS_WITHIN;
    loop {
        assert!(
            !daemon.has_exited(),
            "the daemon exited:\n{}",
            daemon.output_so_far()
        );
        let last = match http_get(addr, "/metrics") {
            Ok((200, body)) if body.contains(&series) => break,
            other => format!("{other:?}"),
        };
        assert!(
            Instant::now() < deadline,
            "/metrics did not answer with {series} within {ANSWERS_WITHIN:?}; last: {last}\n{}",
            daemon.output_so_far()
        );
        thread::sleep(Duration::from_millis(200));
    }
    assert!(
        matches!(http_get(addr, "/healthz"), Ok((200, _))),
        "/healthz does not answer"
    );
}

/// Opens `n` connections (those the kernel refuses or times out are skipped) and holds them.
fn open_connections(addr: SocketAddr, n: usize, send: &[u8]) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok())
        .filter_map(|mut stream| stream.write_all(send).ok().map(|()| stream))
        .collect()
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count())
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// Stops the daemon with SIGTERM and returns how it ended.
fn terminate(daemon: LeakMonitor) -> Outcome {
    let pid = daemon.pid();
    // SAFETY: kill(2) on the PID of a child this test started and has not reaped.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    daemon.finish()
}

#[test]
fn out_of_fds_under_prlimit_the_endpoint_keeps_answering() {
    let workload = idle_python();
    let pid = workload.pid_arg();
    let (mut daemon, addr) = serve_with_fd_limit(64, &["--pid", &pid, "--interval", "500"]);
    assert_metrics_answer_with_target(&mut daemon, addr, workload.pid());
    for _ in 0..3 {
        let held = open_connections(addr, 50, b"");
        thread::sleep(Duration::from_millis(500));
        drop(held);
    }
    assert_metrics_answer_with_target(&mut daemon, addr, workload.pid());
    let outcome = terminate(daemon);
    assert_eq!(outcome.code, Some(0), "{outcome}");
}

#[test]
fn accept_errors_out_of_fds_are_logged_backed_off_and_survived() {
    let workload = idle_python();
    let pid = workload.pid_arg();
    let (mut daemon, addr) = serve(&["--pid", &pid, "--interval", "500"]);
    assert_metrics_answer_with_target(&mut daemon, addr, workload.pid());
    // Leave the running daemon two spare fds: whatever its connection cap, accept(2) runs out.
    let limit = fd_count(daemon.pid()) + 2;
    let status = Command::new("prlimit")
        .args(["--pid", &daemon.pid().to_string()])
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .expect("run prlimit");
    assert!(status.success(), "prlimit --pid failed");
    let held = open_connections(addr, 50, b"");
    wait_until(ANSWERS_WITHIN, "the accept error in the log", || {
        daemon
            .output_so_far()
            .contains("Too many open files")
            .then_some(())
    });
    drop(held);
    assert_metrics_answer_with_target(&mut daemon, addr, workload.pid());
    let outcome = terminate(daemon);
    assert_eq!(outcome.code, Some(0), "{outcome}");
}

/// Raises this test process's soft fd limit to its hard limit (3000 client sockets).
fn raise_own_fd_limit(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit this frame owns.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(
        limit.rlim_cur >= needed,
        "the hard fd limit {} is below the {needed} this test needs",
        limit.rlim_max
    );
}

/// Whether the server has closed `stream` (EOF or reset); false while it is still open.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // A 408 or 400 before the close is fine: keep reading to the end.
            Ok(_) => continue,
            Err(err) if err.kind() == ErrorKind::WouldBlock => return false,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

#[test]
fn slowloris_and_idle_connections_are_closed_and_memory_comes_back() {
    raise_own_fd_limit(4000);
    let workload = idle_python();
    let pid = workload.pid_arg();
    let (mut daemon, addr) = serve(&["--pid", &pid, "--interval", "500"]);
    assert_metrics_answer_with_target(&mut daemon, addr, workload.pid());
    // The baseline after the daemon has served a few scrapes and settled.
    for _ in 0..5 {
        let _ = http_get(addr, "/metrics");
    }
    thread::sleep(Duration::from_secs(3));
    let baseline = rss_kib(daemon.pid());

    // Half of them send half a request, the other half nothing at all.
    let mut held = open_connections(addr, 1500, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    held.extend(open_connections(addr, 1500, b""));
    assert!(
        held.len() >= 2500,
        "only {} of 3000 connections were made",
        held.len()
    );
    for stream in &held {
        stream.set_nonblocking(true).expect("non-blocking socket");
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        held.retain_mut(|stream| !closed_by_server(stream));
        if held.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} slow connections still open after 90 s\n{}",
            held.len(),
            daemon.output_so_far()
        );
        thread::sleep(Duration::from_millis(500));
    }

    assert_metrics_answer_with_target(&mut daemon, addr, workload.pid());
    // Memory given back: within 10 % of the baseline.
    let allowed = baseline + baseline / 10;
    let deadline = Instant::now() + ANSWERS_WITHIN;
    loop {
        let now = rss_kib(daemon.pid());
        if now <= allowed {
            eprintln!("daemon RSS: baseline {baseline} KiB, after the attack {now} KiB");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon's RSS is {now} KiB after the attack, its baseline {baseline} KiB"
        );
        thread::sleep(Duration::from_millis(500));
    }
    let outcome = terminate(daemon);
    assert_eq!(outcome.code, Some(0), "{outcome}");
}

//! The eBPF tracer against this kernel: the real programs loaded and attached, real Python
//! processes leaking fds, sockets, threads and memory, and the ledgers checked against procfs.
//! Privileged: these fail (never skip) without CAP_BPF + CAP_PERFMON.

use crate::support::{run_until_samples_with, samples_in, wait_until, Workload};
use leak_monitor::capabilities::Privileges;
use leak_monitor::events::{LedgerCounts, Tracer};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

fn tracer() -> Tracer {
    Tracer::start(Privileges::current()).unwrap_or_else(|err| {
        panic!("the eBPF tests must run (as root, on a kernel with BPF): {err}")
    })
}

fn procfs_count(pid: u32, dir: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/{dir}"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn procfs_sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter(|l| l.to_string_lossy().starts_with("socket:"))
                .count()
        })
        .unwrap_or(0)
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

/// Follows `workload` for `seconds`, returning the ledger counts at the end. The workload is
/// then stopped (and left stopped, so procfs can be compared), a second before the counts are
/// taken: its last fds survive long enough for the kernel's pairing to hand them over
/// (`SURVIVOR_AGE`) and the draining thread catches up.
fn follow_for(tracer: &Tracer, workload: &Workload, seconds: u64) -> LedgerCounts {
    let pid = workload.pid() as i32;
    tracer.follow(pid).unwrap();
    std::thread::sleep(Duration::from_secs(seconds));
    // SAFETY: signals our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_millis(1000));
    tracer.counts(pid).unwrap()
}

#[test]
fn fd_ledger_agrees_with_procfs_during_an_fd_leak() {
    let tracer = tracer();
    let workload = Workload::start("fd_leak.py", &["--rate", "50"]);
    let counts = follow_for(&tracer, &workload, 4);
    let procfs = procfs_count(workload.pid(), "fd") as i64;
    let new = counts.fds - counts.fds_preexisting;
    assert!(
        (counts.fds as i64 - procfs).abs() <= 3,
        "ledger {counts:?} vs procfs {procfs} fds"
    );
    assert!(
        new >= 150,
        "4 s at 50 fds/s should add ~200 fds, got {counts:?}"
    );
    let stats = tracer.stats();
    assert!(
        stats.received.get("fd_open").copied().unwrap_or(0) >= 150,
        "{stats:?}"
    );
    assert_eq!(stats.dropped.values().sum::<u64>(), 0, "{stats:?}");
}

#[test]
fn socket_ledger_agrees_with_procfs_during_a_socket_leak() {
    let tracer = tracer();
    let workload = Workload::start("socket_tcp_leak.py", &["--rate", "20"]);
    let counts = follow_for(&tracer, &workload, 4);
    let procfs = procfs_sockets(workload.pid()) as i64;
    assert!(
        (counts.sockets as i64 - procfs).abs() <= 3,
        "ledger {counts:?} vs procfs {procfs} sockets"
    );
    assert!(counts.sockets >= 40, "{counts:?}");
    // The in-process server accepts one connection per call.
    assert!(counts.accepts >= 40, "{counts:?}");
}

#[test]
fn thread_ledger_agrees_with_procfs_during_a_thread_leak() {
    let tracer = tracer();
    let workload = Workload::start("thread_leak.py", &["--rate", "10"]);
    let counts = follow_for(&tracer, &workload, 4);
    let procfs = procfs_count(workload.pid(), "task") as i64;
    assert!(
        (counts.threads as i64 - procfs).abs() <= 2,
        "ledger {counts:?} vs procfs {procfs} threads"
    );
    assert!(
        counts.threads - counts.threads_preexisting >= 30,
        "{counts:?}"
    );
}

#[test]
fn page_ledger_follows_rss_growth() {
    let tracer = tracer();
    // 2 MB/s of resident growth.
    let workload = Workload::start("rss_leak.py", &["--body-bytes", "204800"]);
    let pid = workload.pid();
    let before = rss_bytes(pid);
    let counts = follow_for(&tracer, &workload, 5);
    let grown = rss_bytes(pid).saturating_sub(before) as f64;
    let tracked = (counts.pages * 4096) as f64;
    assert!(
        grown > 5e6,
        "the workload should have grown ~10 MB, grew {grown}"
    );
    assert!(
        (tracked - grown).abs() / grown < 0.25,
        "pages tracked {tracked} B vs RSS growth {grown} B ({counts:?})"
    );
}

#[test]
fn a_steady_process_makes_almost_no_events() {
    let tracer = tracer();
    let workload = Workload::start("steady.py", &[]);
    let pid = workload.pid() as i32;
    // Let it settle: its allocator reaches its working set within its first seconds.
    std::thread::sleep(Duration::from_secs(2));
    tracer.follow(pid).unwrap();
    let start = tracer.stats().received.values().sum::<u64>();
    std::thread::sleep(Duration::from_secs(5));
    let events = tracer.stats().received.values().sum::<u64>() - start;
    let counts = tracer.counts(pid).unwrap();
    // A handful of page faults as the heap breathes, no fds or threads.
    assert!(events < 500, "{events} events in 5 s from a steady process");
    assert_eq!(counts.fds, counts.fds_preexisting, "{counts:?}");
    drop(workload);
    // A gone process: its ledger is still readable until it is unfollowed.
    wait_until(Duration::from_secs(5), "the workload to exit", || {
        crate::support::process_ended(pid as u32).then_some(())
    });
    tracer.unfollow(pid);
    assert!(tracer.counts(pid).is_none());
}

/// `setpriv` to the unprivileged user `nobody`, with no capabilities.
fn as_nobody(program: &str) -> Command {
    let mut command = Command::new("setpriv");
    command.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--",
        program,
    ]);
    command
}

#[test]
fn without_privileges_ebpf_is_off_with_the_reason_and_procfs_verdicts_remain() {
    // Debian's interpreter: pyenv's lives under /root, which nobody cannot enter.
    let mut python = as_nobody("/usr/bin/python3");
    python
        .arg(crate::support::python_script("fd_leak.py"))
        .args(["--rate", "20"]);
    let workload = Workload::spawn("fd_leak.py as nobody", python);
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let json = dir.path().join("report.json");
    // 25 s of samples, however late a loaded machine takes them.
    let outcome = run_until_samples_with(
        as_nobody(env!("CARGO_BIN_EXE_leak-monitor")),
        &[
            "--pid".to_string(),
            workload.pid_arg(),
            "--json".to_string(),
            json.display().to_string(),
        ],
        &[workload.pid()],
        samples_in(25, 1000),
        1000,
    );
    let stderr = &outcome.stderr;
    assert_eq!(outcome.code, Some(0), "{stderr}");
    let report = crate::support::read_json(&json);
    let capabilities = &report["capabilities"];
    assert_eq!(capabilities["ebpf"], false, "{capabilities}");
    let notes = capabilities["notes"].to_string();
    assert!(
        notes.contains("eBPF tracing is off") && notes.contains("CAP_BPF"),
        "{notes}"
    );
    assert!(
        stderr.contains("eBPF tracing is off"),
        "said once on stderr: {stderr}"
    );
    assert_eq!(stderr.matches("eBPF tracing is off").count(), 1, "{stderr}");
    assert!(
        report.get("ledgers").is_none(),
        "no ledgers without eBPF: {report}"
    );
    let fds = crate::support::resource(&report, "open_fds");
    assert_eq!(
        fds["verdict"], "leak",
        "procfs alone still finds the fd leak: {fds}"
    );
}

/// The default engagement on the real kernel: a process churning fds engages nothing (no fd
/// event at all), its leak engages the programs within seconds and the leaked fds are blamed
/// on their line; released, the programs detach and the churn makes no events again.
#[test]
fn tracing_on_growth_ignores_churn_and_engages_for_a_leak() {
    use leak_monitor::events::Engagement;
    use leak_monitor::monitor::{TargetMonitor, Tracing};
    use std::time::Instant;

    let tracing = std::sync::Arc::new(
        Tracing::start(Privileges::current(), false, Engagement::OnGrowth)
            .unwrap_or_else(|err| panic!("the eBPF tests must run: {err}")),
    );
    let workload = Workload::start("fd_churn.py", &["--leak-after", "6"]);
    let pid = workload.pid() as i32;
    let info = leak_monitor::targets::identify(pid, None).unwrap();
    let interval = Duration::from_millis(500);
    let mut monitor = TargetMonitor::attach(info, interval).unwrap();
    monitor.trace_with(std::sync::Arc::clone(&tracing)).unwrap();
    let fd_events = || {
        tracing
            .tracer
            .stats()
            .received
            .get("fd_open")
            .copied()
            .unwrap_or(0)
    };
    let paired_opens = || {
        tracing
            .tracer
            .stats()
            .pairing
            .get("opens_paired")
            .copied()
            .unwrap_or(0)
    };
    let tick_for = |monitor: &mut TargetMonitor, seconds: f64| {
        let end = Instant::now() + Duration::from_secs_f64(seconds);
        while Instant::now() < end {
            std::thread::sleep(interval);
            monitor.tick(Instant::now()).unwrap();
        }
    };

    tick_for(&mut monitor, 4.0);
    let gate = tracing.tracer.gate_stats();
    assert_eq!(gate.engagements, 0, "churn engaged the tracer: {gate:?}");
    assert_eq!(fd_events(), 0, "fd events while disengaged");

    // The leak starts at 6 s: two rises a tick apart engage.
    tick_for(&mut monitor, 6.0);
    let gate = tracing.tracer.gate_stats();
    assert!(gate.attached && gate.engagements == 1, "{gate:?}");
    // The churn is traced once engaged, paired in the kernel: opens counted, not sent.
    assert!(paired_opens() > 1000, "{:?}", tracing.tracer.stats());
    // One leaked fd in 32 has its stack walked under the churn (10 a second here).
    let blamed = || -> u64 {
        tracing
            .tracer
            .live_by_site(pid, None)
            .map_or(0, |live| live.fds.values().sum())
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    while blamed() < 2 && Instant::now() < deadline {
        tick_for(&mut monitor, 1.0);
    }
    let kept = blamed();
    assert!(
        kept >= 2,
        "{kept} leaked fds blamed: {:?}",
        tracing.tracer.stats()
    );
    let report = monitor.snapshot();
    let fds = report
        .resources
        .iter()
        .find(|r| r.resource == leak_monitor::resource::Resource::OpenFds)
        .unwrap();
    let top = fds.sites.first().expect("a site for the leaked fds");
    assert!(
        top.file.ends_with("fd_churn.py") && top.line == 17,
        "top site {}:{} ({kept} fds blamed)",
        top.file,
        top.line
    );

    // Released (as when the monitor is dropped), the programs detach: the churn is silent again.
    drop(monitor);
    let gate = tracing.tracer.gate_stats();
    assert!(!gate.attached, "{gate:?}");
    // While no event arrives, the drainer reads the kernel's counters once a second: wait past
    // one read so `before` holds every open made while the programs were attached.
    std::thread::sleep(Duration::from_millis(1500));
    let before = (fd_events(), paired_opens());
    tracing.tracer.follow(pid).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        (fd_events(), paired_opens()),
        before,
        "fd events or pairing after the programs detached"
    );
    tracing.tracer.unfollow(pid);
}

/// A process churning fds (open/close as fast as it can) that also leaks 20 a second, traced
/// from the start: the kernel pairs the churn's opens with their closes and sends neither,
/// only the leaked fds reach the ledger (which then agrees with procfs), the sampled ones
/// blamed on the leaking line and none on the churn's.
#[test]
fn churn_is_paired_in_the_kernel_and_only_the_leak_line_is_blamed() {
    use leak_monitor::events::Engagement;
    use leak_monitor::monitor::{TargetMonitor, Tracing};
    use std::time::Instant;

    let script = std::fs::read_to_string(crate::support::python_script("fd_churn.py")).unwrap();
    let line_of = |text: &str| {
        script
            .lines()
            .position(|l| l.contains(text))
            .map(|i| i as u32 + 1)
            .unwrap()
    };
    let (leak_line, churn_line) = (line_of("# LEAK"), line_of("os.close(os.open("));
    let tracing = std::sync::Arc::new(
        Tracing::start(Privileges::current(), false, Engagement::Always)
            .unwrap_or_else(|err| panic!("the eBPF tests must run: {err}")),
    );
    let workload = Workload::start(
        "fd_churn.py",
        &["--leak-after", "1", "--leak-every", "0.05"],
    );
    let pid = workload.pid() as i32;
    let info = leak_monitor::targets::identify(pid, None).unwrap();
    let interval = Duration::from_millis(500);
    let mut monitor = TargetMonitor::attach(info, interval).unwrap();
    monitor.trace_with(std::sync::Arc::clone(&tracing)).unwrap();
    let blamed = || -> u64 {
        tracing
            .tracer
            .live_by_site(pid, None)
            .map_or(0, |live| live.fds.values().sum())
    };
    // One leaked fd in 32 has its stack walked once the churn is seen: ~0.6 a second.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60)
        && (blamed() < 3 || start.elapsed() < Duration::from_secs(10))
    {
        std::thread::sleep(interval);
        monitor.tick(Instant::now()).unwrap();
    }
    let stats = tracing.tracer.stats();
    let count = |name: &str| stats.pairing.get(name).copied().unwrap_or(0);
    assert!(blamed() >= 3, "{} leaked fds blamed: {stats:?}", blamed());
    assert!(count("opens_paired") > 20_000, "{stats:?}");
    // Every churned open was closed in the kernel; the leaked ones were handed over.
    assert!(
        count("closes_paired") + count("survivors") + 100 >= count("opens_paired"),
        "{stats:?}"
    );
    let fd_events = stats.received.get("fd_open").copied().unwrap_or(0);
    assert!(fd_events * 100 < count("opens_paired"), "{stats:?}");
    assert!(
        count("stacks_sampled") > 0 && count("stacks_skipped") > 10 * count("stacks_sampled"),
        "the churn's stacks are sampled, not all walked: {stats:?}"
    );

    let report = monitor.snapshot();
    let fds = report
        .resources
        .iter()
        .find(|r| r.resource == leak_monitor::resource::Resource::OpenFds)
        .unwrap();
    assert!(!fds.sites.is_empty(), "no site for the leaked fds");
    for site in &fds.sites {
        assert!(
            site.file.ends_with("fd_churn.py") && site.line == leak_line,
            "fds blamed on {}:{} (leak line {leak_line}, churn line {churn_line})",
            site.file,
            site.line
        );
    }

    // Stopped for a second, its last leaked fds survive long enough to be handed over.
    // SAFETY: signals our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_millis(1000));
    let counts = tracing.tracer.counts(pid).unwrap();
    let procfs = procfs_count(workload.pid(), "fd") as i64;
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(
        (counts.fds as i64 - procfs).abs() <= 3,
        "ledger {counts:?} vs procfs {procfs} fds"
    );
    drop(monitor);
}

/// Fds past the pairing table's cap (fd 4096 and up) are sent as events, as without the
/// pairing, and counted so; the ledger still agrees with procfs, closes of both kinds included.
#[test]
fn fds_past_the_pairing_cap_are_events_and_the_ledger_still_agrees() {
    const SCRIPT: &str = r#"
import os, resource, time
resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
print('READY', flush=True)
time.sleep(1)
kept = [os.open('/dev/null', os.O_RDONLY) for _ in range(4300)]
for fd in kept[4000:4200]:
    os.close(fd)
print('DONE', flush=True)
time.sleep(600)
"#;
    let tracer = tracer();
    let mut command = Command::new("python3");
    command.args(["-c", SCRIPT]);
    let mut workload = Workload::spawn("fds past the cap", command);
    let pid = workload.pid() as i32;
    tracer.follow(pid).unwrap();
    workload.wait_for("DONE");
    // Past SURVIVOR_AGE and a collection.
    std::thread::sleep(Duration::from_millis(1500));
    let counts = tracer.counts(pid).unwrap();
    let procfs = procfs_count(workload.pid(), "fd") as i64;
    let stats = tracer.stats();
    assert!(
        (counts.fds as i64 - procfs).abs() <= 3,
        "ledger {counts:?} vs procfs {procfs} fds: {stats:?}"
    );
    assert!(
        counts.fds - counts.fds_preexisting >= 4000,
        "{counts:?}: {stats:?}"
    );
    let count = |name: &str| stats.pairing.get(name).copied().unwrap_or(0);
    // The fds from 4096 on: ~200 opened, some closed again.
    assert!(count("over_cap") >= 150, "{stats:?}");
    assert!(count("survivors") >= 3900, "{stats:?}");
}

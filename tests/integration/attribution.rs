//! Attribution on real workloads: the top site of the leaking resource is the line marked
//! `# LEAK` in the workload's source (found in the file, never hard-coded), produced by the
//! `sampled_at_growth` method, with its evidence quoted from the file; decoys get no leak.
//! Needs root (ptrace access to read the stacks); CI runs as root.

use crate::support::{
    cpu_heavy_slot, python_script, resource, run_json_report_samples as run_samples, samples_in,
    Workload,
};
use serde_json::Value;
use std::fs;

const RUN_SECONDS: u32 = 30;
const DECOY_SECONDS: u32 = 40;
const INTERVAL_MS: u32 = 1000;

/// The 1-based number of the line marked `# LEAK` in `tests/python/SCRIPT`, and its text.
pub fn leak_line(script: &str) -> (u64, String) {
    let path = python_script(script);
    let source = fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    let marked: Vec<(usize, &str)> = source
        .lines()
        .enumerate()
        .filter(|(_, line)| line.trim_end().ends_with("# LEAK"))
        .collect();
    assert_eq!(
        marked.len(),
        1,
        "{script} must mark exactly one line # LEAK"
    );
    let (index, text) = marked[0];
    (index as u64 + 1, text.trim().to_string())
}

/// A run without eBPF, so the sites come from sampled stacks (the method under test here; with
/// eBPF on, `kernel_frames.rs` and the `with_kernel_frames` tests below cover the exact path).
fn observe(workload: &Workload, seconds: u32, extra: &[&str]) -> Value {
    let extra: Vec<&str> = extra.iter().copied().chain(["--no-ebpf"]).collect();
    let samples = samples_in(seconds, INTERVAL_MS);
    let (outcome, report) = run_samples(workload.pid(), samples, INTERVAL_MS, &extra);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    assert_eq!(
        report["capabilities"]["python_stacks"], true,
        "stacks were not read:\n{:#}",
        report["capabilities"]
    );
    report
}

/// `name` is a leak whose top site is the `# LEAK` line of `script`, found by sampling.
fn assert_top_site_is_the_leak(report: &Value, name: &str, script: &str) -> Value {
    assert_top_site_is(report, name, script, "sampled_at_growth")
}

/// `name` is a leak whose top site is the `# LEAK` line of `script`, found by `method`; returns
/// that site. For memory the heap census may come first: then its site must be the `# LEAK`
/// line with the holder named, and the site found by `method` must follow at the same line (the
/// runtime's view stays in the report as supporting evidence).
fn assert_top_site_is(report: &Value, name: &str, script: &str, method: &str) -> Value {
    let (line, text) = leak_line(script);
    let entry = resource(report, name);
    assert_eq!(entry["verdict"], "leak", "{name} is not a leak:\n{entry:#}");
    let all_sites = entry["sites"].as_array().expect("sites is an array");
    let first = all_sites
        .first()
        .unwrap_or_else(|| panic!("{name} has no sites:\n{entry:#}"));
    let at_leak_line = |s: &Value| {
        s["file"]
            .as_str()
            .is_some_and(|f| f.ends_with(&format!("/{script}")))
            && s["line"] == line
    };
    if first["method"] == "heap_census" {
        assert!(
            at_leak_line(first),
            "census site not at {script}:{line}:\n{entry:#}"
        );
        assert!(first["holder"]["path"].is_string(), "{first:#}");
        let share: f64 = all_sites
            .iter()
            .filter(|s| at_leak_line(s))
            .filter_map(|s| s["share"].as_f64())
            .sum();
        assert!(share > 0.5, "{entry:#}");
    }
    let census = |s: &&Value| s["method"] == "heap_census";
    let sites: Vec<Value> = all_sites.iter().filter(|s| !census(s)).cloned().collect();
    let top = sites
        .first()
        .unwrap_or_else(|| panic!("{name} has no sites by {method}:\n{entry:#}"));
    let file = top["file"].as_str().unwrap_or_default();
    assert!(
        file.ends_with(&format!("/{script}")) && top["line"] == line,
        "top site of {name} is {file}:{}, not {script}:{line}:\n{entry:#}",
        top["line"]
    );
    assert_eq!(top["method"], method, "{top:#}");
    assert!(
        top["evidence"].as_str().unwrap_or_default().contains(&text),
        "the evidence does not quote the line {text:?}:\n{top:#}"
    );
    assert!(top["stack"][0]["line"].is_u64(), "{top:#}");
    // The shown sites (the top ones, each at least 1%) hold at most all of the attributed growth
    // (shares up to 1, amounts up to the growth first -> last), and the top one most of it.
    let share: f64 = all_sites.iter().filter_map(|s| s["share"].as_f64()).sum();
    assert!(share <= 1.0001, "{entry:#}");
    if !census(&first) {
        assert!(top["share"].as_f64().unwrap() > 0.5, "{entry:#}");
    }
    assert!(
        sites.iter().all(|s| s["share"].as_f64().unwrap() >= 0.01) || census(&first),
        "{entry:#}"
    );
    let amount: f64 = sites.iter().filter_map(|s| s["amount"].as_f64()).sum();
    let growth = entry["last"].as_f64().unwrap() - entry["first"].as_f64().unwrap();
    // Sampled amounts are scaled to the growth; the kernel's are what its ledgers hold live
    // since attach, which exceeds the net growth by what pre-existing entries gave back.
    let slack = if method == "sampled_at_growth" {
        1.0001
    } else {
        1.5
    };
    assert!(
        amount <= growth * slack && amount > 0.0,
        "{amount} vs {growth}\n{entry:#}"
    );
    top.clone()
}

/// With eBPF on (root): the sites come from the frames the kernel walked at each event.
fn observe_with_kernel_frames(workload: &Workload) -> Value {
    let samples = samples_in(RUN_SECONDS, INTERVAL_MS);
    let (outcome, report) = run_samples(workload.pid(), samples, INTERVAL_MS, &[]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    assert_eq!(
        report["capabilities"]["ebpf"], true,
        "{:#}",
        report["capabilities"]
    );
    report
}

#[test]
fn with_kernel_frames_an_rss_leak_gets_its_exact_line() {
    let workload = Workload::start("rss_leak.py", &[]);
    let report = observe_with_kernel_frames(&workload);
    let top = assert_top_site_is(&report, "rss_bytes", "rss_leak.py", "ebpf_frames");
    assert_eq!(top["leak_type"], "unbounded_collection", "{top:#}");
}

#[test]
fn with_kernel_frames_fd_socket_and_thread_leaks_get_their_exact_lines() {
    let fds = Workload::start("fd_leak.py", &[]);
    let sockets = Workload::start("socket_tcp_leak.py", &[]);
    let threads = Workload::start("thread_leak.py", &[]);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let outcome = crate::support::run_until_samples(
        &[
            "--pid".to_string(),
            fds.pid_arg(),
            "--pid".to_string(),
            sockets.pid_arg(),
            "--pid".to_string(),
            threads.pid_arg(),
            "--json".to_string(),
            json.display().to_string(),
        ],
        &[fds.pid(), sockets.pid(), threads.pid()],
        samples_in(RUN_SECONDS, INTERVAL_MS),
        INTERVAL_MS,
    );
    assert_eq!(outcome.code, Some(0), "{outcome}");
    let report_of =
        |w: &Workload| crate::support::read_json(&dir.path().join(format!("r.{}.json", w.pid())));
    let top = assert_top_site_is(&report_of(&fds), "open_fds", "fd_leak.py", "ebpf_frames");
    assert_eq!(top["leak_type"], "resource_not_closed", "{top:#}");
    let top = assert_top_site_is(
        &report_of(&sockets),
        "sockets",
        "socket_tcp_leak.py",
        "ebpf_frames",
    );
    assert_eq!(top["leak_type"], "resource_not_closed", "{top:#}");
    let top = assert_top_site_is(
        &report_of(&threads),
        "threads",
        "thread_leak.py",
        "ebpf_frames",
    );
    assert_eq!(top["leak_type"], "thread_not_joined", "{top:#}");
}

#[test]
fn rss_leak_is_attributed_to_its_line_in_json_and_markdown() {
    let workload = Workload::start("rss_leak.py", &[]);
    let dir = tempfile::tempdir().unwrap();
    let markdown = dir.path().join("report.md");
    let md = markdown.display().to_string();
    let report = observe(&workload, RUN_SECONDS, &["--markdown", &md]);
    let top = assert_top_site_is_the_leak(&report, "rss_bytes", "rss_leak.py");
    let text = fs::read_to_string(&markdown).unwrap();
    let heading = format!(
        "### File: {}:{}",
        top["file"].as_str().unwrap(),
        top["line"]
    );
    let section = text
        .split_once(&heading)
        .unwrap_or_else(|| panic!("no {heading:?} in:\n{text}"))
        .1;
    for part in [
        "#### Leak Type",
        "#### Growth Pattern",
        "#### Memory Impact",
        "#### Evidence",
        "#### Detection",
        "#### Fix",
        "sampled_at_growth",
    ] {
        assert!(
            section.contains(part),
            "no {part:?} after {heading:?}:\n{text}"
        );
    }
}

#[test]
#[ignore = "sampling races a line that runs for microseconds (fd and thread creation): the top line is right most runs, not every run on a loaded machine; the exact path is with_kernel_frames_fd_socket_and_thread_leaks_get_their_exact_lines; run with --ignored"]
fn fd_leak_is_attributed_to_its_line() {
    let workload = Workload::start("fd_leak.py", &["--rate", "20"]);
    let report = observe(&workload, RUN_SECONDS, &[]);
    assert_top_site_is_the_leak(&report, "open_fds", "fd_leak.py");
}

#[test]
#[ignore = "sampling races a line that runs for microseconds (fd and thread creation): the top line is right most runs, not every run on a loaded machine; the exact path is with_kernel_frames_fd_socket_and_thread_leaks_get_their_exact_lines; run with --ignored"]
fn thread_leak_is_attributed_to_the_line_that_starts_the_threads() {
    let workload = Workload::start("thread_leak.py", &["--rate", "1"]);
    let report = observe(&workload, RUN_SECONDS, &[]);
    assert_top_site_is_the_leak(&report, "threads", "thread_leak.py");
}

/// Samples mostly find the worker at its `sleep`, after the leak line that ran for
/// microseconds: the catalog then judges the statements of the loop around the sleep.
#[test]
fn leak_in_a_worker_thread_is_attributed_there_not_to_the_busy_main_thread() {
    let _cpu = cpu_heavy_slot();
    let workload = Workload::start("worker_thread_leak.py", &[]);
    let report = observe(&workload, RUN_SECONDS, &[]);
    assert_top_site_is_the_leak(&report, "rss_bytes", "worker_thread_leak.py");
}

/// Page faults cannot find this leak: its records reuse heap the churn freed, so the churn
/// lines fault every new page. The allocator's live blocks name the line that keeps them.
#[test]
fn with_allocation_tracking_a_slow_leak_under_churn_gets_its_line() {
    let _cpu = cpu_heavy_slot();
    // 600 KB/s instead of the default 300: under the probes' cost the churn swings RSS by
    // megabytes and a 300 KB/s floor is not always called a leak within the test's minute
    // (the eval corpus runs the 300 KB/s case). The records still reuse the churn's heap.
    let workload = Workload::start("slow_churn_leak.py", &["--record-bytes", "61440"]);
    let (outcome, report) = run_samples(
        workload.pid(),
        samples_in(2 * RUN_SECONDS, INTERVAL_MS),
        INTERVAL_MS,
        &["--track-allocations"],
    );
    assert_eq!(outcome.code, Some(0), "{outcome}");
    let notes = report["capabilities"]["notes"].to_string();
    assert!(notes.contains("allocation tracking is on"), "{notes}");
    assert!(
        report["ledgers"]["heap_bytes"].as_u64().unwrap_or(0) > 1 << 20,
        "{:#}",
        report["ledgers"]
    );
    let top = assert_top_site_is(&report, "rss_bytes", "slow_churn_leak.py", "ebpf_frames");
    assert_eq!(top["leak_type"], "unbounded_collection", "{top:#}");
}

fn assert_no_leak(report: &Value) {
    for entry in report["resources"].as_array().unwrap() {
        assert_ne!(entry["verdict"], "leak", "decoy called a leak:\n{entry:#}");
    }
}

#[test]
fn steady_churn_with_stacks_on_has_no_leak() {
    let _cpu = cpu_heavy_slot();
    let workload = Workload::start("steady.py", &[]);
    assert_no_leak(&observe(&workload, DECOY_SECONDS, &[]));
}

#[test]
fn bounded_deque_with_stacks_on_has_no_leak() {
    let workload = Workload::start("bounded_deque.py", &[]);
    assert_no_leak(&observe(&workload, DECOY_SECONDS, &[]));
}

/// The reader on a live Python process: threads by kernel id, frames innermost first.
#[test]
fn stack_reader_reads_every_thread_by_its_kernel_id() {
    use leak_monitor::attribution::stacks::StackReader;
    let workload = Workload::start("worker_thread_leak.py", &["--busy-ms", "10"]);
    let pid = i32::try_from(workload.pid()).unwrap();
    let mut reader = StackReader::attach(pid).unwrap();
    assert!(
        reader.python_version().starts_with("3."),
        "{}",
        reader.python_version()
    );
    let threads = reader.all_threads().unwrap();
    assert_eq!(threads.len(), 2, "{threads:#?}");
    let tids: Vec<u32> = fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
        .collect();
    for thread in &threads {
        assert!(
            tids.contains(&thread.os_tid),
            "{} not in {tids:?}",
            thread.os_tid
        );
        // The outermost frame is the script's module.
        let outer = thread.frames.last().unwrap();
        assert!(
            outer.file.ends_with("threading.py") || outer.function == "<module>",
            "{thread:#?}"
        );
    }
    let main = reader.thread(workload.pid()).unwrap().unwrap();
    assert_eq!(main.last().unwrap().function, "<module>");
    assert!(main.iter().any(|f| f.function == "main"), "{main:#?}");
    assert_eq!(reader.thread(1).unwrap(), None);
    // Non-blocking by default: the target was never suspended.
    assert_eq!(reader.blocked_reads(), 0);
}

/// The probe's small reads on a live Python process (3.11): every Python thread by kernel id,
/// frames innermost first as the py-spy reader names them; a thread that has not run since the
/// read before keeps its stack without a read; a thread asleep in `time.sleep` is foreseen to
/// wake at its deadline.
#[test]
fn observer_reads_the_threads_that_ran_and_foresees_sleeps() {
    use leak_monitor::attribution::observer::Observer;
    use std::time::{Duration, Instant};
    let workload = Workload::start("worker_thread_leak.py", &["--busy-ms", "10"]);
    let pid = i32::try_from(workload.pid()).unwrap();
    let python = leak_monitor::targets::runtime::discover(pid).expect("a CPython process");
    let mut observer = Observer::attach(&python).unwrap();
    // The first read reads every thread (nothing is known of them yet).
    let first = observer.observe().unwrap().expect("a first read");
    assert_eq!(first.threads.len(), 2, "{first:#?}");
    let tids: Vec<u32> = fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
        .collect();
    for thread in &first.threads {
        assert!(tids.contains(&thread.os_tid), "{thread:#?}");
        let outer = thread.frames.last().unwrap();
        assert!(
            outer.file.ends_with("threading.py") || outer.function == "<module>",
            "{thread:#?}"
        );
    }
    let main = first
        .threads
        .iter()
        .find(|t| t.os_tid == workload.pid())
        .unwrap();
    assert!(
        main.frames.iter().any(|f| f.function == "main"),
        "{main:#?}"
    );
    assert_eq!(first.thread_count, Some(2));
    // The worker sleeps 125 ms at a time: reads 1 ms apart find it had not run, most of them.
    let mut foreseen = None;
    for _ in 0..200 {
        std::thread::sleep(Duration::from_millis(1));
        observer.observe().unwrap();
        foreseen = foreseen.or(observer.next_wake());
    }
    let counts = observer.read_counts();
    assert!(counts.stacks_kept > 0, "{counts:?}");
    assert!(counts.stacks_read > 2, "{counts:?}");
    let (wake, _) = foreseen.expect("the worker's sleep was foreseen");
    assert!(
        wake < Instant::now() + Duration::from_millis(200),
        "{wake:?}"
    );
    observer.release();
    assert!(observer.observe().is_ok());
}

/// Blocking reads are opt-in, measured, and refused while the last pause exceeded the bound.
#[test]
fn blocking_reads_are_bounded_by_the_last_pause() {
    use leak_monitor::attribution::stacks::{BlockingPolicy, StackReader};
    use std::time::Duration;
    let workload = Workload::start("rss_leak.py", &[]);
    let pid = i32::try_from(workload.pid()).unwrap();
    let mut reader = StackReader::attach(pid).unwrap();
    reader.allow_blocking(BlockingPolicy {
        max_pause: Duration::from_secs(1),
    });
    for _ in 0..3 {
        reader.all_threads().unwrap();
    }
    assert_eq!(reader.blocked_reads(), 3);
    let pause = reader.max_pause();
    assert!(
        pause > Duration::ZERO && pause < Duration::from_secs(1),
        "{pause:?}"
    );
    // Any pause exceeds a zero bound: after one blocking read, the reads stop blocking.
    reader.allow_blocking(BlockingPolicy {
        max_pause: Duration::ZERO,
    });
    for _ in 0..3 {
        reader.all_threads().unwrap();
    }
    assert_eq!(reader.blocked_reads(), 3);
}

/// Typed errors: a process that is not Python, and one that is gone.
#[test]
fn stack_reader_errors_say_what_went_wrong() {
    use leak_monitor::attribution::stacks::{StackError, StackReader};
    use std::process::Command;
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = i32::try_from(sleeper.id()).unwrap();
    let err = StackReader::attach(pid).err().unwrap();
    assert!(matches!(err, StackError::NotPython { .. }), "{err:?}");
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    let err = StackReader::attach(pid).err().unwrap();
    assert_eq!(err, StackError::Gone { pid });
}

/// A PID that starts as a shell and a pyenv shim and only then execs Python (how `python3
/// app.py` starts under pyenv): the monitor follows the exec and the target gets its Python
/// identity, its stacks and its exact lines.
#[test]
fn a_target_that_execs_python_after_attach_gets_its_lines() {
    let script = python_script("fd_leak.py");
    let mut command = std::process::Command::new("sh");
    command.arg("-c").arg(format!(
        "echo READY; sleep 3; exec python3 {}",
        script.display()
    ));
    let wrapper = Workload::spawn("sh -c 'sleep; exec python3 fd_leak.py'", command);
    let samples = samples_in(RUN_SECONDS, 500);
    let (outcome, report) = run_samples(wrapper.pid(), samples, 500, &[]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    let target = &report["target"];
    assert!(
        target["python_version"].is_string(),
        "never seen as Python: {target:#}"
    );
    assert!(
        target["cmdline"][1]
            .as_str()
            .is_some_and(|c| c.ends_with("fd_leak.py")),
        "{target:#}"
    );
    assert_eq!(
        report["capabilities"]["python_stacks"], true,
        "{:#}",
        report["capabilities"]
    );
    assert_top_site_is(&report, "open_fds", "fd_leak.py", "ebpf_frames");
}

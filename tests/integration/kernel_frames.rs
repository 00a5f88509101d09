//! The in-kernel Python frame walk against real programs on both Python builds here: pyenv's
//! `python3` (libpython shared) and Debian's `/usr/bin/python3.11` (static), and on pyenv's
//! CPython 3.10 (frame objects instead of interpreter frames). Each workload
//! leaks on a line the user-space race loses (a leak followed at once by a sleep, a leaking
//! worker beside a busy main thread, one leaker among many allocating threads). The frames read
//! in the kernel at the leaking thread's creating events must put the leaking line innermost
//! for >= 90% of them; the py-spy fallback (a stack read right after each event) is measured
//! beside it and printed. Privileged: fails (never skips) without BPF.

use crate::support::{cpu_heavy_slot, python_script, Workload};
use leak_monitor::capabilities::Privileges;
use leak_monitor::events::event::{TraceEvent, Traced};
use leak_monitor::events::{SiteId, SiteResolver, Tracer};
use leak_monitor::pyframes::{FrameResolver, PyFrames};
use leak_monitor::targets::runtime;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Creating events of the leaking thread to judge by.
const EVENTS: usize = 60;
const TIMEOUT: Duration = Duration::from_secs(45);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Want {
    Fd,
    Page,
}

/// Where the kernel's and the fallback's stacks put one event.
#[derive(Clone, Debug, Default)]
struct Sample {
    tid: u32,
    kernel: Option<(String, u32)>,
    fallback: Option<(String, u32)>,
}

struct Recorder {
    frames: FrameResolver,
    spy: py_spy::PythonSpy,
    want: Want,
    leaker: u32,
    samples: Arc<Mutex<Vec<Sample>>>,
}

/// The innermost frame outside the standard library.
fn innermost_user<'a>(frames: impl IntoIterator<Item = (&'a str, u32)>) -> Option<(String, u32)> {
    frames
        .into_iter()
        .find(|(file, _)| !file.contains("/lib/python3"))
        .map(|(file, line)| (file.to_owned(), line))
}

impl SiteResolver for Recorder {
    fn site_for(&mut self, traced: &Traced) -> Option<SiteId> {
        if traced.tgid != self.frames.tgid() {
            return None;
        }
        let wanted = match traced.event {
            TraceEvent::ThreadCreated { .. } => {
                self.frames.thread_created();
                false
            }
            TraceEvent::FdOpened { .. } => self.want == Want::Fd,
            TraceEvent::PageFault { .. } => self.want == Want::Page,
            _ => false,
        };
        if !wanted {
            return None;
        }
        let kernel = traced.stack.and_then(|stack| {
            let frames = self.frames.resolve(&stack);
            innermost_user(frames.iter().map(|f| (f.file.as_str(), f.line)))
        });
        // The fallback only for the leaking thread: a stack read costs ~100 us.
        let fallback = if traced.tid == self.leaker {
            self.spy.get_stack_traces().ok().and_then(|traces| {
                let trace = traces
                    .iter()
                    .find(|t| t.os_thread_id == Some(u64::from(traced.tid)))?;
                innermost_user(
                    trace
                        .frames
                        .iter()
                        .map(|f| (f.filename.as_str(), f.line.max(0) as u32)),
                )
            })
        } else {
            None
        };
        self.samples.lock().unwrap().push(Sample {
            tid: traced.tid,
            kernel,
            fallback,
        });
        None
    }
}

/// The line of `script` holding `marker`.
fn line_of(script: &str, marker: &str) -> u32 {
    let text = std::fs::read_to_string(python_script(script)).unwrap();
    let index = text
        .lines()
        .position(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("{marker} not in {script}"));
    index as u32 + 1
}

fn start(python: &str, script: &str, args: &[&str]) -> (Workload, u32) {
    let mut command = Command::new(python);
    command.arg(python_script(script)).args(args);
    let workload = Workload::spawn(script, command);
    let tid = workload
        .startup_lines()
        .iter()
        .find_map(|l| l.strip_prefix("TID "))
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| panic!("{script} printed no TID: {:?}", workload.startup_lines()));
    (workload, tid)
}

/// Follows the workload until the leaking thread (`u32::MAX`: any thread but the main one)
/// made `EVENTS` creating events of `want`; returns all samples.
fn observe(workload: &Workload, leaker: u32, want: Want) -> Vec<Sample> {
    let tracer = Tracer::start(Privileges::current())
        .unwrap_or_else(|err| panic!("the eBPF tests must run (as root, with BPF): {err}"));
    let pid = workload.pid() as i32;
    tracer.follow(pid).unwrap();
    let python = runtime::discover(pid).expect("the workload runs CPython");
    let frames = PyFrames::attach(&python, &tracer).unwrap();
    assert!(frames.refresh().unwrap() >= 1);
    let config = py_spy::Config {
        blocking: py_spy::config::LockingStrategy::NonBlocking,
        ..Default::default()
    };
    let spy = py_spy::PythonSpy::new(pid as py_spy::Pid, &config).unwrap();
    let samples = Arc::new(Mutex::new(Vec::new()));
    tracer.set_resolver(Box::new(Recorder {
        frames: frames.resolver(),
        spy,
        want,
        leaker,
        samples: Arc::clone(&samples),
    }));
    let deadline = Instant::now() + TIMEOUT;
    let main_tid = workload.pid();
    loop {
        let seen = samples
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.tid == leaker || (leaker == u32::MAX && s.tid != main_tid))
            .count();
        if seen >= EVENTS || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(tracer);
    drop(frames);
    let samples = samples.lock().unwrap().clone();
    samples
}

/// Hit rates (kernel, fallback) of the leaking line among the leaker's samples, printed.
fn judge(label: &str, samples: &[Sample], leaker: u32, script: &str, line: u32) -> (f64, f64) {
    let mine: Vec<&Sample> = samples.iter().filter(|s| s.tid == leaker).collect();
    assert!(
        mine.len() >= 50,
        "{label}: only {} creating events of the leaking thread",
        mine.len()
    );
    let hit = |at: &Option<(String, u32)>| {
        at.as_ref()
            .is_some_and(|(file, l)| file.ends_with(script) && *l == line)
    };
    let rate = |f: &dyn Fn(&Sample) -> bool| {
        mine.iter().filter(|s| f(s)).count() as f64 / mine.len() as f64
    };
    let kernel = rate(&|s| hit(&s.kernel));
    let fallback = rate(&|s| hit(&s.fallback));
    let misses: Vec<_> = mine
        .iter()
        .filter(|s| !hit(&s.kernel))
        .take(5)
        .map(|s| s.kernel.clone())
        .collect();
    eprintln!(
        "kernel_frames {label}: {} events of the leaking thread; leaking line {script}:{line} innermost: kernel walk {:.1}%, py-spy fallback {:.1}% (kernel misses e.g. {misses:?})",
        mine.len(),
        kernel * 100.0,
        fallback * 100.0
    );
    assert!(kernel >= 0.9, "{label}: kernel hit rate {kernel:.3}");
    (kernel, fallback)
}

const PYENV: &str = "python3";
const DEBIAN: &str = "/usr/bin/python3.11";

fn sleep_fd(python: &str) {
    let script = "frames_sleep_leak.py";
    let (workload, tid) = start(python, script, &["--mode", "fd"]);
    let samples = observe(&workload, tid, Want::Fd);
    judge(
        &format!("{python} fd+sleep"),
        &samples,
        tid,
        script,
        line_of(script, "# LEAK fd"),
    );
}

fn sleep_bytes(python: &str) {
    let script = "frames_sleep_leak.py";
    let (workload, tid) = start(python, script, &["--mode", "bytes"]);
    let samples = observe(&workload, tid, Want::Page);
    judge(
        &format!("{python} bytearray+sleep"),
        &samples,
        tid,
        script,
        line_of(script, "# LEAK bytes"),
    );
}

fn worker(python: &str) {
    let _slot = cpu_heavy_slot();
    let script = "frames_worker_leak.py";
    let (workload, tid) = start(python, script, &[]);
    let samples = observe(&workload, tid, Want::Fd);
    judge(
        &format!("{python} worker thread, busy main"),
        &samples,
        tid,
        script,
        line_of(script, "# LEAK fd"),
    );
}

fn many_threads(python: &str) {
    let _slot = cpu_heavy_slot();
    let script = "frames_many_threads.py";
    let (workload, tid) = start(python, script, &[]);
    let samples = observe(&workload, tid, Want::Page);
    let line = line_of(script, "# LEAK bytes");
    judge(
        &format!("{python} one leaker among 7 threads"),
        &samples,
        tid,
        script,
        line,
    );
    // The other threads' events are never blamed on the leaker's line.
    let others: Vec<&Sample> = samples.iter().filter(|s| s.tid != tid).collect();
    let wrong = others
        .iter()
        .filter(|s| s.kernel.as_ref().is_some_and(|(_, l)| *l == line))
        .count();
    eprintln!(
        "kernel_frames {python}: {} events of the other threads, {wrong} put on the leak line",
        others.len()
    );
    assert!(
        wrong * 100 <= others.len().max(1),
        "{wrong} of {}",
        others.len()
    );
}

#[test]
fn pyenv_leak_then_sleep_fd() {
    sleep_fd(PYENV);
}

#[test]
fn debian_leak_then_sleep_fd() {
    sleep_fd(DEBIAN);
}

#[test]
fn pyenv_leak_then_sleep_bytearray() {
    sleep_bytes(PYENV);
}

#[test]
fn debian_leak_then_sleep_bytearray() {
    sleep_bytes(DEBIAN);
}

#[test]
fn pyenv_worker_leaks_while_main_computes() {
    worker(PYENV);
}

#[test]
fn debian_worker_leaks_while_main_computes() {
    worker(DEBIAN);
}

#[test]
fn pyenv_one_leaker_among_many_allocating_threads() {
    many_threads(PYENV);
}

#[test]
fn debian_one_leaker_among_many_allocating_threads() {
    many_threads(DEBIAN);
}

/// Threads born after `PyFrames::attach` (and dying soon after): the kernel registers each new
/// thread's state at its clone, so even its first fd event carries a stack naming the line.
fn late_threads(python: &str) {
    let script = "frames_late_thread.py";
    let mut command = Command::new(python);
    command.arg(python_script(script));
    let workload = Workload::spawn(script, command);
    let main_tid = workload.pid();
    // No single leaking thread: judge the fd events of all threads but the main one.
    let samples: Vec<Sample> = observe(&workload, u32::MAX, Want::Fd)
        .into_iter()
        .filter(|s| s.tid != main_tid)
        .map(|s| Sample { tid: 0, ..s })
        .collect();
    let threads = samples.len();
    judge(
        &format!("{python} threads started after attach ({threads} events)"),
        &samples,
        0,
        script,
        line_of(script, "# LEAK fd"),
    );
}

#[test]
fn pyenv_threads_started_after_attach() {
    late_threads(PYENV);
}

#[test]
fn debian_threads_started_after_attach() {
    late_threads(DEBIAN);
}

/// CPython 3.10 (pyenv): `PyFrameObject` chains, `f_lasti` indices, the 3.10 line table and
/// threads named by `pthread_t`.
fn python_310() -> String {
    crate::support::pyenv_python("3.10").display().to_string()
}

#[test]
fn cpython_310_leak_then_sleep_fd() {
    sleep_fd(&python_310());
}

#[test]
fn cpython_310_leak_then_sleep_bytearray() {
    sleep_bytes(&python_310());
}

#[test]
fn cpython_310_threads_started_after_attach() {
    late_threads(&python_310());
}

#[test]
fn a_process_without_cpython_degrades_to_events_without_stacks() {
    let tracer = Tracer::start(Privileges::current())
        .unwrap_or_else(|err| panic!("the eBPF tests must run (as root, with BPF): {err}"));
    let mut child = crate::support::die_with_parent(Command::new("sleep").arg("30"))
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    tracer.follow(pid).unwrap();
    // Not CPython: nothing to attach to (the monitor then gets events without stacks).
    assert_eq!(runtime::discover(pid), None, "sleep is not CPython");
    let _ = child.kill();
    let _ = child.wait();
    tracer.unfollow(pid);
    // An interpreter whose process is gone since its discovery: an error, not a panic.
    let (mut workload, _) = start(PYENV, "frames_sleep_leak.py", &["--mode", "fd"]);
    let pid = workload.pid() as i32;
    tracer.follow(pid).unwrap();
    let python = runtime::discover(pid).expect("the workload runs CPython");
    workload.kill();
    assert!(PyFrames::attach(&python, &tracer).is_err());
    tracer.unfollow(pid);
}

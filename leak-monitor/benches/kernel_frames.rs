//! What the in-kernel Python frame walk costs, side by side in one run (root needed):
//!
//! 1. Per event: a Python program opens and closes /dev/null as fast as it can, 10 frames
//!    deep, (a) not followed, (b) followed without `PY_LAYOUT` (plain events), (c) followed with
//!    it (each open carries its stack). Target throughput and events/s; the difference of
//!    (c) and (b) per open is the walk's cost per event.
//! 2. During a 10 MB/s RSS leak (one 100 KiB bytearray every 10 ms, ~25 page-fault events
//!    each): the time the leaking line takes in the target, in the same three set-ups.
//!
//! `sudo cargo bench -p leak-monitor --bench kernel_frames`. Prints medians of 3 interleaved
//! rounds; asserts nothing.

#![allow(clippy::unwrap_used)]

use leak_monitor::capabilities::Privileges;
use leak_monitor::events::Tracer;
use leak_monitor::pyframes::PyFrames;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SECONDS: f64 = 3.0;
/// Rounds per set-up, interleaved so machine load drifts hit all alike; the median is printed.
const ROUNDS: usize = 3;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

const FD_LOOP: &str = r#"
import os, sys, time
def deep(n, f):
    if n == 0:
        return f()
    return deep(n - 1, f)
def work():
    end = time.monotonic() + float(sys.argv[1])
    n = 0
    while time.monotonic() < end:
        for _ in range(100):
            os.close(os.open("/dev/null", os.O_RDONLY))
        n += 100
    return n
print("READY", flush=True)
sys.stdin.readline()
print(deep(10, work), flush=True)
"#;

const RSS_LEAK: &str = r#"
import sys, time
blobs = []
print("READY", flush=True)
sys.stdin.readline()
busy = 0.0
n = 0
end = time.monotonic() + float(sys.argv[1])
next_at = time.monotonic()
while time.monotonic() < end:
    t = time.perf_counter()
    blobs.append(bytearray(100 * 1024))
    busy += time.perf_counter() - t
    n += 1
    next_at += 0.01
    time.sleep(max(0.0, next_at - time.monotonic()))
print(f"{busy / n * 1e6:.2f} {n}", flush=True)
"#;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Setup {
    NotFollowed,
    Plain,
    Stacks,
}

impl Setup {
    fn label(self) -> &'static str {
        match self {
            Setup::NotFollowed => "not followed",
            Setup::Plain => "events, no PY_LAYOUT",
            Setup::Stacks => "events + kernel stacks",
        }
    }
}

struct Target {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Target {
    fn start(script: &std::path::Path) -> Target {
        let mut child = Command::new("python3")
            .arg(script)
            .arg(SECONDS.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "READY");
        Target { child, lines }
    }

    fn go_and_wait(&mut self) -> String {
        writeln!(self.child.stdin.as_mut().unwrap()).unwrap();
        let out = self.lines.next().unwrap().unwrap();
        let _ = self.child.wait();
        out
    }
}

/// Runs `script` under `setup`; returns its output and the events received per second
/// (of `kind`).
fn run(tracer: &Tracer, script: &std::path::Path, setup: Setup, kind: &str) -> (String, f64) {
    let mut target = Target::start(script);
    let pid = target.child.id() as i32;
    let mut frames = None;
    if setup != Setup::NotFollowed {
        tracer.follow(pid).unwrap();
    }
    if setup == Setup::Stacks {
        let python = leak_monitor::targets::runtime::discover(pid).expect("CPython");
        frames = Some(PyFrames::attach(&python, tracer).unwrap());
    }
    let before = tracer.stats().received.get(kind).copied().unwrap_or(0);
    let out = target.go_and_wait();
    std::thread::sleep(Duration::from_millis(300));
    let after = tracer.stats().received.get(kind).copied().unwrap_or(0);
    drop(frames);
    tracer.unfollow(pid);
    (out, (after - before) as f64 / SECONDS)
}

fn main() {
    let tracer = Tracer::start(Privileges::current()).expect("needs root and BPF");
    let dir = tempfile::tempdir().unwrap();
    let fd_script = dir.path().join("fd_loop.py");
    let rss_script = dir.path().join("rss_leak.py");
    std::fs::write(&fd_script, FD_LOOP).unwrap();
    std::fs::write(&rss_script, RSS_LEAK).unwrap();
    let setups = [Setup::NotFollowed, Setup::Plain, Setup::Stacks];

    println!(
        "1. open+close loop, 10 Python frames deep, {SECONDS} s x {ROUNDS} rounds each, medians (pyenv python3)"
    );
    println!(
        "   {:<24} {:>14} {:>14} {:>16}",
        "set-up", "opens/s", "fd events/s", "us per open"
    );
    let mut rounds = vec![Vec::new(); setups.len()];
    for _ in 0..ROUNDS {
        for (i, setup) in setups.iter().enumerate() {
            let (out, events) = run(&tracer, &fd_script, *setup, "fd_open");
            let opens = out.trim().parse::<f64>().unwrap() / SECONDS;
            rounds[i].push((opens, events));
        }
    }
    let mut per_open = Vec::new();
    for (setup, round) in setups.iter().zip(rounds) {
        let opens = median(round.iter().map(|r| r.0).collect());
        let events = median(round.iter().map(|r| r.1).collect());
        let us = 1e6 / opens;
        per_open.push(us);
        println!(
            "   {:<24} {:>14.0} {:>14.0} {:>16.2}",
            setup.label(),
            opens,
            events,
            us
        );
    }
    println!(
        "   => the frame walk adds {:.2} us per stacked event (plain events add {:.2} us)",
        per_open[2] - per_open[1],
        per_open[1] - per_open[0]
    );

    println!(
        "2. 10 MB/s RSS leak (100 KiB bytearray every 10 ms), {SECONDS} s x {ROUNDS} rounds each, medians"
    );
    println!(
        "   {:<24} {:>18} {:>16}",
        "set-up", "us per leak line", "page events/s"
    );
    let mut rounds = vec![Vec::new(); setups.len()];
    for _ in 0..ROUNDS {
        for (i, setup) in setups.iter().enumerate() {
            let (out, events) = run(&tracer, &rss_script, *setup, "page_fault");
            let us: f64 = out.split_whitespace().next().unwrap().parse().unwrap();
            rounds[i].push((us, events));
        }
    }
    let mut line_us = Vec::new();
    for (setup, round) in setups.iter().zip(rounds) {
        let us = median(round.iter().map(|r| r.0).collect());
        let events = median(round.iter().map(|r| r.1).collect());
        line_us.push(us);
        println!("   {:<24} {:>18.1} {:>16.0}", setup.label(), us, events);
    }
    println!(
        "   => target slowdown on the leaking line: plain events {:+.1}%, with kernel stacks {:+.1}%",
        (line_us[1] / line_us[0] - 1.0) * 100.0,
        (line_us[2] / line_us[0] - 1.0) * 100.0
    );
}

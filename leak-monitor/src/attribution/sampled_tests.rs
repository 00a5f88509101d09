//! Unit tests of the sampled attributor on hand-made reads.

use super::*;
use crate::resource::Amount;
use std::time::Duration;

const APP: &str = "/srv/app/worker.py";
const THREADING: &str = "/usr/lib/python3.11/threading.py";

fn frame(file: &str, line: u32, function: &str) -> Frame {
    Frame::new(file, line, function)
}

fn thread(tid: u32, running: bool, frames: Vec<Frame>, faults: u64) -> ThreadObservation {
    ThreadObservation {
        os_tid: tid,
        running,
        frames,
        minor_faults: Some(faults),
        faults_during: 0,
    }
}

fn read(threads: Vec<ThreadObservation>, fds: u64, count: u64) -> Observation {
    Observation {
        threads,
        open_fds: Some(fds),
        thread_count: Some(count),
        fds_during: 0,
        threads_during: 0,
        read_time: Duration::ZERO,
    }
}

/// The main thread computes without faulting; a worker sleeps at line 30 and, once every
/// `hit_every` reads, is caught at line 25 where it faults 16 pages; its other growth happens
/// between reads (seen from its sleep line).
fn busy_main_and_leaking_worker(reads: u32, hit_every: u32) -> SampledAttributor {
    let mut attributor = SampledAttributor::new();
    let (mut worker_faults, mut main_line) = (100, 50);
    for i in 0..reads {
        main_line = if main_line == 50 { 51 } else { 50 };
        let main = thread(1, true, vec![frame(APP, main_line, "crunch")], 500);
        let caught = i % hit_every == hit_every - 1;
        // Growth every few reads, whether or not the read catches it.
        if i % 3 == 0 || caught {
            worker_faults += 16;
        }
        let line = if caught { 25 } else { 30 };
        let worker = thread(
            2,
            caught,
            vec![frame(APP, line, "refresh_prices")],
            worker_faults,
        );
        attributor.observe(read(vec![main, worker], 10, 2));
    }
    attributor
}

#[test]
fn a_rarely_caught_leak_line_beats_a_busy_thread_and_a_sleeping_line() {
    let attributor = busy_main_and_leaking_worker(3000, 200);
    let sites = attributor.sites(Resource::RssBytes, Amount(1_000_000.0));
    assert_eq!(
        sites[0].frame,
        frame(APP, 25, "refresh_prices"),
        "{sites:#?}"
    );
    // The busy main thread faulted nothing: it has no site at all.
    assert!(
        sites.iter().all(|s| s.frame.function != "crunch"),
        "{sites:#?}"
    );
    // The sleeping line is kept as a minor site.
    assert!(sites.iter().any(|s| s.frame.line == 30));
}

#[test]
fn amounts_add_up_to_the_growth_and_shares_to_one() {
    let attributor = busy_main_and_leaking_worker(600, 50);
    let sites = attributor.sites(Resource::RssBytes, Amount(123_456.0));
    let amount: f64 = sites.iter().map(|s| s.amount.0).sum();
    let share: f64 = sites.iter().map(|s| s.share.0).sum();
    assert!((amount - 123_456.0).abs() < 1e-6, "{amount}");
    assert!((share - 1.0).abs() < 1e-9, "{share}");
    assert!(sites.windows(2).all(|w| w[0].share >= w[1].share));
    // Nothing grew in fds or threads: no sites there.
    assert!(attributor.sites(Resource::OpenFds, Amount(10.0)).is_empty());
    assert!(attributor.sites(Resource::Threads, Amount(10.0)).is_empty());
}

#[test]
fn the_creating_thread_is_blamed_over_idle_waiters_and_stdlib_frames() {
    let mut attributor = SampledAttributor::new();
    let sleeping = || vec![frame(APP, 40, "main")];
    let waiting = |tid| {
        thread(
            tid,
            false,
            vec![
                frame(THREADING, 320, "wait"),
                frame(THREADING, 600, "wait"),
                frame(APP, 15, "watchdog"),
            ],
            0,
        )
    };
    let mut count = 1;
    for i in 0..400u32 {
        let mut threads = Vec::new();
        // Every 10th read catches the main thread inside Thread.start, which waits in threading.py.
        let starting = i % 10 == 5;
        let main_frames = if starting {
            vec![
                frame(THREADING, 960, "start"),
                frame(APP, 22, "handle_request"),
                frame(APP, 38, "main"),
            ]
        } else {
            sleeping()
        };
        threads.push(thread(1, false, main_frames, 0));
        if starting {
            count += 1;
        }
        threads.extend((2..=count).map(waiting));
        attributor.observe(read(threads, 3, count as u64));
    }
    let sites = attributor.sites(Resource::Threads, Amount(39.0));
    assert_eq!(
        sites[0].frame,
        frame(APP, 22, "handle_request"),
        "{sites:#?}"
    );
    // The full stack is kept, stdlib frame first.
    assert_eq!(sites[0].stack[0].file, THREADING);
    assert!(sites[0].share.0 > 0.9, "{sites:#?}");
}

#[test]
fn an_idle_thread_is_the_fallback_not_dropped() {
    let mut attributor = SampledAttributor::new();
    for i in 0..10u64 {
        let t = thread(7, false, vec![frame(APP, 9, "serve")], 0);
        attributor.observe(read(vec![t], 5 + i, 1));
    }
    let sites = attributor.sites(Resource::OpenFds, Amount(9.0));
    assert_eq!(sites.len(), 1);
    assert_eq!(sites[0].frame.line, 9);
    assert!((sites[0].amount.0 - 9.0).abs() < 1e-9);
    // fds also stand for sockets (a socket is an fd).
    assert_eq!(attributor.sites(Resource::Sockets, Amount(1.0)).len(), 1);
}

#[test]
fn growth_across_a_break_is_not_credited() {
    let mut attributor = SampledAttributor::new();
    let t = |faults| thread(1, true, vec![frame(APP, 3, "f")], faults);
    attributor.observe(read(vec![t(0)], 1, 1));
    attributor.break_window();
    attributor.observe(read(vec![t(1000)], 100, 1));
    attributor.observe(read(vec![t(1000)], 100, 1));
    assert!(attributor.sites(Resource::RssBytes, Amount(1.0)).is_empty());
    assert!(attributor.sites(Resource::OpenFds, Amount(1.0)).is_empty());
}

#[test]
fn sites_are_bounded_and_the_largest_survive() {
    let mut attributor = SampledAttributor::new();
    let mut faults = 0;
    // Line 1 grows on every read; 200 other lines grow once each.
    for i in 0..400u32 {
        faults += 1;
        let line = if i % 2 == 0 { 1 } else { 2 + i };
        let t = thread(1, true, vec![frame(APP, line, "f")], faults);
        attributor.observe(read(vec![t], 1, 1));
    }
    let sites = attributor.sites(Resource::RssBytes, Amount(100.0));
    assert!(sites.len() <= MAX_SITES, "{}", sites.len());
    assert_eq!(sites[0].frame.line, 1);
}

#[test]
fn a_runnable_thread_found_where_it_rested_is_idle() {
    // On a busy machine a woken thread shows state R at the line it slept on, and its growth
    // may happen during the read; only the reads that found it elsewhere place that growth.
    let mut attributor = SampledAttributor::new();
    let mut faults = 0;
    for i in 0..500u32 {
        let caught = i % 25 == 24;
        let line = if caught { 24 } else { 29 };
        faults += 16;
        // The read after the one that caught it finds it asleep again.
        let running = i % 25 != 0;
        let mut t = thread(2, running, vec![frame(APP, line, "refresh_prices")], faults);
        t.faults_during = 16;
        attributor.observe(read(vec![t], 4, 2));
    }
    let sites = attributor.sites(Resource::RssBytes, Amount(1000.0));
    assert_eq!(sites[0].frame.line, 24, "{sites:#?}");
    assert!(sites[0].share.0 > 0.9, "{sites:#?}");
}

#[test]
fn growth_during_a_stretched_read_counts_like_the_wider_window() {
    // Reads take 100 us; one in 20 is preempted for 5 ms and finds the thread at line 9 while
    // the faults of line 5 (caught once in 50 reads) happen during it.
    let mut attributor = SampledAttributor::new();
    for i in 0..1000u32 {
        let (line, stretched) = match i {
            _ if i % 50 == 25 => (5, false),
            _ if i % 20 == 10 => (9, true),
            _ => (1, false),
        };
        let caught = line != 1;
        let running = i % 2 == 0 || caught;
        let mut t = thread(3, running, vec![frame(APP, line, "f")], u64::from(i) * 4);
        t.faults_during = if caught { 4 } else { 0 };
        let mut r = read(vec![t], 3, 1);
        r.read_time = Duration::from_micros(if stretched { 5000 } else { 100 });
        attributor.observe(r);
    }
    let sites = attributor.sites(Resource::RssBytes, Amount(1.0));
    assert_eq!(sites[0].frame.line, 5, "{sites:#?}");
}

//! The group verdict on generated pools: workers forked, observed every 0.5 s, recycled.

use super::*;
use crate::detection::Verdict;
use crate::outputs::fixtures::site;

const KB: f64 = 1024.0;

/// How one generated worker's resource moves over its life (seconds since its start).
type Shape = fn(f64) -> f64;

struct Pool {
    tracker: GroupTracker,
    next_pid: i32,
    now: f64,
}

impl Pool {
    fn new() -> Pool {
        Pool {
            tracker: GroupTracker::new(),
            next_pid: 1000,
            now: 1_000_000.0,
        }
    }

    /// Runs `workers` at a time, each living `life` seconds, for `seconds`; a master that never
    /// grows is a member throughout. `requests_per_second` counts requests when given.
    fn run(
        &mut self,
        workers: usize,
        life: f64,
        seconds: f64,
        shape: Shape,
        verdict: Verdict,
        requests_per_second: Option<f64>,
    ) {
        let end = self.now + seconds;
        // Staggered so that recycles spread over time, as in a real pool.
        let mut live: Vec<(i32, f64)> = (0..workers)
            .map(|i| (self.fork(), self.now - life * i as f64 / workers as f64))
            .collect();
        let master = MemberSample {
            pid: 1,
            start_unix: self.now - 100.0,
            resources: vec![sample(
                Resource::RssBytes,
                50.0 * 1024.0 * KB,
                Verdict::Stable,
            )],
            requests: None,
        };
        while self.now < end {
            self.tracker.observe("web", self.now, &master);
            for (pid, start) in live.iter_mut() {
                let age = self.now - *start;
                if age >= life {
                    self.tracker.ended("web", *pid, *start, self.now);
                    *pid = self.next_pid;
                    self.next_pid += 1;
                    *start = self.now;
                }
                let age = self.now - *start;
                let mut rss = sample(Resource::RssBytes, 30.0 * 1024.0 * KB + shape(age), verdict);
                rss.sites = vec![site("/srv/app.py", 12, "handle", 1.0, shape(age))];
                let member = MemberSample {
                    pid: *pid,
                    start_unix: *start,
                    resources: vec![rss],
                    requests: requests_per_second.map(|r| (age * r) as u64),
                };
                self.tracker.observe("web", self.now, &member);
            }
            self.now += 0.5;
        }
    }

    fn fork(&mut self) -> i32 {
        self.next_pid += 1;
        self.next_pid
    }

    fn rss(&mut self) -> GroupResource {
        let views = self.tracker.views(self.now);
        views[0]
            .resources
            .iter()
            .find(|r| r.resource == Resource::RssBytes)
            .cloned()
            .expect("rss_bytes")
    }
}

fn sample(resource: Resource, value: f64, verdict: Verdict) -> ResourceSample {
    ResourceSample {
        resource,
        value,
        verdict,
        sites: Vec::new(),
    }
}

/// 20 KB per request at 60 requests/s, with a page of jitter.
fn leaking(age: f64) -> f64 {
    (age * 60.0 * 20.0 * KB) + jitter(age)
}

fn flat(age: f64) -> f64 {
    jitter(age)
}

/// 2 MB at start-up, then nothing: a warm-up, not a leak.
fn warm_up(age: f64) -> f64 {
    (age * 4.0 * 1024.0 * KB).min(2.0 * 1024.0 * KB) + jitter(age)
}

/// Deterministic page-sized noise.
fn jitter(age: f64) -> f64 {
    (((age * 7.3).sin() * 1000.0).round().rem_euclid(3.0) - 1.0) * 4.0 * KB
}

#[test]
fn a_leak_hidden_by_recycling_is_found_from_each_workers_life() {
    let mut pool = Pool::new();
    pool.run(2, 5.0, 60.0, leaking, Verdict::Growing, None);
    let rss = pool.rss();
    assert_eq!(rss.verdict, Verdict::Leak, "{rss:?}");
    assert!(rss.masked_by_recycling);
    assert!(rss.members_grown >= 20, "{rss:?}");
    let rate = rss.per_worker_rate_per_second.0;
    assert!((rate - 1200.0 * KB).abs() < 100.0 * KB, "rate {rate}");
    let life = rss.median_lifetime_seconds.expect("lifetimes");
    assert!((4.5..=5.5).contains(&life), "life {life}");
    // Two workers of 5 s each: 24 restarts a minute.
    assert!((20.0..=26.0).contains(&rss.recycles_per_minute), "{rss:?}");
    assert!(
        rss.summary.contains("leak masked by recycling"),
        "{}",
        rss.summary
    );
    // The line, merged across workers: one site, the amounts summed.
    assert_eq!(rss.sites.len(), 1);
    assert_eq!(
        (rss.sites[0].file.as_str(), rss.sites[0].line),
        ("/srv/app.py", 12)
    );
    assert!(
        rss.sites[0].amount.0 > 10.0 * 1024.0 * KB,
        "{:?}",
        rss.sites[0]
    );
    assert!((rss.sites[0].share.0 - 1.0).abs() < 1e-9);
}

#[test]
fn requests_counted_give_the_growth_per_request() {
    let mut pool = Pool::new();
    pool.run(2, 5.0, 60.0, leaking, Verdict::Growing, Some(60.0));
    let rss = pool.rss();
    assert!(rss.masked_by_recycling, "{rss:?}");
    let per_request = rss.per_request.expect("per request");
    assert!((per_request - 20.0 * KB).abs() < 2.0 * KB, "{per_request}");
    // Seen every 0.5 s, a worker of 300 requests is last seen after 270 to 300 of them.
    let requests = rss.requests_per_worker.expect("requests per worker");
    assert!((270.0..=300.0).contains(&requests), "{requests}");
    assert!(
        rss.summary
            .contains("20.0 KiB per request and is recycled after ~"),
        "{}",
        rss.summary
    );
}

#[test]
fn a_pool_that_does_not_leak_raises_no_alarm() {
    let mut pool = Pool::new();
    pool.run(2, 5.0, 120.0, flat, Verdict::Stable, None);
    let rss = pool.rss();
    assert_eq!(rss.verdict, Verdict::Stable, "{rss:?}");
    assert!(!rss.masked_by_recycling);
    assert!(rss.members_judged >= 20);
}

#[test]
fn a_warm_up_in_every_worker_is_not_a_leak() {
    let mut pool = Pool::new();
    pool.run(3, 5.0, 120.0, warm_up, Verdict::Growing, None);
    let rss = pool.rss();
    assert_eq!(rss.verdict, Verdict::Growing, "{rss:?}");
    assert!(!rss.masked_by_recycling);
    assert_eq!(rss.members_grown, 0, "{rss:?}");
}

#[test]
fn a_worker_called_a_leak_gives_its_own_verdict_not_masked() {
    let mut pool = Pool::new();
    pool.run(2, 5.0, 30.0, leaking, Verdict::Leak, None);
    let rss = pool.rss();
    assert_eq!(rss.verdict, Verdict::Leak);
    assert!(!rss.masked_by_recycling);
}

#[test]
fn a_few_workers_called_a_leak_on_their_own_do_not_unmask_the_pool() {
    // On a loaded machine a slow worker now and then lives long enough for its own verdict;
    // the pool still leaks through recycling.
    let mut pool = Pool::new();
    pool.run(2, 5.0, 10.0, leaking, Verdict::Leak, None);
    pool.run(2, 5.0, 60.0, leaking, Verdict::Growing, None);
    let rss = pool.rss();
    assert_eq!(rss.verdict, Verdict::Leak, "{rss:?}");
    assert!(rss.masked_by_recycling, "{rss:?}");
    assert!(rss.members_called > 0, "{rss:?}");
    assert!(rss.summary.contains("leak masked by recycling"), "{rss:?}");
}

#[test]
fn one_ended_worker_is_not_recycling() {
    let mut pool = Pool::new();
    // One worker living 20 s within 24 s: it ends once.
    pool.run(1, 20.0, 24.0, leaking, Verdict::Growing, None);
    let view = &pool.tracker.views(pool.now)[0];
    assert!(view.recycles_total <= 2, "{}", view.recycles_total);
    let rss = pool.rss();
    assert!(!rss.masked_by_recycling, "{rss:?}");
}

#[test]
fn ended_members_are_bounded_and_still_counted() {
    let mut pool = Pool::new();
    pool.run(4, 2.0, 100.0, leaking, Verdict::Growing, None);
    let view = &pool.tracker.views(pool.now)[0];
    assert!(view.recycles_total > 150, "{}", view.recycles_total);
    // The master, the current workers and the latest ended ones.
    assert_eq!(view.members, 5);
    assert_eq!(view.member_views.len(), 5 + MAX_ENDED);
    assert!(view.is_pool());
}

#[test]
fn a_group_without_members_is_forgotten() {
    let mut tracker = GroupTracker::new();
    let member = MemberSample {
        pid: 7,
        start_unix: 10.0,
        resources: vec![sample(Resource::OpenFds, 5.0, Verdict::Stable)],
        requests: None,
    };
    tracker.observe("batch", 100.0, &member);
    tracker.ended("batch", 7, 10.0, 101.0);
    assert_eq!(tracker.views(200.0).len(), 1);
    assert!(tracker.views(101.0 + FORGET_AFTER_SECONDS + 1.0).is_empty());
}

#[test]
fn a_member_that_joins_a_pool_leaves_its_old_group_without_a_recycle() {
    let mut tracker = GroupTracker::new();
    let master = MemberSample {
        pid: 7,
        start_unix: 10.0,
        resources: vec![sample(Resource::OpenFds, 5.0, Verdict::Stable)],
        requests: None,
    };
    tracker.observe("python3", 100.0, &master);
    tracker.moved("python3", 7, 10.0);
    tracker.observe("gunicorn", 101.0, &master);
    tracker.set_source("gunicorn", GroupSource::Parent);
    let views = tracker.views(101.0);
    assert_eq!(views.len(), 1, "{views:#?}");
    assert_eq!(views[0].group, "gunicorn");
    assert_eq!(views[0].source, GroupSource::Parent);
    assert_eq!(views[0].recycles_total, 0);
    // A worker that joined a master named by --match keeps the group `match`.
    tracker.set_source("gunicorn", GroupSource::Match);
    tracker.set_source("gunicorn", GroupSource::Parent);
    assert_eq!(tracker.views(102.0)[0].source, GroupSource::Match);
}

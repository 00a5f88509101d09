//! Pools that recycle their workers, followed by `serve --match web=...`: a leak no worker lives
//! long enough to show is found from each worker's growth over its life (the group verdict
//! `leak`, masked by recycling, with the leaking line), and the same pool without the leak
//! raises no group alarm. The pool is `tests/python/prefork_recycling.py`: 2 workers of 300
//! requests at 60 a second (~5 s each), 20 KB kept per request with `--leak`. The same with a
//! real gunicorn + Flask app (`--max-requests 300`, 2 workers) under steady load from the test.

use crate::scrape::{self, Series};
use crate::support::{
    cpu_heavy_slot, http_get, python_script, read_json, serve_matching, wait_until, GunicornPool,
    Workload,
};
use serde_json::Value;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// The issue asks for the verdict within 3 minutes.
const VERDICT_DEADLINE: Duration = Duration::from_secs(180);

/// Starts the pool under a name of its own and `serve` following that pool alone (tests run
/// in parallel, and a daemon that followed both pools would judge them as one group).
fn pool_and_daemon(
    kind: &str,
    extra: &[&str],
) -> (
    Workload,
    crate::support::LeakMonitor,
    SocketAddr,
    tempfile::TempDir,
) {
    let name = format!("{kind}-{}", std::process::id());
    // The escaped dot keeps the pattern from matching the daemon's own command line.
    let pattern = format!(r"web=prefork_recycling\.py .*--name {name}$");
    let (daemon, addr, dir) = serve_matching(&pattern);
    // The name last, where the pattern expects it.
    let mut args = extra.to_vec();
    args.extend(["--name", &name]);
    let pool = Workload::start("prefork_recycling.py", &args);
    (pool, daemon, addr, dir)
}

fn scrape(addr: SocketAddr) -> Vec<Series> {
    let (status, body) = http_get(addr, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    scrape::parse(&body)
}

/// The value of the group series `name` of group `web` with `labels`, when scraped.
fn group_value(series: &[Series], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut with = vec![("target", "web")];
    with.extend_from_slice(labels);
    let found = scrape::find(series, name, &with);
    for s in &found {
        assert!(s.label("pid").is_none(), "a group series with a pid: {s:?}");
    }
    found.first().map(|s| s.value)
}

fn group_reports(dir: &Path) -> Vec<Value> {
    group_reports_of(dir, "web")
}

/// The JSON group reports of `group` written into `dir`.
fn group_reports_of(dir: &Path, group: &str) -> Vec<Value> {
    // File names keep to [A-Za-z0-9_-].
    let safe: String = group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let prefix = format!("{safe}-group-");
    fs::read_dir(dir)
        .expect("read the report dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".json"))
        })
        .map(|p| read_json(&p))
        .filter(|r| r["group"] == group)
        .collect()
}

/// The Markdown group reports of `group` (written beside the JSON ones) in `dir`.
fn group_markdown_of(dir: &Path, group: &str) -> Vec<String> {
    fs::read_dir(dir)
        .expect("read the report dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains("-group-") && n.ends_with(".md"))
        })
        .filter_map(|p| fs::read_to_string(p).ok())
        .filter(|text| text.starts_with(&format!("## Group Leak Report: {group}\n")))
        .collect()
}

/// The rss_bytes entry of a group report.
fn group_rss(report: &Value) -> &Value {
    report["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["resource"] == "rss_bytes")
        .expect("rss_bytes in the group report")
}

/// The line of `script` marked `# LEAK`.
fn leak_line(script: &str) -> u64 {
    let source = fs::read_to_string(python_script(script)).expect("the script");
    source
        .lines()
        .position(|l| l.contains("# LEAK"))
        .expect("a # LEAK line") as u64
        + 1
}

#[test]
fn a_leak_masked_by_worker_recycling_gets_a_group_verdict_with_its_line() {
    let _cpu = cpu_heavy_slot();
    let started = Instant::now();
    let (_pool, daemon, addr, dir) = pool_and_daemon("leaky", &["--leak"]);
    let report = wait_until(VERDICT_DEADLINE, "a group report of web", || {
        group_reports(dir.path()).into_iter().next()
    });
    let took = started.elapsed();
    eprintln!("group verdict after {took:?}");

    assert_eq!(report["schema"], "leak-monitor/group-report/v1");
    assert_eq!(report["group"], "web");
    let rss = report["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["resource"] == "rss_bytes")
        .expect("rss_bytes in the group report");
    assert_eq!(rss["verdict"], "leak", "{rss:#}");
    assert_eq!(rss["masked_by_recycling"], true, "{rss:#}");
    assert!(
        rss["summary"]
            .as_str()
            .is_some_and(|s| s.contains("leak masked by recycling")),
        "{rss:#}"
    );
    // ~1.2 MB/s per worker (20 KB x 60/s); generous bounds for a loaded machine.
    let rate = rss["rate_per_second"].as_f64().expect("rate");
    assert!(
        (300e3..=3e6).contains(&rate),
        "per-worker rate {rate}: {rss:#}"
    );
    let members = report["members"].as_array().expect("members");
    let ended = members.iter().filter(|m| !m["end"].is_null()).count();
    assert!(ended >= 2, "recycled workers: {members:#?}");
    // The line, merged across the workers' attribution.
    let line = leak_line("prefork_recycling.py");
    let sites = rss["sites"].as_array().expect("sites");
    assert!(
        sites.iter().any(|s| s["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("prefork_recycling.py"))
            && s["line"] == line),
        "no site at prefork_recycling.py:{line}: {sites:#?}"
    );

    let series = scrape(addr);
    let suspected = group_value(
        &series,
        "leak_monitor_group_leak_suspected",
        &[("resource", "rss_bytes")],
    );
    assert_eq!(suspected, Some(1.0));
    let recycles = group_value(&series, "leak_monitor_worker_recycles_total", &[]);
    assert!(recycles.is_some_and(|n| n >= 2.0), "{recycles:?}");
    let current = group_value(&series, "leak_monitor_group_members", &[]);
    assert!(current.is_some_and(|n| n >= 1.0), "{current:?}");
    let log = daemon.output_so_far();
    assert!(log.contains("group web ("), "{log}");
    assert!(log.contains("leak masked by recycling"), "{log}");
}

#[test]
fn the_same_pool_without_the_leak_raises_no_group_alarm() {
    let _cpu = cpu_heavy_slot();
    let (_pool, daemon, addr, dir) = pool_and_daemon("tidy", &[]);
    // As many recycles as the leaking pool needs for its verdict, and more: ~80 s of them.
    wait_until(VERDICT_DEADLINE, "30 recycled workers", || {
        let series = scrape(addr);
        let suspected = group_value(
            &series,
            "leak_monitor_group_leak_suspected",
            &[("resource", "rss_bytes")],
        );
        assert_ne!(suspected, Some(1.0), "{}", daemon.output_so_far());
        group_value(&series, "leak_monitor_worker_recycles_total", &[]).filter(|n| *n >= 30.0)
    });
    let reports = group_reports(dir.path());
    assert!(reports.is_empty(), "{reports:#?}");
    let log = daemon.output_so_far();
    assert!(!log.contains("group web ("), "{log}");
}

/// The escaped dot keeps the pattern from matching the daemon's own command line; the port
/// keeps it to this test's gunicorn.
fn gunicorn_pattern(app: SocketAddr) -> String {
    format!(r"web=gunicorn .*--bind 127\.0\.0\.1:{} ", app.port())
}

#[test]
fn gunicorn_with_max_requests_and_a_leak_per_request_gets_a_group_verdict() {
    let _cpu = cpu_heavy_slot();
    let pool = GunicornPool::start(20 * 1024, gunicorn_pattern);
    let (daemon, dir) = (&pool.daemon, &pool.dir);
    let started = Instant::now();
    let line = leak_line("flask_pool_app.py");
    let at_line = |site: &Value| {
        site["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("flask_pool_app.py"))
            && site["line"] == line
    };
    // The verdict comes first; the report is written again as the workers' attribution finds
    // the line.
    let report = wait_until(
        VERDICT_DEADLINE,
        "a group report of web with the line",
        || {
            group_reports(dir.path()).into_iter().find(|r| {
                r["resources"].as_array().is_some_and(|rs| {
                    rs.iter()
                        .any(|r| r["sites"].as_array().is_some_and(|s| s.iter().any(at_line)))
                })
            })
        },
    );
    eprintln!(
        "gunicorn group verdict with its line after {:?}",
        started.elapsed()
    );
    let rss = report["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["resource"] == "rss_bytes")
        .expect("rss_bytes in the group report");
    assert_eq!(rss["verdict"], "leak", "{rss:#}");
    assert_eq!(
        rss["masked_by_recycling"],
        true,
        "{rss:#}\n{}",
        daemon.output_so_far()
    );
    let sites = rss["sites"].as_array().expect("sites");
    assert!(
        sites.iter().any(at_line),
        "no site at flask_pool_app.py:{line}: {sites:#?}"
    );
    // Where the kernel counts the accepted connections, the growth is per request: ~20 KB.
    if let Some(amount) = rss["per_event"]["amount"].as_f64() {
        assert!((10e3..=60e3).contains(&amount), "per request: {rss:#}");
    }
}

#[test]
fn gunicorn_with_max_requests_and_no_leak_raises_no_group_alarm() {
    let _cpu = cpu_heavy_slot();
    let pool = GunicornPool::start(0, gunicorn_pattern);
    let (daemon, addr, dir) = (&pool.daemon, pool.addr, &pool.dir);
    wait_until(VERDICT_DEADLINE, "20 recycled gunicorn workers", || {
        let series = scrape(addr);
        let suspected = group_value(
            &series,
            "leak_monitor_group_leak_suspected",
            &[("resource", "rss_bytes")],
        );
        assert_ne!(suspected, Some(1.0), "{}", daemon.output_so_far());
        group_value(&series, "leak_monitor_worker_recycles_total", &[]).filter(|n| *n >= 20.0)
    });
    let reports = group_reports(dir.path());
    assert!(reports.is_empty(), "{reports:#?}");
}

/// The name `serve` gives a pool found from the process tree: the master's program, with the
/// master's PID after it when another pool of that program was named first (tests run in
/// parallel).
fn pool_name_of(program: &str, master: u32, dir: &Path) -> Option<String> {
    [program.to_string(), format!("{program}-{master}")]
        .into_iter()
        .find(|name| {
            group_reports_of(dir, name).iter().any(|r| {
                r["members"]
                    .as_array()
                    .is_some_and(|ms| ms.iter().any(|m| m["pid"] == master))
            })
        })
}

/// gunicorn followed by a nameless `--match` (the pattern picks the master and its workers,
/// as `--python` would, and names nothing): the pool is found from the process tree, named
/// `gunicorn` after its master, and its leak masked by recycling gets the group verdict.
#[test]
fn a_gunicorn_pool_is_found_without_a_match_name() {
    let _cpu = cpu_heavy_slot();
    let pool = GunicornPool::start(20 * 1024, |app| {
        format!(r"gunicorn .*--bind 127\.0\.0\.1:{} ", app.port())
    });
    let (gunicorn, daemon, addr, dir) = (&pool.gunicorn, &pool.daemon, pool.addr, &pool.dir);
    let started = Instant::now();
    let name = wait_until(
        VERDICT_DEADLINE,
        "a group report of the gunicorn pool",
        || {
            let name = pool_name_of("gunicorn", gunicorn.pid(), dir.path());
            if name.is_none() && started.elapsed() + Duration::from_secs(1) > VERDICT_DEADLINE {
                // What the daemon saw, for the failure that follows.
                let groups: Vec<String> = scrape(addr)
                    .iter()
                    .filter(|s| s.name.starts_with("leak_monitor_group"))
                    .map(|s| format!("{s:?}"))
                    .collect();
                eprintln!("{}\n{groups:#?}", daemon.output_so_far());
            }
            name
        },
    );
    let report = group_reports_of(dir.path(), &name)
        .into_iter()
        .next()
        .expect("a group report");
    assert_eq!(report["source"], "parent", "{report:#}");
    let rss = group_rss(&report);
    assert_eq!(rss["verdict"], "leak", "{rss:#}");
    assert_eq!(
        rss["masked_by_recycling"],
        true,
        "{rss:#}\n{}",
        daemon.output_so_far()
    );
    let members = report["members"].as_array().expect("members");
    assert!(
        members.iter().filter(|m| !m["end"].is_null()).count() >= 2,
        "recycled workers: {members:#?}"
    );
    // The Markdown beside it; where the kernel counts accepted connections, the leak per
    // request (~20 KB) is in both.
    let markdown = group_markdown_of(dir.path(), &name);
    assert!(
        markdown.iter().any(|t| t.contains("| rss_bytes | leak")),
        "{markdown:#?}"
    );
    if let Some(amount) = rss["per_event"]["amount"].as_f64() {
        assert_eq!(rss["per_event"]["event"], "request", "{rss:#}");
        assert!((10e3..=60e3).contains(&amount), "per request: {rss:#}");
        assert!(
            markdown.iter().any(|t| t.contains(" per request |")),
            "{markdown:#?}"
        );
    }
    // Group series under the pool's name, without a pid.
    let series = scrape(addr);
    let found = scrape::find(
        &series,
        "leak_monitor_group_leak_suspected",
        &[("target", &name), ("resource", "rss_bytes")],
    );
    assert!(
        found
            .first()
            .is_some_and(|s| s.value == 1.0 && s.label("pid").is_none()),
        "{found:?}"
    );
}

/// A `multiprocessing.Pool` with `maxtasksperchild`, followed by a nameless `--match`: the
/// script and its forked workers are one pool named after the script, and a leak per task that
/// recycling hides gets the group verdict with its line; the same pool without the leak raises
/// no group alarm.
#[test]
fn a_multiprocessing_pool_is_found_from_the_process_tree() {
    let _cpu = cpu_heavy_slot();
    for leak in [true, false] {
        let tag = format!("mp{}-{}", u8::from(leak), std::process::id());
        let pattern = format!(r"mp_pool_recycling\.py .*--name {tag}$");
        let (daemon, addr, dir) = serve_matching(&pattern);
        let mut args = vec!["--name", &tag];
        if leak {
            args.insert(0, "--leak");
        }
        let pool = Workload::start("mp_pool_recycling.py", &args);
        let program = "mp_pool_recycling.py";
        if leak {
            let name = wait_until(VERDICT_DEADLINE, "a group report of the pool", || {
                pool_name_of(program, pool.pid(), dir.path())
            });
            let line = leak_line(program);
            let at_line = |site: &Value| {
                site["file"].as_str().is_some_and(|f| f.ends_with(program)) && site["line"] == line
            };
            // The report is written again once the workers' attribution finds the line.
            let report = wait_until(VERDICT_DEADLINE, "the pool's leaking line", || {
                group_reports_of(dir.path(), &name).into_iter().find(|r| {
                    group_rss(r)["sites"]
                        .as_array()
                        .is_some_and(|s| s.iter().any(at_line))
                })
            });
            assert_eq!(report["source"], "parent", "{report:#}");
            let rss = group_rss(&report);
            assert_eq!(rss["verdict"], "leak", "{rss:#}");
            assert_eq!(
                rss["masked_by_recycling"],
                true,
                "{rss:#}\n{}",
                daemon.output_so_far()
            );
            // The Markdown beside it: the verdict, the line merged across workers, the lives.
            let markdown = group_markdown_of(dir.path(), &name);
            let needle = format!("{program}:{line}`");
            assert!(
                markdown.iter().any(|text| text
                    .contains("| rss_bytes | leak (masked by recycling) |")
                    && text.contains(&needle)
                    && text.contains("### Members")),
                "{markdown:#?}"
            );
        } else {
            wait_until(VERDICT_DEADLINE, "20 recycled pool workers", || {
                let series = scrape(addr);
                let name = [program.to_string(), format!("{program}-{}", pool.pid())];
                let mut recycled = None;
                for name in &name {
                    let with = |n: &str| scrape::find(&series, n, &[("target", name)]);
                    let suspected = with("leak_monitor_group_leak_suspected");
                    assert!(
                        suspected.iter().all(|s| s.value != 1.0),
                        "{suspected:?}\n{}",
                        daemon.output_so_far()
                    );
                    let n = with("leak_monitor_worker_recycles_total");
                    recycled = recycled.or(n.first().map(|s| s.value).filter(|n| *n >= 20.0));
                }
                recycled
            });
            let reports: Vec<_> = fs::read_dir(dir.path())
                .expect("read the report dir")
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().contains("-group-"))
                .collect();
            assert!(reports.is_empty(), "{reports:?}");
        }
    }
}

//! Recordings generated here, replayed: the verdicts come from the samples, the sites from the
//! evidence, and every malformed recording is refused with the line that is wrong.

use super::format::{Evidence, Header, Record, RecordedSample, ReportInputs, FORMAT};
use super::{replay_lines, ReplayError};
use crate::capabilities::Capabilities;
use crate::detection::Verdict;
use crate::outputs::fixtures::leaking_worker;
use crate::resource::{Amount, Resource};
use crate::sampling::net_tables::known_state;
use crate::sampling::{FdKind, Limits, Protocol, Sample};
use std::collections::BTreeMap;

const PID: i32 = 4242;

fn header() -> String {
    serde_json::to_string(&Header {
        format: FORMAT.to_string(),
        recorded_by: "test".to_string(),
        started_unix: 1_796_000_000.0,
        capabilities: Capabilities {
            procfs: true,
            ebpf: true,
            python_stacks: true,
            notes: Vec::new(),
        },
    })
    .unwrap()
}

fn line(record: &Record) -> String {
    serde_json::to_string(record).unwrap()
}

fn sample(fds: u64, rss: u64) -> RecordedSample {
    RecordedSample {
        rss,
        anon: rss / 2,
        file: rss / 2,
        shmem: 0,
        fds: BTreeMap::from([(FdKind::File, fds)]),
        sockets: vec![(Protocol::Tcp, "established".to_string(), 2)],
        threads: 4,
    }
}

/// A recording of `seconds` one-second samples whose fd count is `fds(t)`, with the evidence
/// of a leaking web worker and a report record; a small deterministic noise on RSS.
fn recording(seconds: u32, fds: impl Fn(f64) -> f64, with_report: bool) -> String {
    let worker = leaking_worker(PID);
    let mut lines = vec![
        header(),
        line(&Record::Target {
            pid: PID,
            info: worker.info.clone(),
            interval_seconds: 1.0,
            trend_refresh_seconds: 0.0,
        }),
    ];
    let mut noise: u64 = 7;
    for i in 0..seconds {
        let t = f64::from(i);
        noise = noise.wrapping_mul(6364136223846793005).wrapping_add(1);
        let rss = 100_000_000 + (noise >> 44);
        lines.push(line(&Record::Sample {
            pid: PID,
            t,
            sample: sample(fds(t).round() as u64, rss),
            limits: (i == 0).then_some(Limits {
                max_fds: Some(1024),
                memory: None,
            }),
            agreed_early: Vec::new(),
        }));
    }
    lines.push(line(&Record::Evidence {
        pid: PID,
        t: f64::from(seconds - 1),
        evidence: Box::new(Evidence::of(&worker)),
    }));
    if with_report {
        lines.push(line(&Record::Report {
            pid: PID,
            report: ReportInputs {
                generated_unix: 1_796_000_100.0,
                capabilities: Capabilities {
                    procfs: true,
                    ebpf: true,
                    python_stacks: true,
                    notes: vec!["a note of the run".to_string()],
                },
                cut_short: Some(false),
                target_exited_after_seconds: None,
                dropped_events: None,
            },
        }));
    }
    lines.join("\n") + "\n"
}

fn replay(text: &str) -> Result<super::Replay, ReplayError> {
    replay_lines(text.as_bytes(), "test.jsonl")
}

#[test]
fn a_steady_fd_leak_replays_as_a_leak_with_the_recorded_sites() {
    let replayed = replay(&recording(90, |t| 20.0 + 5.0 * t, true)).unwrap();
    let reports = replayed.reports();
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    let fds = report
        .resources
        .iter()
        .find(|r| r.resource == Resource::OpenFds)
        .unwrap();
    assert_eq!(fds.verdict, Verdict::Leak, "{fds:?}");
    assert!((fds.rate_per_second.0 - 5.0).abs() < 0.1, "{fds:?}");
    assert_eq!((fds.first, fds.last), (Amount(20.0), Amount(465.0)));
    // Sites are the recorded evidence: the worker's RSS site.
    let worker = leaking_worker(PID);
    let recorded_rss = worker
        .resources
        .iter()
        .find(|r| r.resource == Resource::RssBytes)
        .unwrap();
    let rss = report
        .resources
        .iter()
        .find(|r| r.resource == Resource::RssBytes)
        .unwrap();
    assert_eq!(rss.sites.len(), recorded_rss.sites.len());
    assert_eq!(rss.sites[0].line, recorded_rss.sites[0].line);
    assert_eq!(report.observation.samples, 90);
    assert_eq!(report.observation.cut_short, Some(false));
    assert!(report
        .capabilities
        .notes
        .contains(&"a note of the run".to_string()));
}

#[test]
fn a_cache_that_fills_then_holds_does_not_replay_as_a_leak() {
    let replayed = replay(&recording(120, |t| 20.0 + 3.0 * t.min(20.0), true)).unwrap();
    let fds = replayed.targets[0].snapshot.resources[1].clone();
    assert_eq!(fds.resource, Resource::OpenFds);
    assert_ne!(fds.trend.verdict, Verdict::Leak, "{:?}", fds.trend);
}

#[test]
fn replaying_twice_gives_the_same_report() {
    let text = recording(60, |t| 20.0 + 2.0 * t, true);
    let first = replay(&text).unwrap().reports()[0].to_json().unwrap();
    let second = replay(&text).unwrap().reports()[0].to_json().unwrap();
    assert_eq!(first, second);
}

#[test]
fn a_recording_cut_before_its_report_says_so() {
    let replayed = replay(&recording(30, |t| 20.0 + 5.0 * t, false)).unwrap();
    let report = &replayed.reports()[0];
    assert!(
        report
            .capabilities
            .notes
            .iter()
            .any(|n| n.contains("without a report")),
        "{:?}",
        report.capabilities.notes
    );
}

#[test]
fn a_sample_round_trips_through_its_recorded_shape() {
    let recorded = sample(12, 1 << 20);
    let back = RecordedSample::from(&Sample::from(&recorded));
    assert_eq!(back, recorded);
    assert_eq!(known_state("listen"), "listen");
    assert_eq!(known_state("listening"), "listening");
    assert_eq!(known_state("no such state"), "unknown");
}

#[test]
fn malformed_recordings_are_refused_with_where_and_why() {
    let err = |text: &str| replay(text).err().expect("refused").to_string();
    assert!(err("").contains("is empty"));
    assert!(err("not json\n").contains("line 1 is not a leak-monitor recording header"));
    assert!(err("{\"schema\":\"leak-monitor/report/v1\"}\n").contains("no `format` field"));
    assert!(err("{\"format\":\"leak-monitor/recording/v9\"}\n")
        .contains("is a `leak-monitor/recording/v9` recording"));
    assert!(err(&format!("{}\n", header())).contains("holds no target"));
    let stray = line(&Record::Sample {
        pid: 7,
        t: 0.0,
        sample: sample(1, 1),
        limits: None,
        agreed_early: Vec::new(),
    });
    assert!(err(&format!("{}\n{stray}\n", header()))
        .contains("test.jsonl:2: a `sample` record for PID 7"));
    let mut text = recording(5, |t| t, true);
    text.push_str("{\"kind\":\"sample\",\"pid\":4242}\n");
    let message = err(&text);
    assert!(message.starts_with("test.jsonl:10: "), "{message}");
}

/// The committed recordings of real workloads (`cargo xtask record-fixtures`): each replays to
/// the JSON report its live run wrote, byte for byte, and says what the workload is.
#[test]
fn committed_recordings_replay_to_the_reports_their_runs_wrote() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/recordings");
    // (recording, resource, verdict, the top site's file and line when it has one)
    type Expected<'a> = (&'a str, &'a str, Verdict, Option<(&'a str, u32)>);
    let expected: [Expected; 8] = [
        (
            "fd_leak",
            "open_fds",
            Verdict::Leak,
            Some(("fd_leak.py", 18)),
        ),
        (
            "thread_leak",
            "threads",
            Verdict::Leak,
            Some(("thread_leak.py", 23)),
        ),
        (
            "slow_churn_leak",
            "rss_bytes",
            Verdict::Leak,
            Some(("slow_churn_leak.py", 32)),
        ),
        (
            "held_service_dict",
            "rss_bytes",
            Verdict::Leak,
            Some(("held_service_dict.py", 33)),
        ),
        ("gc_sawtooth", "rss_bytes", Verdict::Stable, None),
        ("lru_cache_bounded", "rss_bytes", Verdict::Stable, None),
        (
            "demo",
            "open_fds",
            Verdict::Leak,
            Some(("leaky_service.py", 58)),
        ),
        (
            "demo",
            "threads",
            Verdict::Leak,
            Some(("leaky_service.py", 74)),
        ),
    ];
    for (name, resource, verdict, site) in expected {
        let path = dir.join(format!("{name}.jsonl"));
        let replayed = super::replay(&path).unwrap_or_else(|err| panic!("{err}"));
        let report = &replayed.reports()[0];
        let live = std::fs::read_to_string(dir.join(format!("{name}.report.json"))).unwrap();
        assert_eq!(
            report.to_json().unwrap(),
            live,
            "{name}: the replay differs"
        );
        let found = report
            .resources
            .iter()
            .find(|r| r.resource.as_str() == resource)
            .unwrap();
        assert_eq!(found.verdict, verdict, "{name} {resource}");
        if let Some((file, line)) = site {
            let top = &found.sites[0];
            assert!(
                top.file.ends_with(file) && top.line == line,
                "{name}: {top:?}"
            );
        }
    }
    // A recording from the demo stays well under 1 MiB per minute.
    let demo = dir.join("demo.jsonl");
    let bytes = std::fs::metadata(&demo).unwrap().len() as f64;
    let minutes = super::replay(&demo).unwrap().targets[0]
        .snapshot
        .observed_seconds
        .0
        / 60.0;
    assert!(
        bytes / minutes < 1024.0 * 1024.0,
        "{bytes} bytes in {minutes} min"
    );
}

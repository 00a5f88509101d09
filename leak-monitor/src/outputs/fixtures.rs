//! Snapshots built by hand for the outputs' unit tests: one leaking Python web worker with
//! attributed sites, and one quiet process without.

use crate::attribution::{Frame, LeakType, Site, SiteMethod};
use crate::detection::{GrowthPattern, Trend, Verdict, VerdictChange};
use crate::memory::parts::Breakdown;
use crate::memory::BreakdownFindings;
use crate::monitor::group::{GroupTracker, GroupView, MemberSample};
use crate::monitor::{ResourceSnapshot, StacksStatus, TargetSnapshot};
use crate::pyheap::growth::TypeGrowth;
use crate::pyheap::HeapFindings;
use crate::resource::{Amount, Bytes, PerSecond, Resource, Seconds, Share};
use crate::sampling::{FdCounts, FdKind, Limits, Memory, Protocol, Sample, SocketCounts};
use crate::targets::{GroupSource, TargetId, TargetInfo, TargetLabels};
use std::path::PathBuf;

pub const MIB: u64 = 1024 * 1024;

pub fn site(file: &str, line: u32, function: &str, share: f64, amount: f64) -> Site {
    Site {
        file: file.to_string(),
        line,
        function: function.to_string(),
        share: Share(share),
        amount: Amount(amount),
        leak_type: LeakType::UnboundedCollection,
        evidence: "        self._rendered[key] = bytearray(page) + bytearray(6000)".to_string(),
        fix: "Bound the collection: keep at most N entries (collections.OrderedDict + popitem)."
            .to_string(),
        stack: vec![
            Frame {
                file: file.to_string(),
                line,
                function: function.to_string(),
            },
            Frame {
                file: "/srv/app/main.py".to_string(),
                line: 40,
                function: "<module>".to_string(),
            },
        ],
        method: Some(SiteMethod::SampledAtGrowth),
        holder: None,
    }
}

fn resource(
    resource: Resource,
    trend: Trend,
    first: f64,
    last: f64,
    limit: Option<f64>,
) -> ResourceSnapshot {
    ResourceSnapshot {
        resource,
        trend,
        first: Amount(first),
        last: Amount(last),
        limit: limit.map(Amount),
        leak_since_seconds: None,
        sites: Vec::new(),
        heap_growth: Vec::new(),
        verdict_changes: Vec::new(),
        verdict_changes_total: 0,
    }
}

/// A Python web worker whose RSS leaks linearly (with attributed sites) and whose fds grow.
pub fn leaking_worker(pid: i32) -> TargetSnapshot {
    let limits = Limits {
        max_fds: Some(1024),
        memory: Some(Bytes(8 * 1024 * MIB)),
    };
    let mut rss = resource(
        Resource::RssBytes,
        Trend {
            verdict: Verdict::Leak,
            pattern: GrowthPattern::Linear,
            rate_per_second: PerSecond(2_603_827.2),
            confidence: 0.99,
            seconds_to_limit: Some(Seconds(3228.1)),
            early_leak: false,
        },
        (25 * MIB) as f64,
        (174 * MIB) as f64,
        limits.for_resource(Resource::RssBytes),
    );
    rss.verdict_changes = vec![
        VerdictChange {
            at_seconds: 8.0,
            samples: 9,
            from: Verdict::Stable,
            to: Verdict::Growing,
        },
        VerdictChange {
            at_seconds: 25.0,
            samples: 26,
            from: Verdict::Growing,
            to: Verdict::Leak,
        },
    ];
    rss.verdict_changes_total = 2;
    rss.sites = vec![
        site("/srv/app/render.py", 17, "handle", 0.93, 145_227_776.0),
        site("/srv/app/cache.py", 52, "remember", 0.07, 10_931_200.0),
    ];
    let fds = resource(
        Resource::OpenFds,
        Trend {
            verdict: Verdict::Growing,
            pattern: GrowthPattern::Step,
            rate_per_second: PerSecond(0.25),
            confidence: 0.6,
            seconds_to_limit: Some(Seconds(3_904.0)),
            early_leak: false,
        },
        12.0,
        48.0,
        limits.for_resource(Resource::OpenFds),
    );
    let sockets = resource(
        Resource::Sockets,
        Trend::UNKNOWN,
        3.0,
        3.0,
        limits.for_resource(Resource::Sockets),
    );
    let threads = resource(Resource::Threads, Trend::UNKNOWN, 4.0, 4.0, None);

    let mut fd_counts = FdCounts::default();
    fd_counts.by_kind.insert(FdKind::File, 40);
    fd_counts.by_kind.insert(FdKind::Socket, 3);
    fd_counts.by_kind.insert(FdKind::AnonInode, 5);
    let mut socket_counts = SocketCounts::default();
    socket_counts
        .by_protocol_state
        .insert((Protocol::Tcp, "listen"), 1);
    socket_counts
        .by_protocol_state
        .insert((Protocol::Tcp, "established"), 2);

    TargetSnapshot {
        info: TargetInfo {
            id: TargetId {
                pid,
                start_ticks: 123_456,
            },
            group: "web".to_string(),
            group_source: GroupSource::Match,
            ppid: 1,
            cmdline: vec!["python3".to_string(), "app.py".to_string()],
            exe: Some(PathBuf::from("/usr/bin/python3.11")),
            python_version: Some("3.11.7".to_string()),
            runtime: None,
            start_time_unix: 1_763_899_200.5,
            labels: TargetLabels::default(),
        },
        latest: Sample {
            memory: Memory {
                total: Bytes(174 * MIB),
                anon: Bytes(160 * MIB),
                file: Bytes(13 * MIB),
                shmem: Bytes(MIB),
            },
            fds: fd_counts,
            sockets: socket_counts,
            threads: 4,
        },
        limits,
        resources: vec![rss, fds, sockets, threads],
        observed_seconds: Seconds(59.0),
        samples: 60,
        interval_seconds: Seconds(1.0),
        ledgers: None,
        kernel_frames_off: None,
        allocations: None,
        kernel_tracing: None,
        stacks: StacksStatus::On,
        heap: Some(Ok(std::sync::Arc::new(HeapFindings {
            censuses: 12,
            types: vec![TypeGrowth {
                type_name: "Session".into(),
                count_first: 1200,
                count_last: 9800,
                bytes_first: 4_000_000,
                bytes_last: 31_000_000,
            }],
            top_types: vec![
                ("dict".into(), 20_000, 9_000_000),
                ("Session".into(), 9800, 31_000_000),
                ("function".into(), 5000, 700_000),
            ],
            ..HeapFindings::default()
        }))),
        memory: Ok(std::sync::Arc::new(python_growth_breakdowns())),
    }
}

/// A process with nothing growing, no known limits and no Python details.
pub fn quiet_process(pid: i32, group: &str) -> TargetSnapshot {
    let resources = Resource::ALL
        .iter()
        .map(|&r| resource(r, Trend::UNKNOWN, 10.0, 10.0, None))
        .collect();
    TargetSnapshot {
        info: TargetInfo {
            id: TargetId {
                pid,
                start_ticks: 99,
            },
            group: group.to_string(),
            group_source: GroupSource::Match,
            ppid: 1,
            cmdline: vec!["sleep".to_string(), "1000".to_string()],
            exe: None,
            python_version: None,
            runtime: None,
            start_time_unix: 1_763_899_000.0,
            labels: TargetLabels::default(),
        },
        latest: Sample::default(),
        limits: Limits::default(),
        resources,
        observed_seconds: Seconds(9.5),
        samples: 20,
        interval_seconds: Seconds(0.5),
        ledgers: None,
        kernel_frames_off: None,
        allocations: None,
        kernel_tracing: None,
        stacks: StacksStatus::NotPython,
        heap: None,
        memory: Err("the memory breakdown is off with stack attribution".into()),
    }
}

/// Two breakdowns 59 s apart in which live Python objects grew by 64 MiB.
fn python_growth_breakdowns() -> BreakdownFindings {
    const MIB: u64 = 1 << 20;
    let at = |at_seconds: f64, python: u64| Breakdown {
        at_seconds,
        bytes: [python, 2 * MIB, 4 * MIB, MIB, 8 * MIB, 9 * MIB, 0],
        smaps_rss: python + 24 * MIB,
        ..Breakdown::default()
    };
    BreakdownFindings {
        series: vec![at(0.0, 10 * MIB), at(30.0, 40 * MIB), at(59.0, 74 * MIB)],
        ..BreakdownFindings::default()
    }
}

/// The group `web` of two leaking workers, one of them ended (recycled).
pub fn leaking_web_group() -> GroupView {
    let mut tracker = GroupTracker::new();
    let (a, b) = (leaking_worker(41), leaking_worker(42));
    tracker.observe("web", 100.0, &MemberSample::from(&a));
    tracker.observe("web", 100.0, &MemberSample::from(&b));
    tracker.ended("web", 42, b.info.start_time_unix, 101.0);
    tracker.views(101.0).remove(0)
}

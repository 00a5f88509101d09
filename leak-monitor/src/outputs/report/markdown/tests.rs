//! The Markdown report's shape, on hand-built snapshots.

use super::*;
use crate::capabilities::Capabilities;
use crate::detection::Trend;
use crate::outputs::fixtures::{leaking_worker, quiet_process};
use crate::resource::{Bytes, PerSecond, Seconds};
use std::time::{Duration, UNIX_EPOCH};

fn no_stacks() -> Capabilities {
    Capabilities {
        procfs: true,
        ebpf: false,
        python_stacks: false,
        notes: vec!["eBPF off: not running as root".to_string()],
    }
}

fn report(snapshot: &crate::monitor::TargetSnapshot) -> Report {
    let mut report = Report::build(
        snapshot,
        &no_stacks(),
        UNIX_EPOCH + Duration::from_secs(1_795_435_200),
    );
    // The fixture's stacks are on (it has sites); these tests render a run without them.
    report.capabilities.python_stacks = false;
    report
}

/// Fails unless the `needles` occur in `text` in this order; returns their positions.
fn assert_in_order(text: &str, needles: &[&str]) -> Vec<usize> {
    let mut from = 0;
    let mut positions = Vec::new();
    for needle in needles {
        let found = text[from..]
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing after byte {from} in:\n{text}"));
        positions.push(from + found);
        from += found + needle.len();
    }
    positions
}

#[test]
fn sites_get_the_contract_sections_in_order() {
    let text = render_markdown(&[report(&leaking_worker(1234))]);
    let site_sections = [
        "#### Leak Type",
        "#### Growth Pattern",
        "#### Memory Impact",
        "#### Evidence",
        "#### Detection",
        "#### Fix",
    ];
    let mut needles = vec![
        "## Memory Leak Report\n",
        "pid 1234, `python3 app.py`",
        "| Resource | Verdict |",
        "| rss_bytes | **leak** | linear | 25.0 MiB → 174.0 MiB | 2.5 MiB/s (149.0 MiB/min) | 53 min 48 s | 99 % |",
        "| open_fds | growing | step | 12 → 48 |",
        "| sockets | stable |",
        "| threads | stable |",
        "### File: /srv/app/render.py:17",
    ];
    needles.extend(site_sections);
    needles.push("### File: /srv/app/cache.py:52");
    needles.extend(site_sections);
    needles.extend([
        "### Resource: open_fds (no source line attributed)",
        "#### Growth Pattern",
        "#### Memory Impact",
        "#### Detection",
    ]);
    assert_in_order(&text, &needles);

    // Stable resources get no section; the unattributed one gets no leak type, evidence or fix.
    // rss_bytes also gets its memory breakdown.
    let sections = text.lines().filter(|l| l.starts_with("### ")).count();
    assert_eq!(sections, 4, "{text}");
    let unattributed = &text[text.find("### Resource: open_fds").unwrap()..];
    assert!(!unattributed.contains("#### Leak Type") && !unattributed.contains("#### Fix"));
    assert!(unattributed.contains("Python stack attribution is not available in this run"));
    assert!(unattributed.contains("eBPF off: not running as root"));
}

#[test]
fn a_site_section_says_impact_evidence_detection_and_fix() {
    let mut report = report(&leaking_worker(1234));
    report.resources[0].per_event = Some(crate::outputs::report::PerEvent {
        event: "accept".to_string(),
        amount: 102_400.0,
    });
    let text = render_markdown(&[report]);
    let site = &text[text.find("### File: /srv/app/render.py:17").unwrap()..];
    let site = &site[..site.find("### File: /srv/app/cache.py").unwrap()];
    assert_in_order(
        site,
        &[
            "In `handle`: 93 %",
            "`unbounded_collection`",
            "`linear`",
            "from 25.0 MiB to 174.0 MiB",
            "- Growth rate: 2.5 MiB/s (149.0 MiB/min)",
            "- Per event: 100.0 KiB per `accept`",
            "- Time to limit: 53 min 48 s (limit 8.0 GiB)",
            "- Attributed to this line: 138.5 MiB",
            "```python\n        self._rendered[key] = bytearray(page) + bytearray(6000)\n```",
            "- `/srv/app/render.py:17` in `handle`",
            "- `/srv/app/main.py:40` in `<module>`",
            "one sample every 1 s for 59 s (60 samples)",
            "- Verdict changes: stable → growing at 8 s, growing → leak at 25 s.",
            "`leak-monitor run --pid 1234 --duration 59 --interval 1000 --markdown report.md`",
            "Bound the collection",
        ],
    );
}

#[test]
fn a_quiet_process_gets_only_the_summary() {
    let text = render_markdown(&[report(&quiet_process(77, "batch"))]);
    assert!(text.contains("**Verdict:** no resource grows."), "{text}");
    assert!(!text.contains("### "), "{text}");
    assert_eq!(
        text.matches("\n| ").count(),
        6,
        "header, rule and four resources:\n{text}"
    );
    assert!(
        text.contains("at one sample every 500 ms (20 samples)"),
        "{text}"
    );
}

#[test]
fn every_target_gets_its_own_report() {
    let text = render_markdown(&[report(&leaking_worker(1)), report(&quiet_process(2, "b"))]);
    let starts = assert_in_order(
        &text,
        &[
            "## Memory Leak Report\n\n**Target:** pid 1,",
            "## Memory Leak Report\n\n**Target:** pid 2,",
        ],
    );
    assert_eq!(starts[0], 0);
}

#[test]
fn code_cannot_escape_its_fences() {
    let mut snapshot = leaking_worker(1);
    snapshot.resources[0].sites[0].evidence = "x = '''\n```\n'''".to_string();
    snapshot.info.cmdline = vec!["python3".into(), "-c".into(), "print(`1`)\nx".into()];
    let text = render_markdown(&[report(&snapshot)]);
    assert!(
        text.contains("````python\nx = '''\n```\n'''\n````\n"),
        "{text}"
    );
    assert!(text.contains("``python3 -c 'print(`1`) x'``"), "{text}");
}

#[test]
fn leak_type_names_are_the_contract_names() {
    for leak_type in [
        LeakType::UnboundedCollection,
        LeakType::UnboundedCache,
        LeakType::CircularReference,
        LeakType::EventHandler,
        LeakType::ResourceNotClosed,
        LeakType::TensorAccumulation,
        LeakType::ThreadNotJoined,
        LeakType::Unknown,
    ] {
        let serde_name = serde_json::to_value(leak_type).unwrap();
        assert_eq!(serde_name, describe_leak_type(leak_type).0);
    }
}

#[test]
fn a_census_site_says_what_holds_the_memory_and_the_types_that_grow() {
    let mut report = report(&leaking_worker(1234));
    let rss = &mut report.resources[0];
    rss.sites[0].method = Some(SiteMethod::HeapCensus);
    rss.sites[0].holder = Some(Holder {
        path: "app.SERVICE._sessions".into(),
        type_name: "dict".into(),
        len_first: 1200,
        len_last: 9800,
        growth_per_second: PerSecond(286.0),
        retained_bytes: Bytes(31_000_000),
        item_types: vec!["Session".into()],
    });
    rss.heap_growth = vec![crate::outputs::report::model::HeapGrowthRow {
        type_name: "Session".into(),
        count_first: 1200,
        count_last: 9800,
        bytes_estimate: 31_000_000,
    }];
    let text = render_markdown(&[report]);
    assert_in_order(
        &text,
        &[
            "### File: /srv/app/render.py:17",
            "#### Held by",
            "`app.SERVICE._sessions` (dict): 1200 -> 9800 entries, +286/s entries",
            "Entries: `Session`.",
            "#### Evidence",
            "method `heap_census`",
            "### Heap growth by type",
            "| `Session` | 1200 | 9800 | 29.6 MiB |",
        ],
    );
}

#[test]
fn a_run_too_short_for_a_verdict_says_so_with_what_grew() {
    let mut snapshot = quiet_process(78, "web");
    let growing = Trend {
        verdict: Verdict::Growing,
        pattern: GrowthPattern::Linear,
        rate_per_second: PerSecond(20.0),
        confidence: 0.28,
        seconds_to_limit: None,
        early_leak: false,
    };
    let fds = snapshot
        .resources
        .iter_mut()
        .find(|r| r.resource == Resource::OpenFds)
        .unwrap();
    (fds.trend, fds.first, fds.last) = (growing, Amount(47.0), Amount(189.0));
    snapshot.observed_seconds = Seconds(7.0);
    let text = render_markdown(&[report(&snapshot)]);
    assert!(
        text.contains("**Verdict:** too short to decide: open_fds +142 in 7 s (a leak verdict needs 25 s or more)."),
        "{text}"
    );
    // Long enough, the same growth is only "not yet confident".
    snapshot.observed_seconds = Seconds(40.0);
    let text = render_markdown(&[report(&snapshot)]);
    assert!(
        text.contains("growing, not yet a confident leak: open_fds"),
        "{text}"
    );
}

#[test]
fn the_owner_line_names_container_pod_and_unit() {
    let mut snapshot = quiet_process(7, "batch");
    let plain = render_markdown(&[report(&snapshot)]);
    assert!(!plain.contains("**Owner:**"), "{plain}");

    snapshot.info.labels = crate::targets::TargetLabels {
        container_id: Some(
            "3f4a5b6c7d8e9f00112233445566778899aabbccddeeff0011223344556677aa".into(),
        ),
        container_runtime: Some("containerd".into()),
        pod: Some("web-7d9f".into()),
        namespace: Some("shop".into()),
        qos_class: Some("burstable".into()),
        unit: Some("web.service".into()),
        ..Default::default()
    };
    let text = render_markdown(&[report(&snapshot)]);
    assert!(
        text.contains(
            "**Owner:** container `3f4a5b6c7d8e` (containerd), pod `shop/web-7d9f` (burstable), \
             unit `web.service`  \n"
        ),
        "{text}"
    );
    assert_in_order(&text, &["**Target:**", "**Owner:**", "**Observed:**"]);
}

#[test]
fn an_early_leak_says_why_it_came_before_the_floor() {
    let mut snapshot = leaking_worker(79);
    snapshot.resources[0].leak_since_seconds = Some(Seconds(9.0));
    let text = render_markdown(&[report(&snapshot)]);
    assert!(
        text.contains("- Called a leak at 9 s, before the 25 s the series alone needs"),
        "{text}"
    );
    snapshot.resources[0].leak_since_seconds = Some(Seconds(30.0));
    let text = render_markdown(&[report(&snapshot)]);
    assert!(!text.contains("Called a leak at"), "{text}");
}

//! The diff on reports edited from the contract's example: one rss leak at render.py:17 over
//! 60 s (145227776 bytes attributed).

use super::*;
use crate::outputs::report::{Report, ResourceReport};
use serde_json::Value;

const EXAMPLE: &str = include_str!("../report/fixtures/contract_example.json");

fn example() -> Report {
    Report::from_json(EXAMPLE).unwrap()
}

fn rss(report: &mut Report) -> &mut ResourceReport {
    &mut report.resources[0]
}

/// A threads resource of `verdict`, with one site at `line` when leaking.
fn threads(verdict: Verdict, rate: f64, line: u32) -> ResourceReport {
    let mut row = example().resources[0].clone();
    row.resource = Resource::Threads;
    row.verdict = verdict;
    row.rate_per_second = PerSecond(rate);
    row.sites[0].file = "/srv/app/watch.py".into();
    row.sites[0].line = line;
    row.sites[0].function = "start_watchdog".into();
    row.sites[0].amount = crate::resource::Amount(rate * 60.0);
    if verdict != Verdict::Leak {
        row.sites.clear();
    }
    row
}

#[test]
fn a_fixed_leak_and_a_new_one_are_both_named_with_their_lines() {
    let mut old = example();
    old.resources.push(threads(Verdict::Stable, 0.0, 0));
    let mut new = example();
    rss(&mut new).verdict = Verdict::Stable;
    rss(&mut new).sites.clear();
    new.resources.push(threads(Verdict::Leak, 1.0, 42));

    let diff = diff(&old, &new);
    assert_eq!(diff.schema, SCHEMA);
    let changes: Vec<(Resource, Change)> = diff
        .resources
        .iter()
        .map(|r| (r.resource, r.change))
        .collect();
    assert_eq!(
        changes,
        [
            (Resource::Threads, Change::NewLeak),
            (Resource::RssBytes, Change::Fixed)
        ]
    );
    let new_site = &diff.resources[0].sites[0];
    assert_eq!(
        (new_site.file.as_str(), new_site.line, new_site.change),
        ("/srv/app/watch.py", 42, Change::NewLeak)
    );
    assert_eq!(new_site.new_rate_per_second, Some(PerSecond(1.0)));
    let fixed = &diff.resources[1].sites[0];
    assert_eq!(
        (fixed.file.as_str(), fixed.line, fixed.change),
        ("/srv/app/render.py", 17, Change::Fixed)
    );
    // 145227776 bytes over 60 s.
    assert!((fixed.old_rate_per_second.unwrap().0 - 2_420_462.9).abs() < 1.0);
    assert_eq!(
        diff.summary,
        Summary {
            new_leaks: 1,
            fixed_leaks: 1,
            worse: 0,
            better: 0,
            new_leaking_lines: 1,
            fixed_lines: 1
        }
    );

    let text = render_markdown(&diff);
    for needle in [
        "| threads | new leak | stable at +0/s | leak at +1/s |",
        "| rss_bytes | fixed | leak at ",
        "| `/srv/app/watch.py:42` | `start_watchdog` | new leak | - | +1/s |",
        "| `/srv/app/render.py:17` | `handle` | fixed | +2.3 MiB/s | - |",
        "1 new leak(s), 1 fixed",
    ] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
    let json: Value = serde_json::to_value(&diff).unwrap();
    assert_eq!(json["resources"][0]["change"], "new_leak");
    assert_eq!(json["resources"][1]["sites"][0]["change"], "fixed");
    assert_eq!(
        json["resources"][1]["sites"][0]["new_rate_per_second"],
        Value::Null
    );
}

#[test]
fn rates_up_and_down_beyond_the_noise_and_moved_lines() {
    let old = example();
    let mut faster = example();
    rss(&mut faster).rate_per_second.0 *= 2.0;
    // The leaking line moved down by an edit above it, and leaks twice as fast.
    rss(&mut faster).sites[0].line = 20;
    rss(&mut faster).sites[0].amount *= 2.0;
    let diff_up = diff(&old, &faster);
    assert_eq!(diff_up.resources[0].change, Change::Worse);
    let site = &diff_up.resources[0].sites[0];
    assert_eq!(
        (site.line, site.old_line, site.change),
        (20, Some(17), Change::Worse)
    );
    assert!(render_markdown(&diff_up).contains("`/srv/app/render.py:20` (was line 17)"));

    let diff_down = diff(&faster, &old);
    assert_eq!(diff_down.resources[0].change, Change::Better);
    assert_eq!(diff_down.resources[0].sites[0].change, Change::Better);

    // Within the noise: unchanged. A longer observation attributes more to the same rate.
    let mut same = example();
    rss(&mut same).rate_per_second.0 *= 1.1;
    same.observation.duration_seconds = Seconds(120.0);
    rss(&mut same).sites[0].amount *= 2.0;
    let diff_same = diff(&old, &same);
    assert_eq!(diff_same.resources[0].change, Change::Unchanged);
    assert_eq!(diff_same.resources[0].sites[0].change, Change::Unchanged);
    assert_eq!(diff_same.summary, Summary::default());
}

#[test]
fn a_site_in_another_function_of_the_file_is_another_leak() {
    let old = example();
    let mut new = example();
    rss(&mut new).sites[0].line = 90;
    rss(&mut new).sites[0].function = "render_footer".into();
    let diff = diff(&old, &new);
    let changes: Vec<(u32, Change)> = diff.resources[0]
        .sites
        .iter()
        .map(|s| (s.line, s.change))
        .collect();
    assert_eq!(changes, [(90, Change::NewLeak), (17, Change::Fixed)]);
}

#[test]
fn a_resource_only_one_report_observed() {
    let old = example();
    let mut new = example();
    new.resources.push(threads(Verdict::Growing, 0.1, 0));
    let diff = diff(&old, &new);
    let threads = diff
        .resources
        .iter()
        .find(|r| r.resource == Resource::Threads)
        .unwrap();
    assert_eq!(threads.change, Change::Unchanged, "growing is not a leak");
    assert_eq!(threads.old, None);
    assert!(render_markdown(&diff).contains("| threads | unchanged | not observed | growing at"));
}

#[test]
fn names_from_the_target_cannot_break_the_tables() {
    let old = example();
    let mut new = example();
    rss(&mut new).sites[0].file = "/srv/a|b`c\nd.py".into();
    let text = render_markdown(&diff(&old, &new));
    let row = text
        .lines()
        .find(|l| l.contains("d.py"))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(row.matches('|').count(), 6, "{row}");
    assert_eq!(row.matches('`').count(), 4, "{row}");
}

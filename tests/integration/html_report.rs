//! The HTML report (`run --html`) in a real browser: a `run` on a leaking Python process
//! writes the page, headless Chromium screenshots it and dumps its DOM, and the DOM holds one
//! chart SVG per resource and one flame graph per resource with attributed sites. A page
//! rendered from the contract's example report (which has sites) shows the flame graph itself.
//!
//! A real `run --html` on a slow leak under churn is also opened with a probe that records
//! console messages, fetched resources and layout overflow: none are allowed, at a desktop and a
//! narrow window width; a page built to overflow shows the probe does catch it.
//!
//! The screenshots stay in the target dir (the paths are printed) for a human to look at.

use crate::chromium::{dump_dom, inspect, png_size, screenshot, Inspection};
use crate::support::{leak_monitor, read_json, Workload};
use leak_monitor::monitor::ResourceSeries;
use leak_monitor::outputs::html;
use leak_monitor::outputs::report::Report;
use leak_monitor::resource::Resource;
use std::fs;
use std::path::{Path, PathBuf};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 2000;

/// A directory under the target dir that outlives the test, so the screenshots can be viewed.
fn artifacts(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Screenshots `page` and checks the PNG: the requested size, and well above the size of a
/// blank page of the same size (so something was drawn).
fn check_screenshot(page: &Path, dir: &Path) -> PathBuf {
    let blank = dir.join("blank.html");
    fs::write(&blank, "<!doctype html><html><body></body></html>").unwrap();
    let blank_png = dir.join("blank.png");
    screenshot(&blank, &blank_png, WIDTH, HEIGHT);
    let png = dir.join("report.png");
    screenshot(page, &png, WIDTH, HEIGHT);
    let bytes = fs::read(&png).unwrap();
    assert_eq!(png_size(&bytes), (WIDTH, HEIGHT), "{}", png.display());
    let blank_len = fs::metadata(&blank_png).unwrap().len();
    assert!(
        bytes.len() as u64 > 20_000 && bytes.len() as u64 > 3 * blank_len,
        "{} is only {} bytes (a blank page: {blank_len}): nothing much was drawn",
        png.display(),
        bytes.len()
    );
    eprintln!(
        "html_report: screenshot {} ({} bytes)",
        png.display(),
        bytes.len()
    );
    png
}

#[test]
fn run_html_report_renders_in_headless_chromium() {
    let workload = Workload::start("fd_leak.py", &["--rate", "20"]);
    let dir = artifacts("html-report-run");
    let page = dir.join("r.html");
    let json = dir.join("r.json");
    let pid = workload.pid_arg();
    let outcome = leak_monitor(&[
        "run",
        "--pid",
        &pid,
        "--duration",
        "20",
        "--html",
        page.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    let report = read_json(&json);
    let resources = report["resources"].as_array().unwrap();

    check_screenshot(&page, &dir);
    let dom = dump_dom(&page);
    fs::write(dir.join("dom.html"), &dom).unwrap();
    assert!(
        dom.contains(&format!("Memory Leak Report: pid {pid}")),
        "{dom}"
    );
    // One line chart per resource, each with its series drawn.
    let charts = dom.matches("<svg class=\"chart\"").count();
    assert_eq!(charts, resources.len(), "chart SVGs in the DOM:\n{dom}");
    assert_eq!(
        dom.matches("<polyline class=\"series\"").count(),
        resources.len()
    );
    assert!(dom.contains("open_fds over time"), "{dom}");
    // The leak is drawn with its trend line.
    assert!(dom.contains("class=\"trend\""), "{dom}");
    // The flame graph section, with one flame graph per resource that has attributed sites.
    assert!(dom.contains("Live growth by Python stack"), "{dom}");
    let with_sites = resources
        .iter()
        .filter(|r| {
            r["sites"]
                .as_array()
                .is_some_and(|s| s.iter().any(|site| site["amount"].as_f64() >= Some(1.0)))
        })
        .count();
    assert_eq!(
        dom.matches("<div class=\"flame\"><svg").count(),
        with_sites,
        "flame graphs vs resources with sites:\n{dom}"
    );
}

#[test]
fn flame_graph_renders_in_headless_chromium() {
    let example =
        include_str!("../../leak-monitor/src/outputs/report/fixtures/contract_example.json");
    let report = Report::from_json(example).unwrap();
    let series = vec![ResourceSeries {
        resource: Resource::RssBytes,
        points: (0..60)
            .map(|i| (f64::from(i), 26_214_400.0 + 2_603_827.2 * f64::from(i)))
            .collect(),
    }];
    let dir = artifacts("html-report-flame");
    let page = dir.join("example.html");
    fs::write(
        &page,
        html::render(std::slice::from_ref(&report), &[series]),
    )
    .unwrap();

    check_screenshot(&page, &dir);
    let dom = dump_dom(&page);
    assert_eq!(dom.matches("<svg class=\"chart\"").count(), 1, "{dom}");
    let flame_at = dom
        .find("<div class=\"flame\"><svg")
        .unwrap_or_else(|| panic!("no flame graph in the DOM:\n{dom}"));
    let flame = &dom[flame_at..];
    assert!(
        flame.contains("Live rss_bytes growth by Python stack"),
        "{flame}"
    );
    // The site's frame is drawn as a box of the flame graph.
    assert!(flame.contains("handle (render.py:17)"), "{flame}");
}

/// Fails with everything the probe saw when the page logged, fetched or overflowed anything.
fn assert_clean(seen: &Inspection, what: &str) {
    assert!(
        seen.console.is_empty() && seen.requests.is_empty() && seen.layout.is_empty(),
        "{what}:\nconsole: {:#?}\nrequests: {:#?}\nlayout: {:#?}",
        seen.console,
        seen.requests,
        seen.layout
    );
}

#[test]
fn run_html_report_has_every_section_and_no_errors_requests_or_overflow() {
    let workload = Workload::start("slow_churn_leak.py", &["--record-bytes", "61440"]);
    let dir = artifacts("html-report-probe");
    let page = dir.join("r.html");
    let json = dir.join("r.json");
    let pid = workload.pid_arg();
    let outcome = leak_monitor(&[
        "run",
        "--pid",
        &pid,
        "--duration",
        "25",
        "--html",
        page.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    let report = read_json(&json);
    let resources = report["resources"].as_array().unwrap();
    let html = fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("<script") && !html.contains("src=") && !html.contains("url("),
        "the page must load nothing"
    );

    for width in [1280, 720] {
        let seen = inspect(&page, width, 1000);
        fs::write(dir.join(format!("dom-{width}.html")), &seen.dom).unwrap();
        assert_clean(&seen, &format!("the report of a real run at {width} px"));
        let dom = &seen.dom;
        // Every section: the header, the summary table, the charts (one per resource, with a
        // time axis in seconds), the flame graph, and one article per site of a resource that
        // grew, each with its evidence and fix.
        assert!(
            dom.contains(&format!("Memory Leak Report: pid {pid}")),
            "{dom}"
        );
        assert!(dom.contains("<th>verdict</th>"), "{dom}");
        assert!(dom.contains("<h2>Resources over time</h2>"), "{dom}");
        assert_eq!(dom.matches("<svg class=\"chart\"").count(), resources.len());
        assert!(!dom.contains(" ms</text>"), "a time axis in ms:\n{dom}");
        assert!(dom.contains(">10 s</text>"), "{dom}");
        assert!(
            dom.contains("<h2>Live growth by Python stack</h2>"),
            "{dom}"
        );
        let rss = resources
            .iter()
            .find(|r| r["resource"] == "rss_bytes")
            .unwrap();
        assert_ne!(rss["verdict"], "stable", "the leak was seen: {rss}");
        assert!(
            dom.contains("class=\"label trend-label\""),
            "the trend is labelled:\n{dom}"
        );
        let sites: usize = resources
            .iter()
            .filter(|r| r["verdict"] != "stable")
            .map(|r| r["sites"].as_array().map_or(0, Vec::len))
            .sum();
        assert!(sites > 0, "the leak has sites: {report}");
        assert!(
            dom.contains("Live rss_bytes growth by Python stack"),
            "{dom}"
        );
        assert_eq!(dom.matches("<article class=\"site\">").count(), sites);
        assert_eq!(dom.matches("<h4>Evidence</h4>").count(), sites);
        assert_eq!(dom.matches("<pre class=\"fix\">").count(), sites);
        assert!(dom.contains("slow_churn_leak.py"), "{dom}");
        if report["capabilities"]["notes"]
            .as_array()
            .is_some_and(|n| !n.is_empty())
        {
            assert!(dom.contains("<h2>Notes</h2>"), "{dom}");
        }
    }
}

#[test]
fn the_probe_catches_overflow_console_errors_and_requests() {
    let dir = artifacts("html-report-probe-negative");
    let page = dir.join("bad.html");
    let long = "x".repeat(400);
    fs::write(
        &page,
        format!(
            "<!doctype html><html><head><style>pre{{overflow-x:auto}}</style></head><body style=\"max-width:600px\">\
             <pre>{long}</pre><pre data-scrolls=\"x\">{long}</pre><div style=\"width:3000px\">wide</div>\
             <svg width=\"10\" height=\"10\"><line x1=\"NaN\"/></svg><img src=\"http://192.0.2.1/x.png\" alt=\"\"></body></html>"
        ),
    )
    .unwrap();
    let seen = inspect(&page, 800, 600);
    assert_eq!(seen.requests, ["http://192.0.2.1/x.png"], "{seen:#?}");
    assert!(
        seen.console.iter().any(|m| m.contains("attribute x1")),
        "{seen:#?}"
    );
    let layout = seen.layout.join("\n");
    assert!(
        layout.contains("content wider than its box") && layout.contains("pre "),
        "{layout}"
    );
    assert!(
        layout.contains("beyond the page") && layout.contains("\"wide\""),
        "{layout}"
    );
    assert!(layout.contains("the page scrolls sideways"), "{layout}");
    // The marked code block is allowed to scroll: only one pre is reported.
    assert_eq!(
        seen.layout.iter().filter(|l| l.contains(": pre ")).count(),
        1,
        "{layout}"
    );
}

#[test]
fn long_fix_texts_and_frame_names_wrap_inside_the_page() {
    let example =
        include_str!("../../leak-monitor/src/outputs/report/fixtures/contract_example.json");
    let mut report = Report::from_json(example).unwrap();
    let site = &mut report.resources[0].sites[0];
    site.fix = format!(
        "Bound the collection: {} and a path /{}",
        "keep only the newest entries in a collections.deque(maxlen=1000) ".repeat(6),
        "very_long_directory_name/".repeat(12)
    );
    site.function = "handle_a_request_whose_name_goes_on_and_on_and_on_and_on_and_on".into();
    let series = vec![ResourceSeries {
        resource: Resource::RssBytes,
        points: (0..60)
            .map(|i| (f64::from(i), 26_214_400.0 + 2_603_827.2 * f64::from(i)))
            .collect(),
    }];
    let dir = artifacts("html-report-wrap");
    let page = dir.join("wrap.html");
    fs::write(
        &page,
        html::render(std::slice::from_ref(&report), &[series]),
    )
    .unwrap();
    for width in [1280, 720] {
        let seen = inspect(&page, width, 1000);
        assert_clean(&seen, &format!("long texts at {width} px"));
        assert!(seen.dom.contains("<pre class=\"fix\">Bound the collection"));
    }
}

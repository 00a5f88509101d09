//! The HTML report (`run --html`) in a real browser: a `run` on a leaking Python process
//! writes the page, headless Chromium screenshots it and dumps its DOM, and the DOM holds one
//! chart SVG per resource and one flame graph per resource with attributed sites. A page
//! rendered from the contract's example report (which has sites) shows the flame graph itself.
//!
//! The screenshots stay in the target dir (the paths are printed) for a human to look at.

use crate::chromium::{dump_dom, png_size, screenshot};
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

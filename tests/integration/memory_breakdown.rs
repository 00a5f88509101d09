//! The memory breakdown on four real workloads at once: a leak of small Python objects, a
//! native leak through ctypes `malloc`, pymalloc fragmentation (one object in fifty kept, in
//! phases of different sizes) and glibc arenas of many threads that grow, then hold. Each
//! report's `rss_bytes` must name the right `memory_kind`, with at least 80% of the growth in
//! that kind where it is a leak; the parts must add up to the process's RSS (statm, read right
//! after smaps) within 5%; each part must say how it was measured. The object leak also runs
//! on CPython 3.13 (pymalloc found by its shape, not by symbol). Needs root.

use crate::attribution::leak_line;
use crate::support::{cpu_heavy_slot, pyenv_python, resource, run_json_report, Workload};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::thread;

const RUN_SECONDS: u32 = 45;
const INTERVAL_MS: u32 = 500;

fn observe(runs: &[(PathBuf, &str)]) -> Vec<Value> {
    let workloads: Vec<Workload> = runs
        .iter()
        .map(|(python, script)| Workload::start_with(python, script, &[]))
        .collect();
    let handles: Vec<_> = workloads
        .iter()
        .map(|w| {
            let pid = w.pid();
            thread::spawn(move || run_json_report(pid, RUN_SECONDS, INTERVAL_MS, &[]))
        })
        .collect();
    handles
        .into_iter()
        .zip(runs)
        .map(|(handle, (_, script))| {
            let (outcome, report) = handle.join().expect("run thread");
            assert_eq!(outcome.code, Some(0), "{script}: {outcome}");
            report
        })
        .collect()
}

/// Why the breakdown of `rss` does not add up or explain itself, if it does not.
fn accounting_failure(script: &str, rss: &Value) -> Option<String> {
    let b = &rss["breakdown"];
    if b.is_null() {
        return Some(format!("{script}: no breakdown in {rss}"));
    }
    let parts = [
        "python_objects",
        "python_allocator_free",
        "c_allocator",
        "c_allocator_free",
        "native",
        "file",
        "shmem",
    ];
    let sum: u64 = parts
        .iter()
        .map(|p| b[p]["last"].as_u64().unwrap_or(0))
        .sum();
    let statm = b["rss_statm"]["last"].as_u64().unwrap_or(0) as f64;
    let off = (sum as f64 - statm).abs() / statm.max(1.0);
    if off > 0.05 {
        return Some(format!(
            "{script}: parts add up to {sum}, RSS was {statm} ({:.1}% off)",
            off * 100.0
        ));
    }
    if let Some(part) = parts.iter().find(|p| {
        b["methods"][**p]
            .as_str()
            .is_none_or(|m| !(m.starts_with("read") || m.starts_with("estimated")))
    }) {
        return Some(format!(
            "{script}: {part} is not measured: {}",
            b["methods"][part]
        ));
    }
    None
}

fn share(rss: &Value, kind: &str) -> f64 {
    rss["breakdown"]["growth_shares"][kind]
        .as_f64()
        .unwrap_or(0.0)
}

fn series_max(rss: &Value, part: &str) -> u64 {
    rss["breakdown"]["series"]
        .as_array()
        .map(|s| s.iter().filter_map(|p| p[part].as_u64()).max().unwrap_or(0))
        .unwrap_or(0)
}

fn series_total(point: &Value) -> u64 {
    point
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| *k != "at_seconds")
                .filter_map(|(_, v)| v.as_u64())
                .sum()
        })
        .unwrap_or(0)
}

/// Why `script`'s report is not of `kind` as the workload makes it, if it is not.
fn kind_failure(script: &str, rss: &Value) -> Option<String> {
    let kind = rss["memory_kind"].as_str().unwrap_or("none");
    let summary = format!(
        "{script}: verdict {} kind {kind} shares {} parts {}",
        rss["verdict"], rss["breakdown"]["growth_shares"], rss["breakdown"]["python_objects"]
    );
    let ok = match script {
        "breakdown_objects.py" => kind == "python_objects" && share(rss, "python_objects") >= 0.8,
        "breakdown_ctypes.py" => {
            let (line, _) = leak_line(script);
            let top = &rss["sites"][0];
            kind == "native"
                && share(rss, "native") >= 0.8
                && top["line"].as_u64() == Some(line)
                && top["file"].as_str().is_some_and(|f| f.ends_with(script))
        }
        "breakdown_retention.py" => {
            // RSS stays high while the live objects shrink.
            let b = &rss["breakdown"];
            let series = b["series"].as_array().cloned().unwrap_or_default();
            let peak_total = series.iter().map(series_total).max().unwrap_or(0);
            let last_total = series.last().map_or(0, series_total);
            let live_last = b["python_objects"]["last"].as_u64().unwrap_or(0);
            kind == "allocator_retention"
                && live_last * 10 < series_max(rss, "python_objects") * 7
                && last_total * 10 >= peak_total * 9
                && b["fixes"][0]
                    .as_str()
                    .is_some_and(|f| f.contains("pymalloc"))
        }
        "breakdown_thread_arenas.py" => {
            kind == "allocator_retention"
                && rss["verdict"] != "leak"
                && rss["breakdown"]["fixes"].as_array().is_some_and(|f| {
                    f.iter()
                        .any(|f| f.as_str().unwrap_or("").contains("MALLOC_ARENA_MAX"))
                })
        }
        _ => false,
    };
    (!ok).then_some(summary)
}

#[test]
fn each_kind_of_memory_is_named_and_the_parts_add_up() {
    let _slot = cpu_heavy_slot();
    let python = PathBuf::from("python3");
    let scripts = [
        "breakdown_objects.py",
        "breakdown_ctypes.py",
        "breakdown_retention.py",
        "breakdown_thread_arenas.py",
    ];
    let mut runs: Vec<(PathBuf, &str)> = scripts.iter().map(|s| (python.clone(), *s)).collect();
    runs.push((pyenv_python("3.13"), "breakdown_objects.py"));
    let reports = observe(&runs);
    let mut failures = Vec::new();
    for ((python, script), report) in runs.iter().zip(&reports) {
        let rss = resource(report, "rss_bytes");
        let name = format!("{script} on {}", Path::new(python).display());
        failures.extend(accounting_failure(&name, rss));
        failures.extend(kind_failure(script, rss).map(|f| format!("{name}: {f}")));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

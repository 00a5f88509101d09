//! CPython 3.10 end to end: the RSS, fd, thread and socket leak workloads under pyenv's 3.10,
//! each observed by `leak-monitor run --json`, must get a `leak` verdict whose top site is the
//! workload's `# LEAK` line, found by the in-kernel frame walk (`ebpf_frames`); for memory the
//! heap census may name the same line first, with the kernel's site beside it. The census's own
//! 3.10 holders are `heap_census::holders_are_named_under_cpython_310`; the other versions are
//! covered by `kernel_frames`, `heap_census` and, all at once, by `cargo xtask matrix`.
//! Privileged (eBPF).

use crate::support::{
    pyenv_python, python_script, resource, run_json_report_samples, samples_in, Workload,
};
use std::thread;

const CASES: [(&str, &str); 4] = [
    ("rss_leak.py", "rss_bytes"),
    ("fd_leak.py", "open_fds"),
    ("thread_leak.py", "threads"),
    ("socket_tcp_leak.py", "sockets"),
];

fn leak_line(script: &str) -> u64 {
    let text = std::fs::read_to_string(python_script(script)).unwrap();
    text.lines().position(|l| l.contains("# LEAK")).unwrap() as u64 + 1
}

#[test]
fn cpython_310_leaks_are_found_at_their_lines_by_the_kernel_walk() {
    let python = pyenv_python("3.10");
    let workloads: Vec<Workload> = CASES
        .iter()
        .map(|(script, _)| Workload::start_with(&python, script, &[]))
        .collect();
    let runs: Vec<_> = workloads
        .iter()
        .map(|w| {
            let pid = w.pid();
            thread::spawn(move || run_json_report_samples(pid, samples_in(30, 1000), 1000, &[]))
        })
        .collect();
    let mut failures = Vec::new();
    for ((script, name), run) in CASES.iter().zip(runs) {
        let (outcome, report) = run.join().expect("run thread");
        assert_eq!(outcome.code, Some(0), "{script}: {outcome}");
        let res = resource(&report, name);
        let top = &res["sites"][0];
        let line = leak_line(script);
        eprintln!(
            "cpython_versions 3.10 {script}: {name} {} at {}:{} by {}",
            res["verdict"], top["file"], top["line"], top["method"]
        );
        let at_line = |s: &serde_json::Value| {
            s["line"] == line && s["file"].as_str().is_some_and(|f| f.ends_with(script))
        };
        let sites = res["sites"].as_array().cloned().unwrap_or_default();
        let kernel_at_line = sites
            .iter()
            .any(|s| s["method"] == "ebpf_frames" && at_line(s));
        let top_ok = match top["method"].as_str() {
            Some("ebpf_frames") => at_line(top),
            // The census reads 3.10 too: its holder's line first, the kernel's site beside it.
            Some("heap_census") => {
                at_line(top) && kernel_at_line && top["holder"]["path"].is_string()
            }
            _ => false,
        };
        if res["verdict"] != "leak" || !top_ok {
            failures.push(format!(
                "{script}: want {name} leak at line {line}:\n{res:#}"
            ));
        }
        let notes = report["capabilities"]["notes"].to_string();
        assert!(
            !notes.contains("no heap census layout"),
            "{script}: the census must read 3.10: {notes}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

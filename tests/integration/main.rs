//! Integration tests: real Python processes (tests/python/) observed by the real binary.
//!
//! `verdicts` checks leaks and decoys end to end, `attribution` the source lines blamed
//! for them, `cli` the `run` command's contract, `metrics`
//! the `serve` daemon over HTTP with promtool, `demo` the bundled demo, `ebpf` the kernel
//! programs and their ledgers, `kernel_frames` the in-kernel Python frame walk, `cpython_versions` CPython 3.10 end to end, `audit` the static scan on the pattern corpus
//! (`tests/python/patterns/`), `alerting` the shipped rules in a real Prometheus, `html_report`
//! the HTML report in headless Chromium, `completions` the shell completions, `progress` the
//! progress line, `serve_config` malformed `--config` files, `deploy` and `deploy_privileges` the
//! deploy/ artifacts, `faults` the monitor's own reliability (replaced and reused PIDs, fork and
//! exec, no permission, a non-Python target, 50k fds, an event storm, 50 concurrent scrapes,
//! malformed flags), `safety` loopback-only metrics, private reports and escaped labels,
//! `fleet_labels` container, pod and unit labels of processes in real cgroups, `diff` the
//! comparison of two releases' reports, `pools` group verdicts on a pool that recycles its workers,
//! `recording` a run recorded and replayed offline, `memory_breakdown` the split of RSS into
//! Python objects, allocator free space and native memory.
//! `support`, `scrape`, `prometheus`, `chromium` and `cgroups` are helpers.
//!
//! Most tests observe a workload for 30-40 s, so the binary takes minutes, not seconds. Tests run
//! in parallel (cargo's default: one thread per core); the few whose workload burns CPU take a
//! global lock (`support::cpu_heavy_slot`) so two of them never share the 2 cores. With more
//! threads the wall time drops, since most workloads sleep:
//!
//! ```text
//! cargo test -p leak-monitor --test integration -- --test-threads 6
//! ```
//!
//! Needs `python3` (3.11) with gunicorn and flask (`pools`), `promtool` and `/usr/bin/prometheus` (`apt-get install -y
//! prometheus`), `chromium` and `systemd-analyze` on PATH; `cargo xtask setup` installs them.
//! `fleet_labels` also needs root, a cgroup2 mount it can write (it creates and removes
//! `leak-monitor-test-*` cgroups) and util-linux's `unshare` and `mount`.

// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used)]

mod alerting;
mod attribution;
mod audit;
mod cgroups;
mod chromium;
mod cli;
mod completions;
mod cpython_versions;
mod demo;
mod deploy;
mod deploy_privileges;
mod diff;
mod ebpf;
mod faults;
mod fleet_labels;
mod heap_census;
mod html_report;
mod kernel_frames;
mod memory_breakdown;
mod metrics;
mod pools;
mod progress;
mod prometheus;
mod recording;
mod safety;
mod scrape;
mod serve_config;
mod support;
mod verdicts;

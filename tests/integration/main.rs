//! Integration tests: real Python processes (tests/python/) observed by the real binary.
//!
//! `verdicts` checks leaks and decoys end to end, `attribution` the source lines blamed for them, `cli` the `run` command's contract, `metrics`
//! the `serve` daemon over HTTP with promtool, `demo` the bundled demo. `support` and `scrape`
//! are helpers.
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
//! Needs `python3` (3.11) and `promtool` (`apt-get install -y prometheus`) on PATH.

// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used)]

mod attribution;
mod cli;
mod demo;
mod deploy;
mod metrics;
mod scrape;
mod support;
mod verdicts;

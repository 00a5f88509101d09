//! Abuse tests: what a hostile but fair user can do to the daemon and to a run, done for real
//! (issue 18). `endpoint` attacks the HTTP endpoint of `serve` (fd exhaustion under prlimit,
//! slowloris, idle connections); `run` the `run` command (huge and missing arguments, signals,
//! report paths that cannot be created or vanish); `audit` files that are not Python, do not parse
//! or do not exist.
//!
//! Each test starts its own `leak-monitor` and workloads; deadlines are liveness bounds for a
//! loaded 2-core machine, not timings. Run them alone with
//! `cargo test -p leak-monitor --test abuse`.

// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used)]

mod audit;
mod endpoint;
mod run;
// Shared with the integration tests; this suite uses part of it.
#[allow(dead_code)]
#[path = "../integration/support.rs"]
mod support;

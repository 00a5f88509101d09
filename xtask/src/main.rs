//! Project tasks that cargo alone does not do: installing test prerequisites, running the
//! whole test suite the way CI does, the benchmarks, the accuracy corpus, fuzzing the parsers
//! and soaking the daemon, and the README's pictures.

mod bench;
mod bench_daemon;
mod bench_peers;
mod children;
mod ebpf;
mod eval;
mod fuzz;
mod matrix;
mod matrix_baseline;
mod matrix_interpreters;
mod recordings;
mod screenshots;
mod setup;
mod soak;
mod test;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "xtask", about = "leak-monitor project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what the tests need and a fresh machine lacks (prometheus, chromium, systemd, CPython 3.14 and 3.15).
    Setup,
    /// Run every benchmark (sampling cost, eBPF and procfs overhead on the target, the
    /// daemon's RSS and CPU) and print a summary.
    Bench {
        #[arg(long, default_value_t = 50)]
        targets: usize,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
    /// Measure the daemon's own CPU, RSS and threads while it follows fleets of idle and growing
    /// Python processes, with and without eBPF, and its memory over a long leaking run.
    BenchDaemon(bench_daemon::Options),
    /// Measure leak-monitor against py-spy, memray, Austin and BCC memleak on the same Python
    /// workloads, side by side (throughput ratio, the tool's CPU and RSS; about 10 minutes).
    BenchPeers(bench_peers::Options),
    /// Build the eBPF programs (nightly + bpf-linker, installed when missing) into the object
    /// leak-monitor embeds.
    BuildEbpf {
        /// Build into a scratch directory and fail when the committed object is stale.
        #[arg(long)]
        check: bool,
    },
    /// Run leak-monitor against the accuracy corpus (tests/corpus/cases.toml) and print
    /// detected / attributed / false alarms / time to verdict per case.
    Eval {
        /// Only the cases whose name contains this text.
        #[arg(long)]
        only: Option<String>,
        /// Cases run at once (most programs sleep; the monitor is light).
        #[arg(long, default_value_t = 4)]
        parallel: usize,
    },
    /// Run every fuzz target of fuzz/ (cargo-fuzz, nightly) for a while each.
    Fuzz {
        #[arg(long, default_value_t = 120)]
        seconds: u64,
    },
    /// Regenerate the README's pictures in docs/img: the demo's HTML report rendered by headless
    /// Chromium, and `watch` captured from a tmux terminal (about a minute).
    Screenshots,
    /// Run the RSS, fd, thread, socket and census workloads under every CPython here (3.10 to
    /// 3.15) and print interpreter x resource -> verdict, top line, method (about 6 minutes).
    Matrix(matrix::Options),
    /// Record the real workloads the replay tests read (tests/corpus/recordings/, about a
    /// minute); re-record them when the detectors or the report change.
    RecordFixtures,
    /// Run the daemon against churning matching processes and print its RSS and fd slopes.
    Soak {
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
    },
    /// Install prerequisites, then run every test (the privileged ones too).
    Test {
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::Bench { targets, seconds } => bench::run(targets, seconds),
        Task::BenchDaemon(options) => bench_daemon::run(&options),
        Task::BenchPeers(options) => bench_peers::run(&options),
        Task::BuildEbpf { check } => ebpf::run(check),
        Task::Eval { only, parallel } => eval::run(only.as_deref(), parallel),
        Task::Fuzz { seconds } => fuzz::run(seconds),
        Task::Screenshots => screenshots::run(),
        Task::Soak { minutes } => soak::run(minutes),
        Task::Matrix(options) => matrix::run(&options),
        Task::RecordFixtures => recordings::run(),
        Task::Test { cargo_args } => test::run(&cargo_args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace's root folder (xtask's parent).
pub(crate) fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| ".".into())
}

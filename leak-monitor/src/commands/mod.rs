//! The CLI verbs. Each returns the process exit code; errors that are the user's to fix are
//! `UsageError` (exit 2), everything else exits 1.

mod audit;
mod completions;
mod demo;
mod diff;
mod group_alerts;
mod metrics_server;
mod progress;
mod record;
mod replay;
mod report_files;
mod report_outputs;
mod resolve;
mod run;
mod serve;
pub mod serve_config;
mod session;
mod ticker;
mod tracing;
mod view;
mod watch;

use crate::cli::{Cli, Command};
use std::process::ExitCode;

/// Bad arguments or an unusable target: exit 2, with a message that says what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Watch(args) => watch::watch(args),
        Command::Serve(args) => serve::serve(args),
        Command::Demo(args) => demo::demo(args),
        Command::Completions(args) => completions::completions(args),
        Command::Audit(args) => audit::audit(args),
        Command::Diff(args) => diff::diff(args),
        Command::Replay(args) => replay::replay(args),
    }
}

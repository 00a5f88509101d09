//! The CLI verbs. Each returns the process exit code; errors that are the user's to fix are
//! `UsageError` (exit 2), everything else exits 1.

use crate::cli::{Cli, Command};
use std::process::ExitCode;

/// Bad arguments or an unusable target: exit 2, with a message that says what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(_) | Command::Watch(_) | Command::Serve(_) | Command::Demo(_) => {
            Err(UsageError("not built yet".into()).into())
        }
    }
}

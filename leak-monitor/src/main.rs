//! The `leak-monitor` binary: parse, run, print the error, pick the exit code.

use clap::Parser;
use leak_monitor::cli::Cli;
use leak_monitor::commands::{self, UsageError};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // One line: the outermost context first, its causes after.
            eprintln!("leak-monitor: {err:#}");
            if err.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

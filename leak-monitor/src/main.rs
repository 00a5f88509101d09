//! The `leak-monitor` binary: parse, run, print the error, pick the exit code.

use clap::error::ErrorKind;
use clap::Parser;
use leak_monitor::cli::Cli;
use leak_monitor::commands::{self, UsageError};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return argument_error(&err),
    };
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

/// `--help` and `--version` print as clap renders them; a bad argument is one line on stderr
/// (clap's first line and its usage line) and exit 2, like every other usage error.
fn argument_error(err: &clap::Error) -> ExitCode {
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = err.print();
        return if err.use_stderr() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    eprintln!("leak-monitor: {}", one_line(&err.render().to_string()));
    ExitCode::from(2)
}

/// `error: X` (with its indented continuation lines, such as the missing arguments) + `Usage: Y`
/// of clap's message as `X (usage: Y; see --help)`.
fn one_line(rendered: &str) -> String {
    let mut paragraphs = rendered
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty());
    let first = paragraphs.next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let first = first.split_whitespace().collect::<Vec<_>>().join(" ");
    match paragraphs.find_map(|p| p.strip_prefix("Usage: ")) {
        Some(usage) => format!("{first} (usage: {usage}; see --help)"),
        None => format!("{first} (see --help)"),
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn clap_errors_become_one_line() {
        let rendered = "error: unexpected argument '--bogus' found\n\n  tip: to pass '--bogus' as a value, use '-- --bogus'\n\nUsage: leak-monitor run --pid <PID> --duration <SECONDS>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "unexpected argument '--bogus' found (usage: leak-monitor run --pid <PID> --duration <SECONDS>; see --help)"
        );
        assert_eq!(one_line(""), "invalid arguments (see --help)");
        let missing = "error: the following required arguments were not provided:\n  --duration <SECONDS>\n\nUsage: leak-monitor run --pid <PID> --duration <SECONDS>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(missing),
            "the following required arguments were not provided: --duration <SECONDS> (usage: leak-monitor run --pid <PID> --duration <SECONDS>; see --help)"
        );
    }
}

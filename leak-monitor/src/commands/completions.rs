//! `leak-monitor completions SHELL`: the shell completion script generated from the clap
//! definitions in `cli.rs`, printed on stdout, so completions never drift from the flags.

use crate::cli::{Cli, CompletionShell, CompletionsArgs};
use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;
use std::io::Write;
use std::process::ExitCode;

pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let shell = match args.shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut script = Vec::new();
    let mut command = Cli::command();
    let name = command.get_name().to_string();
    clap_complete::generate(shell, &mut command, name.clone(), &mut script);
    if shell == Shell::Bash {
        script = fix_bash_case_labels(&script, &name);
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&script)
        .and_then(|()| stdout.flush())
        .context("writing the completion script to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// clap_complete (4.6) mangles a hyphenated binary name two ways in the bash script: the loop
/// that finds the subcommand sets `cmd="leak__monitor__subcmd__run"`, but the `case` that
/// offers its flags matches `leak__subcmd__monitor__subcmd__run`, so no subcommand's flags
/// complete. Rewrite the labels to the form the loop produces.
fn fix_bash_case_labels(script: &[u8], name: &str) -> Vec<u8> {
    let wrong = name.replace('-', "__subcmd__");
    let right = name.replace('-', "__");
    match std::str::from_utf8(script) {
        Ok(text) if wrong != right => text.replace(&wrong, &right).into_bytes(),
        _ => script.to_vec(),
    }
}

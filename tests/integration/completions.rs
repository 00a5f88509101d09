//! `leak-monitor completions SHELL`: the bash script is loaded into a real bash and asked to
//! complete subcommands and flags; the zsh and fish scripts name every subcommand and flag.

use crate::support::leak_monitor;
use std::process::Command;

fn script(shell: &str) -> String {
    let outcome = leak_monitor(&["completions", shell]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    assert!(outcome.stderr.is_empty(), "{outcome}");
    outcome.stdout
}

/// What bash's completion function offers for the words typed so far (the last word is the
/// one being completed).
fn bash_complete(script: &str, words: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leak-monitor.bash");
    std::fs::write(&path, script).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'\n\
         complete -p leak-monitor >/dev/null || exit 10\n\
         COMP_WORDS=({})\n\
         COMP_CWORD={}\n\
         COMP_LINE=\"${{COMP_WORDS[*]}}\"\n\
         COMP_POINT=${{#COMP_LINE}}\n\
         func=$(complete -p leak-monitor | sed -E 's/.*-F ([^ ]+).*/\\1/')\n\
         \"$func\" leak-monitor \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        path.display(),
        quoted.join(" "),
        words.len() - 1
    );
    let output = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "bash completion failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completes_subcommands_and_flags() {
    let script = script("bash");
    let subcommands = bash_complete(&script, &["leak-monitor", ""]);
    for expected in ["run", "watch", "serve", "demo", "completions"] {
        assert!(
            subcommands.iter().any(|s| s == expected),
            "{expected} not offered: {subcommands:?}"
        );
    }
    let run_flags = bash_complete(&script, &["leak-monitor", "run", "--"]);
    for expected in [
        "--pid",
        "--duration",
        "--interval",
        "--json",
        "--html",
        "--fail-on-leak",
    ] {
        assert!(
            run_flags.iter().any(|s| s == expected),
            "{expected} not offered: {run_flags:?}"
        );
    }
    let serve_flags = bash_complete(&script, &["leak-monitor", "serve", "--c"]);
    assert_eq!(serve_flags, ["--config"]);
    let shells = bash_complete(&script, &["leak-monitor", "completions", ""]);
    for expected in ["bash", "zsh", "fish"] {
        assert!(shells.iter().any(|s| s == expected), "{shells:?}");
    }
}

#[test]
fn zsh_and_fish_scripts_cover_every_subcommand() {
    let zsh = script("zsh");
    assert!(zsh.starts_with("#compdef leak-monitor"), "{zsh}");
    let fish = script("fish");
    for sub in ["run", "watch", "serve", "demo", "completions"] {
        assert!(zsh.contains(&format!("'{sub}:")), "zsh lacks {sub}:\n{zsh}");
        assert!(
            fish.contains(&format!("-a \"{sub}\"")),
            "fish lacks {sub}:\n{fish}"
        );
    }
    for flag in ["fail-on-leak", "report-dir", "config", "listen"] {
        assert!(zsh.contains(&format!("--{flag}")), "zsh lacks --{flag}");
        assert!(fish.contains(&format!("-l {flag}")), "fish lacks --{flag}");
    }
}

#[test]
fn unknown_shell_is_a_usage_error() {
    let outcome = leak_monitor(&["completions", "powershell-9"]);
    assert_eq!(outcome.code, Some(2), "{outcome}");
}

//! The Markdown of `cargo xtask bench-peers`: the command, date, machine and versions, the
//! table of ratios and tool costs, the commands run, the time to verdict.

use super::{Cell, Env, Monitor, Options, Verdict, Workload};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// Everything the Markdown needs.
pub(super) struct Report<'a> {
    pub(super) options: &'a Options,
    pub(super) env: &'a Env,
    pub(super) monitors: &'a [&'a Monitor],
    pub(super) workloads: &'a [&'a Workload],
    pub(super) cells: &'a BTreeMap<(&'a str, &'a str), Cell>,
    pub(super) failed: &'a BTreeMap<&'a str, String>,
    pub(super) verdicts: &'a [Verdict],
    pub(super) notes: &'a [String],
    pub(super) load: (String, String),
    pub(super) minutes: f64,
}

pub(super) fn render(r: &Report) -> String {
    let o = r.options;
    let mut md = String::new();
    let mut line = |text: String| {
        md += &text;
        md += "\n";
    };
    let only = [("only", &o.only), ("workload", &o.workload)]
        .iter()
        .filter_map(|(flag, value)| Some(format!(" --{flag} '{}'", value.as_ref()?)))
        .collect::<String>();
    line(format!(
        "Command: `cargo xtask bench-peers --rounds {} --windows {} --window {} --settle {} \
         --verdict-seconds {}{only}` ({:.1} minutes)  ",
        o.rounds, o.windows, o.window, o.settle, o.verdict_seconds, r.minutes
    ));
    line(format!(
        "Date: {}  ",
        output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
    ));
    line(format!(
        "Machine: {} CPUs, kernel {}, load average {} before, {} after  ",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        r.load.0,
        r.load.1
    ));
    line(format!("Versions: {}", versions(r.env)));
    line(String::new());
    line(format!(
        "Throughput ratio to the unmonitored run of the same round: **median** of {} rounds \
         (min..max), and the median ratio of work per CPU second of the target (less sensitive \
         to other load; misses what a monitor costs by pausing the target or taking a core). \
         Higher is better, 1.00 = no cost.",
        o.rounds
    ));
    line(String::new());
    let mut header = "| monitor |".to_string();
    let mut rule = "| --- |".to_string();
    for w in r.workloads {
        header += &format!(" {} |", w.name);
        rule += " --- |";
    }
    header += " tool CPU s per run | tool peak RSS |";
    rule += " --- | --- |";
    line(header);
    line(rule);
    for m in r.monitors {
        if let Some(reason) = r.failed.get(m.name) {
            line(format!(
                "| {} | could not run: {} |",
                m.name,
                reason.replace('|', "\\|")
            ));
            continue;
        }
        let mut row = format!("| {} |", m.name);
        let mut cpu = Vec::new();
        let mut peak = 0;
        for w in r.workloads {
            match r.cells.get(&(m.name, w.name)) {
                Some(cell) if !cell.ratios.is_empty() => {
                    row += &format!(
                        " {}; per CPU s {:.2} |",
                        spread(&cell.ratios),
                        median(&cell.per_cpu_ratios)
                    );
                    let c: Vec<f64> = cell.costs.iter().map(|c| c.cpu_seconds).collect();
                    cpu.push(format!("{:.2}", median(&c)));
                    peak = cell.costs.iter().map(|c| c.peak_kib).fold(peak, u64::max);
                }
                _ => row += " - |",
            }
        }
        row += &format!(" {} | {:.1} MiB |", cpu.join(" / "), peak as f64 / 1024.0);
        line(row);
    }
    line(String::new());
    line(format!(
        "A monitored run: attach, {} s settle, then {} windows of {} s measured. Tool CPU is the \
         median per run, one figure per workload in column order, from wait4 on the tool \
         (its children included); peak RSS is the largest over all runs. memray attach returns \
         once it has injected its tracker: its CPU and RSS are the attach's (memray and gdb), \
         the tracking itself runs inside the target and shows in the throughput.",
        o.settle, o.windows, o.window
    ));
    line(String::new());
    line("Commands (P = the target's PID, D = the run's seconds):".into());
    line(String::new());
    for m in r.monitors {
        let args = m
            .args
            .join(" ")
            .replace("{pid}", "P")
            .replace("{secs}", "D");
        line(format!(
            "- {}: `{} {}`",
            m.name,
            m.program,
            args.replace("{dir}/", "")
        ));
    }
    if !r.verdicts.is_empty() {
        line(String::new());
        line(format!(
            "Time to verdict on the slow leak (every leak-monitor mode on one target at once, {} s):",
            o.verdict_seconds
        ));
        line(String::new());
        for v in r.verdicts {
            let when = v
                .seconds
                .map(|s| format!(" after {s:.0} s of observation"))
                .unwrap_or_default();
            line(format!(
                "- {}: rss_bytes `{}`{when}, top site {}",
                v.mode, v.verdict, v.site
            ));
        }
    }
    for note in r.notes {
        line(format!("\nNote: {note}"));
    }
    md
}

fn versions(env: &Env) -> String {
    let first_line = |program: PathBuf, args: &[&str]| {
        output(&program.to_string_lossy(), args)
            .lines()
            .next()
            .unwrap_or("?")
            .to_string()
    };
    let commit = output(
        "git",
        &[
            "-C",
            &env.root.to_string_lossy(),
            "rev-parse",
            "--short",
            "HEAD",
        ],
    );
    [
        format!(
            "{} ({commit})",
            first_line(env.program("leak-monitor"), &["--version"])
        ),
        first_line(env.program("python"), &["--version"]),
        first_line(env.program("py-spy"), &["--version"]),
        format!(
            "memray {}",
            first_line(env.program("memray"), &["--version"])
        ),
        first_line(env.program("austin"), &["--version"]),
        format!(
            "bpfcc-tools {}",
            output("dpkg-query", &["-W", "-f", "${Version}", "bpfcc-tools"])
        ),
        first_line("gdb".into(), &["--version"]),
    ]
    .join(", ")
}

/// A command's stdout, trimmed; `?` when it cannot run.
fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".into())
}

pub(super) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// `median (min..max)`.
fn spread(values: &[f64]) -> String {
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    format!("**{:.2}** ({lo:.2}..{hi:.2})", median(values))
}

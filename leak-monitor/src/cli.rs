//! The command line: clap definitions only. Validation that needs I/O happens in `commands`.

use crate::events::Engagement;
use crate::monitor::Attribution;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "leak-monitor",
    version,
    about = "Attach to live Python processes and find what leaks: memory, fds, sockets, threads.",
    long_about = None,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Observe targets for a fixed time, then write the leak report(s) and exit.
    Run(RunArgs),
    /// Live terminal view of one process; Ctrl-C ends it and prints the report.
    Watch(WatchArgs),
    /// The daemon: follow targets, serve Prometheus metrics, write reports on leaks.
    Serve(ServeArgs),
    /// Run a bundled leaky Python workload and monitor it end to end.
    Demo(DemoArgs),
    /// Print a shell completion script on stdout (e.g. `leak-monitor completions bash >
    /// /etc/bash_completion.d/leak-monitor`).
    Completions(CompletionsArgs),
    /// Statically scan Python sources for the leak patterns of the pattern catalog.
    #[command(
        long_about = "Statically scan Python sources for the leak patterns of the pattern catalog: \
collections that only grow, caches without bounds or TTL (including unbounded memoization), \
resources opened without a context manager, listeners never removed, reference cycles, tensors \
kept with their autograd graph, and threads never joined.\n\n\
Prints one finding per line as `file:line: pattern: message`, sorted. Directories are walked \
for *.py files, skipping .git, __pycache__ and virtualenvs."
    )]
    Audit(AuditArgs),
    /// Compare two JSON reports of one program (before and after a deploy): per resource and
    /// source line, the new leaks, the fixed ones, and rates up or down.
    Diff(DiffArgs),
    /// Rebuild the reports of a recording (`run --record`) offline: the same verdicts, sites
    /// and figures, without the process.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub struct SamplingArgs {
    /// Sampling interval in milliseconds, 10 to 3600000 [default: 1000].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub interval: Option<u64>,
    /// Do not trace in the kernel: procfs sampling only, and source lines from Python stacks
    /// sampled while a resource grows [default: trace with eBPF when permitted].
    #[arg(long)]
    pub no_ebpf: bool,
    /// Also trace the C allocator of Python targets (uprobes on malloc, calloc, realloc, free):
    /// rss_bytes sites become the live heap blocks (over 512 bytes) per allocating line, right
    /// even when the heap reuses memory freed by other code. Every malloc and free of the
    /// target then traps into the kernel: an allocation-heavy loop ran at about half speed
    /// on our machines, so use it to find a leak page faults cannot place [default: off].
    #[arg(long, conflicts_with = "no_ebpf")]
    pub track_allocations: bool,
    /// When the kernel traces fds, threads and pages. `on-growth`: while a target grows (two
    /// new highs within a minute, or a trend of growing or leak) and for a minute after, so a steady process pays nothing and
    /// what existed before is pre-existing. `always`: from the first moment; every syscall on
    /// the machine then takes the kernel's slow path (an open/close loop ran about 1.3x slower
    /// on our machines) [default: on-growth].
    #[arg(long, value_name = "WHEN", conflicts_with = "no_ebpf", value_parser = engagement())]
    pub kernel_tracing: Option<Engagement>,
    /// Do not take censuses of the Python heap while memory grows: rss_bytes sites are then the
    /// lines that allocated, not the containers that keep the memory [default: censuses on].
    #[arg(long)]
    pub no_heap_census: bool,
}

impl SamplingArgs {
    /// What to trace in the kernel.
    pub fn tracing(&self) -> TracingMode {
        match (self.no_ebpf, self.track_allocations) {
            (true, _) => TracingMode::Off,
            (false, false) => TracingMode::Events,
            (false, true) => TracingMode::EventsAndAllocations,
        }
    }

    /// When the kernel's syscall and page-fault programs are attached.
    pub fn engagement(&self) -> Engagement {
        self.kernel_tracing.unwrap_or_default()
    }

    /// What is read of Python targets beyond procfs.
    pub fn attribution(&self) -> Attribution {
        Attribution {
            stacks: true,
            heap_census: !self.no_heap_census,
        }
    }
}

/// How much the eBPF tracer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TracingMode {
    /// `--no-ebpf`.
    Off,
    /// fd, thread and page events with the Python frames walked at each (the default).
    Events,
    /// `--track-allocations`: the events and the allocator's heap blocks.
    EventsAndAllocations,
}

impl SamplingArgs {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

    pub fn interval(&self) -> Duration {
        self.interval
            .map(Duration::from_millis)
            .unwrap_or(Self::DEFAULT_INTERVAL)
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Process ID to observe (repeat for several; required).
    #[arg(long = "pid", value_name = "PID", required = true)]
    pub pids: Vec<i32>,
    /// How long to observe, in seconds (fractions allowed, up to 10 years; required, no
    /// default).
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true, value_parser = seconds)]
    pub duration: f64,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub outputs: ReportPaths,
    /// Exit with status 3 when any resource has verdict `leak` [default: exit 0 on leaks].
    #[arg(long)]
    pub fail_on_leak: bool,
    /// Record what the engine sees here (samples, sites, capabilities), to rebuild the reports
    /// offline with `leak-monitor replay FILE` [default: none].
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The recording (`run --record FILE`).
    #[arg(value_name = "FILE")]
    pub recording: PathBuf,
    #[command(flatten)]
    pub outputs: ReportPaths,
    /// Exit with status 3 when any resource has verdict `leak` [default: exit 0 on leaks].
    #[arg(long)]
    pub fail_on_leak: bool,
}

/// Where the reports go (`run`, `replay`).
#[derive(Debug, Args)]
pub struct ReportPaths {
    /// Write the JSON report (schema leak-monitor/report/v1) here; with several PIDs, one file
    /// per PID (r.json becomes r.PID.json) [default: none].
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write the Markdown report here [default: print it on stdout when no --json is given].
    #[arg(long, value_name = "PATH")]
    pub markdown: Option<PathBuf>,
    /// Write a self-contained HTML report (charts, flame graph) here [default: none].
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Process ID to watch (required).
    #[arg(long, value_name = "PID")]
    pub pid: i32,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Record what the engine sees here, for `leak-monitor replay FILE` [default: none].
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Process ID to follow (repeat for several) [default: none].
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<i32>,
    /// Follow processes whose command line matches REGEX; `NAME=REGEX` names the group (the
    /// `target` label); repeat for several [default: none].
    #[arg(long = "match", value_name = "REGEX")]
    pub matches: Vec<String>,
    /// Follow processes whose container id (or NAMESPACE/POD, when known) matches REGEX;
    /// `NAME=REGEX` names the group; repeat for several [default: none].
    #[arg(long = "match-container", value_name = "REGEX")]
    pub match_containers: Vec<String>,
    /// Follow processes whose systemd unit or scope matches REGEX; `NAME=REGEX` names the
    /// group; repeat for several [default: none].
    #[arg(long = "match-unit", value_name = "REGEX")]
    pub match_units: Vec<String>,
    /// Follow every Python process on the host [default: off].
    #[arg(long)]
    pub python: bool,
    /// IP:PORT to serve /metrics and /healthz on [default: 127.0.0.1:9464, loopback only].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory for a JSON and a Markdown report whenever a leak verdict is reached or a
    /// leaking target exits (created mode 0700) [default: no reports written].
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
    /// Record each target in this directory (one `GROUP-PID-START.lmrec` per process, created
    /// mode 0700), for `leak-monitor replay FILE` [default: none].
    #[arg(long, value_name = "DIR")]
    pub record_dir: Option<PathBuf>,
    /// Read options from this TOML file (keys: pids, match, match_container, match_unit,
    /// python, listen, report_dir, record_dir,
    /// interval_ms, ebpf, track_allocations); flags given on the command line win
    /// [default: none].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How long to run the demo, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 45.0, allow_negative_numbers = true, value_parser = seconds)]
    pub duration: f64,
    /// IP:PORT to serve /metrics on while the demo runs.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    pub listen: SocketAddr,
    /// Also write the HTML report here (it is always written beside the JSON and Markdown ones).
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// Record what the engine sees here, for `leak-monitor replay FILE` [default: none].
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write the completion script for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: CompletionShell,
}

/// Shells `completions` writes scripts for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Python files, or directories to walk for *.py files.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Print the findings as a JSON array of {file, line, pattern, leak_type, message}.
    #[arg(long)]
    pub json: bool,
    /// Exit with status 3 when anything was found.
    #[arg(long)]
    pub fail_on_finding: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The report before (a `--json` report of `run`, or one `serve --report-dir` wrote).
    #[arg(
        value_name = "OLD.json",
        required_unless_present = "report_dir",
        requires = "new"
    )]
    pub old: Option<PathBuf>,
    /// The report after.
    #[arg(value_name = "NEW.json")]
    pub new: Option<PathBuf>,
    /// Instead of two files: every program with reports of two or more processes in DIR (a
    /// `serve --report-dir`), its newest process compared with the one before.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["old", "new"])]
    pub report_dir: Option<PathBuf>,
    /// Print the diff as JSON (schema leak-monitor/diff/v1) instead of Markdown.
    #[arg(long)]
    pub json: bool,
    /// Exit with status 3 when the new report has a leak the old one did not, or a new
    /// leaking line.
    #[arg(long)]
    pub fail_on_new_leak: bool,
}

/// The longest `--duration`: 10 years (longer ones overflow the clock's arithmetic).
pub const MAX_SECONDS: f64 = 315_360_000.0;

/// A `--duration`: a positive, finite number of seconds up to `MAX_SECONDS`.
/// `--kernel-tracing WHEN`: the engine's `Engagement`, named as the flag spells it (the engine
/// does not depend on clap).
fn engagement() -> impl clap::builder::TypedValueParser<Value = Engagement> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new([
        PossibleValue::new(Engagement::OnGrowth.as_str())
            .help("While a followed process grows, and for a minute after (the default)"),
        PossibleValue::new(Engagement::Always.as_str())
            .help("From start to end: every fd, thread and page is traced"),
    ])
    .map(|name| {
        if name == Engagement::Always.as_str() {
            Engagement::Always
        } else {
            Engagement::OnGrowth
        }
    })
}

fn seconds(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| "not a number of seconds".to_string())?;
    if seconds.is_finite() && seconds > 0.0 && seconds <= MAX_SECONDS {
        Ok(seconds)
    } else {
        Err(format!(
            "must be more than 0 and at most {MAX_SECONDS} seconds (10 years)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_positive_finite_and_bounded() {
        assert_eq!(seconds("2.5"), Ok(2.5));
        assert_eq!(seconds("315360000"), Ok(MAX_SECONDS));
        for bad in ["0", "-1", "1e19", "inf", "NaN", "", "ten", "315360000.5"] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
    }
}

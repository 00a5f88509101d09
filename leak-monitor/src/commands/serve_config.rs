//! The daemon's options: flags, optionally read from a TOML file (`--config`). Flags given on
//! the command line win over the file; the result is validated once, with errors that name the
//! offending key.

use super::UsageError;
use crate::cli::{SamplingArgs, ServeArgs, TracingMode};
use crate::events::Engagement;
use crate::monitor::Attribution;
use crate::targets::{MatchOn, Selector};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// The TOML file: the same options as the flags.
///
/// ```toml
/// pids = [1234]
/// match = ["web=gunicorn: worker", "celery"]
/// match_container = ["shop/web-.*"]   # as --match-container
/// match_unit = ["api=^api.*\\.service$"] # as --match-unit
/// python = false
/// listen = "127.0.0.1:9464"
/// report_dir = "/var/lib/leak-monitor/reports"
/// record_dir = "/var/lib/leak-monitor/recordings"   # as --record-dir
/// interval_ms = 1000
/// ebpf = true                 # false: as --no-ebpf
/// track_allocations = false   # true: as --track-allocations
/// kernel_tracing = "on-growth"  # or "always": as --kernel-tracing
/// heap_census = true          # false: as --no-heap-census
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    pids: Vec<i32>,
    #[serde(default, rename = "match")]
    matches: Vec<String>,
    #[serde(default)]
    match_container: Vec<String>,
    #[serde(default)]
    match_unit: Vec<String>,
    #[serde(default)]
    python: bool,
    listen: Option<SocketAddr>,
    report_dir: Option<PathBuf>,
    record_dir: Option<PathBuf>,
    interval_ms: Option<u64>,
    ebpf: Option<bool>,
    #[serde(default)]
    track_allocations: bool,
    kernel_tracing: Option<Engagement>,
    heap_census: Option<bool>,
}

/// Resolved daemon options.
#[derive(Debug)]
pub struct ServeConfig {
    pub pids: Vec<i32>,
    pub selectors: Vec<Selector>,
    pub listen: SocketAddr,
    pub report_dir: Option<PathBuf>,
    pub record_dir: Option<PathBuf>,
    pub interval: Duration,
    pub tracing: TracingMode,
    pub engagement: Engagement,
    pub attribution: Attribution,
}

impl ServeConfig {
    pub fn resolve(args: &ServeArgs) -> Result<Self, UsageError> {
        let file = match &args.config {
            Some(path) => read_config(path)?,
            None => ConfigFile::default(),
        };
        let pids = if args.pids.is_empty() {
            file.pids
        } else {
            args.pids.clone()
        };
        let config_path = args.config.as_deref().unwrap_or(Path::new("-"));
        let mut selectors = Vec::new();
        for (on, flags, keys, key) in [
            (MatchOn::CommandLine, &args.matches, &file.matches, "match"),
            (
                MatchOn::Container,
                &args.match_containers,
                &file.match_container,
                "match_container",
            ),
            (
                MatchOn::Unit,
                &args.match_units,
                &file.match_unit,
                "match_unit",
            ),
        ] {
            selectors.extend(parse_selectors(on, flags, keys, key, config_path)?);
        }
        if args.python || file.python {
            selectors.push(Selector::Python);
        }
        if pids.is_empty() && selectors.is_empty() {
            return Err(UsageError(
                "nothing to follow: give --pid PID, --match REGEX, --match-container REGEX, --match-unit REGEX or --python (or set them in --config)".into(),
            ));
        }
        let interval_ms = args.sampling.interval.or(file.interval_ms);
        if let Some(ms) = interval_ms {
            if !(10..=3_600_000).contains(&ms) {
                // clap range-checks --interval, so an out-of-range value comes from the file.
                let path = args.config.as_deref().unwrap_or(Path::new("-"));
                return Err(UsageError(format!(
                    "invalid config {}: key `interval_ms` = {ms} is out of range: use 10 to 3600000 milliseconds",
                    path.display()
                )));
            }
        }
        // Flags win; `ebpf = false` with `track_allocations = true` contradicts itself.
        let tracing = match args.sampling.tracing() {
            TracingMode::Events => match (file.ebpf, file.track_allocations) {
                (Some(false), true) => {
                    let path = args.config.as_deref().unwrap_or(Path::new("-"));
                    return Err(UsageError(format!(
                        "invalid config {}: key `track_allocations` = true needs eBPF, but `ebpf` = false",
                        path.display()
                    )));
                }
                (Some(false), false) => TracingMode::Off,
                (_, true) => TracingMode::EventsAndAllocations,
                (_, false) => TracingMode::Events,
            },
            flagged => flagged,
        };
        let listen = match args.listen.or(file.listen) {
            Some(addr) => addr,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|_| UsageError("bad built-in listen address".into()))?,
        };
        Ok(ServeConfig {
            pids,
            selectors,
            listen,
            report_dir: args.report_dir.clone().or(file.report_dir),
            record_dir: args.record_dir.clone().or(file.record_dir),
            interval: interval_ms
                .map(Duration::from_millis)
                .unwrap_or(SamplingArgs::DEFAULT_INTERVAL),
            tracing,
            engagement: args
                .sampling
                .kernel_tracing
                .or(file.kernel_tracing)
                .unwrap_or_default(),
            attribution: Attribution {
                heap_census: !args.sampling.no_heap_census && file.heap_census.unwrap_or(true),
                ..args.sampling.attribution()
            },
        })
    }
}

/// The selectors of one `--match*` kind: the flags when given, else the config file's key
/// (flags win over the file, kind by kind).
fn parse_selectors(
    on: MatchOn,
    flags: &[String],
    keys: &[String],
    key: &str,
    config_path: &Path,
) -> Result<Vec<Selector>, UsageError> {
    if flags.is_empty() {
        keys.iter()
            .enumerate()
            .map(|(i, m)| {
                Selector::parse(on, m).map_err(|err| {
                    UsageError(format!(
                        "invalid config {}: key `{key}[{i}]` = {m:?}: {err}",
                        config_path.display()
                    ))
                })
            })
            .collect()
    } else {
        flags
            .iter()
            .map(|m| {
                Selector::parse(on, m)
                    .map_err(|err| UsageError(format!("{} {m:?}: {err}", on.flag())))
            })
            .collect()
    }
}

fn read_config(path: &Path) -> Result<ConfigFile, UsageError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| UsageError(format!("cannot read config {}: {err}", path.display())))?;
    parse_config(path, &text)
}

/// Parses the text of a config file as `read_config` does, for checks and fuzzing: `Ok` when it
/// is a valid config, else the one-line error the daemon would print.
pub fn check_config_text(text: &str) -> Result<(), UsageError> {
    parse_config(Path::new("-"), text).map(|_| ())
}

fn parse_config(path: &Path, text: &str) -> Result<ConfigFile, UsageError> {
    toml::from_str(text).map_err(|err| {
        // toml's message spans several lines (it quotes the source); keep the first for a
        // one-line error.
        let message = err
            .message()
            .lines()
            .next()
            .unwrap_or("invalid TOML")
            .to_string();
        let at = err
            .span()
            .map(|span| location(text, span.start))
            .unwrap_or_default();
        UsageError(format!("invalid config {}{at}: {message}", path.display()))
    })
}

/// ` (line N, key `K`)` for an error at byte `offset`: the key is read from the start of the
/// offending line (`key = value`), so type errors say which option is wrong.
fn location(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line_number = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text
        .get(line_start..)
        .and_then(|rest| rest.lines().next())
        .unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(key, _)| key.trim())
        .filter(|key| {
            !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    match key {
        Some(key) => format!(" (line {line_number}, key `{key}`)"),
        None => format!(" (line {line_number})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn serve_args(argv: &[&str]) -> ServeArgs {
        let mut full = vec!["leak-monitor", "serve"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full).map(|cli| cli.command) {
            Ok(Command::Serve(args)) => args,
            other => panic!("not a serve command: {other:?}"),
        }
    }

    fn config_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn flags_win_over_the_file() {
        let file = config_file("pids = [1]\nlisten = \"127.0.0.1:1\"\ninterval_ms = 500\n");
        let path = file.path().to_str().unwrap();
        let config = ServeConfig::resolve(&serve_args(&["--config", path, "--pid", "7"])).unwrap();
        assert_eq!(config.pids, [7]);
        assert_eq!(config.listen.port(), 1);
        assert_eq!(config.interval, Duration::from_millis(500));
    }

    #[test]
    fn tracing_comes_from_the_flags_then_the_file() {
        let resolve = |text: &str, flags: &[&str]| {
            let file = config_file(text);
            let mut argv = vec!["--config", file.path().to_str().unwrap()];
            argv.extend_from_slice(flags);
            ServeConfig::resolve(&serve_args(&argv))
        };
        let mode = |text: &str, flags: &[&str]| resolve(text, flags).unwrap().tracing;
        assert_eq!(mode("pids = [1]\n", &[]), TracingMode::Events);
        assert_eq!(mode("pids = [1]\nebpf = false\n", &[]), TracingMode::Off);
        assert_eq!(
            mode("pids = [1]\ntrack_allocations = true\n", &[]),
            TracingMode::EventsAndAllocations
        );
        assert_eq!(
            mode("pids = [1]\ntrack_allocations = true\n", &["--no-ebpf"]),
            TracingMode::Off
        );
        assert_eq!(
            mode("pids = [1]\nebpf = false\n", &["--track-allocations"]),
            TracingMode::EventsAndAllocations
        );
        let census = |text: &str, flags: &[&str]| resolve(text, flags).unwrap().attribution;
        assert!(census("pids = [1]\n", &[]).heap_census);
        assert!(!census("pids = [1]\nheap_census = false\n", &[]).heap_census);
        assert!(!census("pids = [1]\n", &["--no-heap-census"]).heap_census);
        assert!(census("pids = [1]\nheap_census = true\n", &[]).stacks);
        let engagement = |text: &str, flags: &[&str]| resolve(text, flags).unwrap().engagement;
        assert_eq!(engagement("pids = [1]\n", &[]), Engagement::OnGrowth);
        assert_eq!(
            engagement("pids = [1]\nkernel_tracing = \"always\"\n", &[]),
            Engagement::Always
        );
        assert_eq!(
            engagement(
                "pids = [1]\nkernel_tracing = \"always\"\n",
                &["--kernel-tracing", "on-growth"]
            ),
            Engagement::OnGrowth
        );
        assert!(resolve("pids = [1]\nkernel_tracing = \"sometimes\"\n", &[]).is_err());
        let err = resolve("pids = [1]\nebpf = false\ntrack_allocations = true\n", &[]).unwrap_err();
        assert!(err.0.contains("key `track_allocations`"), "{}", err.0);
    }

    #[test]
    fn malformed_config_is_one_line_with_the_line_number() {
        let file = config_file("pids = [1]\nlisten = 12\n");
        let path = file.path().to_str().unwrap();
        let err = ServeConfig::resolve(&serve_args(&["--config", path])).unwrap_err();
        assert!(err.0.contains("line 2, key `listen`"), "{}", err.0);
        assert!(!err.0.contains('\n'), "{}", err.0);
    }

    #[test]
    fn unknown_keys_and_empty_selection_are_refused() {
        let file = config_file("pid = [1]\n");
        let path = file.path().to_str().unwrap();
        let err = ServeConfig::resolve(&serve_args(&["--config", path])).unwrap_err();
        assert!(err.0.contains("pid"), "{}", err.0);
        let err = ServeConfig::resolve(&serve_args(&[])).unwrap_err();
        assert!(err.0.contains("nothing to follow"), "{}", err.0);
    }

    #[test]
    fn container_and_unit_selectors_from_flags_and_file() {
        let kinds = |config: &ServeConfig| -> Vec<&'static str> {
            config
                .selectors
                .iter()
                .map(|s| match s {
                    Selector::Match { .. } => "match",
                    Selector::Container { .. } => "container",
                    Selector::Unit { .. } => "unit",
                    Selector::Python => "python",
                    Selector::Pid(_) => "pid",
                })
                .collect()
        };
        let config = ServeConfig::resolve(&serve_args(&[
            "--match-container",
            "shop/web-.*",
            "--match-unit",
            "api=^api\\.service$",
        ]))
        .unwrap();
        assert_eq!(kinds(&config), ["container", "unit"]);

        let file = config_file("match_container = [\"c0ffee\"]\nmatch_unit = [\"x\", \"y\"]\n");
        let path = file.path().to_str().unwrap();
        let config = ServeConfig::resolve(&serve_args(&["--config", path])).unwrap();
        assert_eq!(kinds(&config), ["container", "unit", "unit"]);
        // Flags of one kind replace the file's of that kind only.
        let config =
            ServeConfig::resolve(&serve_args(&["--config", path, "--match-unit", "z"])).unwrap();
        assert_eq!(kinds(&config), ["container", "unit"]);

        let err = ServeConfig::resolve(&serve_args(&["--match-unit", "("])).unwrap_err();
        assert!(
            err.0
                .starts_with("--match-unit \"(\": bad --match-unit regex"),
            "{}",
            err.0
        );
        let file = config_file("match_container = [\"ok\", \"[\"]\n");
        let path = file.path().to_str().unwrap();
        let err = ServeConfig::resolve(&serve_args(&["--config", path])).unwrap_err();
        assert!(err.0.contains("key `match_container[1]`"), "{}", err.0);
    }
}

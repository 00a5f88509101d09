//! `cargo xtask screenshots`: the README's pictures, from the current build. Runs `leak-monitor
//! demo` (its bundled leaky workload) and writes its HTML report, renders the report with
//! Debian's headless Chromium into docs/img/report.png, and meanwhile runs `leak-monitor watch`
//! on the demo's workload in a detached tmux session, whose screen (`tmux capture-pane`) becomes
//! docs/img/watch.txt and, drawn as a terminal by Chromium, docs/img/watch.png.

use super::children::{die_with_parent, Reaped};
use super::setup::have;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The demo's length: long enough for verdicts, sites and a flame graph.
const DEMO_SECONDS: u64 = 60;
/// When the terminal is captured: late in the demo, with trends and verdicts settled.
const WATCH_CAPTURE_AFTER: Duration = Duration::from_secs(45);
/// The terminal's size for `watch`.
const COLUMNS: u32 = 132;
const ROWS: u32 = 34;
/// The report's picture: its width, and the most of its height that is drawn.
const PAGE_WIDTH: u32 = 1280;
const MAX_PAGE_HEIGHT: u32 = 7000;

pub fn run() -> anyhow::Result<()> {
    for command in ["chromium", "tmux", "python3"] {
        if !have(command) {
            bail!("{command} is missing: run `cargo xtask setup`");
        }
    }
    let root = super::workspace_root();
    let img = root.join("docs/img");
    std::fs::create_dir_all(&img).with_context(|| format!("creating {}", img.display()))?;
    let binary = build(&root)?;
    let scratch = tempfile::tempdir().context("creating a scratch dir")?;
    let html = scratch.path().join("report.html");

    let listen = free_local_addr()?;
    eprintln!("xtask: running `leak-monitor demo --duration {DEMO_SECONDS} --html ...`");
    let demo_log = std::fs::File::create(scratch.path().join("demo.log"))?;
    let mut command = Command::new(&binary);
    command
        .args([
            "demo",
            "--duration",
            &DEMO_SECONDS.to_string(),
            "--listen",
            &listen,
        ])
        .arg("--html")
        .arg(&html)
        .stdin(Stdio::null())
        .stdout(demo_log.try_clone()?)
        .stderr(demo_log);
    let mut demo = Reaped(
        die_with_parent(&mut command)
            .spawn()
            .context("starting leak-monitor demo")?,
    );
    let workload = wait_for_workload(demo.0.id(), &mut demo)?;

    let terminal = Tmux::new()?;
    let watch_cmd = format!("{} watch --pid {workload}", binary.display());
    eprintln!("xtask: capturing `leak-monitor watch --pid {workload}` in tmux");
    terminal.start(&watch_cmd)?;
    std::thread::sleep(WATCH_CAPTURE_AFTER);
    let screen = terminal.capture()?;
    if !(screen.contains("RESOURCE") && screen.contains("rss")) {
        bail!("`watch` shows no resources after {WATCH_CAPTURE_AFTER:?}:\n{screen}");
    }
    let text = format!(
        "$ leak-monitor watch --pid {workload}\n{}\n",
        screen.trim_end()
    );
    std::fs::write(img.join("watch.txt"), &text)?;
    drop(terminal);

    let status = demo.0.wait().context("waiting for the demo")?;
    let log = std::fs::read_to_string(scratch.path().join("demo.log")).unwrap_or_default();
    if !status.success() || !html.exists() {
        bail!("the demo failed ({status}):\n{log}");
    }

    let terminal_page = scratch.path().join("watch.html");
    std::fs::write(&terminal_page, terminal_html(&text))?;
    let rows = text.lines().count() as u32;
    chromium_screenshot(&terminal_page, &img.join("watch.png"), 1120, rows * 18 + 40)?;

    let height = page_height(&html)?.min(MAX_PAGE_HEIGHT);
    chromium_screenshot(&html, &img.join("report.png"), PAGE_WIDTH, height)?;
    eprintln!(
        "xtask: wrote docs/img/report.png ({PAGE_WIDTH}x{height}), docs/img/watch.png and docs/img/watch.txt"
    );
    Ok(())
}

/// `cargo build --release -p leak-monitor`, and the binary it built.
fn build(root: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "leak-monitor"])
        .current_dir(root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("release/leak-monitor"))
}

/// A loopback address nobody listens on, for the demo's metrics (the default port may be taken).
fn free_local_addr() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.to_string())
}

/// The demo's Python workload: the child of the demo process, once it has one.
fn wait_for_workload(demo_pid: u32, demo: &mut Reaped) -> anyhow::Result<u32> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Some(status) = demo.0.try_wait()? {
            bail!("the demo ended early ({status})");
        }
        let children =
            std::fs::read_to_string(format!("/proc/{demo_pid}/task/{demo_pid}/children"))
                .unwrap_or_default();
        for pid in children
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim().starts_with("python") {
                return Ok(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("the demo started no Python workload within 60 s")
}

/// A detached tmux session on its own server socket (so no user's sessions are touched),
/// killed with its server when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> anyhow::Result<Self> {
        Ok(Tmux {
            socket: format!("leak-monitor-screenshots-{}", std::process::id()),
        })
    }

    fn tmux(&self) -> Command {
        let mut command = Command::new("tmux");
        command.args(["-L", &self.socket, "-f", "/dev/null"]);
        command
    }

    fn start(&self, shell_command: &str) -> anyhow::Result<()> {
        let status = self
            .tmux()
            .args(["new-session", "-d", "-s", "shots"])
            .args(["-x", &COLUMNS.to_string(), "-y", &ROWS.to_string()])
            .arg(shell_command)
            .status()
            .context("starting tmux")?;
        if !status.success() {
            bail!("tmux new-session failed ({status})");
        }
        Ok(())
    }

    fn capture(&self) -> anyhow::Result<String> {
        let output = self
            .tmux()
            .args(["capture-pane", "-p", "-t", "shots"])
            .output()
            .context("running tmux capture-pane")?;
        if !output.status.success() {
            bail!(
                "tmux capture-pane failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Ctrl-C first, as a user would end `watch`; then the server goes.
        // The session (and its server) ends with `watch`, so these may find nothing to do.
        let quiet = |mut command: Command| {
            let _ = command.stdout(Stdio::null()).stderr(Stdio::null()).status();
        };
        let mut keys = self.tmux();
        keys.args(["send-keys", "-t", "shots", "C-c"]);
        quiet(keys);
        std::thread::sleep(Duration::from_millis(500));
        let mut kill = self.tmux();
        kill.arg("kill-server");
        quiet(kill);
    }
}

/// The captured terminal as a page that looks like one.
fn terminal_html(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><style>\
         body{{margin:0;background:#1e1f24}}\
         pre{{margin:0;padding:16px 20px;color:#e4e6eb;font:13px/18px 'DejaVu Sans Mono',monospace}}\
         </style></head><body><pre>{escaped}</pre></body></html>"
    )
}

/// The page's full height in Chromium, read by a copy of the page with a one-line script.
fn page_height(page: &Path) -> anyhow::Result<u32> {
    let html = std::fs::read_to_string(page)?;
    let probe = page.with_extension("height.html");
    std::fs::write(
        &probe,
        format!(
            "{html}<script>addEventListener('load',()=>{{document.body.dataset.height=document.documentElement.scrollHeight}})</script>"
        ),
    )?;
    let output = chromium(
        &probe,
        &[
            format!("--window-size={PAGE_WIDTH},1000"),
            "--dump-dom".into(),
        ],
    )?;
    let dom = String::from_utf8_lossy(&output.stdout);
    dom.split("data-height=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|h| h.parse().ok())
        .context("Chromium did not report the page's height")
}

fn chromium_screenshot(page: &Path, png: &Path, width: u32, height: u32) -> anyhow::Result<()> {
    chromium(
        page,
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size={width},{height}"),
            "--hide-scrollbars".into(),
        ],
    )?;
    Ok(())
}

/// Headless Chromium on a local file with a fresh profile and the network features off.
fn chromium(page: &Path, extra: &[String]) -> anyhow::Result<std::process::Output> {
    let profile = tempfile::tempdir()?;
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.canonicalize()?.display()))
        .stdin(Stdio::null())
        .output()
        .context("running chromium")?;
    if !output.status.success() {
        bail!(
            "chromium failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

//! The live terminal view shared by `watch` and `demo`: one screen per tick, redrawn in place
//! on a terminal, one status line per tick otherwise.

use crate::humanize;
use crate::monitor::TargetSnapshot;
use crate::resource::Resource;
use crate::sampling::FdKind;
use crossterm::{cursor, execute, terminal};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};

/// Restores the terminal (cursor) when dropped, also on panic unwinding.
pub struct LiveScreen {
    tty: bool,
}

impl LiveScreen {
    pub fn new() -> Self {
        let tty = std::io::stdout().is_terminal();
        if tty {
            let _ = execute!(
                std::io::stdout(),
                cursor::Hide,
                terminal::Clear(terminal::ClearType::All)
            );
        }
        LiveScreen { tty }
    }

    pub fn draw(&mut self, snapshot: &TargetSnapshot, footer: &[String]) {
        let mut out = std::io::stdout().lock();
        if self.tty {
            let frame = render(snapshot, footer);
            let _ = execute!(
                out,
                cursor::MoveTo(0, 0),
                terminal::Clear(terminal::ClearType::FromCursorDown)
            );
            // Raw newlines are fine: the terminal is not in raw mode.
            let _ = out.write_all(frame.as_bytes());
        } else {
            let _ = writeln!(out, "{}", status_line(snapshot));
        }
        let _ = out.flush();
    }
}

impl Default for LiveScreen {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for LiveScreen {
    fn drop(&mut self) {
        if self.tty {
            let _ = execute!(std::io::stdout(), cursor::Show);
            let _ = writeln!(std::io::stdout());
        }
    }
}

/// The full screen for one target.
pub fn render(snapshot: &TargetSnapshot, footer: &[String]) -> String {
    let info = &snapshot.info;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "leak-monitor  pid {}  {}  {}",
        info.id.pid,
        info.cmdline.join(" "),
        info.python_version
            .as_deref()
            .map(|v| format!("(Python {v})"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "observed {}, {} samples every {}\n",
        humanize::duration(snapshot.observed_seconds),
        snapshot.samples,
        humanize::duration(snapshot.interval_seconds)
    );
    let _ = writeln!(
        s,
        "{:<10} {:>12} {:>14} {:<12} {:<8} {:>5} {:>14}",
        "RESOURCE", "NOW", "RATE", "PATTERN", "VERDICT", "CONF", "TIME TO LIMIT"
    );
    for r in &snapshot.resources {
        let unit = r.resource.unit();
        let _ = writeln!(
            s,
            "{:<10} {:>12} {:>14} {:<12} {:<8} {:>5.2} {:>14}",
            short_name(r.resource),
            humanize::amount(unit, r.last),
            humanize::per_second(unit, r.trend.rate_per_second),
            r.trend.pattern.as_str(),
            r.trend.verdict.as_str().to_uppercase(),
            r.trend.confidence,
            r.trend
                .seconds_to_limit
                .map(|s| humanize::duration(s.0))
                .unwrap_or_else(|| "-".into()),
        );
    }
    let memory = &snapshot.latest.memory;
    let _ = writeln!(
        s,
        "\nmemory: anon {}  file {}  shmem {}",
        memory.anon, memory.file, memory.shmem
    );
    let fds: Vec<String> = FdKind::ALL
        .iter()
        .map(|k| format!("{} {}", k.as_str(), snapshot.latest.fds.get(*k)))
        .collect();
    let _ = writeln!(
        s,
        "fds: {}  (limit {})",
        fds.join("  "),
        snapshot
            .limits
            .max_fds
            .map(|n| n.to_string())
            .unwrap_or_else(|| "unknown".into())
    );
    let sockets: Vec<String> = snapshot
        .latest
        .sockets
        .by_protocol_state
        .iter()
        .map(|((protocol, state), n)| format!("{}/{state} {n}", protocol.as_str()))
        .collect();
    if !sockets.is_empty() {
        let _ = writeln!(s, "sockets: {}", sockets.join("  "));
    }
    let _ = writeln!(s, "\ntop growth sites:");
    let mut any = false;
    for r in &snapshot.resources {
        for site in r.sites.iter().take(3) {
            any = true;
            let _ = writeln!(
                s,
                "  {:<10} {}:{} in {}  {} ({:.0}%)",
                short_name(r.resource),
                site.file,
                site.line,
                site.function,
                site.amount.format(r.resource.unit()),
                site.share.percent()
            );
        }
    }
    if !any {
        let _ = writeln!(s, "  none attributed (see the notes below)");
    }
    if !footer.is_empty() {
        let _ = writeln!(s);
        for line in footer {
            let _ = writeln!(s, "{line}");
        }
    }
    s
}

/// One line per tick for logs and pipes.
pub fn status_line(snapshot: &TargetSnapshot) -> String {
    let mut line = format!(
        "t={:.0}s pid {}",
        snapshot.observed_seconds.0, snapshot.info.id.pid
    );
    for r in &snapshot.resources {
        let unit = r.resource.unit();
        let _ = write!(
            line,
            " | {} {} {} {}",
            short_name(r.resource),
            humanize::amount(unit, r.last),
            humanize::per_second(unit, r.trend.rate_per_second),
            r.trend.verdict.as_str()
        );
    }
    line
}

fn short_name(resource: Resource) -> &'static str {
    match resource {
        Resource::RssBytes => "rss",
        Resource::OpenFds => "fds",
        Resource::Sockets => "sockets",
        Resource::Threads => "threads",
    }
}

/// The live view of one target during a session: redrawn after each tick, with a footer.
pub struct LiveView {
    screen: LiveScreen,
    footer: Vec<String>,
}

impl LiveView {
    pub fn new(footer: Vec<String>) -> Self {
        LiveView {
            screen: LiveScreen::new(),
            footer,
        }
    }

    /// Draws `monitor` as it is now; returns the snapshot drawn (the demo exports it).
    pub fn show(&mut self, monitor: &crate::monitor::TargetMonitor) -> TargetSnapshot {
        let snapshot = monitor.snapshot();
        self.screen.draw(&snapshot, &self.footer);
        snapshot
    }
}

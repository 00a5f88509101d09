//! A one-line progress display for long `run`s: time left and current verdicts, redrawn in
//! place on stderr when it is a terminal, silent otherwise (logs and CI stay clean).

use crate::detection::Verdict;
use crate::monitor::TargetMonitor;
use crate::resource::Resource;
use std::io::{IsTerminal, Write};
use std::time::Duration;

pub struct Progress {
    total: Duration,
    enabled: bool,
    drawn: bool,
}

impl Progress {
    pub fn on_terminal(total: Duration) -> Self {
        Progress {
            total,
            enabled: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    pub fn update(&mut self, elapsed: Duration, monitors: &[TargetMonitor]) {
        if !self.enabled {
            return;
        }
        let left = self.total.saturating_sub(elapsed).as_secs();
        let mut line = format!("observing: {left} s left");
        for monitor in monitors {
            let flagged: Vec<String> = Resource::ALL
                .iter()
                .filter_map(|&r| {
                    let trend = monitor.trend(r);
                    (trend.verdict != Verdict::Stable)
                        .then(|| format!("{r} {}", trend.verdict.as_str()))
                })
                .collect();
            let state = if monitor.ended().is_some() {
                "ended".to_string()
            } else if flagged.is_empty() {
                "stable".to_string()
            } else {
                flagged.join(", ")
            };
            line.push_str(&format!(" | pid {}: {state}", monitor.info().id.pid));
        }
        let mut err = std::io::stderr().lock();
        // \r + clear-to-end-of-line redraws the same line.
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        self.drawn = true;
    }

    pub fn finish(&mut self) {
        if self.drawn {
            let _ = writeln!(std::io::stderr());
            self.drawn = false;
        }
    }
}

//! The sampling clock and the stop signal shared by the long-running commands.
//!
//! Ticks are scheduled on fixed deadlines (start + n * interval) so they do not drift; a tick
//! that is late is taken at once and the missed ones are skipped, not replayed.

use anyhow::Context;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set by SIGINT/SIGTERM. Long loops check it at every tick and end cleanly.
#[derive(Clone)]
pub struct StopFlag {
    interrupted: Arc<AtomicBool>,
    terminated: Arc<AtomicBool>,
}

impl StopFlag {
    /// Installs handlers for SIGINT and SIGTERM that set the flag.
    pub fn on_signals() -> anyhow::Result<Self> {
        let stop = StopFlag {
            interrupted: Arc::new(AtomicBool::new(false)),
            terminated: Arc::new(AtomicBool::new(false)),
        };
        for (signal, flag) in [
            (signal_hook::consts::SIGINT, &stop.interrupted),
            (signal_hook::consts::SIGTERM, &stop.terminated),
        ] {
            signal_hook::flag::register(signal, Arc::clone(flag))
                .context("installing the signal handler")?;
        }
        Ok(stop)
    }

    pub fn is_set(&self) -> bool {
        self.signal().is_some()
    }

    /// The signal that set the flag (SIGTERM when both came).
    pub fn signal(&self) -> Option<&'static str> {
        if self.terminated.load(Ordering::Relaxed) {
            Some("SIGTERM")
        } else if self.interrupted.load(Ordering::Relaxed) {
            Some("SIGINT")
        } else {
            None
        }
    }
}

pub struct Ticker {
    interval: Duration,
    next: Instant,
}

impl Ticker {
    /// The first tick is one interval from now (the caller has just sampled).
    pub fn new(interval: Duration) -> Self {
        Ticker {
            interval,
            next: Instant::now() + interval,
        }
    }

    /// Sleeps until the next deadline, waking early when `stop` is set. Returns the tick time,
    /// or None when stopped.
    pub fn wait(&mut self, stop: &StopFlag) -> Option<Instant> {
        // Sleep in short slices so a signal is answered promptly.
        const SLICE: Duration = Duration::from_millis(50);
        loop {
            if stop.is_set() {
                return None;
            }
            let now = Instant::now();
            if now >= self.next {
                let late = now.duration_since(self.next);
                let skipped = (late.as_nanos() / self.interval.as_nanos().max(1)) as u32;
                self.next += self.interval * (skipped + 1);
                return Some(now);
            }
            std::thread::sleep((self.next - now).min(SLICE));
        }
    }
}

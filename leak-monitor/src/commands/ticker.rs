//! The sampling clock and the stop signal shared by the long-running commands.
//!
//! Ticks are scheduled on fixed deadlines (start + n * interval) so they do not drift; a tick
//! that is late is taken at once and the missed ones are skipped, not replayed.

use anyhow::Context;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set by SIGINT/SIGTERM. Long loops check it at every tick and end cleanly.
#[derive(Clone)]
pub struct StopFlag {
    interrupted: Arc<AtomicBool>,
    terminated: Arc<AtomicBool>,
    /// Readable once a signal came: the ticker sleeps in poll(2) on it, so it wakes once a
    /// tick and still answers a signal at once (it slept in 50 ms slices: 20 wake-ups a
    /// second, a tenth of an idle daemon's CPU).
    woken: Arc<UnixStream>,
}

impl StopFlag {
    /// Installs handlers for SIGINT and SIGTERM that set the flag.
    pub fn on_signals() -> anyhow::Result<Self> {
        let (woken, wake) = UnixStream::pair().context("creating the signal pipe")?;
        wake.set_nonblocking(true)
            .context("creating the signal pipe")?;
        let stop = StopFlag {
            interrupted: Arc::new(AtomicBool::new(false)),
            terminated: Arc::new(AtomicBool::new(false)),
            woken: Arc::new(woken),
        };
        for (signal, flag) in [
            (signal_hook::consts::SIGINT, &stop.interrupted),
            (signal_hook::consts::SIGTERM, &stop.terminated),
        ] {
            // The flag first: the handlers run in registration order, so the flag is set when
            // the sleeper wakes.
            signal_hook::flag::register(signal, Arc::clone(flag))
                .context("installing the signal handler")?;
            let wake = wake.try_clone().context("creating the signal pipe")?;
            signal_hook::low_level::pipe::register(signal, wake)
                .context("installing the signal handler")?;
        }
        Ok(stop)
    }

    /// Sleeps up to `timeout`, waking early when a signal comes.
    fn sleep(&self, timeout: Duration) {
        let mut pollfd = libc::pollfd {
            fd: self.woken.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Rounded up, so a sleep short of its deadline is not repeated as a busy loop.
        let millis = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for the length given; an interrupted or failed poll only
        // ends the sleep early, and the caller checks the time again.
        unsafe { libc::poll(&mut pollfd, 1, millis) };
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
            stop.sleep(self.next - now);
        }
    }
}

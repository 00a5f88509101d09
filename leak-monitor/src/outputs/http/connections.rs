//! The endpoint's accept loop and connections, built to survive abuse by any local user:
//! a cap on open connections (a semaphore; over it new connections are closed at once, so the
//! backlog never fills with attackers), hyper's header-read timer (which also bounds how long an
//! idle connection is kept), a bound on a connection's age (a client that never reads its
//! response), and accept errors (out of fds, out of memory) backed off and logged, never fatal.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// How the endpoint treats its clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// From the moment a connection waits for a request (when opened, or idle between
    /// keep-alive requests) until its header block is complete; then the connection is closed.
    pub header_read_timeout: Duration,
    /// After this a connection is asked to close once its request in flight is answered, and
    /// dropped `CLOSE_GRACE` later whatever it is doing.
    pub max_connection_age: Duration,
}

/// What a connection may still take to finish its response once asked to close.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// The largest request head (and read buffer) a connection may hold: a scrape is a few hundred
/// bytes, and hyper's default (~400 KiB) times the connection cap would be a lot of memory.
const MAX_BUF_SIZE: usize = 16 * 1024;
/// Accept errors are retried after a pause that doubles from the first to the last.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl Limits {
    /// Limits for a process whose soft fd limit is `fd_limit`: a quarter of the fds at most go
    /// to connections (the sampler and the kernel tracer need the rest), 4 at least, and 128 at
    /// most: Prometheus needs one or two, and each open connection costs ~12 KiB.
    pub fn for_fd_limit(fd_limit: u64) -> Self {
        Limits {
            max_connections: usize::try_from(fd_limit / 4)
                .unwrap_or(usize::MAX)
                .clamp(4, 128),
            header_read_timeout: Duration::from_secs(5),
            max_connection_age: Duration::from_secs(60),
        }
    }
}

/// Accepts and serves connections until `shutdown` completes; then stops accepting and asks
/// every open connection to close after its request in flight (bounded by `CLOSE_GRACE`).
/// Never returns an error: failures of accept(2) or of one connection are logged with `log`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    log: fn(&str),
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(Occupancy::new(limits.max_connections));
    let (closing, closing_rx) = watch::channel(false);
    let mut accept_errors = Streak::default();
    let mut shed = Streak::default();
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(err) if is_connection_error(&err) => continue,
            Err(err) => {
                let pause = backoff(accept_errors.count);
                if accept_errors.start() {
                    log(&format!(
                        "metrics endpoint: accept failed: {err}; retrying in {pause:?}, backing off to {MAX_BACKOFF:?}"
                    ));
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(pause) => continue,
                }
            }
        };
        if let Some(failed) = accept_errors.end() {
            log(&format!(
                "metrics endpoint: accepting again after {failed} failed accepts"
            ));
        }
        let Some(slot) = Occupancy::enter(&open) else {
            if shed.start() {
                log(&format!(
                    "metrics endpoint: {} connections open, the limit: closing new ones until some end",
                    limits.max_connections
                ));
            }
            drop(stream);
            continue;
        };
        if let Some(refused) = shed.end() {
            log(&format!(
                "metrics endpoint: {refused} connections were closed at the connection limit"
            ));
        }
        let app = app.clone();
        let closing = closing_rx.clone();
        tokio::spawn(async move {
            serve_connection(stream, app, limits, closing).await;
            drop(slot);
        });
    }
    // Connections see the flag, finish their request in flight and close; wait for them.
    let _ = closing.send(true);
    let _ = tokio::time::timeout(CLOSE_GRACE, open.all_closed()).await;
}

/// The open connections: a semaphore of `max_connections` permits, and the most open at once
/// since the last time none was, so the memory of a burst is given back when it ends.
struct Occupancy {
    permits: Arc<Semaphore>,
    max: usize,
    peak: AtomicUsize,
}

/// A burst of this many connections at once is followed by giving memory back to the OS.
const BURST: usize = 16;

impl Occupancy {
    fn new(max: usize) -> Self {
        Occupancy {
            permits: Arc::new(Semaphore::new(max)),
            max,
            peak: AtomicUsize::new(0),
        }
    }

    /// A slot for one more connection, or None at the cap.
    fn enter(this: &Arc<Self>) -> Option<Slot> {
        let permit = Arc::clone(&this.permits).try_acquire_owned().ok()?;
        let open = this.max - this.permits.available_permits();
        this.peak.fetch_max(open, Ordering::Relaxed);
        Some(Slot {
            _permit: permit,
            occupancy: Arc::clone(this),
        })
    }

    async fn all_closed(&self) {
        let all = u32::try_from(self.max).unwrap_or(u32::MAX);
        let _ = self.permits.acquire_many(all).await;
    }
}

/// One open connection's place; dropped when it closes.
struct Slot {
    _permit: OwnedSemaphorePermit,
    occupancy: Arc<Occupancy>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // This slot's permit is still held: the last one open sees max - 1 available.
        let occupancy = &self.occupancy;
        if occupancy.permits.available_permits() + 1 == occupancy.max
            && occupancy.peak.swap(0, Ordering::Relaxed) >= BURST
        {
            release_free_memory();
        }
    }
}

/// Gives the allocator's free pages back to the OS. glibc keeps what a burst of connections
/// freed inside the HTTP thread's arena (an abuser's thousands of connections would stay in
/// the daemon's RSS for good).
fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

async fn serve_connection(
    stream: TcpStream,
    app: Router,
    limits: Limits,
    mut closing: watch::Receiver<bool>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_BUF_SIZE);
    let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    let mut connection = pin!(connection);
    // A connection error (timeout, reset, junk) concerns that client only: it is not logged.
    tokio::select! {
        _ = connection.as_mut() => return,
        () = tokio::time::sleep(limits.max_connection_age) => {}
        _ = closing.wait_for(|closing| *closing) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(CLOSE_GRACE, connection).await;
}

/// Errors of one connection that ended before it was accepted: retry at once.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The pause after the `failures`-th accept error in a row (0-based).
fn backoff(failures: u64) -> Duration {
    let doublings = u32::try_from(failures.min(16)).unwrap_or(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

/// A run of like events (failed accepts, shed connections), so a storm is logged twice (when it
/// starts and when it ends) rather than once per event.
#[derive(Default)]
struct Streak {
    count: u64,
}

impl Streak {
    /// Counts one event; true for the first of a run.
    fn start(&mut self) -> bool {
        self.count += 1;
        self.count == 1
    }

    /// Ends the run: its length, if there was one.
    fn end(&mut self) -> Option<u64> {
        (self.count > 0).then(|| std::mem::take(&mut self.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_most_fds_to_the_monitor() {
        assert_eq!(Limits::for_fd_limit(64).max_connections, 16);
        assert_eq!(Limits::for_fd_limit(256).max_connections, 64);
        assert_eq!(Limits::for_fd_limit(1024).max_connections, 128);
        assert_eq!(Limits::for_fd_limit(8).max_connections, 4);
        assert_eq!(Limits::for_fd_limit(1 << 20).max_connections, 128);
        assert_eq!(Limits::for_fd_limit(u64::MAX).max_connections, 128);
    }

    #[test]
    fn accept_backoff_doubles_up_to_a_second() {
        assert_eq!(backoff(0), Duration::from_millis(10));
        assert_eq!(backoff(1), Duration::from_millis(20));
        assert_eq!(backoff(6), Duration::from_millis(640));
        assert_eq!(backoff(7), MAX_BACKOFF);
        assert_eq!(backoff(u64::MAX), MAX_BACKOFF);
    }

    #[test]
    fn a_streak_is_reported_at_its_start_and_end() {
        let mut streak = Streak::default();
        assert_eq!(streak.end(), None);
        assert!(streak.start());
        assert!(!streak.start());
        assert!(!streak.start());
        assert_eq!(streak.end(), Some(3));
        assert!(streak.start());
    }

    #[test]
    fn only_errors_of_one_connection_are_retried_at_once() {
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        assert!(!is_connection_error(&emfile));
        assert!(is_connection_error(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
    }
}

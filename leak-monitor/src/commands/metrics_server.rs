//! The /metrics HTTP endpoint on a background thread, so the sampling loops stay synchronous.
//!
//! The thread must outlive any abuse (see `outputs::http`); if it ends anyway, `ensure_running`
//! says so and the daemon exits non-zero, so that systemd or Kubernetes restarts it rather than
//! leaving a process up whose metrics are gone.

use crate::outputs::http::{self, Limits};
use crate::outputs::metrics::Metrics;
use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::thread::JoinHandle;

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

pub struct MetricsServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds now (so a busy port is reported before any work starts) and serves until dropped.
    /// Accept errors and the connection cap are logged with `log`.
    pub fn start(addr: SocketAddr, metrics: Arc<Metrics>, log: fn(&str)) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind(addr).with_context(|| {
            format!("cannot listen on {addr} (is another leak-monitor running? use --listen)")
        })?;
        listener
            .set_nonblocking(true)
            .context("setting the metrics socket non-blocking")?;
        let limits = Limits::for_fd_limit(soft_fd_limit());
        Self::spawn(listener, move |listener, stop| async move {
            match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => http::serve(listener, metrics, limits, log, stop).await,
                Err(err) => log(&format!("metrics endpoint failed: {err}")),
            }
        })
    }

    /// Runs `serve(listener, stop)` on its own thread and runtime; `stop` completes when the
    /// server is dropped.
    fn spawn<F>(
        listener: std::net::TcpListener,
        serve: impl FnOnce(std::net::TcpListener, BoxFuture) -> F + Send + 'static,
    ) -> anyhow::Result<Self>
    where
        F: Future<Output = ()>,
    {
        let addr = listener
            .local_addr()
            .context("reading the metrics address")?;
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        // Timers too: the header-read timeout, the accept back-off and the connection age.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .context("starting the HTTP runtime")?;
        let thread = std::thread::Builder::new()
            .name("metrics-http".into())
            .spawn(move || {
                let stop: BoxFuture = Box::pin(async move {
                    let _ = shutdown_rx.await;
                });
                runtime.block_on(serve(listener, stop));
            })
            .context("starting the HTTP thread")?;
        Ok(MetricsServer {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An error once the endpoint has stopped serving (it only stops when dropped, unless it
    /// failed or panicked).
    pub fn ensure_running(&self) -> anyhow::Result<()> {
        match &self.thread {
            Some(thread) if thread.is_finished() => anyhow::bail!(
                "the metrics endpoint on {} stopped serving (see the message above); exiting so that the service manager restarts leak-monitor",
                self.addr
            ),
            _ => Ok(()),
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// RLIMIT_NOFILE's soft limit (1024, the usual default, if it cannot be read).
fn soft_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the rlimit this frame owns.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn local_listener() -> std::net::TcpListener {
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port")
    }

    #[test]
    fn an_endpoint_that_panics_is_reported_not_ignored() {
        let server = MetricsServer::spawn(local_listener(), |_, _| async {
            panic!("the endpoint dies (on purpose, in a test)")
        })
        .expect("start");
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.ensure_running().is_ok() {
            assert!(Instant::now() < deadline, "the thread never ended");
            std::thread::sleep(Duration::from_millis(10));
        }
        let err = server.ensure_running().expect_err("stopped");
        assert!(format!("{err:#}").contains("stopped serving"), "{err:#}");
    }

    #[test]
    fn a_serving_endpoint_is_running_until_dropped() {
        let server = MetricsServer::spawn(local_listener(), |_, stop| stop).expect("start");
        std::thread::sleep(Duration::from_millis(50));
        assert!(server.ensure_running().is_ok());
        drop(server);
    }
}

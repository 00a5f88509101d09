//! The /metrics HTTP endpoint on a background thread, so the sampling loops stay synchronous.

use crate::outputs::http;
use crate::outputs::metrics::Metrics;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

pub struct MetricsServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds now (so a busy port is reported before any work starts) and serves until dropped.
    pub fn start(addr: SocketAddr, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind(addr).with_context(|| {
            format!("cannot listen on {addr} (is another leak-monitor running? use --listen)")
        })?;
        listener
            .set_nonblocking(true)
            .context("setting the metrics socket non-blocking")?;
        let addr = listener
            .local_addr()
            .context("reading the metrics address")?;
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .context("starting the HTTP runtime")?;
        let thread = std::thread::Builder::new()
            .name("metrics-http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(err) => {
                            eprintln!("leak-monitor: metrics endpoint failed: {err}");
                            return;
                        }
                    };
                    let stop = async move {
                        let _ = shutdown_rx.await;
                    };
                    if let Err(err) = http::serve(listener, metrics, stop).await {
                        eprintln!("leak-monitor: metrics endpoint failed: {err}");
                    }
                });
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

//! The HTTP endpoint of the daemon and the demo: `GET /metrics` (Prometheus text format) and
//! `GET /healthz`; every other path is 404. `connections` keeps abusive clients from taking it
//! down.

mod connections;

use super::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::sync::Arc;

pub use connections::Limits;

/// The content type of the text exposition format that `Metrics::encode` produces.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves until `shutdown` completes, then lets requests in flight finish. Errors (of accept,
/// of a connection) are logged with `log` and never end it.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    limits: Limits,
    log: fn(&str),
    shutdown: impl Future<Output = ()>,
) {
    connections::serve(listener, router(metrics), limits, log, shutdown).await;
}

fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(metrics)
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        metrics.encode(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that fails on unwrap says where.
mod tests {
    use super::*;
    use crate::outputs::fixtures::leaking_worker;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::oneshot;

    struct Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Response {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// One HTTP/1.1 request over a fresh connection; the server closes it after the response.
    async fn request(addr: std::net::SocketAddr, method: &str, path: &str) -> Response {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request =
            format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let raw = String::from_utf8(raw).unwrap();

        let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
        let mut lines = head.lines();
        let status_line = lines.next().unwrap();
        let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        Response {
            status,
            headers,
            body: body.to_string(),
        }
    }

    fn ignore(_: &str) {}

    /// Serves `metrics` on a fresh port with `limits` until the returned sender is used.
    async fn start(limits: Limits) -> (std::net::SocketAddr, oneshot::Sender<()>) {
        let metrics = Arc::new(Metrics::new().unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve(listener, metrics, limits, ignore, async {
            let _ = stopped.await;
        }));
        (addr, stop)
    }

    /// Reads until the server closes the connection; panics if it is still open after 10 s
    /// (a liveness bound: the timeouts under test are far shorter).
    async fn closed_by_server(stream: &mut TcpStream) {
        let mut sink = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut sink));
        assert!(read.await.is_ok(), "the server kept the connection open");
    }

    #[tokio::test]
    async fn half_requests_and_idle_connections_are_closed_at_the_header_timeout() {
        let (addr, _stop) = start(Limits {
            header_read_timeout: Duration::from_millis(200),
            ..Limits::for_fd_limit(1024)
        })
        .await;
        let mut idle = TcpStream::connect(addr).await.unwrap();
        let mut half = TcpStream::connect(addr).await.unwrap();
        half.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        closed_by_server(&mut idle).await;
        closed_by_server(&mut half).await;
        assert_eq!(request(addr, "GET", "/healthz").await.status, 200);
    }

    #[tokio::test]
    async fn over_the_cap_new_connections_are_closed_until_one_ends() {
        let (addr, _stop) = start(Limits {
            max_connections: 2,
            ..Limits::for_fd_limit(1024)
        })
        .await;
        // Two connections that hold their slot: each has had an answer, so it was accepted.
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 256];
            assert!(stream.read(&mut buf).await.unwrap() > 0);
            held.push(stream);
        }
        let mut third = TcpStream::connect(addr).await.unwrap();
        closed_by_server(&mut third).await;
        drop(held);
        // The slots come back as the server sees the two closes.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let get = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
            let mut raw = Vec::new();
            if stream.write_all(get).await.is_ok()
                && stream.read_to_end(&mut raw).await.is_ok()
                && raw.starts_with(b"HTTP/1.1 200")
            {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "no slot came back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn serves_metrics_health_and_404_then_shuts_down() {
        let metrics = Arc::new(Metrics::new().unwrap());
        metrics.update(&[leaking_worker(4242)]);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let limits = Limits::for_fd_limit(1024);
        let server = tokio::spawn(serve(
            listener,
            Arc::clone(&metrics),
            limits,
            ignore,
            async {
                let _ = stopped.await;
            },
        ));

        let scrape = request(addr, "GET", "/metrics").await;
        assert_eq!(scrape.status, 200);
        assert_eq!(scrape.header("content-type"), Some(METRICS_CONTENT_TYPE));
        assert!(scrape
            .body
            .contains(r#"leak_monitor_threads{target="web",pid="4242"} 4"#));
        assert_eq!(scrape.body, metrics.encode());

        let health = request(addr, "GET", "/healthz").await;
        assert_eq!((health.status, health.body.as_str()), (200, "ok"));

        assert_eq!(request(addr, "GET", "/").await.status, 404);
        assert_eq!(request(addr, "GET", "/metrics/extra").await.status, 404);

        stop.send(()).unwrap();
        server.await.unwrap();
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "still listening after shutdown"
        );
    }
}

//! A real Prometheus server (Debian's `prometheus` package, `/usr/bin/prometheus`) for the
//! alerting tests: loopback only, a temp TSDB, a generated config that scrapes one leak-monitor
//! and loads the given rules. Killed and reaped on drop, and on the test thread's death.

use crate::support::{die_with_parent, free_local_addr, http_get, wait_until};
use serde_json::Value;
use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;

const STARTUP: Duration = Duration::from_secs(60);

pub struct Prometheus {
    child: Child,
    dir: TempDir,
    addr: SocketAddr,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second (job `leak-monitor`, the job name the
    /// rules' LeakMonitorDown expects) and evaluating `rules` every second; waits for
    /// `/-/ready`.
    pub fn start(target: SocketAddr, rules: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir for Prometheus");
        let rules_path = dir.path().join("leak-monitor.rules.yml");
        fs::write(&rules_path, rules).expect("write the rules");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: leak-monitor\n    static_configs:\n      - targets: ['{target}']\n",
            rules = rules_path.display(),
        );
        let config_path = dir.path().join("prometheus.yml");
        fs::write(&config_path, config).expect("write prometheus.yml");
        let addr = free_local_addr();
        let log = File::create(dir.path().join("prometheus.log")).expect("log file");
        let mut command = Command::new("/usr/bin/prometheus");
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            // Loopback only: nothing outside this machine can reach it, and it reaches nothing
            // but the leak-monitor it scrapes (no Alertmanager, no remote write).
            .arg(format!("--web.listen-address={addr}"))
            .arg("--storage.tsdb.retention.time=1h")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        let child = die_with_parent(&mut command).spawn().unwrap_or_else(|err| {
            panic!(
                "cannot run /usr/bin/prometheus ({err}); install it with `apt-get install -y \
                 prometheus` or `cargo xtask setup`"
            )
        });
        let mut prometheus = Prometheus { child, dir, addr };
        wait_until(STARTUP, "Prometheus to be ready", || {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!("Prometheus exited ({status}):\n{}", prometheus.log());
            }
            matches!(http_get(addr, "/-/ready"), Ok((200, _))).then_some(())
        });
        prometheus
    }

    /// `data.alerts` of `GET /api/v1/alerts`: every pending and firing alert.
    pub fn alerts(&self) -> Vec<Value> {
        self.api("/api/v1/alerts")["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `data.result` of an instant query.
    pub fn query(&self, promql: &str) -> Vec<Value> {
        let path = format!("/api/v1/query?query={}", url_encode(promql));
        self.api(&path)["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The `data` member of a successful API response; panics with the log otherwise.
    fn api(&self, path: &str) -> Value {
        let (status, body) = http_get(self.addr, path)
            .unwrap_or_else(|err| panic!("GET {path}: {err}\n{}", self.log()));
        assert_eq!(status, 200, "GET {path}: {body}");
        let response: Value = serde_json::from_str(&body)
            .unwrap_or_else(|err| panic!("GET {path} is not JSON ({err}): {body}"));
        assert_eq!(response["status"], "success", "GET {path}: {body}");
        response["data"].clone()
    }

    /// What Prometheus logged so far, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for a query parameter.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

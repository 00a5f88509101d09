//! The deploy/ units run with capabilities, not full root: the systemd unit (checked by
//! `systemd-analyze verify` when it is installed) and the Kubernetes DaemonSet (hostPID, the
//! capabilities, the metrics port and the scrape annotations).

use regex::Regex;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What reading other users' procfs and (later) eBPF need; see README "Permissions".
const CAPABILITIES: [&str; 4] = ["SYS_PTRACE", "DAC_READ_SEARCH", "BPF", "PERFMON"];

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

/// Every value of `key=` in a unit file, split on whitespace.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|line| line.trim().strip_prefix(&format!("{key}=")))
        .flat_map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

#[test]
fn systemd_unit_runs_unprivileged_with_capabilities() {
    let unit = std::fs::read_to_string(deploy("systemd/leak-monitor.service")).unwrap();
    for key in ["AmbientCapabilities", "CapabilityBoundingSet"] {
        let values = unit_values(&unit, key);
        for cap in CAPABILITIES {
            assert!(
                values.contains(&format!("CAP_{cap}")),
                "{key} lacks CAP_{cap}: {values:?}"
            );
        }
        assert!(
            !values.contains(&"CAP_SYS_ADMIN".to_string()),
            "{key} grants CAP_SYS_ADMIN"
        );
    }
    assert_eq!(
        unit_values(&unit, "DynamicUser"),
        ["yes"],
        "not a dedicated user"
    );
    assert!(unit_values(&unit, "User")
        .iter()
        .all(|u| u != "root" && u != "0"));
    assert_eq!(unit_values(&unit, "NoNewPrivileges"), ["yes"]);
    // Set by systemd before it drops privileges, so no CAP_SYS_RESOURCE is needed.
    assert_eq!(unit_values(&unit, "LimitMEMLOCK"), ["infinity"]);
    assert_eq!(
        unit_values(&unit, "ExecStart")[..3],
        ["/usr/local/bin/leak-monitor", "serve", "--config"]
    );
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "NOTE: systemd-analyze is not installed; `systemd-analyze verify` of \
             deploy/systemd/leak-monitor.service was not run (apt-get install -y systemd, or \
             `cargo xtask setup`)"
        );
        return;
    }
    // verify insists that ExecStart= exists: point it at the binary under test.
    let unit = std::fs::read_to_string(deploy("systemd/leak-monitor.service")).unwrap();
    let unit = unit.replace(
        "/usr/local/bin/leak-monitor",
        env!("CARGO_BIN_EXE_leak-monitor"),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leak-monitor.service");
    std::fs::write(&path, unit).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "systemd-analyze verify failed:\n{text}"
    );
    // Unknown keys and bad values are warnings with exit 0: there must be none about our unit.
    let about_ours: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("leak-monitor"))
        .collect();
    assert!(about_ours.is_empty(), "systemd-analyze verify:\n{text}");
}

#[test]
fn daemonset_has_host_pid_capabilities_port_and_scrape_annotations() {
    let yaml = std::fs::read_to_string(deploy("kubernetes/leak-monitor-daemonset.yaml")).unwrap();
    let field = |pattern: &str| {
        Regex::new(pattern)
            .unwrap()
            .captures(&yaml)
            .unwrap_or_else(|| panic!("the DaemonSet has no {pattern}"))[1]
            .trim()
            .to_owned()
    };
    assert_eq!(field(r"(?m)^\s+hostPID:\s*(\S+)"), "true");
    assert_eq!(field(r"(?m)^\s+privileged:\s*(\S+)"), "false");
    assert_eq!(field(r"(?m)^\s+allowPrivilegeEscalation:\s*(\S+)"), "false");
    assert_eq!(field(r"(?m)^\s+drop:\s*(\[.*\])"), "[\"ALL\"]");
    let added = field(r"(?m)^\s+add:\s*\[(.*)\]");
    for cap in CAPABILITIES {
        assert!(
            added.contains(&format!("\"{cap}\"")),
            "capabilities.add lacks {cap}: {added}"
        );
    }
    assert!(!added.contains("SYS_ADMIN"), "{added}");
    assert_eq!(field(r"(?m)^\s+containerPort:\s*(\d+)"), "9464");
    assert_eq!(field(r#"(?m)^\s+prometheus\.io/scrape:\s*"(\w+)""#), "true");
    assert_eq!(field(r#"(?m)^\s+prometheus\.io/port:\s*"(\d+)""#), "9464");
    assert_eq!(field(r"(?m)^\s+prometheus\.io/path:\s*(\S+)"), "/metrics");
    // Inside the pod the exporter must listen beyond loopback for Prometheus to reach it.
    assert_eq!(field(r#"(?m)^\s+listen = "([^"]+)""#), "0.0.0.0:9464");
}

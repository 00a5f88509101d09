//! Fleet labels end to end: real processes in real cgroups shaped like a Kubernetes pod, a
//! docker container and a systemd service, followed by a real `serve` through
//! `--match-container`/`--match-unit`; their labels read off a real `/metrics` scrape and a
//! `run` report; and a process restarted in the same container keeping its identity.

use crate::cgroups::{container_id, CgroupTree};
use crate::scrape::{self, Series};
use crate::support::{http_get, promtool_check_metrics, run_json_report, serve, wait_until};
use std::net::SocketAddr;
use std::time::Duration;

/// A liveness bound for a loaded machine, not a timing assertion.
const SETTLE: Duration = Duration::from_secs(60);

/// A light decoy: 2 ms of work every 200 ms, so three of them barely load the machine.
const STEADY: (&str, &[&str]) = ("steady.py", &["--busy-ms", "2", "--period-ms", "200"]);

fn scrape_all(addr: SocketAddr) -> (String, Vec<Series>) {
    let (status, body) = http_get(addr, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    let series = scrape::parse(&body);
    (body, series)
}

/// Scrapes until `pid` has its threads series (its first sample is in); returns the scrape.
fn scrape_with(addr: SocketAddr, pids: &[String]) -> (String, Vec<Series>) {
    wait_until(SETTLE, "series of every workload", || {
        let (body, series) = scrape_all(addr);
        pids.iter()
            .all(|pid| !scrape::find(&series, "leak_monitor_threads", &[("pid", pid)]).is_empty())
            .then_some((body, series))
    })
}

/// Every series of `pid` carries exactly `expected` among the owner labels, the others absent.
fn assert_owner_labels(series: &[Series], pid: &str, expected: &[(&str, &str)], body: &str) {
    let of_pid: Vec<&Series> = series
        .iter()
        .filter(|s| s.label("pid") == Some(pid))
        .collect();
    assert!(of_pid.len() > 10, "few series for {pid}:\n{body}");
    for s in of_pid {
        for name in [
            "container_id",
            "pod",
            "namespace",
            "pod_uid",
            "qos_class",
            "unit",
        ] {
            let wanted = expected.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
            assert_eq!(s.label(name), wanted, "label {name} of {s:?}");
        }
        assert!(s.label("identity").is_some_and(|i| i.len() == 16), "{s:?}");
    }
}

#[test]
fn serve_labels_pod_docker_and_systemd_processes_from_their_cgroups() {
    let tree = CgroupTree::new();
    let uid = "8c5f1d2e-7a3b-4c9d-9e0f-1a2b3c4d5e6f";
    let pod_container = container_id(1);
    let docker_container = container_id(2);
    let unmatched_container = container_id(3);
    let unit = format!("lm-web-{}.service", std::process::id());
    let pod_cgroup = tree.create(&format!(
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{pod_container}.scope",
        uid.replace('-', "_")
    ));
    let docker_cgroup = tree.create(&format!("system.slice/docker-{docker_container}.scope"));
    let unmatched_cgroup = tree.create(&format!("docker/{unmatched_container}"));
    let unit_cgroup = tree.create(&format!("system.slice/{unit}"));

    let (pod, _pod_files) = tree.start_in_pod(&pod_cgroup, "web-7d9f", "shop", STEADY.0, STEADY.1);
    let docker = tree.start(&docker_cgroup, STEADY.0, STEADY.1);
    let service = tree.start(&unit_cgroup, STEADY.0, STEADY.1);
    let unmatched = tree.start(&unmatched_cgroup, STEADY.0, STEADY.1);

    let docker_selector = format!("docker=^{docker_container}$");
    let unit_selector = format!("units=^{}$", regex_escape(&unit));
    let (daemon, addr) = serve(&[
        "--match-container",
        "pods=^shop/web-",
        "--match-container",
        &docker_selector,
        "--match-unit",
        &unit_selector,
        "--interval",
        "500",
        "--no-ebpf",
    ]);
    let pids = [pod.pid_arg(), docker.pid_arg(), service.pid_arg()];
    let (body, series) = scrape_with(addr, &pids);

    let (ok, complaints) = promtool_check_metrics(&body);
    assert!(
        ok && complaints.trim().is_empty(),
        "promtool: {complaints}\n{body}"
    );
    assert_owner_labels(
        &series,
        &pids[0],
        &[
            ("container_id", &pod_container),
            ("pod", "web-7d9f"),
            ("namespace", "shop"),
            ("pod_uid", uid),
            ("qos_class", "burstable"),
        ],
        &body,
    );
    assert_owner_labels(
        &series,
        &pids[1],
        &[("container_id", &docker_container)],
        &body,
    );
    assert_owner_labels(&series, &pids[2], &[("unit", &unit)], &body);
    for (pid, group) in pids.iter().zip(["pods", "docker", "units"]) {
        let threads = scrape::find(&series, "leak_monitor_threads", &[("pid", pid)]);
        assert_eq!(threads[0].label("target"), Some(group), "{body}");
    }
    // The selectors select: the container nobody asked for is not followed.
    let unmatched_pid = unmatched.pid_arg();
    assert!(
        series
            .iter()
            .all(|s| s.label("pid") != Some(unmatched_pid.as_str())),
        "{body}"
    );
    assert!(!body.contains(&unmatched_container), "{body}");
    let targets = scrape::find(&series, "leak_monitor_targets", &[]);
    assert_eq!(targets[0].value, 3.0, "{body}");
    // The daemon's log says where each process runs.
    let log = daemon.output_so_far();
    let pod_line = format!("following pid {} (", pids[0]);
    let owner = format!(
        " in container {} (containerd), pod shop/web-7d9f (burstable)",
        &pod_container[..12]
    );
    assert!(
        log.lines()
            .any(|l| l.contains(&pod_line) && l.ends_with(&owner)),
        "{log}"
    );
    assert!(log.contains(&format!("in unit {unit}")), "{log}");

    // The report names the pod under its target, with the identity the series carry.
    let (outcome, report) = run_json_report(pod.pid(), 2, 500, &["--no-ebpf"]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    let target = &report["target"];
    assert_eq!(
        target["labels"],
        serde_json::json!({
            "container_id": pod_container, "container_runtime": "containerd",
            "pod_uid": uid, "pod": "web-7d9f", "namespace": "shop", "qos_class": "burstable",
        }),
        "{report:#}"
    );
    let identity = scrape::find(&series, "leak_monitor_threads", &[("pid", &pids[0])])[0]
        .label("identity")
        .map(str::to_owned);
    assert_eq!(target["identity"].as_str().map(str::to_owned), identity);
}

#[test]
fn a_process_restarted_in_the_same_container_keeps_its_identity() {
    let tree = CgroupTree::new();
    let id = container_id(4);
    let cgroup = tree.create(&format!("system.slice/docker-{id}.scope"));
    let mut first = tree.start(&cgroup, STEADY.0, STEADY.1);
    // Same container, another command line: another identity.
    let sidecar = tree.start(&cgroup, STEADY.0, &["--busy-ms", "1", "--period-ms", "300"]);

    let selector = format!("app=^{id}$");
    let (_daemon, addr) = serve(&[
        "--match-container",
        &selector,
        "--interval",
        "500",
        "--no-ebpf",
    ]);
    let identity_of = |series: &[Series], pid: &str| -> String {
        let threads = scrape::find(series, "leak_monitor_threads", &[("pid", pid)]);
        assert_eq!(threads[0].label("container_id"), Some(id.as_str()));
        threads[0]
            .label("identity")
            .expect("an identity label")
            .to_owned()
    };
    let (first_pid, sidecar_pid) = (first.pid_arg(), sidecar.pid_arg());
    let (_, series) = scrape_with(addr, &[first_pid.clone(), sidecar_pid.clone()]);
    let before = identity_of(&series, &first_pid);
    assert_ne!(identity_of(&series, &sidecar_pid), before);

    first.kill();
    let restarted = tree.start(&cgroup, STEADY.0, STEADY.1);
    let restarted_pid = restarted.pid_arg();
    assert_ne!(restarted_pid, first_pid);
    let series = wait_until(
        SETTLE,
        "the restarted process's series, the old ones gone",
        || {
            let (_, series) = scrape_all(addr);
            let old_gone = series
                .iter()
                .all(|s| s.label("pid") != Some(first_pid.as_str()));
            let new_in = !scrape::find(&series, "leak_monitor_threads", &[("pid", &restarted_pid)])
                .is_empty();
            (old_gone && new_in).then_some(series)
        },
    );
    assert_eq!(identity_of(&series, &restarted_pid), before);
}

/// On a hybrid host, a runtime with the cgroupfs driver may name the container in the v1
/// hierarchies only (the v2 line says `/`): the label comes from the v1 line.
#[test]
fn a_container_named_only_in_a_v1_hierarchy_is_labelled() {
    let Some(tree) = CgroupTree::v1("pids") else {
        eprintln!("skipped: no cgroup v1 pids hierarchy on this host (pure cgroup v2)");
        return;
    };
    let id = container_id(5);
    let cgroup = tree.create(&format!("docker/{id}"));
    let workload = tree.start(&cgroup, STEADY.0, STEADY.1);
    let own = std::fs::read_to_string(format!("/proc/{}/cgroup", workload.pid())).unwrap();
    assert!(own.contains(":pids:/") && own.contains(&id), "{own}");
    let (outcome, report) = run_json_report(workload.pid(), 2, 500, &["--no-ebpf"]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    assert_eq!(
        report["target"]["labels"],
        serde_json::json!({"container_id": id, "container_runtime": "docker"}),
        "{own}\n{report:#}"
    );
}

/// `.` in a unit name is literal in the selector.
fn regex_escape(text: &str) -> String {
    text.replace('.', "\\.")
}

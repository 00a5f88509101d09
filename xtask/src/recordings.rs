//! `cargo xtask record-fixtures`: records the real workloads whose recordings the replay tests
//! read (tests/corpus/recordings/), each beside the JSON report its live run wrote. Re-record
//! them when the detectors or the report change: the replay of a recording must give the
//! report of its run, byte for byte.

use crate::children::{die_with_parent, Reaped};
use crate::eval::{binary, build, wait_ready};
use anyhow::{bail, Context};
use std::path::Path;
use std::process::{Command, Stdio};

/// The workloads recorded (tests/python/NAME.py) and for how long, seconds.
const WORKLOADS: [(&str, u32); 6] = [
    ("fd_leak", 60),
    ("thread_leak", 60),
    ("slow_churn_leak", 60),
    ("held_service_dict", 60),
    ("gc_sawtooth", 60),
    ("lru_cache_bounded", 60),
];

/// The demo is recorded for its default duration.
const DEMO_SECONDS: &str = "45";

pub fn run() -> anyhow::Result<()> {
    let root = crate::workspace_root();
    build(&root)?;
    let out = root.join("tests/corpus/recordings");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    // Most workloads sleep: recording them at once takes a minute, not six.
    let recorded: Vec<anyhow::Result<()>> = std::thread::scope(|scope| {
        let workloads: Vec<_> = WORKLOADS
            .iter()
            .map(|&(name, seconds)| {
                let (root, out) = (&root, &out);
                scope.spawn(move || record_workload(root, out, name, seconds))
            })
            .collect();
        let demo = scope.spawn(|| record_demo(&root, &out));
        workloads
            .into_iter()
            .chain([demo])
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| bail!("a recorder panicked"))
            })
            .collect()
    });
    for result in recorded {
        result?;
    }
    println!("recordings written to {}", out.display());
    Ok(())
}

fn record_workload(root: &Path, out: &Path, name: &str, seconds: u32) -> anyhow::Result<()> {
    let script = root.join(format!("tests/python/{name}.py"));
    let mut child = Command::new("python3");
    child
        .arg(&script)
        .stdout(Stdio::piped())
        .stdin(Stdio::null());
    let mut workload = Reaped(
        die_with_parent(&mut child)
            .spawn()
            .with_context(|| format!("starting {}", script.display()))?,
    );
    let stdout = workload.0.stdout.take().context("no stdout")?;
    wait_ready(stdout)?;
    let status = Command::new(binary(root))
        .args(["run", "--pid", &workload.0.id().to_string()])
        .args(["--duration", &seconds.to_string()])
        .arg("--json")
        .arg(out.join(format!("{name}.report.json")))
        .arg("--record")
        .arg(out.join(format!("{name}.jsonl")))
        .status()
        .context("running leak-monitor")?;
    if !status.success() {
        bail!("recording {name} failed: {status}");
    }
    Ok(())
}

fn record_demo(root: &Path, out: &Path) -> anyhow::Result<()> {
    let output = Command::new(binary(root))
        .args([
            "demo",
            "--duration",
            DEMO_SECONDS,
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--record")
        .arg(out.join("demo.jsonl"))
        .stdin(Stdio::null())
        .output()
        .context("running the demo")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("the demo failed: {stderr}");
    }
    let dir = stderr
        .lines()
        .find_map(|l| l.strip_prefix("leak-monitor: demo reports written to "))
        .context("the demo did not say where its reports are")?;
    std::fs::copy(
        Path::new(dir).join("report.json"),
        out.join("demo.report.json"),
    )
    .context("copying the demo's report")?;
    Ok(())
}

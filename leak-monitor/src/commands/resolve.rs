//! Turning `--pid` arguments into attached monitors, with errors the user can act on (exit 2).

use super::UsageError;
use crate::monitor::{Attribution, TargetMonitor};
use crate::sampling::SampleError;
use crate::targets::{self, TargetError};
use std::time::Duration;

/// Identifies and attaches each PID. The first unusable one is a usage error: the user asked
/// for exactly these processes.
pub fn attach_pids(
    pids: &[i32],
    interval: Duration,
    attribution: Attribution,
) -> Result<Vec<TargetMonitor>, UsageError> {
    let mut monitors = Vec::with_capacity(pids.len());
    for &pid in pids {
        if monitors
            .iter()
            .any(|m: &TargetMonitor| m.info().id.pid == pid)
        {
            continue;
        }
        let info = targets::identify(pid, None).map_err(|err| target_error(pid, err))?;
        let monitor = TargetMonitor::attach_with(info, interval, attribution)
            .map_err(|err| sample_error(pid, err))?;
        monitors.push(monitor);
    }
    Ok(monitors)
}

fn target_error(pid: i32, err: TargetError) -> UsageError {
    match err {
        TargetError::NoSuchProcess { .. } => UsageError(format!(
            "no process with PID {pid} (check it with `ps -p {pid}`)"
        )),
        TargetError::PermissionDenied { .. } => UsageError(format!(
            "not permitted to read process {pid}: run as its user, as root, or with CAP_SYS_PTRACE"
        )),
        other => UsageError(format!("cannot follow PID {pid}: {other}")),
    }
}

fn sample_error(pid: i32, err: SampleError) -> UsageError {
    match err {
        SampleError::Gone { .. } => UsageError(format!("process {pid} exited before it could be observed")),
        SampleError::PermissionDenied { what, .. } => UsageError(format!(
            "not permitted to read /proc/{pid}/{what}: run as its user, as root, or with CAP_SYS_PTRACE"
        )),
        SampleError::Io { .. } => UsageError(format!("cannot observe PID {pid}: {err}")),
    }
}

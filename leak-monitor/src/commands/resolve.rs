//! Turning `--pid` arguments into attached monitors, with errors the user can act on (exit 2).

use super::UsageError;
use crate::capabilities::Privileges;
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
        TargetError::PermissionDenied { .. } => {
            UsageError(not_permitted(pid, "", Privileges::current()))
        }
        other => UsageError(format!("cannot follow PID {pid}: {other}")),
    }
}

fn sample_error(pid: i32, err: SampleError) -> UsageError {
    match err {
        SampleError::Gone { .. } => {
            UsageError(format!("process {pid} exited before it could be observed"))
        }
        SampleError::PermissionDenied { what, .. } => {
            UsageError(not_permitted(pid, what, Privileges::current()))
        }
        SampleError::Io { .. } => UsageError(format!("cannot observe PID {pid}: {err}")),
    }
}

/// What to do about a PID whose /proc/PID/`what` the kernel refuses. Root (CAP_SYS_PTRACE) is
/// refused too when the target holds capabilities this process lacks or lives in another user
/// namespace: then "run as root" would be no help.
fn not_permitted(pid: i32, what: &str, privileges: Privileges) -> String {
    let path = format!("/proc/{pid}/{what}");
    let path = path.trim_end_matches('/');
    if privileges.can_trace_others() {
        format!(
            "not permitted to read {path} (PID {pid}) even with CAP_SYS_PTRACE: the kernel \
             protects this process (it holds capabilities leak-monitor lacks, or lives in another \
             user namespace); pick another PID"
        )
    } else {
        format!(
            "not permitted to read {path} (PID {pid}): run as its user, as root, or with \
             CAP_SYS_PTRACE"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_not_told_to_run_as_root() {
        let as_root = not_permitted(1, "fd", Privileges::from_effective(u64::MAX));
        assert!(as_root.contains("/proc/1/fd (PID 1)"), "{as_root}");
        assert!(!as_root.contains("as root"), "{as_root}");
        let as_user = not_permitted(1, "", Privileges::from_effective(0));
        assert!(as_user.contains("/proc/1 (PID 1)"), "{as_user}");
        assert!(as_user.contains("as root"), "{as_user}");
    }
}

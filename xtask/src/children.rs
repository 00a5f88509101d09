//! The xtasks' child processes: a guard that kills and reaps one, the parent-death signal that
//! covers an interrupted task, and a child's CPU and memory as procfs gives them.

use anyhow::Context;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// Kills and reaps the child it holds when dropped.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Has the kernel SIGKILL the child when this task dies, so an interrupted task (Ctrl-C, a
/// kill) leaves no Python processes or daemon behind; `Reaped` covers errors.
pub fn die_with_parent(command: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// User plus system CPU seconds of a process so far.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised comm; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("bad stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|f| f.parse::<f64>().ok())
        .context("utime")?
        + fields
            .get(12)
            .and_then(|f| f.parse::<f64>().ok())
            .context("stime")?;
    // USER_HZ, the unit of /proc/PID/stat times, is 100 on every Linux ABI.
    Ok(ticks / 100.0)
}

/// The number of a `/proc/PID/status` line, e.g. `VmRSS:` (in kB).
pub fn status_field(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("{field} not in /proc/{pid}/status"))
}

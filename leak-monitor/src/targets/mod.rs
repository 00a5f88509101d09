//! Which processes to follow: fixed PIDs, processes whose command line matches, or every Python
//! process. A process is identified by its PID *and* start time, so a reused PID is a new target.

pub mod cgroup;
pub mod elf;
mod identify;
mod labels;
pub mod python;
mod selector;
pub mod stat;
#[cfg(test)]
mod tests;

pub use identify::{discover, discover_new, discover_new_beside, identify, is_alive, is_python};
pub use labels::{read_labels, stable_identity, TargetLabels};
pub use selector::{split_group_name, MatchOn, Selector};

use serde::Serialize;
use std::path::PathBuf;

/// PID plus start time (clock ticks after boot, field 22 of /proc/PID/stat).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
pub struct TargetId {
    pub pid: i32,
    pub start_ticks: u64,
}

/// What is known about a target when it is first seen.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct TargetInfo {
    pub id: TargetId,
    /// The group name used as the `target` label: the `--match` name, or the process name.
    pub group: String,
    pub cmdline: Vec<String>,
    pub exe: Option<PathBuf>,
    pub python_version: Option<String>,
    pub start_time_unix: f64,
    /// Who owns the process: container, pod, systemd unit (empty for a plain host process).
    pub labels: TargetLabels,
}

impl TargetInfo {
    /// Survives restarts of the same command in the same container or unit (`stable_identity`);
    /// `None` for a process with neither, which has no place to be restarted in.
    pub fn identity(&self) -> Option<String> {
        let owned = self.labels.container_id.is_some() || self.labels.unit.is_some();
        owned.then(|| stable_identity(&self.labels, &self.cmdline))
    }
}

/// Why a target cannot be followed. Each message is one line and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("no process with PID {pid} (check the PID with `ps`)")]
    NoSuchProcess { pid: i32 },
    #[error(
        "not permitted to read process {pid} (run as root, as its owner, or with CAP_SYS_PTRACE)"
    )]
    PermissionDenied { pid: i32 },
    #[error("PID {pid} is a kernel thread, not a program (pick a user process with `ps`)")]
    KernelThread { pid: i32 },
    #[error(
        "bad {flag} regex `{pattern}`: {reason} (fix the pattern; the form is REGEX or NAME=REGEX)"
    )]
    BadRegex {
        flag: &'static str,
        pattern: String,
        reason: String,
    },
    #[error("reading /proc/{pid}/{what}: {source} (check that /proc is mounted and readable)")]
    Io {
        pid: i32,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

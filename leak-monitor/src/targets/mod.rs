//! Which processes to follow: fixed PIDs, processes whose command line matches, or every Python
//! process. A process is identified by its PID *and* start time, so a reused PID is a new target.

pub mod cgroup;
pub mod elf;
mod identify;
mod labels;
pub mod python;
pub mod runtime;
mod selector;
pub mod stat;
#[cfg(test)]
mod tests;

pub use identify::{discover, discover_new, discover_new_beside, identify, is_alive, is_python};
pub use labels::{read_labels, stable_identity, TargetLabels};
pub use selector::{split_group_name, MatchOn, Selector};

use runtime::PythonRuntime;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

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
    /// The group name used as the `target` label: the `--match` name, the pool's name when
    /// its parent is a followed Python process, or the process name (`group_source` says which).
    pub group: String,
    /// Absent from recordings made before it: `process`.
    #[serde(default)]
    pub group_source: GroupSource,
    /// The parent's PID when the target was identified (0 when unknown, as in recordings made
    /// before it).
    #[serde(default)]
    pub ppid: i32,
    pub cmdline: Vec<String>,
    pub exe: Option<PathBuf>,
    pub python_version: Option<String>,
    /// Where its interpreter is, found once by `identify` and handed to every reader of the
    /// interpreter; `None` for a process that is not CPython, and in a replay.
    #[serde(skip)]
    pub runtime: Option<Arc<PythonRuntime>>,
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

/// What named a target's group, most explicit first (the order a group's source is chosen by).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum GroupSource {
    /// A selector's `NAME=` (`--match`, `--match-container`, `--match-unit`).
    Match,
    /// A pool found from the process tree: a followed Python process and the followed Python
    /// processes it forked (a pre-fork master and its workers), named from the master.
    Parent,
    /// The process's own name: a target on its own.
    #[default]
    Process,
}

impl GroupSource {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupSource::Match => "match",
            GroupSource::Parent => "parent",
            GroupSource::Process => "process",
        }
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

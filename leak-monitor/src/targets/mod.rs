//! Which processes to follow: fixed PIDs, processes whose command line matches, or every Python
//! process. A process is identified by its PID *and* start time, so a reused PID is a new target.

pub mod stat;

use serde::Serialize;
use std::path::PathBuf;

/// PID plus start time (clock ticks after boot, field 22 of /proc/PID/stat).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TargetId {
    pub pid: i32,
    pub start_ticks: u64,
}

/// What is known about a target when it is first seen.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TargetInfo {
    pub id: TargetId,
    /// The group name used as the `target` label: the `--match` name, or the process name.
    pub group: String,
    pub cmdline: Vec<String>,
    pub exe: Option<PathBuf>,
    pub python_version: Option<String>,
    pub start_time_unix: f64,
}

//! procfs sampling: one `Sample` of a target's resources per tick.
//!
//! Cheap files only on the per-tick path (statm/status, the fd directory, the net tables);
//! see DESIGN.md for the measured costs.

mod fds;
mod limits;
pub mod net_tables;
mod procfile;
mod sampler;
mod sockets;
pub mod status;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

pub use fds::{parse_fd_link, FdLink};
pub use limits::{cgroup_ancestors, parse_cgroup_memory_limit, parse_pss};
pub use sampler::Sampler;
#[cfg(test)]
use sampler::FULL_EVERY;

use crate::resource::{Bytes, Resource};
use serde::Serialize;
use std::collections::BTreeMap;

/// Resident memory split as /proc/PID/status reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    pub total: Bytes,
    pub anon: Bytes,
    pub file: Bytes,
    pub shmem: Bytes,
}

/// What an open file descriptor points at. The names are the contract's `kind` label values.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum FdKind {
    File,
    Socket,
    Pipe,
    AnonInode,
    Other,
}

impl FdKind {
    pub const ALL: [FdKind; 5] = [
        FdKind::File,
        FdKind::Socket,
        FdKind::Pipe,
        FdKind::AnonInode,
        FdKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FdKind::File => "file",
            FdKind::Socket => "socket",
            FdKind::Pipe => "pipe",
            FdKind::AnonInode => "anon_inode",
            FdKind::Other => "other",
        }
    }
}

/// Open fds counted by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FdCounts {
    pub by_kind: BTreeMap<FdKind, u64>,
}

impl FdCounts {
    pub fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }

    pub fn get(&self, kind: FdKind) -> u64 {
        self.by_kind.get(&kind).copied().unwrap_or(0)
    }
}

/// Socket protocol, as the contract's `protocol` label.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Tcp,
    Tcp6,
    Udp,
    Udp6,
    Unix,
    Other,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Tcp6 => "tcp6",
            Protocol::Udp => "udp",
            Protocol::Udp6 => "udp6",
            Protocol::Unix => "unix",
            Protocol::Other => "other",
        }
    }
}

/// The target's sockets counted by protocol and state (`established`, `listen`, ...; `unknown`
/// when the socket is in none of the tables read).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SocketCounts {
    pub by_protocol_state: BTreeMap<(Protocol, &'static str), u64>,
}

impl SocketCounts {
    pub fn total(&self) -> u64 {
        self.by_protocol_state.values().sum()
    }
}

/// One observation of one target.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    pub memory: Memory,
    pub fds: FdCounts,
    pub sockets: SocketCounts,
    pub threads: u64,
}

impl Sample {
    /// The value the trend detector follows for a resource.
    pub fn value(&self, resource: Resource) -> f64 {
        match resource {
            Resource::RssBytes => self.memory.total.as_f64(),
            Resource::OpenFds => self.fds.total() as f64,
            Resource::Sockets => self.sockets.total() as f64,
            Resource::Threads => self.threads as f64,
        }
    }
}

/// The limits a target's resources run into.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Limits {
    /// `Max open files` soft limit.
    pub max_fds: Option<u64>,
    /// cgroup memory limit (v2 memory.max, v1 memory.limit_in_bytes), else MemTotal.
    pub memory: Option<Bytes>,
}

impl Limits {
    pub fn for_resource(&self, resource: Resource) -> Option<f64> {
        match resource {
            Resource::RssBytes => self.memory.map(Bytes::as_f64),
            Resource::OpenFds | Resource::Sockets => self.max_fds.map(|n| n as f64),
            Resource::Threads => None,
        }
    }
}

/// Why a sample could not be taken. Callers branch on it: a gone target is dropped, a
/// permission problem is reported once.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("process {pid} has exited")]
    Gone { pid: i32 },
    #[error("not permitted to read /proc/{pid}/{what} (run as root or with CAP_SYS_PTRACE)")]
    PermissionDenied { pid: i32, what: &'static str },
    #[error("reading /proc/{pid}/{what}: {source}")]
    Io {
        pid: i32,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

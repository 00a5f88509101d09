//! What procfs says a process has now: its fds (with their kinds) and its threads. The ledgers
//! are seeded from it on attach and re-read from it after lost events or an exec.

use crate::sampling::{parse_fd_link, FdKind};
use std::io;

/// A process as procfs lists it.
#[derive(Debug, Default)]
pub struct Listing {
    pub fds: Vec<(i32, FdKind)>,
    pub threads: Vec<u32>,
}

/// The open fds and the thread ids of `pid`.
pub fn list(pid: i32) -> io::Result<Listing> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let entry = entry?;
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // An fd closed between the listing and the readlink is simply gone.
        if let Ok(link) = std::fs::read_link(entry.path()) {
            use std::os::unix::ffi::OsStrExt;
            fds.push((fd, parse_fd_link(link.as_os_str().as_bytes()).kind));
        }
    }
    let mut threads = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        if let Some(tid) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
            threads.push(tid);
        }
    }
    Ok(Listing { fds, threads })
}

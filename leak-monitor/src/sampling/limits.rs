//! The limits a target runs into: the `Max open files` soft limit, and memory from the
//! target's cgroup (v2 `memory.max`, v1 `memory.limit_in_bytes`, the nearest finite limit up
//! the tree) capped by the machine's RAM. Read rarely: these files change rarely.

use super::procfile::{io_error, proc_error};
use super::{Limits, SampleError};
use crate::resource::Bytes;
use procfs::process::{LimitValue, MountInfo, Process};
use procfs::Current;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the daemon's own mount table and the machine's RAM are taken as read: the same for
/// every target, and parsing the mount table was most of a limits refresh (a daemon following
/// 50 targets refreshed one every 0.6 s).
const HOST_VIEW_TTL: Duration = Duration::from_secs(60);

/// What every target's limits are read against.
struct HostView {
    mounts: Vec<MountInfo>,
    ram: Option<Bytes>,
}

fn host_view() -> Arc<HostView> {
    static CACHE: Mutex<Option<(Instant, Arc<HostView>)>> = Mutex::new(None);
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match &*cache {
        Some((read_at, view)) if read_at.elapsed() < HOST_VIEW_TTL => Arc::clone(view),
        _ => {
            let mounts = Process::myself().and_then(|me| me.mountinfo());
            let complete = mounts.is_ok();
            let view = Arc::new(HostView {
                mounts: mounts.map(|m| m.0).unwrap_or_default(),
                ram: procfs::Meminfo::current()
                    .ok()
                    .map(|info| Bytes(info.mem_total)),
            });
            // A failed read is tried again at the next refresh, not kept for a minute.
            if complete {
                *cache = Some((Instant::now(), Arc::clone(&view)));
            }
            view
        }
    }
}

/// Limits at or above this are "unlimited" written as a number (v1 writes
/// `9223372036854771712`, the page-aligned `LONG_MAX`).
const ABSURD_LIMIT: u64 = 1 << 60;

/// Parses a cgroup memory limit file: `max` (v2) or an absurdly large number means no limit.
pub fn parse_cgroup_memory_limit(text: &str) -> Option<Bytes> {
    let value: u64 = text.trim().parse().ok()?;
    (value < ABSURD_LIMIT).then_some(Bytes(value))
}

/// A cgroup path and its ancestors up to the root, nearest first: `/a/b` -> `/a/b`, `/a`, `/`.
pub fn cgroup_ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(path.trim_end_matches('/'));
    std::iter::from_fn(move || {
        let current = next?;
        next = match current.rfind('/') {
            _ if current.is_empty() => None,
            Some(0) => Some(""),
            Some(i) => Some(&current[..i]),
            None => None,
        };
        Some(if current.is_empty() { "/" } else { current })
    })
}

/// Reads the target's limits. Files under /sys/fs/cgroup that cannot be read only leave the
/// memory limit at RAM size; errors on /proc/PID are returned.
pub(crate) fn read_limits(process: &Process) -> Result<Limits, SampleError> {
    let pid = process.pid;
    let limits = process
        .limits()
        .map_err(|err| proc_error(pid, "limits", err))?;
    let max_fds = match limits.max_open_files.soft_limit {
        LimitValue::Value(n) => Some(n),
        LimitValue::Unlimited => None,
    };
    let cgroups = process
        .cgroups()
        .map_err(|err| proc_error(pid, "cgroup", err))?;
    let host = host_view();
    let ram = host.ram;
    let cgroup_limit = cgroup_memory_limit(&cgroups.0, &host.mounts);
    let memory = match (cgroup_limit, ram) {
        // A cgroup limit above the RAM is never reached first.
        (Some(limit), Some(ram)) => Some(limit.min(ram)),
        (limit, ram) => limit.or(ram),
    };
    Ok(Limits { max_fds, memory })
}

/// The nearest finite memory limit of the target's memory cgroup: the v1 memory hierarchy when
/// it has one (a hybrid host binds the controller there), else the v2 hierarchy.
fn cgroup_memory_limit(cgroups: &[procfs::ProcessCGroup], mounts: &[MountInfo]) -> Option<Bytes> {
    let v1 = cgroups
        .iter()
        .find(|cg| cg.controllers.iter().any(|c| c == "memory"));
    let (cgroup, mount, file) = match v1 {
        Some(cg) => (
            cg,
            mounts
                .iter()
                .find(|m| m.fs_type == "cgroup" && m.super_options.contains_key("memory"))?,
            "memory.limit_in_bytes",
        ),
        None => (
            cgroups.iter().find(|cg| cg.hierarchy == 0)?,
            mounts.iter().find(|m| m.fs_type == "cgroup2")?,
            "memory.max",
        ),
    };
    cgroup_ancestors(relative_to_mount(&cgroup.pathname, mount))
        .filter_map(|dir| {
            let path = cgroup_file(&mount.mount_point, dir, file);
            std::fs::read_to_string(path).ok()
        })
        .find_map(|text| parse_cgroup_memory_limit(&text))
}

/// The cgroup path below the mount: a mount whose root is `/docker/x` shows `/docker/x/y` as
/// `y` under its mount point.
fn relative_to_mount<'a>(path: &'a str, mount: &MountInfo) -> &'a str {
    let root = mount.root.trim_end_matches('/');
    match path.strip_prefix(root) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => path,
    }
}

fn cgroup_file(mount_point: &Path, dir: &str, file: &str) -> PathBuf {
    mount_point.join(dir.trim_start_matches('/')).join(file)
}

/// Proportional set size from /proc/PID/smaps_rollup. Slow: the kernel walks every mapping
/// (~24 ms on a 1.7 GB process) holding the target's mmap lock, which stalls the target's own
/// mmap/munmap meanwhile. Never call this per tick.
pub(crate) fn read_pss(process: &Process) -> Result<Bytes, SampleError> {
    let pid = process.pid;
    let mut text = String::new();
    let mut file = process
        .open_relative("smaps_rollup")
        .map_err(|err| proc_error(pid, "smaps_rollup", err))?;
    std::io::Read::read_to_string(&mut file, &mut text)
        .map_err(|err| io_error(pid, "smaps_rollup", err))?;
    parse_pss(&text).ok_or(SampleError::Gone { pid })
}

/// The `Pss:` line of smaps_rollup, in bytes. `None` when missing (a process without an
/// address space) or malformed.
pub fn parse_pss(text: &str) -> Option<Bytes> {
    let line = text.lines().find_map(|line| line.strip_prefix("Pss:"))?;
    let mut words = line.split_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(())?;
    kib.checked_mul(1024).map(Bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_limit_values() {
        assert_eq!(parse_cgroup_memory_limit("max\n"), None);
        assert_eq!(
            parse_cgroup_memory_limit("536870912\n"),
            Some(Bytes(536_870_912))
        );
        assert_eq!(parse_cgroup_memory_limit("9223372036854771712\n"), None);
        for bad in [
            "",
            "-1",
            "12 kB",
            "0x100",
            "99999999999999999999999",
            "\u{0}",
        ] {
            assert_eq!(parse_cgroup_memory_limit(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ancestors_walk_to_the_root() {
        let walk: Vec<_> = cgroup_ancestors("/system.slice/app.service").collect();
        assert_eq!(walk, ["/system.slice/app.service", "/system.slice", "/"]);
        assert_eq!(cgroup_ancestors("/").collect::<Vec<_>>(), ["/"]);
        assert_eq!(cgroup_ancestors("").collect::<Vec<_>>(), ["/"]);
        assert_eq!(cgroup_ancestors("/a/").collect::<Vec<_>>(), ["/a", "/"]);
        // Not absolute (odd content): still ends.
        assert_eq!(cgroup_ancestors("a/b").collect::<Vec<_>>(), ["a/b", "a"]);
        assert_eq!(cgroup_ancestors("//").collect::<Vec<_>>(), ["/"]);
    }

    #[test]
    fn pss_line() {
        let text = "55d0a4a1e000-7ffd1e5fc000 ---p 00000000 00:00 0 [rollup]\n\
                    Rss:               10240 kB\nPss:                8000 kB\nPss_Anon: 4000 kB\n";
        assert_eq!(parse_pss(text), Some(Bytes(8000 * 1024)));
        assert_eq!(parse_pss("Rss: 1 kB\n"), None);
        assert_eq!(parse_pss("Pss: x kB\n"), None);
        assert_eq!(parse_pss("Pss: 18446744073709551615 kB\n"), None);
    }
}

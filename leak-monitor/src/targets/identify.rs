//! Turning PIDs into `TargetInfo`: one PID (`identify`), every process a selector picks
//! (`discover`), and whether a target is still the same process (`is_alive`).

use super::labels::{read_labels, TargetLabels};
use super::runtime;
use super::selector::Selector;
use super::stat::{parse_stat, StatFields};
use super::{GroupSource, TargetError, TargetId, TargetInfo};
use procfs::process::Process;
use procfs::ProcError;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

/// What is known about one process: the target identity, its name and command line.
pub fn identify(pid: i32, group: Option<&str>) -> Result<TargetInfo, TargetError> {
    if pid <= 0 {
        return Err(TargetError::NoSuchProcess { pid });
    }
    let process = Process::new(pid).map_err(|err| target_error(pid, "", err))?;
    let stat_text = read_stat(&process)?;
    let stat = parse_stat(&stat_text).ok_or(TargetError::NoSuchProcess { pid })?;
    if stat.has_exited() {
        return Err(TargetError::NoSuchProcess { pid });
    }
    if stat.is_kernel_thread() {
        return Err(TargetError::KernelThread { pid });
    }
    let cmdline = process
        .cmdline()
        .map_err(|err| target_error(pid, "cmdline", err))?;
    let labels = read_labels(pid);
    Ok(describe(&process, &stat, cmdline, labels, group))
}

/// Every process that any selector picks, scanning /proc once; the first selector that picks a
/// process names its group. Skips this process, kernel threads, and processes that end or
/// cannot be read during the scan.
pub fn discover(selectors: &[Selector]) -> Vec<TargetInfo> {
    discover_new(selectors, |_| false)
}

/// `discover` for a daemon that rescans: processes for which `is_known` says true are skipped
/// before anything beyond their stat is read.
pub fn discover_new(
    selectors: &[Selector],
    is_known: impl Fn(TargetId) -> bool,
) -> Vec<TargetInfo> {
    discover_new_beside(selectors, |_| false, is_known, &mut Vec::new())
}

/// `discover_new`, skipping without a read the PIDs `is_followed` names: the processes a
/// daemon already follows (whose exit it notices on its own), so a discovery reads the stat of
/// the other processes only, not of every target again. `passed` gets the PIDs that were read
/// and that no selector picked, so a caller may skip them (in `is_followed`) for a while.
pub fn discover_new_beside(
    selectors: &[Selector],
    is_followed: impl Fn(i32) -> bool,
    is_known: impl Fn(TargetId) -> bool,
    passed: &mut Vec<i32>,
) -> Vec<TargetInfo> {
    let Ok(processes) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let me = i32::try_from(std::process::id()).unwrap_or(-1);
    let mut found = Vec::new();
    for process in processes.flatten() {
        if process.pid == me || is_followed(process.pid) {
            continue;
        }
        let Ok(stat_text) = read_stat(&process) else {
            continue;
        };
        let Some(stat) = parse_stat(&stat_text) else {
            continue;
        };
        if stat.is_kernel_thread() || stat.has_exited() {
            passed.push(process.pid);
            continue;
        }
        let id = TargetId {
            pid: process.pid,
            start_ticks: stat.start_ticks,
        };
        if is_known(id) {
            continue;
        }
        match pick(&process, &stat, selectors) {
            Some(info) => found.push(info),
            None => passed.push(process.pid),
        }
    }
    found
}

/// The first selector that picks `process`, reading the command line, executable and labels
/// only if a selector needs them.
fn pick(process: &Process, stat: &StatFields<'_>, selectors: &[Selector]) -> Option<TargetInfo> {
    let mut cmdline: Option<Vec<String>> = None;
    let mut labels: Option<TargetLabels> = None;
    for selector in selectors {
        let group = match selector {
            Selector::Pid(pid) if *pid == process.pid => None,
            Selector::Pid(_) => continue,
            Selector::Match { name, regex } => {
                if cmdline.is_none() {
                    cmdline = Some(process.cmdline().ok()?);
                }
                let joined = cmdline.as_deref().unwrap_or_default().join(" ");
                if !regex.is_match(&joined) {
                    continue;
                }
                name.as_deref()
            }
            Selector::Python => {
                if !looks_like_python(process) {
                    continue;
                }
                None
            }
            Selector::Container { name, regex } => {
                let known = labels.get_or_insert_with(|| read_labels(process.pid));
                if !container_matches(known, regex) {
                    continue;
                }
                name.as_deref()
            }
            Selector::Unit { name, regex } => {
                let known = labels.get_or_insert_with(|| read_labels(process.pid));
                if !known.unit.as_deref().is_some_and(|u| regex.is_match(u)) {
                    continue;
                }
                name.as_deref()
            }
        };
        let args = match cmdline.take() {
            Some(args) => args,
            None => process.cmdline().ok()?,
        };
        let labels = labels.take().unwrap_or_else(|| read_labels(process.pid));
        return Some(describe(process, stat, args, labels, group));
    }
    None
}

/// `--match-container` tries the container id, then `NAMESPACE/POD` where both are known.
fn container_matches(labels: &TargetLabels, regex: &regex::Regex) -> bool {
    let Some(id) = &labels.container_id else {
        return false;
    };
    if regex.is_match(id) {
        return true;
    }
    match (&labels.namespace, &labels.pod) {
        (Some(namespace), Some(pod)) => regex.is_match(&format!("{namespace}/{pod}")),
        (None, Some(pod)) => regex.is_match(pod),
        _ => false,
    }
}

/// Cheap test first (the executable's name), the maps only for other executables.
fn looks_like_python(process: &Process) -> bool {
    let exe = read_exe(process);
    let named = exe
        .as_ref()
        .and_then(|exe| exe.file_name())
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with("python"));
    named || runtime::maps_libpython(process.pid)
}

fn describe(
    process: &Process,
    stat: &StatFields<'_>,
    cmdline: Vec<String>,
    labels: TargetLabels,
    group: Option<&str>,
) -> TargetInfo {
    let exe = read_exe(process);
    let runtime = runtime::discover(process.pid).map(Arc::new);
    let python_version = runtime.as_ref().and_then(|r| r.version());
    TargetInfo {
        id: TargetId {
            pid: process.pid,
            start_ticks: stat.start_ticks,
        },
        group: group.unwrap_or(stat.comm).to_owned(),
        group_source: if group.is_some() {
            GroupSource::Match
        } else {
            GroupSource::Process
        },
        ppid: stat.ppid,
        cmdline,
        exe,
        python_version,
        runtime,
        start_time_unix: start_time_unix(stat.start_ticks),
        labels,
    }
}

/// Boot time plus the start ticks; `NaN`-free: 0 when the boot time cannot be read.
fn start_time_unix(start_ticks: u64) -> f64 {
    let boot = procfs::boot_time_secs().unwrap_or(0) as f64;
    let hz = procfs::ticks_per_second().max(1) as f64;
    boot + start_ticks as f64 / hz
}

/// The executable's path without the ` (deleted)` mark of a replaced binary; `None` when it
/// cannot be read (another user's process without privileges).
fn read_exe(process: &Process) -> Option<PathBuf> {
    let exe = process.exe().ok()?;
    match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
        Some(stripped) => Some(PathBuf::from(stripped)),
        None => Some(exe),
    }
}

/// True while the PID still belongs to the process `id` names (same start time, not exited).
pub fn is_alive(id: TargetId) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{}/stat", id.pid)) else {
        return false;
    };
    parse_stat(&text).is_some_and(|stat| stat.start_ticks == id.start_ticks && !stat.has_exited())
}

/// A CPython process: the executable is named python*, or it maps a libpython (which
/// `identify` records as a Python version).
pub fn is_python(info: &TargetInfo) -> bool {
    let named = info
        .exe
        .as_ref()
        .and_then(|exe| exe.file_name())
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with("python"));
    named || info.python_version.is_some()
}

fn read_stat(process: &Process) -> Result<String, TargetError> {
    let pid = process.pid;
    let mut text = String::new();
    process
        .open_relative("stat")
        .map_err(|err| target_error(pid, "stat", err))?
        .read_to_string(&mut text)
        .map_err(|err| io_error(pid, "stat", err))?;
    Ok(text)
}

fn target_error(pid: i32, what: &'static str, err: ProcError) -> TargetError {
    match err {
        ProcError::NotFound(_) => TargetError::NoSuchProcess { pid },
        ProcError::PermissionDenied(_) => TargetError::PermissionDenied { pid },
        ProcError::Io(source, _) => io_error(pid, what, source),
        other => TargetError::Io {
            pid,
            what,
            source: std::io::Error::other(other.to_string()),
        },
    }
}

fn io_error(pid: i32, what: &'static str, err: std::io::Error) -> TargetError {
    match err.raw_os_error() {
        Some(libc::ENOENT | libc::ESRCH) => TargetError::NoSuchProcess { pid },
        Some(libc::EACCES | libc::EPERM) => TargetError::PermissionDenied { pid },
        _ => TargetError::Io {
            pid,
            what,
            source: err,
        },
    }
}

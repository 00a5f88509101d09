//! `Sampler`: one per target, attached once, then asked for a `Sample` every tick.
//!
//! A tick reads /proc/PID/status (memory split, threads), lists /proc/PID/fd (fds by kind, socket
//! inodes) and, only when the target has sockets, the socket tables it needs. Every file and
//! directory is opened at attach time (or on first need) relative to the /proc/PID directory and
//! kept open: the open handles stay bound to the attached process, so a process that reuses the
//! PID is never read, and a tick does no path walks. Buffers are reused across ticks.
//!
//! A quiet target is read for less: when its statm, its fd count (the size of /proc/PID/fd) and
//! its thread count (the links of /proc/PID/task) are what they were at the last full read and
//! it had no socket, the last sample stands for this tick, and only every `FULL_EVERY`th tick
//! reads status and lists the fds again (a change that moves none of those counts, such as a
//! file closed and a pipe opened in one tick, shows within that many ticks). A target that grows
//! moves at least one of them, so it is read in full every tick.

use super::fds::{kind_index, FdScanner, SocketFd};
use super::limits::{read_limits, read_pss};
use super::procfile::{proc_error, ProcFile};
use super::sockets::SocketCensus;
use super::status::parse_status;
use super::{FdCounts, FdKind, Limits, Sample, SampleError};
use crate::resource::Bytes;
use crate::targets::stat::parse_stat;
use crate::targets::TargetId;
use procfs::process::Process;
use rustix::fd::OwnedFd;
use rustix::fs::OFlags;

/// A quiet target is read in full at least every this many ticks.
pub(crate) const FULL_EVERY: u32 = 10;
/// statm is one short line (7 numbers).
const STATM_MAX: usize = 160;

pub struct Sampler {
    process: Process,
    status: ProcFile,
    statm: ProcFile,
    /// /proc/PID/task: its link count is the thread count plus 2.
    tasks: OwnedFd,
    fds: FdScanner,
    sockets: SocketCensus,
    status_buf: Vec<u8>,
    socket_fds: Vec<SocketFd>,
    /// What the last full read saw, while the target looks quiet.
    quiet: Option<Quiet>,
}

/// The cheap counts of a full read and its sample.
struct Quiet {
    counts: QuickCounts,
    sample: Sample,
    /// Ticks served from `sample` since the full read.
    reused: u32,
}

/// What a tick reads of a target before deciding whether to read it in full.
#[derive(Clone, Copy, PartialEq, Eq)]
struct QuickCounts {
    statm: [u8; STATM_MAX],
    statm_len: usize,
    fds: u64,
    links: u64,
}

impl Sampler {
    /// Attaches to `pid`: opens its /proc directory, status file and fd directory. Fails with
    /// `Gone` when there is no such process, `PermissionDenied` when they cannot be opened.
    pub fn attach(pid: i32) -> Result<Self, SampleError> {
        if pid <= 0 {
            return Err(SampleError::Gone { pid });
        }
        let process = Process::new(pid).map_err(|err| proc_error(pid, "", err))?;
        let status = ProcFile::open(&process, "status")?;
        let statm = ProcFile::open(&process, "statm")?;
        let tasks = process
            .open_relative_flags("task", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC)
            .map_err(|err| proc_error(pid, "task", err))?
            .into();
        let fds = FdScanner::open(&process)?;
        Ok(Self {
            process,
            status,
            statm,
            tasks,
            fds,
            sockets: SocketCensus::default(),
            status_buf: Vec::with_capacity(2048),
            socket_fds: Vec::new(),
            quiet: None,
        })
    }

    /// Attaches to the process `id` names, and only to it: `Gone` when the PID now belongs to
    /// another process (a different start time), which a bare PID cannot tell.
    pub fn attach_target(id: TargetId) -> Result<Self, SampleError> {
        let sampler = Self::attach(id.pid)?;
        // Read through the directory handle just opened, so the check and all later reads
        // concern the same process.
        let mut stat = String::new();
        let mut file = sampler
            .process
            .open_relative("stat")
            .map_err(|err| proc_error(id.pid, "stat", err))?;
        std::io::Read::read_to_string(&mut file, &mut stat)
            .map_err(|err| super::procfile::io_error(id.pid, "stat", err))?;
        match parse_stat(&stat) {
            Some(fields) if fields.start_ticks == id.start_ticks && !fields.has_exited() => {
                Ok(sampler)
            }
            _ => Err(SampleError::Gone { pid: id.pid }),
        }
    }

    pub fn pid(&self) -> i32 {
        self.process.pid
    }

    /// One observation: memory, fds by kind, sockets by protocol and state, threads.
    pub fn sample(&mut self) -> Result<Sample, SampleError> {
        let counts = self.quick_counts();
        if let (Some(quiet), Some(counts)) = (self.quiet.as_mut(), counts) {
            if quiet.counts == counts && quiet.reused + 1 < FULL_EVERY {
                quiet.reused += 1;
                return Ok(quiet.sample.clone());
            }
        }
        let sample = self.full_sample()?;
        // A target with sockets is always read in full: their states change without a count.
        self.quiet = counts
            .filter(|_| sample.fds.get(FdKind::Socket) == 0)
            .map(|counts| Quiet {
                counts,
                sample: sample.clone(),
                reused: 0,
            });
        Ok(sample)
    }

    /// statm, the fd count and the task directory's links; `None` when one cannot be read (the
    /// full read then says why, or the kernel does not count fds).
    fn quick_counts(&self) -> Option<QuickCounts> {
        let mut statm = [0u8; STATM_MAX];
        let statm_len = self.statm.read_once(&mut statm).ok()?;
        if statm_len == 0 || statm_len == STATM_MAX {
            return None;
        }
        let fds = self.fds.count()?;
        let links = rustix::fs::fstat(&self.tasks).ok()?.st_nlink;
        Some(QuickCounts {
            statm,
            statm_len,
            fds,
            links,
        })
    }

    /// Reads status and lists the fds (and the socket tables when there are sockets).
    fn full_sample(&mut self) -> Result<Sample, SampleError> {
        let pid = self.process.pid;
        self.status.read_all(pid, &mut self.status_buf)?;
        let status = parse_status(&String::from_utf8_lossy(&self.status_buf));
        if status.has_exited() {
            return Err(SampleError::Gone { pid });
        }
        let (Some(memory), Some(threads)) = (status.memory, status.threads) else {
            // A live user process always has both; without them it is exiting.
            return Err(SampleError::Gone { pid });
        };

        self.socket_fds.clear();
        let kinds = self.fds.scan(pid, &mut self.socket_fds)?;
        let fds = FdCounts {
            by_kind: FdKind::ALL
                .into_iter()
                .map(|kind| (kind, kinds[kind_index(kind)]))
                .collect(),
        };
        let sockets = if self.socket_fds.is_empty() {
            Default::default()
        } else {
            self.sockets.count(&self.process, &self.socket_fds)?
        };
        Ok(Sample {
            memory,
            fds,
            sockets,
            threads,
        })
    }

    /// The fd soft limit and the memory limit (cgroup, else RAM). Reads several files: call it
    /// at attach time and now and then, not every tick.
    pub fn limits(&self) -> Result<Limits, SampleError> {
        read_limits(&self.process)
    }

    /// Proportional set size (shared pages split among their users), from smaps_rollup.
    ///
    /// **Slow**: the kernel walks every mapping (~24 ms on a 1.7 GB process) while holding the
    /// target's mmap lock, stalling the target's own mmap/munmap. Never call it per tick.
    pub fn pss_slow(&self) -> Result<Bytes, SampleError> {
        read_pss(&self.process)
    }
}

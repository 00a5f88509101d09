//! Allocation tracking's attach side: the uprobes on a followed process's C allocator
//! (malloc, calloc, realloc, free in its libc), attached per process and detached when it is
//! unfollowed. The kernel programs are in `leak-monitor-ebpf/src/allocs.rs`.

use aya::programs::uprobe::{UProbeLinkId, UProbeScope};
use aya::programs::UProbe;
use aya::Ebpf;
use leak_monitor_common::{names, AllocKey};
use std::num::NonZeroU32;
use std::path::PathBuf;

/// (program, function): the entry probes and the shared return probe of each function.
const PROBES: [(&str, &str); 7] = [
    (names::MALLOC_ENTER, "malloc"),
    (names::ALLOC_EXIT, "malloc"),
    (names::CALLOC_ENTER, "calloc"),
    (names::ALLOC_EXIT, "calloc"),
    (names::REALLOC_ENTER, "realloc"),
    (names::ALLOC_EXIT, "realloc"),
    (names::FREE_ENTER, "free"),
];

/// Why a process's allocations cannot be tracked.
#[derive(Debug, thiserror::Error)]
pub enum AllocationsError {
    #[error("no libc is mapped in pid {0} (a static or non-glibc program)")]
    NoLibc(i32),
    #[error("cannot read the mappings of pid {pid}: {why}")]
    Maps { pid: i32, why: String },
    #[error("attaching the allocator probe {program} to {function}: {why}")]
    Attach {
        program: &'static str,
        function: &'static str,
        why: String,
    },
}

/// The probes attached to one process.
pub struct AllocationProbes {
    tgid: u32,
    links: Vec<(&'static str, UProbeLinkId)>,
}

/// The libc the process maps, as a path through its root (so a container's libc is the one
/// probed).
fn libc_of(pid: i32) -> Result<PathBuf, AllocationsError> {
    let maps = procfs::process::Process::new(pid)
        .and_then(|p| p.maps())
        .map_err(|e| AllocationsError::Maps {
            pid,
            why: e.to_string(),
        })?;
    maps.iter()
        .find_map(|map| match &map.pathname {
            procfs::process::MMapPath::Path(path) => {
                let name = path.file_name()?.to_str()?;
                (name.starts_with("libc.so") || name.starts_with("libc-"))
                    .then(|| PathBuf::from(format!("/proc/{pid}/root{}", path.display())))
            }
            _ => None,
        })
        .ok_or(AllocationsError::NoLibc(pid))
}

impl AllocationProbes {
    /// Loads the programs (once per tracer) and attaches them to `pid`'s libc. On a failure
    /// the probes attached so far are detached again.
    pub fn attach(ebpf: &mut Ebpf, pid: i32) -> Result<AllocationProbes, AllocationsError> {
        let libc = libc_of(pid)?;
        let scope = NonZeroU32::new(pid.unsigned_abs())
            .map(UProbeScope::OneProcess)
            .ok_or(AllocationsError::NoLibc(pid))?;
        let mut probes = AllocationProbes {
            tgid: pid.unsigned_abs(),
            links: Vec::new(),
        };
        for (program, function) in PROBES {
            let attached = uprobe(ebpf, program).and_then(|probe| {
                probe
                    .attach(function, &libc, scope)
                    .map_err(|e| e.to_string())
            });
            match attached {
                Ok(link) => probes.links.push((program, link)),
                Err(why) => {
                    probes.detach(ebpf);
                    return Err(AllocationsError::Attach {
                        program,
                        function,
                        why,
                    });
                }
            }
        }
        Ok(probes)
    }

    /// Detaches the probes and forgets the process's blocks in the kernel (a process that
    /// exited never frees them).
    pub fn detach(self, ebpf: &mut Ebpf) {
        for (program, link) in self.links {
            if let Ok(probe) = uprobe(ebpf, program) {
                let _ = probe.detach(link);
            }
        }
        let Some(map) = ebpf.map_mut(names::LIVE_ALLOCS) else {
            return;
        };
        let Ok(mut blocks) = aya::maps::HashMap::<_, AllocKey, u64>::try_from(map) else {
            return;
        };
        let doomed: Vec<AllocKey> = blocks
            .keys()
            .filter_map(Result::ok)
            .filter(|key| key.tgid == self.tgid)
            .collect();
        for key in doomed {
            let _ = blocks.remove(&key);
        }
    }
}

/// The named uprobe program, loaded into the kernel on first use.
fn uprobe<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut UProbe, String> {
    let probe: &mut UProbe = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the object"))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| e.to_string())?;
    if probe.fd().is_err() {
        probe.load().map_err(|e| e.to_string())?;
    }
    Ok(probe)
}

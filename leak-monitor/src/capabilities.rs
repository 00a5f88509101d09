//! What this run can do (procfs, eBPF, Python stacks) and, when it cannot, why. Said once on
//! stderr and carried into every report.

use crate::targets::{self, TargetInfo};
use serde::Serialize;

/// Linux capability bit numbers (linux/capability.h).
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The effective capabilities of this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Privileges {
    effective: u64,
}

impl Privileges {
    /// Reads `CapEff` from /proc/self/status. Unreadable means none.
    pub fn current() -> Self {
        let effective = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| parse_cap_eff(&status))
            .unwrap_or(0);
        Privileges { effective }
    }

    /// Privileges with this `CapEff` bit set (tests and fixtures).
    pub fn from_effective(effective: u64) -> Self {
        Privileges { effective }
    }

    fn has(self, bit: u32) -> bool {
        self.effective & (1u64 << bit) != 0
    }

    /// Reading another user's /proc/PID/{fd,maps,mem}: CAP_SYS_PTRACE (ptrace access mode).
    pub fn can_trace_others(self) -> bool {
        self.has(CAP_SYS_PTRACE)
    }

    /// Loading tracing programs: CAP_BPF + CAP_PERFMON, or CAP_SYS_ADMIN on older setups.
    pub fn can_load_bpf(self) -> bool {
        (self.has(CAP_BPF) && self.has(CAP_PERFMON)) || self.has(CAP_SYS_ADMIN)
    }

    /// Names of the capabilities a full-featured run needs and this process lacks.
    pub fn missing(self) -> Vec<&'static str> {
        [
            (CAP_BPF, "CAP_BPF"),
            (CAP_PERFMON, "CAP_PERFMON"),
            (CAP_SYS_PTRACE, "CAP_SYS_PTRACE"),
            (CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH"),
        ]
        .into_iter()
        .filter(|(bit, _)| !self.has(*bit))
        .map(|(_, name)| name)
        .collect()
    }
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// The contract's `capabilities` object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Capabilities {
    pub procfs: bool,
    pub ebpf: bool,
    pub python_stacks: bool,
    pub notes: Vec<String>,
}

impl Capabilities {
    /// What a procfs-only run can do. `ebpf` and `python_stacks` are switched on by the parts
    /// that provide them, each with a note when it cannot.
    pub fn procfs_only(privileges: Privileges) -> Self {
        let mut notes = Vec::new();
        if !privileges.can_trace_others() {
            notes.push(format!(
                "running without {}: only processes of this user can be read; run as root or grant them",
                privileges.missing().join(", ")
            ));
        }
        // eBPF is switched on by `set_tracing`; Python stacks are per target: each report says
        // whether its target's stacks were read, and why not.
        Capabilities {
            procfs: true,
            ebpf: false,
            python_stacks: false,
            notes,
        }
    }

    /// These capabilities with the notes that concern one target (a non-Python process gets no
    /// stacks, whatever this run can do).
    pub fn for_target(&self, info: &TargetInfo) -> Capabilities {
        let mut capabilities = self.clone();
        if !targets::is_python(info) {
            capabilities.python_stacks = false;
            capabilities.note(
                "the target is not a Python process: resource verdicts come from procfs, with no Python stacks",
            );
        }
        capabilities
    }

    /// Records whether the eBPF tracer started, and why not when it did not.
    pub fn set_tracing(&mut self, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => self.ebpf = true,
            Err(why) => {
                self.ebpf = false;
                self.note(format!(
                    "eBPF tracing is off ({why}): verdicts come from procfs sampling, sites from Python stacks sampled while a resource grows"
                ));
            }
        }
    }

    /// Records that a capability is off, and why.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Prints the notes once on stderr, one line each.
    pub fn announce(&self) {
        for note in &self.notes {
            eprintln!("leak-monitor: {note}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_eff_is_parsed_from_status() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        let privileges = Privileges {
            effective: parse_cap_eff(status).unwrap_or(0),
        };
        assert!(privileges.can_load_bpf());
        assert!(privileges.can_trace_others());
        assert!(privileges.missing().is_empty());
    }

    #[test]
    fn no_capabilities_lists_all_missing() {
        let privileges = Privileges {
            effective: parse_cap_eff("CapEff:\t0000000000000000\n").unwrap_or(1),
        };
        assert!(!privileges.can_load_bpf());
        assert_eq!(privileges.missing().len(), 4);
    }
}

//! What this run can do (procfs, eBPF, Python stacks) and why not, said once.

use serde::Serialize;

/// The contract's `capabilities` object.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Capabilities {
    pub procfs: bool,
    pub ebpf: bool,
    pub python_stacks: bool,
    pub notes: Vec<String>,
}

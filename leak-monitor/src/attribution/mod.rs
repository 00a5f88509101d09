//! Attribution: growth hung on Python source lines. The site types live here; the ledgers and
//! stack readers that fill them come with the eBPF and stacks work. `catalog` explains a site
//! (leak type, evidence, fix) from the target's source, which `source` reads.

pub mod catalog;
pub mod source;

use serde::{Deserialize, Serialize};

/// The contract's `leak_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeakType {
    UnboundedCollection,
    UnboundedCache,
    CircularReference,
    EventHandler,
    ResourceNotClosed,
    TensorAccumulation,
    ThreadNotJoined,
    Unknown,
}

/// One Python frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Frame {
    pub file: String,
    pub line: u32,
    pub function: String,
}

/// Growth attributed to one source line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Site {
    pub file: String,
    pub line: u32,
    pub function: String,
    /// Share of the attributed growth, 0..=1.
    pub share: f64,
    /// Growth attributed to this site, in the resource's unit.
    pub amount: f64,
    pub leak_type: LeakType,
    pub evidence: String,
    pub fix: String,
    /// Innermost frame first.
    pub stack: Vec<Frame>,
}

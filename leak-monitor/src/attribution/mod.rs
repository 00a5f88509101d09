//! Attribution: growth hung on Python source lines.
//!
//! `stacks` reads Python stacks of a live process (py-spy as a library), `frames` picks the frame
//! to blame in a stack, `kernel_sites` hangs the frames the kernel walked at each event on the
//! eBPF ledgers' entries (exact), `sampled` attributes growth to sites from stack samples weighted by the
//! growth around them (no eBPF needed), `probe` is the background thread that takes those
//! samples while a target grows (with `observer`'s small reads, counters from
//! `task_counters`, for the interpreters the frame walk knows), `catalog` explains a site
//! (leak type, evidence, fix) from the target's source, which `source` reads, and `describe`
//! is the one place that puts them together for a site. The site types shared with the outputs live here.

pub mod catalog;
pub mod describe;
pub mod frames;
pub mod held;
pub mod kernel_sites;
pub mod observer;
pub mod probe;
pub mod sampled;
pub mod source;
pub mod stacks;
pub mod task_counters;

pub use crate::pyframes::Frame;
pub use describe::{describe_site, Description};

use crate::resource::{Amount, Bytes, PerSecond, Resource, Share};
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

impl LeakType {
    /// Whether growth of `resource` is what this kind of leak causes: what it creates is kept
    /// (a file never closed keeps an fd, a thread never joined a thread, a collection that only
    /// grows memory).
    pub fn keeps(self, resource: Resource) -> bool {
        match resource {
            Resource::OpenFds | Resource::Sockets => self == LeakType::ResourceNotClosed,
            Resource::Threads => self == LeakType::ThreadNotJoined,
            Resource::RssBytes => !matches!(
                self,
                LeakType::ResourceNotClosed | LeakType::ThreadNotJoined | LeakType::Unknown
            ),
        }
    }
}

/// How a site's growth was attributed (the site JSON's `method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteMethod {
    /// Stack samples taken while the resource grew, weighted by the growth around each.
    SampledAtGrowth,
    /// An eBPF ledger of the creating events (exact for fds, sockets, threads).
    EbpfLedger,
    /// Python frames walked in the kernel at each event.
    EbpfFrames,
    /// A container that censuses of the Python heap saw grow, at the line that fills it.
    HeapCensus,
}

impl SiteMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SiteMethod::SampledAtGrowth => "sampled_at_growth",
            SiteMethod::EbpfLedger => "ebpf_ledger",
            SiteMethod::EbpfFrames => "ebpf_frames",
            SiteMethod::HeapCensus => "heap_census",
        }
    }
}

/// Growth attributed to one source line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Site {
    pub file: String,
    pub line: u32,
    pub function: String,
    /// Share of the attributed growth.
    pub share: Share,
    /// Growth attributed to this site.
    pub amount: Amount,
    pub leak_type: LeakType,
    pub evidence: String,
    pub fix: String,
    /// Innermost frame first.
    pub stack: Vec<Frame>,
    /// Which method produced the site; None for sites from before the field existed.
    pub method: Option<SiteMethod>,
    /// What keeps the memory, for a site found by the heap census.
    pub holder: Option<Holder>,
}

/// A container that keeps growing, named by the path that reaches it (the contract's
/// `sites[].holder`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    /// `app.SERVICE._sessions`, `worker.<locals>.seen`.
    pub path: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub len_first: u64,
    pub len_last: u64,
    /// Entries per second.
    pub growth_per_second: PerSecond,
    /// The bytes its entries keep, estimated from a sample of them.
    pub retained_bytes: Bytes,
    /// The most common types of its entries.
    pub item_types: Vec<String>,
}

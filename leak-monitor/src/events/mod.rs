//! eBPF events: fd, socket, thread and page creation in the followed processes, seen in the
//! kernel as they happen, and the live ledgers built from them.
//!
//! `event` decodes the kernel's records, `ledger` keeps what is live (pure logic), `tracer`
//! loads the programs and drains their ring buffer, `reconcile` reads procfs to seed and
//! resync the ledgers, `gate` decides when the costly programs are attached, `pymaps` keeps the kernel's Python frame-walk maps, `pairing` takes the fds
//! that survived from the kernel's table of paired opens and closes. The programs themselves are in the `leak-monitor-ebpf` crate; their
//! object is committed here so that stable cargo alone builds leak-monitor.

mod allocations;
pub mod event;
mod gate;
pub mod ledger;
mod pairing;
mod pymaps;
mod reconcile;
mod target_bits;
mod tracer;

pub use gate::{Engagement, GateStats, HOLD};
pub use ledger::{LedgerCounts, LiveBySite, SiteId};
pub use pymaps::{PyMaps, PyMapsError};
pub use tracer::{EventStats, SiteResolver, Tracer, TracerError, PAIRING_COUNTS};

/// The compiled kernel programs (`cargo xtask build-ebpf` rebuilds it from
/// `leak-monitor-ebpf/`; CI checks it is not stale).
pub static OBJECT: &[u8] = aya::include_bytes_aligned!("leak-monitor.bpf.o");

//! Live ledgers of what a followed process created since the monitor attached: fds, threads and
//! resident pages, each with its origin (creating thread, time, and the Python site once
//! attribution hangs one on it). Pure logic: events in, counts and per-site totals out.
//!
//! Fds and threads that existed before the monitor attached (or that appeared while events were
//! lost) are "pre-existing": counted, never blamed. Procfs is the truth they are reconciled with.

mod handles;
mod heap;
mod pages;

pub use handles::{FdLedger, ThreadLedger};
pub use heap::{HeapLedger, MAX_BLOCKS_PER_TARGET};
pub use pages::{PageLedger, MAX_PAGES_PER_TARGET, PAGE_SIZE};

use super::event::{TraceEvent, Traced};
use crate::sampling::FdKind;
use std::collections::BTreeMap;

/// Index of an interned Python site (file, line, function) in the attribution tables.
pub type SiteId = u32;

/// Who created a ledger entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    pub tid: u32,
    /// CLOCK_MONOTONIC nanoseconds of the creating event.
    pub at_ns: u64,
    /// The Python site blamed for it, when a stack was read.
    pub site: Option<SiteId>,
}

/// The ledgers of one process.
#[derive(Debug, Default)]
pub struct TargetLedger {
    pub fds: FdLedger,
    pub threads: ThreadLedger,
    pub pages: PageLedger,
    /// Live heap blocks, with allocation tracking on.
    pub heap: HeapLedger,
    /// Connections accepted since attach (accept/accept4), the unit of `per_event`.
    pub accepts: u64,
    /// Child processes forked since attach.
    pub forks: u64,
    /// Set by an exec: the fd table must be re-read from procfs (close-on-exec fds are gone).
    pub needs_resync: bool,
}

/// The ledgers' sizes, for reports and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LedgerCounts {
    pub fds: u64,
    pub fds_preexisting: u64,
    pub sockets: u64,
    pub threads: u64,
    pub threads_preexisting: u64,
    /// Resident pages that appeared since attach, tracked one by one.
    pub pages: u64,
    /// New pages seen after the page ledger reached its cap (counted, not tracked).
    pub pages_untracked: u64,
    /// Live heap blocks tracked since attach (allocation tracking), and their bytes.
    pub heap_blocks: u64,
    pub heap_bytes: u64,
    pub accepts: u64,
}

impl TargetLedger {
    /// Applies one event; `site` is the Python site of the creating thread, when known.
    pub fn apply(&mut self, traced: &Traced, site: Option<SiteId>) {
        let origin = Origin {
            tid: traced.tid,
            at_ns: traced.ts_ns,
            site,
        };
        match traced.event {
            TraceEvent::FdOpened {
                fd,
                kind,
                call,
                copied_from,
            } => {
                if call.is_accept() {
                    self.accepts += 1;
                }
                let kind = copied_from
                    .and_then(|src| self.fds.kind_of(src))
                    .unwrap_or(kind);
                self.fds.open(fd, kind, origin);
            }
            TraceEvent::FdClosed { fd } => self.fds.close(fd),
            TraceEvent::FdRangeClosed { first, last } => self.fds.close_range(first, last),
            TraceEvent::ThreadCreated { child } => self.threads.created(child, origin),
            TraceEvent::ThreadExited => self.threads.exited(traced.tid, traced.ts_ns),
            TraceEvent::Exec => {
                // A new program: one thread, a new address space, fds to re-read.
                self.threads.exec(traced.tid);
                self.pages.clear();
                self.heap.clear();
                self.needs_resync = true;
            }
            TraceEvent::Forked { .. } => self.forks += 1,
            TraceEvent::PageFault { address } => self.pages.fault(address, origin),
            TraceEvent::PageRun { start, pages } => self.pages.run(start, pages, origin),
            TraceEvent::Allocated { address, size } => self.heap.allocated(address, size, origin),
            TraceEvent::Freed { address } => self.heap.freed(address),
            TraceEvent::Unmapped { start, len } => self.pages.remove(start, len),
            TraceEvent::BrkMoved { brk } => self.pages.brk(brk),
            TraceEvent::Remapped {
                old_start,
                old_len,
                new_start,
                new_len,
            } => self.pages.remap(old_start, old_len, new_start, new_len),
        }
    }

    /// Makes the fd and thread ledgers agree with procfs: entries procfs does not list are gone,
    /// entries the ledger does not know are pre-existing.
    pub fn reconcile(
        &mut self,
        fds: impl IntoIterator<Item = (i32, FdKind)>,
        threads: impl IntoIterator<Item = u32>,
    ) {
        self.fds.reconcile(fds);
        self.threads.reconcile(threads);
        self.needs_resync = false;
    }

    pub fn counts(&self) -> LedgerCounts {
        LedgerCounts {
            fds: self.fds.len() as u64,
            fds_preexisting: self.fds.preexisting() as u64,
            sockets: self.fds.count_kind(FdKind::Socket) as u64,
            threads: self.threads.len() as u64,
            threads_preexisting: self.threads.preexisting() as u64,
            pages: self.pages.len() as u64,
            pages_untracked: self.pages.untracked(),
            heap_blocks: self.heap.len() as u64,
            heap_bytes: self.heap.bytes(),
            accepts: self.accepts,
        }
    }

    /// Live entries per site for each resource the ledgers cover: fds, sockets, threads (counts)
    /// and resident bytes. Entries with no site are left out.
    pub fn live_by_site(&self) -> LiveBySite {
        self.live_by_site_as_of(None)
    }

    /// `live_by_site`, with the threads as they were at `as_of_ns` (CLOCK_MONOTONIC): for a
    /// process that has exited since, whose threads all exited with it. Fds and pages are not
    /// touched by an exit (it closes and unmaps them without a syscall).
    pub fn live_by_site_as_of(&self, as_of_ns: Option<u64>) -> LiveBySite {
        let mut live = LiveBySite::default();
        for (kind, origin) in self.fds.entries() {
            if let Some(site) = origin.and_then(|o| o.site) {
                *live.fds.entry(site).or_default() += 1;
                if kind == FdKind::Socket {
                    *live.sockets.entry(site).or_default() += 1;
                }
            }
        }
        for site in self.threads.sites_as_of(as_of_ns) {
            *live.threads.entry(site).or_default() += 1;
        }
        for (site, pages) in self.pages.pages_by_site() {
            live.rss_bytes.insert(site, pages * PAGE_SIZE);
        }
        live.heap_bytes = self.heap.bytes_by_site();
        live
    }
}

/// Live amounts per site, in each resource's unit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveBySite {
    pub fds: BTreeMap<SiteId, u64>,
    pub sockets: BTreeMap<SiteId, u64>,
    pub threads: BTreeMap<SiteId, u64>,
    pub rss_bytes: BTreeMap<SiteId, u64>,
    /// Live malloc'd bytes per allocating site (allocation tracking only).
    pub heap_bytes: BTreeMap<SiteId, u64>,
}

#[cfg(test)]
mod tests;

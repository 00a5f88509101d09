//! The fd and thread ledgers: small maps keyed by fd number and thread id.

use super::{Origin, SiteId};
use crate::sampling::FdKind;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FdEntry {
    kind: FdKind,
    /// `None`: pre-existing (there before attach, or appeared unseen).
    origin: Option<Origin>,
}

/// Open fds of one process.
#[derive(Debug, Default)]
pub struct FdLedger {
    fds: BTreeMap<i32, FdEntry>,
}

impl FdLedger {
    /// A new fd (dup2/dup3 onto an open fd replace it, as the kernel does).
    pub fn open(&mut self, fd: i32, kind: FdKind, origin: Origin) {
        if fd >= 0 {
            self.fds.insert(
                fd,
                FdEntry {
                    kind,
                    origin: Some(origin),
                },
            );
        }
    }

    pub fn close(&mut self, fd: i32) {
        self.fds.remove(&fd);
    }

    pub fn close_range(&mut self, first: i32, last: i32) {
        if first <= last {
            let doomed: Vec<i32> = self.fds.range(first..=last).map(|(fd, _)| *fd).collect();
            for fd in doomed {
                self.fds.remove(&fd);
            }
        }
    }

    pub fn kind_of(&self, fd: i32) -> Option<FdKind> {
        self.fds.get(&fd).map(|e| e.kind)
    }

    pub fn len(&self) -> usize {
        self.fds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    pub fn preexisting(&self) -> usize {
        self.fds.values().filter(|e| e.origin.is_none()).count()
    }

    pub fn count_kind(&self, kind: FdKind) -> usize {
        self.fds.values().filter(|e| e.kind == kind).count()
    }

    pub fn entries(&self) -> impl Iterator<Item = (FdKind, Option<Origin>)> + '_ {
        self.fds.values().map(|e| (e.kind, e.origin))
    }

    /// Procfs is the truth: fds it lacks are gone; fds the ledger lacks, or that changed kind
    /// (closed and reopened while events were lost), are pre-existing.
    pub fn reconcile(&mut self, listed: impl IntoIterator<Item = (i32, FdKind)>) {
        let mut next = BTreeMap::new();
        for (fd, kind) in listed {
            let entry = match self.fds.get(&fd) {
                Some(known) if known.kind == kind => *known,
                _ => FdEntry { kind, origin: None },
            };
            next.insert(fd, entry);
        }
        self.fds = next;
    }
}

/// Live threads of one process.
#[derive(Debug, Default)]
pub struct ThreadLedger {
    threads: BTreeMap<u32, Option<Origin>>,
}

impl ThreadLedger {
    pub fn created(&mut self, tid: u32, origin: Origin) {
        self.threads.insert(tid, Some(origin));
    }

    pub fn exited(&mut self, tid: u32) {
        self.threads.remove(&tid);
    }

    /// After exec only the thread that called it is left; it leads the new program.
    pub fn exec(&mut self, tid: u32) {
        self.threads.clear();
        self.threads.insert(tid, None);
    }

    pub fn len(&self) -> usize {
        self.threads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    pub fn preexisting(&self) -> usize {
        self.threads.values().filter(|o| o.is_none()).count()
    }

    pub fn sites(&self) -> impl Iterator<Item = SiteId> + '_ {
        self.threads.values().filter_map(|o| o.and_then(|o| o.site))
    }

    pub fn reconcile(&mut self, listed: impl IntoIterator<Item = u32>) {
        let listed: BTreeSet<u32> = listed.into_iter().collect();
        self.threads.retain(|tid, _| listed.contains(tid));
        for tid in listed {
            self.threads.entry(tid).or_insert(None);
        }
    }
}

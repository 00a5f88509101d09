//! The fd and thread ledgers: small maps keyed by fd number and thread id.

use super::{Origin, SiteId};
use crate::sampling::FdKind;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

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

    /// The highest fd number known open.
    pub fn highest(&self) -> Option<i32> {
        self.fds.keys().next_back().copied()
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

/// Exits of attributed threads kept, newest last: a process that exits takes all its threads
/// with it, and its report must still show the threads it had at its last sample.
const RECENT_EXITS: usize = 4096;

/// Live threads of one process, and the last exits of attributed ones.
#[derive(Debug, Default)]
pub struct ThreadLedger {
    threads: BTreeMap<u32, Option<Origin>>,
    /// (origin, CLOCK_MONOTONIC ns of the exit), oldest first, at most `RECENT_EXITS`.
    exits: VecDeque<(Origin, u64)>,
}

impl ThreadLedger {
    pub fn created(&mut self, tid: u32, origin: Origin) {
        self.threads.insert(tid, Some(origin));
    }

    /// The thread `tid` exited at `at_ns`.
    pub fn exited(&mut self, tid: u32, at_ns: u64) {
        if let Some(Some(origin)) = self.threads.remove(&tid) {
            if origin.site.is_some() {
                if self.exits.len() == RECENT_EXITS {
                    self.exits.pop_front();
                }
                self.exits.push_back((origin, at_ns));
            }
        }
    }

    /// The sites of the threads alive at `as_of_ns` (CLOCK_MONOTONIC; None: now), one per
    /// thread: those created by then and not exited by then.
    pub fn sites_as_of(&self, as_of_ns: Option<u64>) -> impl Iterator<Item = SiteId> + '_ {
        let created_by = move |origin: &Origin| as_of_ns.is_none_or(|t| origin.at_ns <= t);
        let live = self
            .threads
            .values()
            .flatten()
            .filter(move |origin| created_by(origin));
        let exited_later = self
            .exits
            .iter()
            .filter(move |(origin, exit)| as_of_ns.is_some_and(|t| *exit > t) && created_by(origin))
            .map(|(origin, _)| origin);
        live.chain(exited_later).filter_map(|origin| origin.site)
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

    pub fn reconcile(&mut self, listed: impl IntoIterator<Item = u32>) {
        let listed: BTreeSet<u32> = listed.into_iter().collect();
        self.threads.retain(|tid, _| listed.contains(tid));
        for tid in listed {
            self.threads.entry(tid).or_insert(None);
        }
    }
}

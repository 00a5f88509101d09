//! Exact attribution: the eBPF ledgers' live entries, each blamed on the Python line whose frames
//! the kernel walked at the creating event (site `method`: `ebpf_frames`).
//!
//! `KernelSites` is the tracer's `SiteResolver`: on the event thread it resolves each creating
//! event's kernel-read stack to frames, picks the frame to blame, and interns it as a `SiteId`
//! that the ledger entry keeps. The monitor turns the ledger's live amounts per `SiteId` back into
//! sites with `SiteTable::get`.

use super::frames::blamed_index;
use super::Frame;
use crate::events::event::{TraceEvent, Traced};
use crate::events::{SiteId, SiteResolver};
use crate::pyframes::FrameResolver;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Distinct sites kept across all targets; past it new sites are not blamed (their entries
/// still count, without a site).
const MAX_SITES: usize = 65_536;

/// A blamed frame and the stack it came from (innermost first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelSite {
    pub tgid: u32,
    pub blamed: Frame,
    pub stack: Vec<Frame>,
}

/// The interned sites, shared by the event thread (writer) and the monitors (readers).
#[derive(Debug, Default)]
pub struct SiteTable {
    sites: Vec<KernelSite>,
    index: HashMap<(u32, Frame), SiteId>,
}

impl SiteTable {
    fn intern(&mut self, tgid: u32, stack: Vec<Frame>) -> Option<SiteId> {
        let blamed = stack.get(blamed_index(&stack)?)?.clone();
        let key = (tgid, blamed);
        if let Some(&id) = self.index.get(&key) {
            return Some(id);
        }
        if self.sites.len() >= MAX_SITES {
            return None;
        }
        let id = SiteId::try_from(self.sites.len()).ok()?;
        self.sites.push(KernelSite {
            tgid,
            blamed: key.1.clone(),
            stack,
        });
        self.index.insert(key, id);
        Some(id)
    }

    pub fn get(&self, id: SiteId) -> Option<&KernelSite> {
        self.sites.get(usize::try_from(id).ok()?)
    }

    pub fn len(&self) -> usize {
        self.sites.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }
}

/// A handle on the table for the monitors.
#[derive(Clone, Debug, Default)]
pub struct SharedSites(Arc<Mutex<SiteTable>>);

impl SharedSites {
    pub fn lock(&self) -> MutexGuard<'_, SiteTable> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The tracer's resolver: one `FrameResolver` per process whose frames the kernel walks.
#[derive(Default)]
pub struct KernelSites {
    resolvers: Arc<Mutex<HashMap<u32, FrameResolver>>>,
    table: SharedSites,
}

/// Lets the monitors add and remove processes while the tracer owns the resolver.
#[derive(Clone, Default)]
pub struct KernelSitesHandle {
    resolvers: Arc<Mutex<HashMap<u32, FrameResolver>>>,
    pub table: SharedSites,
}

impl KernelSites {
    pub fn new() -> (KernelSites, KernelSitesHandle) {
        let sites = KernelSites::default();
        let handle = KernelSitesHandle {
            resolvers: Arc::clone(&sites.resolvers),
            table: sites.table.clone(),
        };
        (sites, handle)
    }
}

impl KernelSitesHandle {
    pub fn add(&self, resolver: FrameResolver) {
        lock(&self.resolvers).insert(resolver.tgid(), resolver);
    }

    pub fn remove(&self, tgid: u32) {
        lock(&self.resolvers).remove(&tgid);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SiteResolver for KernelSites {
    fn site_for(&mut self, traced: &Traced) -> Option<SiteId> {
        let resolvers = lock(&self.resolvers);
        let resolver = resolvers.get(&traced.tgid)?;
        if matches!(traced.event, TraceEvent::ThreadCreated { .. }) {
            resolver.thread_created();
        }
        let frames = resolver.resolve(traced.stack.as_ref()?);
        if frames.is_empty() {
            return None;
        }
        self.table.lock().intern(traced.tgid, frames)
    }

    fn forget(&mut self, tgid: u32) {
        lock(&self.resolvers).remove(&tgid);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn frame(file: &str, line: u32) -> Frame {
        Frame {
            file: file.into(),
            line,
            function: "f".into(),
        }
    }

    #[test]
    fn sites_are_interned_per_process_and_blamed_line() {
        let mut table = SiteTable::default();
        let stdlib = frame("/usr/lib/python3.11/socket.py", 232);
        let a = table
            .intern(1, vec![stdlib.clone(), frame("/srv/app.py", 10)])
            .unwrap();
        let again = table
            .intern(
                1,
                vec![stdlib, frame("/srv/app.py", 10), frame("/srv/app.py", 99)],
            )
            .unwrap();
        let other_process = table.intern(2, vec![frame("/srv/app.py", 10)]).unwrap();
        assert_eq!(a, again, "same blamed line, same site");
        assert_ne!(a, other_process);
        assert_eq!(table.get(a).unwrap().blamed, frame("/srv/app.py", 10));
        assert_eq!(table.len(), 2);
        assert_eq!(table.intern(3, Vec::new()), None);
    }
}

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
use leak_monitor_common::{PyStack, MAX_FRAMES};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Distinct sites kept across all targets; past it new sites are not blamed (their entries
/// still count, without a site).
const MAX_SITES: usize = 65_536;

/// How long a resolved stack is reused without reading the code objects again. Resolving reads
/// each frame's code object header from the target (one syscall per frame) to notice a freed
/// and reused address; a hot loop makes the same stack thousands of times a second, so it is
/// resolved once per window. A code object freed and its address reused by another within the
/// window could blame a stale line for that window's events: rare (code objects mostly live as
/// long as their module), and bounded to this long.
const STACK_REUSE: Duration = Duration::from_secs(1);
/// Resolved stacks remembered per window at most.
const MAX_RECENT_STACKS: usize = 16_384;

/// A kernel-read stack as a map key: only the `depth` frames the kernel wrote (the rest of the
/// ring buffer record is stale bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct StackKey {
    tgid: u32,
    depth: u32,
    code: [u64; MAX_FRAMES],
    instr_offset: [u32; MAX_FRAMES],
}

impl StackKey {
    fn new(tgid: u32, stack: &PyStack) -> StackKey {
        let depth = (stack.depth as usize).min(MAX_FRAMES);
        let mut key = StackKey {
            tgid,
            depth: depth as u32,
            code: [0; MAX_FRAMES],
            instr_offset: [0; MAX_FRAMES],
        };
        key.code[..depth].copy_from_slice(&stack.code[..depth]);
        key.instr_offset[..depth].copy_from_slice(&stack.instr_offset[..depth]);
        key
    }
}

/// Stacks resolved in the current reuse window.
struct RecentStacks {
    since: Instant,
    sites: HashMap<StackKey, Option<SiteId>>,
}

impl Default for RecentStacks {
    fn default() -> Self {
        RecentStacks {
            since: Instant::now(),
            sites: HashMap::new(),
        }
    }
}

impl RecentStacks {
    fn get(&mut self, key: &StackKey) -> Option<Option<SiteId>> {
        if self.since.elapsed() >= STACK_REUSE || self.sites.len() >= MAX_RECENT_STACKS {
            self.sites.clear();
            self.since = Instant::now();
        }
        self.sites.get(key).copied()
    }
}

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
    recent: RecentStacks,
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
        let stack = traced.stack.as_ref()?;
        let key = StackKey::new(traced.tgid, stack);
        if let Some(site) = self.recent.get(&key) {
            return site;
        }
        let frames = resolver.resolve(stack);
        let site = if frames.is_empty() {
            None
        } else {
            self.table.lock().intern(traced.tgid, frames)
        };
        self.recent.sites.insert(key, site);
        site
    }

    fn forget(&mut self, tgid: u32) {
        lock(&self.resolvers).remove(&tgid);
        self.recent.sites.retain(|key, _| key.tgid != tgid);
    }

    fn programs_attached(&mut self) {
        crate::pyframes::refresh_all_soon();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn frame(file: &str, line: u32) -> Frame {
        Frame::new(file, line, "f")
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

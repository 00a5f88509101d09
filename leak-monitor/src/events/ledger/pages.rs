//! The page ledger: resident pages that appeared since attach, page number -> origin.
//!
//! A not-present user page fault makes a page resident; munmap, madvise(DONTNEED/FREE/REMOVE),
//! a shrinking brk and mremap give pages back or move them. Pages resident before attach never
//! fault, so they are never here. Bounded: past `MAX_PAGES_PER_TARGET` new pages are counted, not
//! tracked.

use super::{Origin, SiteId};
use std::collections::BTreeMap;

pub const PAGE_SIZE: u64 = 4096;
const PAGE_SHIFT: u32 = 12;

/// At most this many pages (1 GiB of 4 KiB pages, ~12 MiB of ledger) are tracked per process.
pub const MAX_PAGES_PER_TARGET: usize = 1 << 18;

/// Compact per-page origin: 8 bytes instead of a full `Origin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PageOrigin {
    /// `u32::MAX`: no site.
    site: u32,
    tid: u32,
}

const NO_SITE: u32 = u32::MAX;

#[derive(Debug)]
pub struct PageLedger {
    pages: BTreeMap<u64, PageOrigin>,
    cap: usize,
    untracked: u64,
    /// The last program break seen (brk only reports the new one).
    brk: Option<u64>,
}

impl Default for PageLedger {
    fn default() -> Self {
        PageLedger::with_cap(MAX_PAGES_PER_TARGET)
    }
}

impl PageLedger {
    pub fn with_cap(cap: usize) -> Self {
        PageLedger {
            pages: BTreeMap::new(),
            cap,
            untracked: 0,
            brk: None,
        }
    }

    pub fn fault(&mut self, address: u64, origin: Origin) {
        let page = address >> PAGE_SHIFT;
        if self.pages.contains_key(&page) {
            return;
        }
        if self.pages.len() >= self.cap {
            self.untracked += 1;
            return;
        }
        let site = origin.site.filter(|&s| s != NO_SITE).unwrap_or(NO_SITE);
        self.pages.insert(
            page,
            PageOrigin {
                site,
                tid: origin.tid,
            },
        );
    }

    /// `pages` new pages from `start`, faulted in order by `origin.tid` right after the page
    /// below `start`: they share that page's site (the kernel walked the stack only there).
    pub fn run(&mut self, start: u64, pages: u64, origin: Origin) {
        let first = start >> PAGE_SHIFT;
        let site = match self.pages.get(&(first.wrapping_sub(1))) {
            Some(before) if before.tid == origin.tid => Some(before.site),
            _ => None,
        };
        let origin = Origin { site, ..origin };
        for page in first..first.saturating_add(pages) {
            self.fault(page << PAGE_SHIFT, origin);
        }
    }

    /// Forgets the pages of `[start, start + len)`.
    pub fn remove(&mut self, start: u64, len: u64) {
        let (first, end) = page_span(start, len);
        if first >= end {
            return;
        }
        let doomed: Vec<u64> = self.pages.range(first..end).map(|(p, _)| *p).collect();
        for page in doomed {
            self.pages.remove(&page);
        }
    }

    /// A shrinking break gives back the pages above it.
    pub fn brk(&mut self, new: u64) {
        if let Some(old) = self.brk.filter(|&old| new < old) {
            self.remove(new, old - new);
        }
        self.brk = Some(new);
    }

    /// mremap moves resident pages with the mapping; a shrink gives back the tail.
    pub fn remap(&mut self, old_start: u64, old_len: u64, new_start: u64, new_len: u64) {
        let (first, end) = page_span(old_start, old_len);
        if first >= end {
            return;
        }
        let kept = new_len.min(old_len) >> PAGE_SHIFT;
        let moved: Vec<(u64, PageOrigin)> = self
            .pages
            .range(first..end)
            .map(|(p, o)| (*p, *o))
            .collect();
        for (page, _) in &moved {
            self.pages.remove(page);
        }
        let new_first = new_start >> PAGE_SHIFT;
        for (page, origin) in moved {
            let offset = page - first;
            if offset < kept {
                self.pages.insert(new_first + offset, origin);
            }
        }
    }

    pub fn clear(&mut self) {
        self.pages.clear();
        self.brk = None;
    }

    pub fn len(&self) -> usize {
        self.pages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    pub fn untracked(&self) -> u64 {
        self.untracked
    }

    /// Live pages per site (pages with no site left out).
    pub fn pages_by_site(&self) -> BTreeMap<SiteId, u64> {
        let mut by_site = BTreeMap::new();
        for origin in self.pages.values().filter(|o| o.site != NO_SITE) {
            *by_site.entry(origin.site).or_default() += 1;
        }
        by_site
    }

    /// Live pages per creating thread.
    pub fn pages_by_thread(&self) -> BTreeMap<u32, u64> {
        let mut by_tid = BTreeMap::new();
        for origin in self.pages.values() {
            *by_tid.entry(origin.tid).or_default() += 1;
        }
        by_tid
    }
}

/// Page numbers `[first, end)` covering `[start, start + len)`; whole pages only, as the kernel
/// rounds.
fn page_span(start: u64, len: u64) -> (u64, u64) {
    let first = start >> PAGE_SHIFT;
    let end = start.saturating_add(len).saturating_add(PAGE_SIZE - 1) >> PAGE_SHIFT;
    (first, end)
}

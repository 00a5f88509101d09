//! The page ledger: resident pages that appeared since attach, page number -> origin.
//!
//! A not-present user page fault makes a page resident; munmap, madvise(DONTNEED/FREE/REMOVE),
//! a shrinking brk and mremap give pages back or move them. Pages resident before attach never
//! fault, so they are never here. Bounded: past `MAX_PAGES_PER_TARGET` new pages are counted, not
//! tracked.
//!
//! Kept as runs of consecutive pages with one origin: a leak fills its heap or arena page after
//! page from one thread and line, so a growing target costs the daemon a few runs rather than an
//! entry per page (a 1 GiB leak of 4 KiB pages was 2^18 entries, ~12 MiB).

use super::{Origin, SiteId};
use std::collections::BTreeMap;

pub const PAGE_SIZE: u64 = 4096;
const PAGE_SHIFT: u32 = 12;

/// At most this many pages (1 GiB of 4 KiB pages; ~12 MiB of ledger when no two are adjacent)
/// are tracked per process.
pub const MAX_PAGES_PER_TARGET: usize = 1 << 18;

/// Compact per-page origin: 8 bytes instead of a full `Origin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PageOrigin {
    /// `u32::MAX`: no site.
    site: u32,
    tid: u32,
}

const NO_SITE: u32 = u32::MAX;

/// A run of `pages` consecutive pages sharing one origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    pages: u64,
    origin: PageOrigin,
}

#[derive(Debug)]
pub struct PageLedger {
    /// First page of each run -> the run; runs never overlap.
    runs: BTreeMap<u64, Run>,
    /// Pages in all runs.
    tracked: usize,
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
            runs: BTreeMap::new(),
            tracked: 0,
            cap,
            untracked: 0,
            brk: None,
        }
    }

    /// The run holding `page`, as (first page, run).
    fn covering(&self, page: u64) -> Option<(u64, Run)> {
        let (&first, &run) = self.runs.range(..=page).next_back()?;
        (page - first < run.pages).then_some((first, run))
    }

    pub fn fault(&mut self, address: u64, origin: Origin) {
        let page = address >> PAGE_SHIFT;
        if self.covering(page).is_some() {
            return;
        }
        if self.tracked >= self.cap {
            self.untracked += 1;
            return;
        }
        let site = origin.site.filter(|&s| s != NO_SITE).unwrap_or(NO_SITE);
        self.insert(
            page,
            Run {
                pages: 1,
                origin: PageOrigin {
                    site,
                    tid: origin.tid,
                },
            },
        );
    }

    /// Adds a run over pages none of which is tracked, merged with its neighbours when they
    /// touch it and share its origin.
    fn insert(&mut self, mut first: u64, mut run: Run) {
        self.tracked += run.pages as usize;
        if let Some((before, prior)) = first
            .checked_sub(1)
            .and_then(|page| self.covering(page))
            .filter(|(_, prior)| prior.origin == run.origin)
        {
            self.runs.remove(&before);
            first = before;
            run.pages += prior.pages;
        }
        let after = first + run.pages;
        if let Some(next) = self.runs.get(&after).copied() {
            if next.origin == run.origin {
                self.runs.remove(&after);
                run.pages += next.pages;
            }
        }
        self.runs.insert(first, run);
    }

    /// `pages` new pages from `start`, faulted in order by `origin.tid` right after the page
    /// below `start`: they share that page's site (the kernel walked the stack only there).
    pub fn run(&mut self, start: u64, pages: u64, origin: Origin) {
        let first = start >> PAGE_SHIFT;
        let site = match first.checked_sub(1).and_then(|page| self.covering(page)) {
            Some((_, before)) if before.origin.tid == origin.tid => Some(before.origin.site),
            _ => None,
        };
        let origin = Origin { site, ..origin };
        for page in first..first.saturating_add(pages) {
            self.fault(page << PAGE_SHIFT, origin);
        }
    }

    /// Takes the pages `[first, end)` out, returning the pieces of runs that were there (first
    /// page, run), in order.
    fn take(&mut self, first: u64, end: u64) -> Vec<(u64, Run)> {
        let mut overlapping: Vec<(u64, Run)> = Vec::new();
        if let Some((start, run)) = self.covering(first).filter(|(start, _)| *start < first) {
            overlapping.push((start, run));
        }
        overlapping.extend(self.runs.range(first..end).map(|(p, r)| (*p, *r)));
        let mut taken = Vec::with_capacity(overlapping.len());
        for (start, run) in overlapping {
            self.runs.remove(&start);
            let stop = start + run.pages;
            if start < first {
                self.runs.insert(
                    start,
                    Run {
                        pages: first - start,
                        ..run
                    },
                );
            }
            if stop > end {
                self.runs.insert(
                    end,
                    Run {
                        pages: stop - end,
                        ..run
                    },
                );
            }
            let (from, to) = (start.max(first), stop.min(end));
            self.tracked -= (to - from) as usize;
            taken.push((
                from,
                Run {
                    pages: to - from,
                    ..run
                },
            ));
        }
        taken
    }

    /// Forgets the pages of `[start, start + len)`.
    pub fn remove(&mut self, start: u64, len: u64) {
        let (first, end) = page_span(start, len);
        if first < end {
            self.take(first, end);
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
        let kept = first + (new_len.min(old_len) >> PAGE_SHIFT);
        let new_first = new_start >> PAGE_SHIFT;
        for (start, run) in self.take(first, end) {
            let pages = run.pages.min(kept.saturating_sub(start));
            if pages == 0 {
                continue;
            }
            let moved = new_first + (start - first);
            // What was at the destination is replaced, as the kernel replaces it.
            self.take(moved, moved + pages);
            self.insert(moved, Run { pages, ..run });
        }
    }

    pub fn clear(&mut self) {
        self.runs.clear();
        self.tracked = 0;
        self.brk = None;
    }

    pub fn len(&self) -> usize {
        self.tracked
    }

    pub fn is_empty(&self) -> bool {
        self.tracked == 0
    }

    pub fn untracked(&self) -> u64 {
        self.untracked
    }

    /// Runs kept: the ledger's own size.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Live pages per site (pages with no site left out).
    pub fn pages_by_site(&self) -> BTreeMap<SiteId, u64> {
        let mut by_site = BTreeMap::new();
        for run in self.runs.values().filter(|r| r.origin.site != NO_SITE) {
            *by_site.entry(run.origin.site).or_default() += run.pages;
        }
        by_site
    }

    /// Live pages per creating thread.
    pub fn pages_by_thread(&self) -> BTreeMap<u32, u64> {
        let mut by_tid = BTreeMap::new();
        for run in self.runs.values() {
            *by_tid.entry(run.origin.tid).or_default() += run.pages;
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

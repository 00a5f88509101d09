//! The heap ledger (allocation tracking only): live malloc'd blocks since attach, address ->
//! size and origin. Blocks allocated before attach are never here; a free of one is ignored
//! (the kernel only reports frees of blocks it tracks). Bounded like the page ledger.

use super::{Origin, SiteId};
use std::collections::{BTreeMap, HashMap};

/// At most this many live blocks are tracked per process (the kernel's map is the same size).
pub const MAX_BLOCKS_PER_TARGET: usize = 1 << 18;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Block {
    size: u64,
    site: Option<SiteId>,
}

#[derive(Debug)]
pub struct HeapLedger {
    blocks: HashMap<u64, Block>,
    cap: usize,
    untracked: u64,
}

impl Default for HeapLedger {
    fn default() -> Self {
        HeapLedger::with_cap(MAX_BLOCKS_PER_TARGET)
    }
}

impl HeapLedger {
    pub fn with_cap(cap: usize) -> Self {
        HeapLedger {
            blocks: HashMap::new(),
            cap,
            untracked: 0,
        }
    }

    pub fn allocated(&mut self, address: u64, size: u64, origin: Origin) {
        if self.blocks.len() >= self.cap && !self.blocks.contains_key(&address) {
            self.untracked += 1;
            return;
        }
        self.blocks.insert(
            address,
            Block {
                size,
                site: origin.site,
            },
        );
    }

    pub fn freed(&mut self, address: u64) {
        self.blocks.remove(&address);
    }

    pub fn clear(&mut self) {
        self.blocks.clear();
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.blocks.values().map(|b| b.size).sum()
    }

    /// Blocks allocated once the ledger was full (counted, not tracked).
    pub fn untracked(&self) -> u64 {
        self.untracked
    }

    /// Live bytes per allocating site (blocks with no site left out).
    pub fn bytes_by_site(&self) -> BTreeMap<SiteId, u64> {
        let mut by_site = BTreeMap::new();
        for block in self.blocks.values() {
            if let Some(site) = block.site {
                *by_site.entry(site).or_default() += block.size;
            }
        }
        by_site
    }
}

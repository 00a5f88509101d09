//! Reads another process's memory for one census: in 64 KiB chunks cached for the census
//! (objects lie densely in the allocator's arenas, so a census costs few system calls), and
//! only inside the target's readable mappings (a racing or corrupt pointer is refused before
//! any read). The cache is bounded: a census never holds a copy of the heap.

use crate::pyframes::memory::Memory;
use crate::pyframes::FramesError;
use std::collections::{HashMap, VecDeque};

/// One read from the target.
const CHUNK: u64 = 64 * 1024;
/// Chunks kept at once: 8 MiB.
const MAX_CHUNKS: usize = 128;

/// The readable address ranges of a process, sorted.
#[derive(Clone, Debug, Default)]
pub struct Mappings {
    ranges: Vec<(u64, u64)>,
}

impl Mappings {
    /// From `/proc/PID/maps` text: every readable mapping but the kernel's own pages.
    pub fn parse(maps: &str) -> Mappings {
        let ranges = maps
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let range = fields.next()?;
                let perms = fields.next()?;
                let name = fields.nth(3).unwrap_or("");
                if !perms.starts_with('r')
                    || matches!(name, "[vvar]" | "[vsyscall]" | "[vvar_vclock]")
                {
                    return None;
                }
                let (start, end) = range.split_once('-')?;
                Some((
                    u64::from_str_radix(start, 16).ok()?,
                    u64::from_str_radix(end, 16).ok()?,
                ))
            })
            .collect();
        Mappings::from_ranges(ranges)
    }

    pub fn from_ranges(mut ranges: Vec<(u64, u64)>) -> Mappings {
        ranges.retain(|(start, end)| start < end);
        ranges.sort_unstable();
        Mappings { ranges }
    }

    /// The mapping holding `[address, address + len)` whole.
    pub fn containing(&self, address: u64, len: u64) -> Option<(u64, u64)> {
        let end = address.checked_add(len)?;
        let index = self.ranges.partition_point(|(start, _)| *start <= address);
        let (start, stop) = *self.ranges.get(index.checked_sub(1)?)?;
        (end <= stop).then_some((start, stop))
    }
}

/// What a census cost in reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Reads from the target (system calls for a live process).
    pub reads: u64,
    pub bytes: u64,
    /// Reads refused because the address lay outside every mapping, or failed.
    pub refused: u64,
}

/// A chunk-cached, mapping-checked view of a process's memory for one census.
pub struct Reader<'m> {
    memory: &'m dyn Memory,
    mappings: Mappings,
    chunks: HashMap<u64, Box<[u8]>>,
    order: VecDeque<u64>,
    pub stats: ReadStats,
}

impl<'m> Reader<'m> {
    pub fn new(memory: &'m dyn Memory, mappings: Mappings) -> Reader<'m> {
        Reader {
            memory,
            mappings,
            chunks: HashMap::new(),
            order: VecDeque::new(),
            stats: ReadStats::default(),
        }
    }

    /// Fills `buf` from `address`; None when any of it lies outside the mappings or cannot
    /// be read.
    pub fn read(&mut self, address: u64, buf: &mut [u8]) -> Option<()> {
        let len = buf.len() as u64;
        let Some((map_start, map_end)) = self.mappings.containing(address, len) else {
            self.stats.refused += 1;
            return None;
        };
        let mut done = 0usize;
        while done < buf.len() {
            let at = address + done as u64;
            let base = at & !(CHUNK - 1);
            // Chunks are clipped to their mapping and keyed by their start: two mappings that
            // share one aligned window get a chunk each.
            let chunk_start = base.max(map_start);
            let chunk = self.chunk(chunk_start, chunk_start, (base + CHUNK).min(map_end))?;
            let from = usize::try_from(at.checked_sub(chunk_start)?).ok()?;
            let take = chunk.len().checked_sub(from)?.min(buf.len() - done);
            if take == 0 {
                return None;
            }
            buf[done..done + take].copy_from_slice(&chunk[from..from + take]);
            done += take;
        }
        Some(())
    }

    fn chunk(&mut self, base: u64, start: u64, end: u64) -> Option<&[u8]> {
        if !self.chunks.contains_key(&base) {
            let mut bytes = vec![0u8; (end - start) as usize].into_boxed_slice();
            self.stats.reads += 1;
            if self.memory.read(start, &mut bytes).is_err() {
                self.stats.refused += 1;
                return None;
            }
            self.stats.bytes += bytes.len() as u64;
            if self.order.len() == MAX_CHUNKS {
                if let Some(old) = self.order.pop_front() {
                    self.chunks.remove(&old);
                }
            }
            self.order.push_back(base);
            self.chunks.insert(base, bytes);
        }
        self.chunks.get(&base).map(|b| &b[..])
    }

    /// Drops the cached chunks: the next reads see the target as it is now.
    pub fn forget(&mut self) {
        self.chunks.clear();
        self.order.clear();
    }

    pub fn u64(&mut self, address: u64) -> Option<u64> {
        let mut bytes = [0u8; 8];
        self.read(address, &mut bytes)?;
        Some(u64::from_le_bytes(bytes))
    }

    pub fn i64(&mut self, address: u64) -> Option<i64> {
        self.u64(address).map(|v| v as i64)
    }

    pub fn u8(&mut self, address: u64) -> Option<u8> {
        let mut byte = [0u8; 1];
        self.read(address, &mut byte)?;
        Some(byte[0])
    }

    /// A pointer field: non-null, 8-aligned and inside a mapping.
    pub fn pointer(&mut self, address: u64) -> Option<u64> {
        self.u64(address).filter(|p| self.plausible(*p))
    }

    /// Could an object start here?
    pub fn plausible(&self, address: u64) -> bool {
        address != 0 && address.is_multiple_of(8) && self.mappings.containing(address, 16).is_some()
    }

    /// A NUL-terminated C string of at most `max` bytes, printable ASCII only.
    pub fn c_string(&mut self, address: u64, max: usize) -> Option<String> {
        let mut out = Vec::new();
        for i in 0..max as u64 {
            let byte = self.u8(address + i)?;
            if byte == 0 {
                return String::from_utf8(out).ok();
            }
            if !byte.is_ascii_graphic() && byte != b' ' {
                return None;
            }
            out.push(byte);
        }
        None
    }
}

/// A memory image made of byte regions at chosen addresses: tests, fuzzing and recorded
/// censuses read it as they would a live process.
#[derive(Clone, Debug, Default)]
pub struct MemoryImage {
    regions: Vec<(u64, Vec<u8>)>,
}

impl MemoryImage {
    pub fn put(&mut self, address: u64, bytes: Vec<u8>) {
        self.regions.push((address, bytes));
    }

    /// Overwrites bytes inside a region; false when they do not lie in one.
    pub fn write(&mut self, address: u64, bytes: &[u8]) -> bool {
        for (start, region) in &mut self.regions {
            let Some(from) = address
                .checked_sub(*start)
                .and_then(|f| usize::try_from(f).ok())
            else {
                continue;
            };
            if let Some(dst) = from
                .checked_add(bytes.len())
                .and_then(|end| region.get_mut(from..end))
            {
                dst.copy_from_slice(bytes);
                return true;
            }
        }
        false
    }

    /// The image's regions as mappings.
    pub fn mappings(&self) -> Mappings {
        Mappings::from_ranges(
            self.regions
                .iter()
                .map(|(start, bytes)| (*start, start.saturating_add(bytes.len() as u64)))
                .collect(),
        )
    }
}

impl Memory for MemoryImage {
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), FramesError> {
        let bad = FramesError::Read {
            address,
            len: buf.len(),
        };
        for (start, bytes) in &self.regions {
            let Some(from) = address
                .checked_sub(*start)
                .and_then(|f| usize::try_from(f).ok())
            else {
                continue;
            };
            if let Some(src) = from
                .checked_add(buf.len())
                .and_then(|end| bytes.get(from..end))
            {
                buf.copy_from_slice(src);
                return Ok(());
            }
        }
        Err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two mappings in one aligned 64 KiB window (a small mapping beside a guard page, say):
    /// each is read from its own chunk, whichever was read first.
    #[test]
    fn mappings_that_share_a_chunk_window_read_their_own_bytes() {
        let mut image = MemoryImage::default();
        let (a, b) = (0x20_0000, 0x20_1000);
        image.put(a, vec![0xaa; 0x1000]);
        image.put(b, vec![0xbb; 0x2000]);
        for order in [[a, b + 0x1800], [b + 0x1800, a]] {
            let mut reader = Reader::new(&image, image.mappings());
            for at in order {
                let mut buf = [0u8; 8];
                assert_eq!(reader.read(at, &mut buf), Some(()), "{at:#x}");
                let want = if at < b { 0xaa } else { 0xbb };
                assert_eq!(buf, [want; 8], "{at:#x}");
            }
        }
    }

    #[test]
    fn reads_span_chunks_and_stay_inside_mappings() {
        let mut image = MemoryImage::default();
        let base = 0x10_0000 - 8;
        image.put(base, (0..200u8).collect());
        let mappings = image.mappings();
        let mut reader = Reader::new(&image, mappings);
        // Across the 64 KiB boundary at 0x10_0000.
        let mut buf = [0u8; 16];
        reader.read(base, &mut buf).unwrap();
        assert_eq!(buf, core::array::from_fn::<u8, 16, _>(|i| i as u8));
        assert_eq!(
            reader.u64(base + 8),
            Some(u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]))
        );
        // Past the end, and nowhere.
        assert!(reader.read(base + 195, &mut buf).is_none());
        assert!(reader.u64(0x4000).is_none());
        assert!(!reader.plausible(base + 4));
        assert!(reader.plausible(base + 8));
        // Two chunks were read, and are served from the cache after.
        let reads = reader.stats.reads;
        reader.read(base, &mut buf).unwrap();
        assert_eq!(reader.stats.reads, reads);
    }

    #[test]
    fn parses_readable_mappings() {
        let maps = "\
55d0a4a1e000-55d0a4a1f000 r--p 00000000 08:01 1 /usr/bin/python3.11
7f00000000-7f00001000 ---p 00000000 00:00 0
7ffc000000-7ffc001000 r--p 00000000 00:00 0 [vvar]
7f10000000-7f10021000 rw-p 00000000 00:00 0 [heap]
";
        let mappings = Mappings::parse(maps);
        assert!(mappings.containing(0x007f_1000_0010, 8).is_some());
        assert!(mappings.containing(0x007f_0000_0010, 8).is_none());
        assert!(mappings.containing(0x007f_fc00_0010, 8).is_none());
        assert!(mappings.containing(0x007f_1002_0ffc, 8).is_none());
    }
}

//! Reading CPython code objects out of a process: file, function, first line and line table,
//! each code object read once and cached by address. A cached entry is checked against the
//! live object (first line and the name pointers) before use, since a freed code object's
//! address can be reused.

use super::layout::Layout;
use super::linetable;
use super::memory::Memory;
use super::FramesError;
use std::collections::HashMap;

/// Longest string or line table read (a guard against wild pointers).
const MAX_STRING: u64 = 4096;
const MAX_LINETABLE: u64 = 1 << 20;
/// Cached code objects kept at most; the cache is cleared when it fills.
const MAX_CACHED: usize = 65536;

/// What is kept of one code object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeInfo {
    pub filename: String,
    pub qualname: String,
    pub first_line: u32,
    linetable: Vec<u8>,
    /// The header words the validity check compares.
    fingerprint: [u64; 4],
}

impl CodeInfo {
    /// The line of the instruction at `offset` (code units); the first line when the table has
    /// none for it.
    pub fn line(&self, layout: &Layout, offset: u32) -> u32 {
        linetable::line_for(layout.linetable, &self.linetable, self.first_line, offset)
            .unwrap_or(self.first_line)
    }
}

/// Code objects by address.
#[derive(Default)]
pub struct CodeCache {
    entries: HashMap<u64, CodeInfo>,
}

impl CodeCache {
    /// The code object at `address`, read now or taken from the cache when it still matches.
    pub fn get(
        &mut self,
        memory: &dyn Memory,
        layout: &Layout,
        address: u64,
    ) -> Result<&CodeInfo, FramesError> {
        let fingerprint = fingerprint(memory, layout, address)?;
        let fresh = self
            .entries
            .get(&address)
            .is_some_and(|c| c.fingerprint == fingerprint);
        if !fresh {
            let info = read_code(memory, layout, fingerprint)?;
            if self.entries.len() >= MAX_CACHED {
                self.entries.clear();
            }
            self.entries.insert(address, info);
        }
        self.entries
            .get(&address)
            .ok_or(FramesError::Read { address, len: 0 })
    }
}

/// First line, filename, qualname and line table pointers, read in one call.
fn fingerprint(
    memory: &dyn Memory,
    layout: &Layout,
    address: u64,
) -> Result<[u64; 4], FramesError> {
    let c = layout.code;
    let start = c.firstlineno.min(c.filename);
    let end = c.linetable.max(c.qualname) + 8;
    let len = usize::try_from(end.saturating_sub(start)).unwrap_or(usize::MAX);
    if len > 4096 {
        return Err(FramesError::Read { address, len });
    }
    let mut header = vec![0u8; len];
    memory.read(address + start, &mut header)?;
    let word = |offset: u64, size: usize| -> u64 {
        let at = usize::try_from(offset - start).unwrap_or(usize::MAX);
        let mut bytes = [0u8; 8];
        if let Some(src) = header.get(at..at + size) {
            bytes[..size].copy_from_slice(src);
        }
        u64::from_le_bytes(bytes)
    };
    Ok([
        word(c.firstlineno, 4),
        word(c.filename, 8),
        word(c.qualname, 8),
        word(c.linetable, 8),
    ])
}

fn read_code(
    memory: &dyn Memory,
    layout: &Layout,
    fingerprint: [u64; 4],
) -> Result<CodeInfo, FramesError> {
    let [first_line, filename, qualname, linetable] = fingerprint;
    Ok(CodeInfo {
        filename: read_string(memory, layout, filename)?,
        qualname: read_string(memory, layout, qualname)?,
        first_line: u32::try_from(first_line & 0xFFFF_FFFF).unwrap_or(0),
        linetable: read_bytes(memory, layout, linetable)?,
        fingerprint,
    })
}

/// A `str` object's text (compact strings only, which is what code objects hold).
pub fn read_string(
    memory: &dyn Memory,
    layout: &Layout,
    address: u64,
) -> Result<String, FramesError> {
    let o = layout.objects;
    let length = memory.read_u64(address + o.unicode_length)?.min(MAX_STRING);
    let state = memory.read_u32(address + o.unicode_state)?;
    let kind = (state >> 2) & 0b111;
    let compact = (state >> 5) & 1 == 1;
    let ascii = (state >> 6) & 1 == 1;
    if !compact || !matches!(kind, 1 | 2 | 4) {
        return Err(FramesError::NotAString { address });
    }
    let data = if ascii { o.ascii_size } else { o.compact_size };
    let width = u64::from(kind);
    let mut raw = vec![0u8; usize::try_from(length * width).unwrap_or(0)];
    memory.read(address + data, &mut raw)?;
    Ok(match kind {
        1 => raw.iter().map(|&b| char::from(b)).collect(),
        2 => raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .map(|u| char::from_u32(u32::from(u)).unwrap_or('\u{FFFD}'))
            .collect(),
        _ => raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .map(|u| char::from_u32(u).unwrap_or('\u{FFFD}'))
            .collect(),
    })
}

fn read_bytes(memory: &dyn Memory, layout: &Layout, address: u64) -> Result<Vec<u8>, FramesError> {
    let o = layout.objects;
    let size = memory.read_u64(address + o.bytes_size)?;
    if size > MAX_LINETABLE {
        return Err(FramesError::Read {
            address,
            len: usize::try_from(size).unwrap_or(usize::MAX),
        });
    }
    let mut data = vec![0u8; usize::try_from(size).unwrap_or(0)];
    memory.read(address + o.bytes_data, &mut data)?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pyframes::layout::from_table;
    use crate::pyframes::memory::FixtureMemory;

    /// A compact ASCII str object in 3.11's layout.
    fn ascii_311(text: &str) -> Vec<u8> {
        let mut obj = vec![0u8; 48];
        obj[16..24].copy_from_slice(&(text.len() as u64).to_le_bytes());
        // kind 1, compact, ascii, ready
        obj[32] = (1 << 2) | (1 << 5) | (1 << 6) | (1 << 7);
        obj.extend_from_slice(text.as_bytes());
        obj.push(0);
        obj
    }

    #[test]
    fn reads_and_caches_a_code_object_and_notices_reuse() {
        let layout = from_table(3, 11).unwrap();
        let mut memory = FixtureMemory::default();
        let code_at = 0x1000u64;
        let mut code = vec![0u8; 200];
        code[72..76].copy_from_slice(&10u32.to_le_bytes());
        code[112..120].copy_from_slice(&0x2000u64.to_le_bytes());
        code[120..128].copy_from_slice(&0x3000u64.to_le_bytes());
        code[128..136].copy_from_slice(&0x3000u64.to_le_bytes());
        code[136..144].copy_from_slice(&0x4000u64.to_le_bytes());
        memory.put(code_at, code.clone());
        memory.put(0x2000, ascii_311("app.py"));
        memory.put(0x3000, ascii_311("leak"));
        // A bytes object holding a one-entry table: 2 units on line first+1 (form 13, +1).
        let mut table = vec![0u8; 32];
        table[16..24].copy_from_slice(&2u64.to_le_bytes());
        table.extend_from_slice(&[0x80 | (13 << 3) | 1, 2]);
        memory.put(0x4000, table);
        let mut cache = CodeCache::default();
        let info = cache.get(&memory, &layout, code_at).unwrap().clone();
        assert_eq!(info.filename, "app.py");
        assert_eq!(info.qualname, "leak");
        assert_eq!(info.first_line, 10);
        assert_eq!(info.line(&layout, 1), 11);
        assert_eq!(info.line(&layout, 9), 10, "past the table: the first line");
        // The same address now holds another code object: read again.
        let mut other = FixtureMemory::default();
        code[72..76].copy_from_slice(&20u32.to_le_bytes());
        other.put(code_at, code);
        other.put(0x2000, ascii_311("app.py"));
        other.put(0x3000, ascii_311("leak"));
        let mut table = vec![0u8; 32];
        table[16..24].copy_from_slice(&0u64.to_le_bytes());
        other.put(0x4000, table);
        assert_eq!(cache.get(&other, &layout, code_at).unwrap().first_line, 20);
        // Unreadable: an error.
        assert!(cache.get(&other, &layout, 0x9000).is_err());
    }
}

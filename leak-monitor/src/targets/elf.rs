//! Just enough of ELF64 (little-endian) to read the value of one exported data symbol from a
//! file, such as CPython's `Py_Version`: header, section headers, `.dynsym` and its string
//! table. Works on any `ReadAt` source, so it is tested on bytes and fuzzable; malformed input
//! yields `None`, never a panic, and sizes are capped so a hostile file cannot make it allocate
//! much.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// A source of bytes at offsets: a file, or a slice in tests.
pub trait ReadAt {
    /// Fills `buf` from `offset`; `None` when the source is shorter.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Option<()>;
}

impl ReadAt for File {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Option<()> {
        FileExt::read_exact_at(self, buf, offset).ok()
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Option<()> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(buf.len())?;
        buf.copy_from_slice(self.get(start..end)?);
        Some(())
    }
}

const SHT_DYNSYM: u32 = 11;
const SHT_SYMTAB: u32 = 2;
const SHT_NOBITS: u32 = 8;
const SECTION_HEADER: usize = 64;
const SYMBOL: usize = 24;
/// Caps on what is read: real section tables hold at most a few hundred entries, and
/// libpython's `.dynsym` and `.dynstr` are well under a megabyte each.
const MAX_SECTIONS: usize = 4096;
const MAX_TABLE: u64 = 16 << 20;

#[derive(Clone, Copy)]
struct Section {
    kind: u32,
    addr: u64,
    offset: u64,
    size: u64,
    link: u32,
}

/// An exported symbol: its link-time address and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub address: u64,
    pub size: u64,
}

/// The link-time address of the exported symbol `name` (e.g. `_PyRuntime`). Add the load bias
/// of a position-independent file ([`is_position_independent`]) to get its address in memory.
pub fn symbol(source: &(impl ReadAt + ?Sized), name: &[u8]) -> Option<Symbol> {
    symbol_in(source, SHT_DYNSYM, name)
}

/// The link-time address of `name` in the full symbol table (`.symtab`, kept unless the file
/// was stripped), which also lists static variables such as CPython 3.10-3.11's `arenas`.
pub fn static_symbol(source: &(impl ReadAt + ?Sized), name: &[u8]) -> Option<Symbol> {
    symbol_in(source, SHT_SYMTAB, name)
}

fn symbol_in(source: &(impl ReadAt + ?Sized), kind: u32, name: &[u8]) -> Option<Symbol> {
    let sections = read_sections(source)?;
    let dynsym = sections.iter().find(|s| s.kind == kind)?;
    let strings = sections.get(usize::try_from(dynsym.link).ok()?)?;
    let symbols = read_table(source, dynsym)?;
    let names = read_table(source, strings)?;
    symbols.chunks_exact(SYMBOL).find_map(|symbol| {
        let name_at = usize::try_from(u32_at(symbol, 0)?).ok()?;
        let shndx = u16_at(symbol, 6)?;
        (shndx != 0 && names.get(name_at..).is_some_and(|rest| is_cstr(rest, name))).then_some(
            Symbol {
                address: u64_at(symbol, 8)?,
                size: u64_at(symbol, 16)?,
            },
        )
    })
}

/// `ET_DYN` (a shared library or PIE: loaded at a bias) rather than `ET_EXEC` (fixed address).
pub fn is_position_independent(source: &(impl ReadAt + ?Sized)) -> Option<bool> {
    let mut header = [0u8; 18];
    source.read_exact_at(0, &mut header)?;
    if header[..6] != [0x7f, b'E', b'L', b'F', 2, 1] {
        return None;
    }
    match u16_at(&header, 16)? {
        2 => Some(false),
        3 => Some(true),
        _ => None,
    }
}

/// The value stored in the exported data symbol `name` (4 or 8 bytes, little-endian).
pub fn read_symbol_value(source: &(impl ReadAt + ?Sized), name: &[u8]) -> Option<u64> {
    let sections = read_sections(source)?;
    let dynsym = sections.iter().find(|s| s.kind == SHT_DYNSYM)?;
    let strings = sections.get(usize::try_from(dynsym.link).ok()?)?;
    let symbols = read_table(source, dynsym)?;
    let names = read_table(source, strings)?;
    for symbol in symbols.chunks_exact(SYMBOL) {
        let name_at = usize::try_from(u32_at(symbol, 0)?).ok()?;
        if !names.get(name_at..).is_some_and(|rest| is_cstr(rest, name)) {
            continue;
        }
        let section = sections.get(usize::from(u16_at(symbol, 6)?))?;
        let value = u64_at(symbol, 8)?;
        let size = u64_at(symbol, 16)?;
        if section.kind == SHT_NOBITS {
            return None;
        }
        let offset = value
            .checked_sub(section.addr)?
            .checked_add(section.offset)?;
        return match size {
            8 => {
                let mut bytes = [0u8; 8];
                source.read_exact_at(offset, &mut bytes)?;
                Some(u64::from_le_bytes(bytes))
            }
            4 => {
                let mut bytes = [0u8; 4];
                source.read_exact_at(offset, &mut bytes)?;
                Some(u64::from(u32::from_le_bytes(bytes)))
            }
            _ => None,
        };
    }
    None
}

fn read_sections(source: &(impl ReadAt + ?Sized)) -> Option<Vec<Section>> {
    let mut header = [0u8; 64];
    source.read_exact_at(0, &mut header)?;
    // Magic, 64-bit class, little-endian data.
    if header[..6] != [0x7f, b'E', b'L', b'F', 2, 1] {
        return None;
    }
    let table_offset = u64_at(&header, 0x28)?;
    let entry_size = usize::from(u16_at(&header, 0x3A)?);
    let count = usize::from(u16_at(&header, 0x3C)?);
    if entry_size != SECTION_HEADER || count == 0 || count > MAX_SECTIONS {
        return None;
    }
    let mut table = vec![0u8; count * SECTION_HEADER];
    source.read_exact_at(table_offset, &mut table)?;
    table
        .chunks_exact(SECTION_HEADER)
        .map(|raw| {
            Some(Section {
                kind: u32_at(raw, 4)?,
                addr: u64_at(raw, 16)?,
                offset: u64_at(raw, 24)?,
                size: u64_at(raw, 32)?,
                link: u32_at(raw, 40)?,
            })
        })
        .collect()
}

fn read_table(source: &(impl ReadAt + ?Sized), section: &Section) -> Option<Vec<u8>> {
    if section.size > MAX_TABLE || section.kind == SHT_NOBITS {
        return None;
    }
    let mut data = vec![0u8; usize::try_from(section.size).ok()?];
    source.read_exact_at(section.offset, &mut data)?;
    Some(data)
}

/// Does `bytes` start with `name` followed by NUL?
fn is_cstr(bytes: &[u8], name: &[u8]) -> bool {
    bytes
        .strip_prefix(name)
        .is_some_and(|rest| rest.first() == Some(&0))
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a minimal ELF64 with a `.dynsym` holding `symbols` (name, value) stored in a
    /// data section at virtual address 0x1000.
    pub(crate) fn build_elf(symbols: &[(&str, u64)]) -> Vec<u8> {
        let data_addr = 0x1000u64;
        let mut strtab = vec![0u8];
        let mut data = Vec::new();
        let mut syms = vec![0u8; SYMBOL]; // the null symbol
        for (name, value) in symbols {
            let name_at = strtab.len() as u32;
            strtab.extend_from_slice(name.as_bytes());
            strtab.push(0);
            let addr = data_addr + data.len() as u64;
            data.extend_from_slice(&value.to_le_bytes());
            let mut sym = vec![0u8; SYMBOL];
            sym[0..4].copy_from_slice(&name_at.to_le_bytes());
            sym[4] = 0x11; // global object
            sym[6..8].copy_from_slice(&3u16.to_le_bytes()); // section 3: data
            sym[8..16].copy_from_slice(&addr.to_le_bytes());
            sym[16..24].copy_from_slice(&8u64.to_le_bytes());
            syms.extend_from_slice(&sym);
        }
        let mut file = vec![0u8; 64];
        let place = |file: &mut Vec<u8>, bytes: &[u8]| {
            let at = file.len() as u64;
            file.extend_from_slice(bytes);
            at
        };
        let sym_at = place(&mut file, &syms);
        let str_at = place(&mut file, &strtab);
        let data_at = place(&mut file, &data);
        let section = |kind: u32, addr: u64, offset: u64, size: usize, link: u32| {
            let mut raw = vec![0u8; SECTION_HEADER];
            raw[4..8].copy_from_slice(&kind.to_le_bytes());
            raw[16..24].copy_from_slice(&addr.to_le_bytes());
            raw[24..32].copy_from_slice(&offset.to_le_bytes());
            raw[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            raw[40..44].copy_from_slice(&link.to_le_bytes());
            raw
        };
        let table_at = file.len() as u64;
        file.extend(section(0, 0, 0, 0, 0));
        file.extend(section(SHT_DYNSYM, 0, sym_at, syms.len(), 2));
        file.extend(section(3, 0, str_at, strtab.len(), 0));
        file.extend(section(1, data_addr, data_at, data.len(), 0));
        file[..6].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1]);
        file[0x28..0x30].copy_from_slice(&table_at.to_le_bytes());
        file[0x3A..0x3C].copy_from_slice(&64u16.to_le_bytes());
        file[0x3C..0x3E].copy_from_slice(&4u16.to_le_bytes());
        file
    }

    #[test]
    fn finds_the_symbol_value() {
        let elf = build_elf(&[("Py_VersionX", 1), ("Py_Version", 0x030B_07F0), ("z", 2)]);
        assert_eq!(
            read_symbol_value(elf.as_slice(), b"Py_Version"),
            Some(0x030B_07F0)
        );
        assert_eq!(read_symbol_value(elf.as_slice(), b"missing"), None);
        assert_eq!(
            symbol(elf.as_slice(), b"Py_Version"),
            Some(Symbol {
                address: 0x1008,
                size: 8
            })
        );
        assert_eq!(symbol(elf.as_slice(), b"missing"), None);
        // The builder leaves e_type 0: neither kind.
        assert_eq!(is_position_independent(elf.as_slice()), None);
    }

    #[test]
    fn tells_a_fixed_address_executable_from_a_position_independent_file() {
        // e_type at 16: ET_EXEC (Debian's python3.X, python3.14-nopie: symbols are absolute
        // addresses), ET_DYN (libpython, a PIE: symbols are relative to the load bias).
        let mut elf = build_elf(&[("_PyRuntime", 0)]);
        elf[16..18].copy_from_slice(&2u16.to_le_bytes());
        assert_eq!(is_position_independent(elf.as_slice()), Some(false));
        elf[16..18].copy_from_slice(&3u16.to_le_bytes());
        assert_eq!(is_position_independent(elf.as_slice()), Some(true));
        elf[16..18].copy_from_slice(&4u16.to_le_bytes());
        assert_eq!(is_position_independent(elf.as_slice()), None);
    }

    #[test]
    fn truncated_or_corrupt_files_give_none() {
        let elf = build_elf(&[("Py_Version", 0x030B_07F0)]);
        for len in [0, 10, 64, 100, elf.len() - 1] {
            assert_eq!(read_symbol_value(&elf[..len], b"Py_Version"), None, "{len}");
        }
        // Flip every byte in turn: no panic, whatever comes out.
        for i in 0..elf.len() {
            let mut bad = elf.clone();
            bad[i] ^= 0xFF;
            let _ = read_symbol_value(bad.as_slice(), b"Py_Version");
        }
        assert_eq!(read_symbol_value(&b"#!/bin/sh\n"[..], b"Py_Version"), None);
    }

    #[test]
    fn reads_a_real_binary() {
        // Our own test binary is an ELF64 file; it has no Py_Version, and that is fine.
        let exe = File::open("/proc/self/exe").unwrap();
        assert_eq!(read_symbol_value(&exe, b"Py_Version"), None);
    }
}

//! Pure decoding of CPython's line tables: which source line an instruction offset belongs to.
//!
//! - 3.11+ `co_linetable` is the location table (Objects/locations.md in CPython): a sequence
//!   of entries, each covering 1-8 code units, whose first byte has bit 7 set, a 4-bit form
//!   code and the length; the line is carried as a delta from the previous entry.
//! - 3.10 `co_linetable` is (bytecode delta in bytes, signed line delta) byte pairs
//!   (Objects/lnotab_notes.txt in 3.10); -128 means "no line"; a pair with an empty range
//!   only moves the line.
//!
//! Offsets are in code units (2 bytes) for every version, as the kernel sends them (3.10's
//! `f_lasti` counts instructions, 3.11+'s instruction pointer is turned into units). Malformed
//! tables give `None`, never a panic.

/// Which table format a code object carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineTableFormat {
    /// 3.10: `co_linetable` as (sdelta, ldelta) pairs, their ranges in bytes.
    Pairs310,
    /// 3.11+: the location table, offsets in code units.
    Locations,
}

/// The line of the instruction at `offset`; `None` when the table gives it no line or ends
/// before it.
pub fn line_for(
    format: LineTableFormat,
    table: &[u8],
    first_line: u32,
    offset: u32,
) -> Option<u32> {
    match format {
        LineTableFormat::Pairs310 => line_for_pairs(table, first_line, u64::from(offset) * 2),
        LineTableFormat::Locations => line_for_locations(table, first_line, offset),
    }
}

/// Each entry of a 3.11+ location table: (code units covered, line or None).
pub fn location_entries(table: &[u8], first_line: u32) -> LocationEntries<'_> {
    LocationEntries {
        bytes: table,
        at: 0,
        line: i64::from(first_line),
    }
}

fn line_for_locations(table: &[u8], first_line: u32, offset: u32) -> Option<u32> {
    let mut start: u64 = 0;
    for (units, line) in location_entries(table, first_line) {
        let end = start + u64::from(units);
        if u64::from(offset) < end {
            return line;
        }
        start = end;
    }
    None
}

/// Iterator over a location table's entries.
pub struct LocationEntries<'a> {
    bytes: &'a [u8],
    at: usize,
    line: i64,
}

impl LocationEntries<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    /// 6-bit chunks, least significant first; bit 6 says another chunk follows.
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        let mut shift = 0u32;
        loop {
            let b = self.byte()?;
            if shift > 60 {
                return None;
            }
            value |= u64::from(b & 0x3F) << shift;
            shift += 6;
            if b & 0x40 == 0 {
                return Some(value);
            }
        }
    }

    /// A varint whose bit 0 is the sign.
    fn svarint(&mut self) -> Option<i64> {
        let raw = self.varint()?;
        let magnitude = i64::try_from(raw >> 1).ok()?;
        Some(if raw & 1 == 1 { -magnitude } else { magnitude })
    }
}

impl Iterator for LocationEntries<'_> {
    type Item = (u32, Option<u32>);

    fn next(&mut self) -> Option<Self::Item> {
        let first = self.byte()?;
        if first & 0x80 == 0 {
            // Not at an entry start: the table is corrupt; stop.
            self.at = self.bytes.len();
            return None;
        }
        let code = (first >> 3) & 0x0F;
        let units = u32::from(first & 0x07) + 1;
        let line = match code {
            // No location.
            15 => None,
            // Long form: line delta, end line delta, column + 1, end column + 1.
            14 => {
                self.line += self.svarint()?;
                self.varint()?;
                self.varint()?;
                self.varint()?;
                Some(self.line)
            }
            // No column: line delta only.
            13 => {
                self.line += self.svarint()?;
                Some(self.line)
            }
            // One-line forms: the delta is in the code; two column bytes follow.
            10..=12 => {
                self.line += i64::from(code - 10);
                self.byte()?;
                self.byte()?;
                Some(self.line)
            }
            // Short forms: same line, one column byte.
            _ => {
                self.byte()?;
                Some(self.line)
            }
        };
        Some((units, line.and_then(|l| u32::try_from(l).ok())))
    }
}

/// `offset` in bytes, as 3.10's `PyCode_Addr2Line` takes it (`f_lasti * 2`).
fn line_for_pairs(table: &[u8], first_line: u32, offset: u64) -> Option<u32> {
    let mut line = i64::from(first_line);
    let mut start: u64 = 0;
    for pair in table.chunks_exact(2) {
        let end = start + u64::from(pair[0]);
        let delta = pair[1] as i8;
        let here = if delta == -128 {
            None
        } else {
            line += i64::from(delta);
            u32::try_from(line).ok()
        };
        if offset < end {
            return here;
        }
        start = end;
    }
    None
}

#[cfg(test)]
mod tests;

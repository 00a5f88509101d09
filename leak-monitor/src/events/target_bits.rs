//! The kernel's filter of followed processes: the `TARGETS` bitmap, one bit per tgid, which
//! user space alone writes (the programs only read it).

use aya::maps::{Array, MapData};
use leak_monitor_common::TARGET_WORDS;

/// The word of the bitmap that holds `tgid`, and its bit; `None` past the kernel's pid range.
fn slot(tgid: u32) -> Option<(u32, u64)> {
    let word = tgid / 64;
    (word < TARGET_WORDS).then(|| (word, 1u64 << (tgid % 64)))
}

pub struct TargetBits(Array<MapData, u64>);

impl TargetBits {
    pub fn new(map: Array<MapData, u64>) -> Self {
        TargetBits(map)
    }

    /// Marks `tgid` followed. Errors say why, in a few words.
    pub fn set(&mut self, tgid: u32) -> Result<(), String> {
        let (word, bit) = slot(tgid).ok_or("beyond the kernel's pid range")?;
        let value = self.0.get(&word, 0).map_err(|e| e.to_string())?;
        self.0.set(word, value | bit, 0).map_err(|e| e.to_string())
    }

    /// Marks `tgid` not followed (it may never have been).
    pub fn clear(&mut self, tgid: u32) {
        let Some((word, bit)) = slot(tgid) else {
            return;
        };
        if let Ok(value) = self.0.get(&word, 0) {
            let _ = self.0.set(word, value & !bit, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tgid_has_its_own_bit_up_to_the_pid_limit() {
        assert_eq!(slot(0), Some((0, 1)));
        assert_eq!(slot(65), Some((1, 2)));
        assert_eq!(slot(4_194_303), Some((65_535, 1 << 63)));
        assert_eq!(slot(4_194_304), None);
    }
}

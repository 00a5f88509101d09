//! User space's half of the in-kernel fd pairing (see the kernel's `pairing`): slots for the
//! followed processes, and the scan of the mmap'd `FD_TABLE` for opens that survived long
//! enough to matter. Those, with the stack the kernel kept for them if it walked one, are what
//! the ledgers get as opens; the churn of fds opened and closed in between never leaves the
//! kernel.

use aya::maps::{Array, HashMap as BpfHashMap, Map, MapData};
use leak_monitor_common::{
    fd_entry, fd_sampling, FdStack, PyStack, FD_CAP, MAX_FD_SLOTS, SAMPLE_EVERY_UP_TO,
    SAMPLE_ONE_IN,
};
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// How long an open must have stayed open before user space takes it. Churned fds live
/// microseconds; a fd still open after this is worth a ledger entry (and its close an event).
pub const SURVIVOR_AGE: Duration = Duration::from_millis(500);

/// The environment variable that tunes the pairing, for measuring what its parts cost: `off`
/// sends every open and close as an event (with a stack walked at each open, as before the
/// pairing); a number N walks the stack of one open in N once the target churns (0: none).
pub const PAIRING_ENV: &str = "LEAK_MONITOR_FD_PAIRING";

/// What `PAIRING_ENV` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairingSetting {
    Off,
    /// Pairing, with one churning open in this many walked (0: none).
    SampleOneIn(u32),
}

impl PairingSetting {
    /// The setting `value` (of `PAIRING_ENV`) asks for; the default when unset.
    pub fn parse(value: Option<&str>) -> Result<PairingSetting, String> {
        match value.map(str::trim) {
            None | Some("") => Ok(PairingSetting::SampleOneIn(SAMPLE_ONE_IN)),
            Some("off") => Ok(PairingSetting::Off),
            Some(number) => number
                .parse()
                .map(PairingSetting::SampleOneIn)
                .map_err(|_| format!("{PAIRING_ENV}={number}: expected `off` or a number")),
        }
    }

    pub fn from_env() -> Result<PairingSetting, String> {
        let value = std::env::var(PAIRING_ENV).ok();
        PairingSetting::parse(value.as_deref())
    }
}

/// How much of a slot a survivor scan reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extent {
    /// Every entry, up to `FD_CAP`.
    Full,
    /// Up to `gap` empty entries in a row past fd `past` (the highest fd known open, or 0). The
    /// kernel gives an open the lowest free number, so the opens not yet taken lie in a run
    /// from there: this reads what is in use and a margin, not the whole slot.
    Past { past: u32, gap: u32 },
}

/// An fd the kernel paired no close with for `SURVIVOR_AGE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Survivor {
    pub fd: i32,
    /// CLOCK_MONOTONIC ns of the open (modulo 2^`TS_BITS`, so approximate after 104 days).
    pub opened_ns: u64,
    /// The syscall that made it.
    pub call: u32,
    /// The stack walked at the open, when it was sampled.
    pub stack: Option<PyStack>,
    /// The thread that opened it, known when its stack was walked.
    pub tid: Option<u32>,
}

/// `FD_TABLE` mapped into this process.
struct Table {
    base: *mut AtomicU64,
    len: usize,
}

// SAFETY: the mapping is shared memory accessed only through atomics.
unsafe impl Send for Table {}
// SAFETY: as above.
unsafe impl Sync for Table {}

impl Table {
    fn map(data: &MapData) -> std::io::Result<Table> {
        let len = (MAX_FD_SLOTS * FD_CAP) as usize;
        // SAFETY: a fresh shared mapping of the map's fd, checked for failure; the kernel keeps
        // the map alive while it is mapped.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len * 8,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                data.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Table {
            base: base.cast(),
            len,
        })
    }

    fn entry(&self, slot: u32, fd: u32) -> &AtomicU64 {
        let at = (slot * FD_CAP + fd) as usize;
        assert!(at < self.len);
        // SAFETY: in bounds (checked), 8-byte aligned (page-aligned base), mapped for
        // `self`'s life.
        unsafe { &*self.base.add(at) }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe { libc::munmap(self.base.cast(), self.len * 8) };
    }
}

struct Slots {
    map: BpfHashMap<MapData, u32, u32>,
    owners: Array<MapData, u32>,
    by_tgid: HashMap<u32, u32>,
    free: Vec<u32>,
}

/// The pairing maps from user space. Shared by the tracer (slots) and its draining thread
/// (the scan).
pub struct FdPairing {
    table: Table,
    /// Whether the syscall program that writes the table is attached: while it is not, the
    /// table is cleared and nothing writes it, so there is nothing to scan.
    attached: AtomicBool,
    slots: Mutex<Slots>,
    stacks: Mutex<BpfHashMap<MapData, u32, FdStack>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FdPairing {
    /// From the object's three maps; `Err` says why pairing is off (events then carry every
    /// open and close, as without it).
    pub fn new(
        table: Map,
        slots: Map,
        stacks: Map,
        sampling: Map,
        owners: Map,
        one_in: u32,
    ) -> Result<FdPairing, String> {
        let owners = Array::try_from(owners).map_err(|e| e.to_string())?;
        let mut sampling: Array<MapData, u32> =
            Array::try_from(sampling).map_err(|e| e.to_string())?;
        for (index, value) in [
            (fd_sampling::EVERY_UP_TO, SAMPLE_EVERY_UP_TO),
            (fd_sampling::ONE_IN, one_in),
        ] {
            sampling
                .set(index, value, 0)
                .map_err(|e| format!("setting FD_SAMPLING: {e}"))?;
        }
        let Map::Array(table) = table else {
            return Err("FD_TABLE is not an array".into());
        };
        let table = Table::map(&table).map_err(|e| format!("mapping FD_TABLE: {e}"))?;
        let slots = BpfHashMap::try_from(slots).map_err(|e| e.to_string())?;
        let stacks = BpfHashMap::try_from(stacks).map_err(|e| e.to_string())?;
        Ok(FdPairing {
            table,
            attached: AtomicBool::new(false),
            slots: Mutex::new(Slots {
                map: slots,
                owners,
                by_tgid: HashMap::new(),
                free: (0..MAX_FD_SLOTS).rev().collect(),
            }),
            stacks: Mutex::new(stacks),
        })
    }

    /// Gives `tgid` a slot, so the kernel pairs its fds; false when all are taken (its fds are
    /// then sent one event each).
    pub fn assign(&self, tgid: u32) -> bool {
        let mut slots = lock(&self.slots);
        if slots.by_tgid.contains_key(&tgid) {
            return true;
        }
        let Some(slot) = slots.free.pop() else {
            return false;
        };
        self.zero(slot, 0, FD_CAP - 1);
        if slots.owners.set(slot, tgid, 0).is_err() || slots.map.insert(tgid, slot, 0).is_err() {
            let _ = slots.owners.set(slot, 0, 0);
            slots.free.push(slot);
            return false;
        }
        slots.by_tgid.insert(tgid, slot);
        true
    }

    /// `tgid` is no longer followed: its slot is free again.
    pub fn release(&self, tgid: u32) {
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.by_tgid.remove(&tgid) {
            let _ = slots.map.remove(&tgid);
            // CPUs that cached this slot for `tgid` look it up again (and find none).
            let _ = slots.owners.set(slot, 0, 0);
            self.zero(slot, 0, FD_CAP - 1);
            slots.free.push(slot);
        }
    }

    /// Forgets what the kernel holds for `tgid`'s fds `first..=last` (closed without a close
    /// seen: close_range, exec, or the programs were detached).
    pub fn clear(&self, tgid: u32, first: i32, last: i32) {
        let Some(slot) = self.slot_of(tgid) else {
            return;
        };
        let first = first.max(0) as u32;
        let last = last.min(FD_CAP as i32 - 1);
        if last >= 0 && first <= last as u32 {
            self.zero(slot, first, last as u32);
        }
    }

    /// The syscall program that writes the table was attached (`true`) or detached. Either way
    /// what the table holds is stale and is cleared: once detached, closes are no longer seen;
    /// at the attach, a program still running at the last detach may have written after that
    /// clear. (An fd opened between the attach and this clear is read from procfs by the
    /// tracer's resync, which follows.)
    /// The flag goes down before the clear and up after it, so no scan reads a half-cleared
    /// table.
    pub fn set_attached(&self, attached: bool) {
        if !attached {
            self.attached.store(false, Ordering::Release);
        }
        for tgid in self.tgids() {
            self.clear(tgid, 0, i32::MAX);
        }
        if attached {
            self.attached.store(true, Ordering::Release);
        }
    }

    pub fn attached(&self) -> bool {
        self.attached.load(Ordering::Acquire)
    }

    fn slot_of(&self, tgid: u32) -> Option<u32> {
        lock(&self.slots).by_tgid.get(&tgid).copied()
    }

    /// The processes with a slot.
    pub fn tgids(&self) -> Vec<u32> {
        lock(&self.slots).by_tgid.keys().copied().collect()
    }

    fn zero(&self, slot: u32, first: u32, last: u32) {
        let mut stacks = None;
        for fd in first..=last {
            let old = self.table.entry(slot, fd).swap(0, Ordering::AcqRel);
            if old & fd_entry::STACKED != 0 {
                let stacks = stacks.get_or_insert_with(|| lock(&self.stacks));
                let _ = stacks.remove(&(slot * FD_CAP + fd));
            }
        }
    }

    /// The stack kept for the open `known` (its entry's value, `KNOWN` set) at `key`, taken out
    /// of `FD_STACKS` so that the fds a leak keeps do not fill it: the ledger has the site.
    fn take_stack(&self, entry: &AtomicU64, known: u64, key: u32) -> Option<FdStack> {
        let mut stacks = lock(&self.stacks);
        let mut stack = stacks.get(&key, 0).ok()?;
        // Only while the entry is still this open: a close and a new sampled open of the same
        // fd since would have put its own stack there.
        if entry
            .compare_exchange(
                known,
                known & !fd_entry::STACKED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            let _ = stacks.remove(&key);
        }
        stack.stack.depth = stack
            .stack
            .depth
            .min(leak_monitor_common::MAX_FRAMES as u32);
        Some(stack)
    }

    /// The opens of `tgid` within `extent` not yet taken that are at least `min_age_ns` old at
    /// `now_ns` (CLOCK_MONOTONIC), marked known so that their close is sent from now on.
    pub fn take_survivors(
        &self,
        tgid: u32,
        extent: Extent,
        now_ns: u64,
        min_age_ns: u64,
    ) -> Vec<Survivor> {
        let Some(slot) = self.slot_of(tgid) else {
            return Vec::new();
        };
        let now = now_ns & fd_entry::TS_MASK;
        let mut survivors = Vec::new();
        // The scan ends at the first entry past this one.
        let mut end = match extent {
            Extent::Full => FD_CAP - 1,
            Extent::Past { past, gap } => past.saturating_add(gap),
        };
        for fd in 0..FD_CAP {
            if fd > end {
                break;
            }
            let entry = self.table.entry(slot, fd);
            let value = entry.load(Ordering::Acquire);
            if value == 0 {
                continue;
            }
            if let Extent::Past { gap, .. } = extent {
                end = end.max(fd.saturating_add(gap));
            }
            if value & fd_entry::KNOWN != 0 {
                continue;
            }
            let opened = value & fd_entry::TS_MASK;
            if now.wrapping_sub(opened) & fd_entry::TS_MASK < min_age_ns {
                continue;
            }
            // Fails if the fd was closed (or closed and opened again) since the load.
            if entry
                .compare_exchange(
                    value,
                    value | fd_entry::KNOWN,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_err()
            {
                continue;
            }
            let kept = (value & fd_entry::STACKED != 0)
                .then(|| self.take_stack(entry, value | fd_entry::KNOWN, slot * FD_CAP + fd))
                .flatten();
            survivors.push(Survivor {
                fd: fd as i32,
                opened_ns: now_ns.wrapping_sub(now.wrapping_sub(opened) & fd_entry::TS_MASK),
                call: ((value & fd_entry::CALL_MASK) >> fd_entry::CALL_SHIFT) as u32,
                stack: kept.map(|k| k.stack),
                tid: kept.map(|k| k.tid),
            });
        }
        survivors
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_is_off_a_rate_or_the_default() {
        assert_eq!(
            PairingSetting::parse(None).unwrap(),
            PairingSetting::SampleOneIn(SAMPLE_ONE_IN)
        );
        assert_eq!(
            PairingSetting::parse(Some("off")).unwrap(),
            PairingSetting::Off
        );
        assert_eq!(
            PairingSetting::parse(Some("0")).unwrap(),
            PairingSetting::SampleOneIn(0)
        );
        assert!(PairingSetting::parse(Some("sometimes")).is_err());
    }

    #[test]
    fn an_entry_packs_time_call_and_flags_apart() {
        let value = (123_456 & fd_entry::TS_MASK)
            | ((257u64 << fd_entry::CALL_SHIFT) & fd_entry::CALL_MASK)
            | fd_entry::STACKED;
        assert_eq!(value & fd_entry::TS_MASK, 123_456);
        assert_eq!((value & fd_entry::CALL_MASK) >> fd_entry::CALL_SHIFT, 257);
        assert_eq!(value & fd_entry::KNOWN, 0);
        assert_ne!(value & fd_entry::STACKED, 0);
        assert_eq!(
            fd_entry::TS_MASK & (fd_entry::CALL_MASK | fd_entry::KNOWN | fd_entry::STACKED),
            0
        );
    }
}

//! The parts a target's resident memory is split into, and how one breakdown is composed from
//! the mappings (`smaps`), pymalloc's state and glibc's arenas. Pure: tested on recorded text
//! and made-up allocator states.

use super::glibc::GlibcState;
use super::pymalloc::PymallocState;
use super::smaps::Mapping;
use serde::{Deserialize, Serialize};

/// One part of resident memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Blocks in use in pymalloc's arenas: live Python objects of up to 512 bytes.
    PythonObjects,
    /// pymalloc's touched pools not holding a live object.
    PythonAllocatorFree,
    /// glibc malloc's `[heap]` and thread arenas: the share in use.
    CAllocator,
    /// The same mappings: the share malloc holds free (top chunks, binned chunks).
    CAllocatorFree,
    /// Other private anonymous memory: C extensions' own mmaps, ctypes, large malloc blocks
    /// (mmapped by malloc), thread stacks, the copied pages of libraries' data.
    Native,
    /// File-backed pages: code and data of the interpreter, libraries, mapped files.
    File,
    /// Shared memory (tmpfs, memfd, SysV, shared anonymous).
    Shmem,
}

impl Part {
    pub const ALL: [Part; 7] = [
        Part::PythonObjects,
        Part::PythonAllocatorFree,
        Part::CAllocator,
        Part::CAllocatorFree,
        Part::Native,
        Part::File,
        Part::Shmem,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Part::PythonObjects => "python_objects",
            Part::PythonAllocatorFree => "python_allocator_free",
            Part::CAllocator => "c_allocator",
            Part::CAllocatorFree => "c_allocator_free",
            Part::Native => "native",
            Part::File => "file",
            Part::Shmem => "shmem",
        }
    }
}

/// Resident bytes per part at one moment, and how each was found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    /// Seconds since the observation started.
    pub at_seconds: f64,
    /// Bytes per part, in `Part::ALL` order.
    pub bytes: [u64; 7],
    /// Parts whose figure is an estimate rather than read.
    pub estimated: Vec<Part>,
    /// The sum of `Rss:` over the mappings.
    pub smaps_rss: u64,
    /// The process's RSS from `/proc/PID/statm` right after smaps was read: what the parts
    /// are checked against.
    pub statm_rss: u64,
    /// pymalloc and glibc as read (None: could not be read, and why is in `notes`).
    pub pymalloc: Option<PymallocState>,
    /// Whether the process runs CPython (else it has no pymalloc to read).
    pub python: bool,
    pub glibc: Option<GlibcState>,
    /// Why a reader could not be used, once per breakdown.
    pub notes: Vec<String>,
    /// The mappings of libraries other than libc and the interpreter, by path, for native
    /// growth (what could have allocated it).
    pub libraries: Vec<String>,
}

impl Breakdown {
    pub fn get(&self, part: Part) -> u64 {
        self.bytes[Part::ALL.iter().position(|p| *p == part).unwrap_or(0)]
    }

    fn set(&mut self, part: Part, value: u64) {
        if let Some(i) = Part::ALL.iter().position(|p| *p == part) {
            self.bytes[i] = value;
        }
    }

    pub fn total(&self) -> u64 {
        self.bytes.iter().sum()
    }
}

/// pymalloc's "state" of a process that is not Python: nothing to say about it.
pub const NOT_PYTHON: &str = "not a Python process";

/// What the allocators' readers found, for `compose`.
pub struct Allocators<'a> {
    pub pymalloc: Result<PymallocState, String>,
    pub glibc: Result<GlibcState, String>,
    /// The mappings that are glibc's thread arenas' heaps.
    pub is_thread_heap: &'a dyn Fn(&Mapping) -> bool,
}

/// Splits the mappings' resident bytes into parts. The parts add up to the mappings' `Rss:`
/// by construction (each resident byte lands in one part); the allocators' states only move
/// bytes between parts of the same mappings.
pub fn compose(at_seconds: f64, maps: &[Mapping], allocators: Allocators<'_>) -> Breakdown {
    let mut b = Breakdown {
        at_seconds,
        ..Breakdown::default()
    };
    let (mut file, mut shmem, mut c_heap, mut other_anon) = (0u64, 0u64, 0u64, 0u64);
    for m in maps {
        b.smaps_rss += m.rss;
        if m.is_shmem() {
            shmem += m.rss;
        } else if m.name == "[heap]" || (allocators.is_thread_heap)(m) {
            c_heap += m.rss;
        } else if m.is_anonymous() || m.name.starts_with('[') {
            other_anon += m.rss;
        } else {
            let anon = m.anonymous.min(m.rss);
            file += m.rss - anon;
            other_anon += anon;
            if m.name.contains(".so") && !b.libraries.contains(&m.name) {
                b.libraries.push(m.name.clone());
            }
        }
    }
    b.set(Part::File, file);
    b.set(Part::Shmem, shmem);
    b.python = !matches!(&allocators.pymalloc, Err(why) if why == NOT_PYTHON);
    match allocators.pymalloc {
        Ok(state) => {
            // Arenas are anonymous mmaps: their touched pools come out of the other anonymous
            // memory (bounded by it: a pool swapped out is not resident).
            let pools = state.pool_bytes.min(other_anon);
            let used = state.used_bytes.min(pools);
            b.set(Part::PythonObjects, used);
            b.set(Part::PythonAllocatorFree, pools - used);
            other_anon -= pools;
            b.pymalloc = Some(state);
            if state.sample_stride > 1 {
                b.estimated.push(Part::PythonObjects);
            }
            // Touched pools are counted as resident: pages never written are not.
            b.estimated.push(Part::PythonAllocatorFree);
        }
        Err(why) if why == NOT_PYTHON => {}
        Err(why) => b.notes.push(format!(
            "pymalloc's state could not be read ({why}): small Python objects count as native"
        )),
    }
    match allocators.glibc {
        Ok(state) => {
            let in_use = state.in_use_bytes().min(c_heap);
            b.set(Part::CAllocator, in_use);
            b.set(Part::CAllocatorFree, c_heap - in_use);
            if state.truncated {
                b.estimated.push(Part::CAllocatorFree);
            }
            b.glibc = Some(state);
        }
        Err(why) => {
            b.set(Part::CAllocator, c_heap);
            b.estimated.push(Part::CAllocator);
            b.notes.push(format!(
                "glibc's arenas could not be read ({why}): all of the C heap counts as in use"
            ));
        }
    }
    b.set(Part::Native, other_anon);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::smaps::parse;

    const SMAPS: &str = "\
55cbd8f78000-55cbd8f7a000 r--p 00000000 fe:00 247030    /usr/lib/libpython3.12.so.1.0
Rss:                 400 kB
Anonymous:             0 kB
55cbd8f90000-55cbd8f92000 rw-p 00010000 fe:00 247030    /usr/lib/libpython3.12.so.1.0
Rss:                 100 kB
Anonymous:            60 kB
5600000000-5600100000 rw-p 00000000 00:00 0             [heap]
Rss:                1000 kB
Anonymous:          1000 kB
7f0000000000-7f0004000000 rw-p 00000000 00:00 0
Rss:                3000 kB
Anonymous:          3000 kB
7f0000100000-7f0000200000 rw-s 00000000 00:01 77        /dev/shm/x
Rss:                  64 kB
Anonymous:             0 kB
";

    #[test]
    fn every_resident_byte_lands_in_one_part() {
        let maps = parse(SMAPS);
        let b = compose(
            1.0,
            &maps,
            Allocators {
                pymalloc: Ok(PymallocState {
                    arenas: 2,
                    pool_bytes: 2000 * 1024,
                    used_bytes: 500 * 1024,
                    pools_in_use: 10,
                    sample_stride: 1,
                }),
                glibc: Ok(GlibcState {
                    arenas: 1,
                    system_bytes: 1000 * 1024,
                    free_bytes: 300 * 1024,
                    truncated: false,
                }),
                is_thread_heap: &|_| false,
            },
        );
        let kb = |p| b.get(p) / 1024;
        assert_eq!(kb(Part::File), 440);
        assert_eq!(kb(Part::Shmem), 64);
        assert_eq!(kb(Part::CAllocator), 700);
        assert_eq!(kb(Part::CAllocatorFree), 300);
        assert_eq!(kb(Part::PythonObjects), 500);
        assert_eq!(kb(Part::PythonAllocatorFree), 1500);
        assert_eq!(kb(Part::Native), 3060 - 2000);
        assert_eq!(b.total(), b.smaps_rss);
        assert_eq!(
            b.libraries,
            vec!["/usr/lib/libpython3.12.so.1.0".to_string()]
        );
    }

    #[test]
    fn unreadable_allocators_are_said_and_estimated() {
        let maps = parse(SMAPS);
        let b = compose(
            0.0,
            &maps,
            Allocators {
                pymalloc: Err("stripped".into()),
                glibc: Err("musl".into()),
                is_thread_heap: &|_| false,
            },
        );
        assert_eq!(b.get(Part::PythonObjects), 0);
        assert_eq!(b.get(Part::CAllocator), 1000 * 1024);
        assert_eq!(b.estimated, vec![Part::CAllocator]);
        assert_eq!(b.notes.len(), 2);
        assert_eq!(b.total(), b.smaps_rss);
    }
}

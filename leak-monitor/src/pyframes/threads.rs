//! Finding a CPython process's `_PyRuntime` and its threads: the symbol in libpython (when the
//! interpreter links it) or in the executable (static builds such as Debian's), the load bias
//! from /proc/PID/maps, then interpreters -> thread states -> `native_thread_id` (3.10: the
//! tid in glibc's `struct pthread` that `thread_id` points at).

use super::layout::{Layout, ThreadIdent};
use super::memory::Memory;
use super::FramesError;
use crate::targets::elf::{is_position_independent, read_symbol_value, symbol};
use crate::targets::python::{libpython_in_maps, version_from_exe_name};
use std::collections::{HashMap, HashSet};
use std::fs::File;

/// Guards against a corrupt or racing list.
const MAX_INTERPRETERS: usize = 64;
const MAX_THREADS: usize = 4096;

/// Where the interpreter lives in a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Runtime {
    /// The address of `_PyRuntime` in the process.
    pub address: u64,
    /// `Py_Version` (`PY_VERSION_HEX`).
    pub version_hex: u64,
}

impl Runtime {
    pub fn major_minor(&self) -> (u8, u8) {
        (
            ((self.version_hex >> 24) & 0xFF) as u8,
            ((self.version_hex >> 16) & 0xFF) as u8,
        )
    }
}

/// Finds `_PyRuntime` and `Py_Version` in the binary that defines them.
pub fn find_runtime(pid: i32) -> Result<Runtime, FramesError> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|e| FramesError::Proc(format!("/proc/{pid}/maps: {e}")))?;
    let libpython = libpython_in_maps(&maps);
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let names = [
        libpython.as_ref().map(|(path, _)| *path),
        exe.as_deref().and_then(|p| p.to_str()),
    ];
    if let Some(version) = names.into_iter().flatten().find_map(free_threaded_name) {
        return Err(FramesError::FreeThreaded(
            version,
            "its file name ends in t",
        ));
    }
    let named = libpython.as_ref().map(|(_, version)| version.clone());
    let (path, file) = match libpython {
        Some((path, _)) => {
            let path = path.trim_end_matches(" (deleted)").to_owned();
            let file = File::open(format!("/proc/{pid}/root{path}"))
                .map_err(|e| FramesError::Proc(format!("{path}: {e}")))?;
            (path, file)
        }
        None => {
            let path = std::fs::read_link(format!("/proc/{pid}/exe"))
                .map_err(|e| FramesError::Proc(format!("/proc/{pid}/exe: {e}")))?
                .to_string_lossy()
                .into_owned();
            let file = File::open(format!("/proc/{pid}/exe"))
                .map_err(|e| FramesError::Proc(format!("/proc/{pid}/exe: {e}")))?;
            (path, file)
        }
    };
    let runtime = symbol(&file, b"_PyRuntime").ok_or(FramesError::NoSymbol("_PyRuntime"))?;
    let named = named.or_else(|| {
        let name = path.rsplit('/').next()?;
        version_from_exe_name(name)
    });
    let version_hex = match read_symbol_value(&file, b"Py_Version") {
        Some(hex) => hex,
        None => named
            .as_deref()
            .and_then(version_hex_before_311)
            .ok_or(FramesError::NoSymbol("Py_Version"))?,
    };
    let bias = match is_position_independent(&file) {
        Some(true) => load_bias(&maps, &path)
            .ok_or_else(|| FramesError::Proc(format!("{path} has no mapping at file offset 0")))?,
        Some(false) => 0,
        None => return Err(FramesError::Proc(format!("{path} is not an ELF64 file"))),
    };
    Ok(Runtime {
        address: bias + runtime.address,
        version_hex,
    })
}

/// `3.13t` for a free-threaded build's file (`python3.13t`, `libpython3.14t.so.1.0`): CPython
/// names them with a `t` after the version (its ABI flag for `Py_GIL_DISABLED`).
pub fn free_threaded_name(path: &str) -> Option<String> {
    let name = path.rsplit('/').next()?;
    let rest = name
        .strip_prefix("libpython")
        .or_else(|| name.strip_prefix("python"))?;
    let (major, tail) = rest.split_once('.')?;
    let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
    let minor = &tail[..digits];
    let flags = tail[digits..].split('.').next().unwrap_or_default();
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (numeric(major) && numeric(minor) && flags.contains('t')).then(|| format!("{major}.{minor}t"))
}

/// `Py_Version` came with 3.11: an older interpreter's version is the `X.Y` of its file name
/// (`libpython3.10.so.1.0`, `python3.10`), as `PY_VERSION_HEX` with micro and release 0.
fn version_hex_before_311(named: &str) -> Option<u64> {
    let (major, minor) = named.split_once('.')?;
    let (major, minor): (u64, u64) = (major.parse().ok()?, minor.parse().ok()?);
    (major == 3 && minor < 11).then_some((major << 24) | (minor << 16))
}

/// The start of the file's mapping at offset 0: the load bias of a file whose first
/// `PT_LOAD` is at virtual address 0 (as linkers lay out shared objects and PIEs).
pub fn load_bias(maps: &str, path: &str) -> Option<u64> {
    maps.lines().find_map(|line| {
        let mut fields = line.splitn(6, ' ');
        let range = fields.next()?;
        let _perms = fields.next()?;
        let offset = fields.next()?;
        let mapped = fields.nth(2)?.trim_start().trim_end_matches(" (deleted)");
        (mapped == path && u64::from_str_radix(offset, 16).ok()? == 0)
            .then(|| u64::from_str_radix(range.split('-').next()?, 16).ok())
            .flatten()
    })
}

/// Every thread state of every interpreter: native thread id -> `PyThreadState` address.
pub fn thread_states(
    memory: &dyn Memory,
    layout: &Layout,
    runtime: u64,
) -> Result<HashMap<u32, u64>, FramesError> {
    let mut found = HashMap::new();
    let mut seen = HashSet::new();
    let mut interp = memory.read_u64(runtime + layout.runtime_interpreters_head)?;
    let mut interpreters = 0;
    while interp != 0 && interpreters < MAX_INTERPRETERS {
        interpreters += 1;
        let mut tstate = memory.read_u64(interp + layout.interp_threads_head)?;
        // A cycle or a runaway list: stop rather than loop.
        while tstate != 0 && seen.len() < MAX_THREADS && seen.insert(tstate) {
            // Newest first: a state not started yet carries its creator's id (3.10, 3.11)
            // and is overwritten by the creator's own, older state further down.
            if let Some(tid) = thread_tid(memory, layout, tstate)? {
                found.insert(tid, tstate);
            }
            tstate = memory.read_u64(tstate + layout.tstate_next)?;
        }
        interp = memory.read_u64(interp + layout.interp_next)?;
    }
    Ok(found)
}

/// The OS thread of one thread state; `None` when it has none yet.
fn thread_tid(
    memory: &dyn Memory,
    layout: &Layout,
    tstate: u64,
) -> Result<Option<u32>, FramesError> {
    let ident = memory.read_u64(tstate + layout.tstate_native_thread_id)?;
    if ident == 0 {
        return Ok(None);
    }
    let tid = match layout.thread_ident {
        ThreadIdent::Native => u32::try_from(ident).ok(),
        // A thread that just ended may have freed its `struct pthread`: no tid, not an error.
        ThreadIdent::Pthread { tid_offset } => memory.read_u32(ident + tid_offset).ok(),
    };
    Ok(tid.filter(|&tid| tid != 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pyframes::layout::from_table;
    use crate::pyframes::memory::FixtureMemory;

    #[test]
    fn load_bias_is_the_offset_zero_mapping() {
        let maps = "\
55d0a4a1e000-55d0a4a1f000 r--p 00000000 08:01 1 /usr/bin/python3.11
7f1c2a000000-7f1c2a0a0000 r--p 00000000 08:01 2 /opt/lib/libpython3.11.so.1.0
7f1c2a0a0000-7f1c2a2a0000 r-xp 000a0000 08:01 2 /opt/lib/libpython3.11.so.1.0
";
        assert_eq!(
            load_bias(maps, "/opt/lib/libpython3.11.so.1.0"),
            Some(0x7f1c_2a00_0000)
        );
        assert_eq!(load_bias(maps, "/nope"), None);
    }

    #[test]
    fn free_threaded_builds_are_told_by_their_file_names() {
        for (path, want) in [
            ("/usr/bin/python3.13t", Some("3.13t")),
            (
                "/usr/lib/x86_64-linux-gnu/libpython3.14t.so.1.0",
                Some("3.14t"),
            ),
            ("/opt/py/bin/python3.15td", Some("3.15t")),
            ("/usr/bin/python3.13", None),
            ("/usr/bin/python3.11d", None),
            (
                "/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0",
                None,
            ),
            ("/usr/bin/pythontest", None),
            ("/usr/bin/python3", None),
        ] {
            assert_eq!(free_threaded_name(path).as_deref(), want, "{path}");
        }
    }

    #[test]
    fn walks_interpreters_and_threads() {
        let layout = from_table(3, 11).unwrap();
        let mut memory = FixtureMemory::default();
        let runtime = 0x1000;
        let mut rt = vec![0u8; 64];
        rt[40..48].copy_from_slice(&0x2000u64.to_le_bytes());
        memory.put(runtime, rt);
        let mut interp = vec![0u8; 32];
        interp[16..24].copy_from_slice(&0x3000u64.to_le_bytes());
        memory.put(0x2000, interp);
        let tstate = |next: u64, tid: u64| {
            let mut t = vec![0u8; 200];
            t[8..16].copy_from_slice(&next.to_le_bytes());
            t[160..168].copy_from_slice(&tid.to_le_bytes());
            t
        };
        memory.put(0x3000, tstate(0x4000, 101));
        memory.put(0x4000, tstate(0, 102));
        let found = thread_states(&memory, &layout, runtime).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[&101], 0x3000);
        assert_eq!(found[&102], 0x4000);
        // A cycle ends.
        memory.put(0x4000, tstate(0x3000, 102));
        let mut cyclic = FixtureMemory::default();
        let mut rt = vec![0u8; 64];
        rt[40..48].copy_from_slice(&0x2000u64.to_le_bytes());
        cyclic.put(runtime, rt);
        let mut interp = vec![0u8; 32];
        interp[16..24].copy_from_slice(&0x3000u64.to_le_bytes());
        cyclic.put(0x2000, interp);
        cyclic.put(0x3000, tstate(0x4000, 101));
        cyclic.put(0x4000, tstate(0x3000, 102));
        assert_eq!(thread_states(&cyclic, &layout, runtime).unwrap().len(), 2);
    }
}

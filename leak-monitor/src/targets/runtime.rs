//! Where a CPython process keeps its interpreter, found once per target: the executable, the
//! mapped libpython, the version (`Py_Version`, else the file name), `_PyRuntime`'s address
//! (its symbol plus the load bias of a position-independent file) and the writable mappings
//! its data lives in. `identify` discovers it with the target and every reader of the
//! interpreter (the kernel's frame walk, the heap census, pymalloc's state) is handed it, so
//! none of them reads /proc/PID/maps or an ELF file for it again.
//!
//! The pure part (`from_parts`) takes the maps text, the executable's path and a way to open a
//! file, so it is tested on made-up files; `discover` gives it the live process's.

use super::elf::{is_position_independent, read_symbol_value, static_symbol, symbol, ReadAt};
use super::python::{format_version_hex, libpython_in_maps, version_from_exe_name};
use std::fs::File;
use std::ops::Range;

/// Why the interpreter of a Python process cannot be located. Each reader of the interpreter
/// turns it into its own error with the same text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// `Py_GIL_DISABLED`: the version, and how it was told.
    #[error("CPython {0} is a free-threaded build ({1})")]
    FreeThreaded(String, &'static str),
    #[error("the interpreter exports no `{0}` symbol")]
    NoSymbol(&'static str),
    #[error("{0}")]
    Proc(String),
}

/// `_PyRuntime` in the process, and the version it was built as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interpreter {
    /// The address of `_PyRuntime` in the process.
    pub address: u64,
    /// `Py_Version` (`PY_VERSION_HEX`).
    pub version_hex: u64,
}

impl Interpreter {
    pub fn major_minor(&self) -> (u8, u8) {
        (
            ((self.version_hex >> 24) & 0xFF) as u8,
            ((self.version_hex >> 16) & 0xFF) as u8,
        )
    }
}

/// What one discovery found about a CPython process (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PythonRuntime {
    pub pid: i32,
    /// The executable, as the process sees it (without ` (deleted)`).
    pub exe: Option<String>,
    /// The mapped `libpythonX.Y*.so*`: its path as the process sees it, and `X.Y`.
    pub libpython: Option<(String, String)>,
    /// `X.Y` from the executable's name (`python3.11`).
    exe_version: Option<String>,
    /// Why /proc/PID/maps could not be read.
    maps_error: Option<String>,
    /// The file that defines `_PyRuntime` and `Py_Version`: libpython, else the executable.
    binary: Result<Binary, RuntimeError>,
}

/// What was read from the file that defines the interpreter.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Binary {
    path: String,
    py_version: Option<u64>,
    /// `_PyRuntime`'s link-time address.
    runtime_symbol: Option<u64>,
    /// The file's load bias: 0 unless it is position independent.
    bias: Result<u64, RuntimeError>,
    /// The file-backed mapping that holds `_PyRuntime` (its data segment), if any.
    runtime_file: Option<String>,
    /// `runtime_file`'s writable mappings, each followed by the anonymous mapping after it
    /// (its `.bss`), in address order: where the interpreter's statics are.
    data: Vec<Range<u64>>,
    /// `runtime_file`'s load bias when it is position independent (0 when it is not).
    runtime_file_bias: Result<u64, String>,
}

/// Finds the interpreter of `pid`: `None` when the process is not CPython (its executable is
/// not named python* and it maps no libpython).
pub fn discover(pid: i32) -> Option<PythonRuntime> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|e| format!("/proc/{pid}/maps: {e}"));
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| without_deleted(&p.to_string_lossy()).to_owned());
    let open = |file: Opened<'_>| -> Result<Box<dyn ReadAt>, String> {
        let opened =
            match file {
                Opened::Mapped(path) => File::open(format!("/proc/{pid}/root{path}"))
                    .map_err(|e| format!("{path}: {e}")),
                Opened::Exe => File::open(format!("/proc/{pid}/exe"))
                    .map_err(|e| format!("/proc/{pid}/exe: {e}")),
            };
        Ok(Box::new(opened?))
    };
    from_parts(
        pid,
        maps.as_deref().map_err(Clone::clone),
        exe.as_deref(),
        &open,
    )
}

/// Is this process CPython, by the executable's name or a mapped libpython? Reads only the
/// maps: the cheap test a scan of every process makes before `discover`.
pub fn maps_libpython(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .ok()
        .is_some_and(|maps| libpython_in_maps(&maps).is_some())
}

/// A file `from_parts` opens: one mapped by the process (by its path there), or its executable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened<'a> {
    Mapped(&'a str),
    Exe,
}

/// Opens a file of the process for reading, or says why it cannot.
pub type Opener<'a> = dyn Fn(Opened<'_>) -> Result<Box<dyn ReadAt>, String> + 'a;

/// `discover` on given inputs: the maps text (or why it could not be read), the executable's
/// path, and how to open a file.
pub fn from_parts(
    pid: i32,
    maps: Result<&str, String>,
    exe: Option<&str>,
    open: &Opener<'_>,
) -> Option<PythonRuntime> {
    let exe_name = exe.and_then(|exe| exe.rsplit('/').next());
    let named_python = exe_name.is_some_and(|n| n.starts_with("python"));
    let libpython = maps
        .as_ref()
        .ok()
        .and_then(|maps| libpython_in_maps(maps))
        .map(|(path, version)| (without_deleted(path).to_owned(), version));
    if !named_python && libpython.is_none() {
        return None;
    }
    let maps_error = maps.as_ref().err().cloned();
    let binary = maps
        .map_err(RuntimeError::Proc)
        .and_then(|maps| read_binary(maps, exe, libpython.as_ref(), open));
    Some(PythonRuntime {
        pid,
        exe: exe.map(str::to_owned),
        exe_version: exe_name.and_then(version_from_exe_name),
        maps_error,
        libpython,
        binary,
    })
}

fn read_binary(
    maps: &str,
    exe: Option<&str>,
    libpython: Option<&(String, String)>,
    open: &Opener<'_>,
) -> Result<Binary, RuntimeError> {
    let (path, file) = match libpython {
        Some((path, _)) => (path.clone(), open(Opened::Mapped(path))),
        None => {
            let path = exe.ok_or_else(|| {
                RuntimeError::Proc("the executable's path cannot be read".to_string())
            })?;
            (path.to_owned(), open(Opened::Exe))
        }
    };
    let file = file.map_err(RuntimeError::Proc)?;
    let py_version = read_symbol_value(&*file, b"Py_Version");
    let runtime_symbol = symbol(&*file, b"_PyRuntime").map(|s| s.address);
    let bias = match is_position_independent(&*file) {
        Some(true) => load_bias(maps, &path)
            .ok_or_else(|| RuntimeError::Proc(format!("{path} has no mapping at file offset 0"))),
        Some(false) => Ok(0),
        None => Err(RuntimeError::Proc(format!("{path} is not an ELF64 file"))),
    };
    let runtime_file = match (runtime_symbol, &bias) {
        (Some(symbol), Ok(bias)) => file_holding(maps, bias + symbol),
        _ => None,
    };
    let (data, runtime_file_bias) = match &runtime_file {
        Some(held) if *held == path => (
            data_mappings(maps, held),
            bias.clone()
                .map_err(|_| "no mapping at file offset 0".to_string()),
        ),
        Some(held) => (
            data_mappings(maps, held),
            Err(format!("{held} holds _PyRuntime but does not define it")),
        ),
        None => (Vec::new(), Err("no file maps _PyRuntime".into())),
    };
    Ok(Binary {
        path,
        py_version,
        runtime_symbol,
        bias,
        runtime_file,
        data,
        runtime_file_bias,
    })
}

impl PythonRuntime {
    /// The version to report: the full one (`3.11.7`) when the binary exports `Py_Version` and
    /// agrees with the file names, else `X.Y` from the executable's name or libpython's.
    pub fn version(&self) -> Option<String> {
        let short = self
            .exe_version
            .clone()
            .or_else(|| self.libpython.as_ref().map(|(_, v)| v.clone()));
        let full = self
            .binary
            .as_ref()
            .ok()
            .and_then(|b| b.py_version)
            .and_then(format_version_hex);
        match (full, short) {
            (Some(full), Some(short)) if full.starts_with(&format!("{short}.")) => Some(full),
            (Some(full), None) => Some(full),
            (_, short) => short,
        }
    }

    /// `3.13t` when the executable or libpython is named as a free-threaded build.
    pub fn free_threaded(&self) -> Option<String> {
        let libpython = self.libpython.as_ref().map(|(path, _)| path.as_str());
        [libpython, self.exe.as_deref()]
            .into_iter()
            .flatten()
            .find_map(free_threaded_name)
    }

    /// Where `_PyRuntime` is and the version it was built as: what a reader of the
    /// interpreter's memory needs first.
    pub fn interpreter(&self) -> Result<Interpreter, RuntimeError> {
        if let Some(why) = &self.maps_error {
            return Err(RuntimeError::Proc(why.clone()));
        }
        if let Some(version) = self.free_threaded() {
            return Err(RuntimeError::FreeThreaded(
                version,
                "its file name ends in t",
            ));
        }
        let binary = self.binary.as_ref().map_err(Clone::clone)?;
        let symbol = binary
            .runtime_symbol
            .ok_or(RuntimeError::NoSymbol("_PyRuntime"))?;
        let named = self
            .libpython
            .as_ref()
            .map(|(_, version)| version.clone())
            .or_else(|| version_from_exe_name(binary.path.rsplit('/').next()?));
        let version_hex = match binary.py_version {
            Some(hex) => hex,
            None => named
                .as_deref()
                .and_then(version_hex_before_311)
                .ok_or(RuntimeError::NoSymbol("Py_Version"))?,
        };
        Ok(Interpreter {
            address: binary.bias.clone()? + symbol,
            version_hex,
        })
    }

    /// The file whose data segment holds `_PyRuntime` (the interpreter or libpython).
    pub fn runtime_file(&self) -> Result<&str, String> {
        let binary = self.binary.as_ref().map_err(ToString::to_string)?;
        binary
            .runtime_file
            .as_deref()
            .ok_or_else(|| "no file maps _PyRuntime".to_string())
    }

    /// The writable mappings of `runtime_file`, each followed by the anonymous one after it:
    /// where CPython 3.12+ keeps pymalloc's state.
    pub fn data_mappings(&self) -> &[Range<u64>] {
        self.binary.as_ref().map_or(&[], |b| &b.data)
    }

    /// The addresses in the process of static (non-exported) variables of `runtime_file`, from
    /// its `.symtab`: CPython 3.10-3.11 keep pymalloc's arenas in statics. Read when asked (the
    /// table is large), not at discovery.
    pub fn static_addresses<const N: usize>(&self, names: [&[u8]; N]) -> Result<[u64; N], String> {
        let path = self.runtime_file()?;
        let file = File::open(format!("/proc/{}/root{path}", self.pid))
            .map_err(|e| format!("{path}: {e}"))?;
        let bias = match self.binary.as_ref().map(|b| &b.runtime_file_bias) {
            Ok(bias) => bias.clone()?,
            Err(e) => return Err(e.to_string()),
        };
        let mut found = [0u64; N];
        for (slot, name) in found.iter_mut().zip(names) {
            *slot = bias
                + static_symbol(&file, name)
                    .map(|s| s.address)
                    .ok_or_else(|| {
                        format!(
                        "{path} has no symbol table (stripped), so pymalloc's statics are not found"
                    )
                    })?;
        }
        Ok(found)
    }
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

/// One line of /proc/PID/maps: its range, whether writable, file offset and path ("" when
/// anonymous; without ` (deleted)`).
struct MapLine<'a> {
    range: Range<u64>,
    writable: bool,
    offset: u64,
    path: &'a str,
}

fn map_lines(maps: &str) -> impl Iterator<Item = MapLine<'_>> {
    maps.lines().filter_map(|line| {
        let mut fields = line.splitn(6, ' ');
        let (start, end) = fields.next()?.split_once('-')?;
        let perms = fields.next()?;
        let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
        let path = fields.nth(2).unwrap_or_default().trim_start();
        Some(MapLine {
            range: u64::from_str_radix(start, 16).ok()?..u64::from_str_radix(end, 16).ok()?,
            writable: perms.as_bytes().get(1) == Some(&b'w'),
            offset,
            path: without_deleted(path),
        })
    })
}

/// The start of the file's mapping at offset 0: the load bias of a file whose first
/// `PT_LOAD` is at virtual address 0 (as linkers lay out shared objects and PIEs).
pub fn load_bias(maps: &str, path: &str) -> Option<u64> {
    map_lines(maps)
        .find(|m| m.path == path && m.offset == 0)
        .map(|m| m.range.start)
}

/// The file (a path, not `[heap]` or anonymous memory) mapped at `address`.
fn file_holding(maps: &str, address: u64) -> Option<String> {
    map_lines(maps)
        .find(|m| m.range.contains(&address))
        .filter(|m| m.path.starts_with('/'))
        .map(|m| m.path.to_owned())
}

/// `path`'s writable mappings, each followed by the anonymous mapping right after one of its.
fn data_mappings(maps: &str, path: &str) -> Vec<Range<u64>> {
    let mut found = Vec::new();
    let mut previous = false;
    for m in map_lines(maps) {
        let ours = m.path == path;
        if m.writable && (ours || (previous && m.path.is_empty())) {
            found.push(m.range);
        }
        previous = ours;
    }
    found
}

fn without_deleted(path: &str) -> &str {
    path.trim_end_matches(" (deleted)")
}

#[cfg(test)]
mod tests;

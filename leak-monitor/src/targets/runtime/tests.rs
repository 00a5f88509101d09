//! Discovery on made-up maps and ELF files (pure), and on the interpreters of this machine.

use super::*;
use crate::sampling::testkit::PyChild;
use crate::targets::elf::tests::build_elf;

const LIBPYTHON: &str = "/opt/py/lib/libpython3.11.so.1.0";
const BIAS: u64 = 0x7f00_0000_0000;

/// An ELF of type `e_type` (2: fixed address, 3: position independent) defining `symbols` in a
/// data section at virtual address 0x1000 (each 8 bytes, in order).
fn elf(e_type: u16, symbols: &[(&str, u64)]) -> Vec<u8> {
    let mut elf = build_elf(symbols);
    elf[16..18].copy_from_slice(&e_type.to_le_bytes());
    elf
}

/// Opens `exe` for the executable and `lib` for any mapped file.
fn opener(exe: Vec<u8>, lib: Vec<u8>) -> impl Fn(Opened<'_>) -> Result<Box<dyn ReadAt>, String> {
    move |file| {
        let bytes = match file {
            Opened::Exe => exe.clone(),
            Opened::Mapped(_) => lib.clone(),
        };
        Ok(Box::new(bytes) as Box<dyn ReadAt>)
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Option<()> {
        self.as_slice().read_exact_at(offset, buf)
    }
}

/// A pyenv-style process: the executable links libpython, mapped at `BIAS`, its data (holding
/// `_PyRuntime` at 0x1000) writable and followed by its `.bss`.
fn pyenv_maps() -> String {
    format!(
        "\
55d0a4a1e000-55d0a4a1f000 r--p 00000000 08:01 1 /opt/py/bin/python3.11
{b0:x}-{b1:x} r--p 00000000 08:01 2 {LIBPYTHON}
{b1:x}-{b2:x} rw-p 00001000 08:01 2 {LIBPYTHON}
{b2:x}-{b3:x} rw-p 00000000 00:00 0 
{b3:x}-{b4:x} rw-p 00000000 00:00 0 
7ffd1e5db000-7ffd1e5fc000 rw-p 00000000 00:00 0                          [stack]
",
        b0 = BIAS,
        b1 = BIAS + 0x1000,
        b2 = BIAS + 0x2000,
        b3 = BIAS + 0x3000,
        b4 = BIAS + 0x4000,
    )
}

#[test]
fn a_shared_libpython_is_found_at_its_load_bias() {
    let lib = elf(3, &[("_PyRuntime", 0), ("Py_Version", 0x030B_07F0)]);
    let open = opener(Vec::new(), lib);
    let maps = pyenv_maps();
    let found = from_parts(7, Ok(&maps), Some("/opt/py/bin/python3.11"), &open).unwrap();
    assert_eq!(found.version().as_deref(), Some("3.11.7"));
    assert_eq!(
        found.libpython,
        Some((LIBPYTHON.to_string(), "3.11".to_string()))
    );
    assert_eq!(
        found.interpreter(),
        Ok(Interpreter {
            address: BIAS + 0x1000,
            version_hex: 0x030B_07F0
        })
    );
    assert_eq!(found.interpreter().unwrap().major_minor(), (3, 11));
    assert_eq!(found.runtime_file(), Ok(LIBPYTHON));
    // Its writable data and the anonymous mapping right after it, not the next one.
    assert_eq!(
        found.data_mappings(),
        &[BIAS + 0x1000..BIAS + 0x2000, BIAS + 0x2000..BIAS + 0x3000]
    );
    assert_eq!(found.free_threaded(), None);
}

#[test]
fn a_static_interpreter_is_found_in_its_executable() {
    // Debian's python3.11: `_PyRuntime` and `Py_Version` in the executable, fixed addresses.
    let exe = elf(2, &[("_PyRuntime", 0), ("Py_Version", 0x030B_02F0)]);
    let maps = "\
00001000-00002000 rw-p 00001000 08:01 1 /usr/bin/python3.11
00002000-00003000 rw-p 00000000 00:00 0 
";
    let open = opener(exe, Vec::new());
    let found = from_parts(7, Ok(maps), Some("/usr/bin/python3.11"), &open).unwrap();
    assert_eq!(found.version().as_deref(), Some("3.11.2"));
    assert_eq!(found.interpreter().unwrap().address, 0x1000);
    assert_eq!(found.runtime_file(), Ok("/usr/bin/python3.11"));
    assert_eq!(found.data_mappings(), &[0x1000..0x2000, 0x2000..0x3000]);
}

#[test]
fn before_311_the_version_comes_from_the_file_name() {
    let lib = elf(3, &[("_PyRuntime", 0)]);
    let maps = pyenv_maps().replace("3.11", "3.10");
    let open = opener(Vec::new(), lib);
    let found = from_parts(7, Ok(&maps), Some("/opt/py/bin/python3.10"), &open).unwrap();
    assert_eq!(found.version().as_deref(), Some("3.10"));
    assert_eq!(found.interpreter().unwrap().version_hex, 0x030A_0000);
    // 3.11 without Py_Version is not a release: no version to read it as.
    let lib = elf(3, &[("_PyRuntime", 0)]);
    let open = opener(Vec::new(), lib);
    let maps = pyenv_maps();
    let found = from_parts(7, Ok(&maps), Some("/opt/py/bin/python3.11"), &open).unwrap();
    assert_eq!(
        found.interpreter(),
        Err(RuntimeError::NoSymbol("Py_Version"))
    );
}

#[test]
fn what_is_missing_is_said() {
    let none = opener(Vec::new(), Vec::new());
    // Not CPython: neither named python nor mapping a libpython.
    assert_eq!(
        from_parts(
            7,
            Ok("00400000-00401000 r-xp 0 08:01 1 /usr/bin/sleep\n"),
            Some("/usr/bin/sleep"),
            &none
        ),
        None
    );
    // Named python, maps unreadable: the version from the name, the interpreter not found.
    let found = from_parts(
        7,
        Err("/proc/7/maps: denied".into()),
        Some("/usr/bin/python3.12"),
        &none,
    )
    .unwrap();
    assert_eq!(found.version().as_deref(), Some("3.12"));
    assert_eq!(
        found.interpreter(),
        Err(RuntimeError::Proc("/proc/7/maps: denied".into()))
    );
    // A libpython without `_PyRuntime`.
    let maps = pyenv_maps();
    let open = opener(Vec::new(), elf(3, &[("Py_Version", 0x030C_01F0)]));
    let found = from_parts(7, Ok(&maps), Some("/opt/py/bin/python3.11"), &open).unwrap();
    assert_eq!(
        found.interpreter(),
        Err(RuntimeError::NoSymbol("_PyRuntime"))
    );
    // Py_Version of another X.Y than the names: the names' X.Y is reported.
    assert_eq!(found.version().as_deref(), Some("3.11"));
    // A position-independent libpython that is not mapped at offset 0.
    let maps = pyenv_maps().replace(" r--p 00000000 08:01 2", " r--p 00000800 08:01 2");
    let open = opener(
        Vec::new(),
        elf(3, &[("_PyRuntime", 0), ("Py_Version", 0x030B_07F0)]),
    );
    let found = from_parts(7, Ok(&maps), Some("/opt/py/bin/python3.11"), &open).unwrap();
    assert_eq!(
        found.interpreter(),
        Err(RuntimeError::Proc(format!(
            "{LIBPYTHON} has no mapping at file offset 0"
        )))
    );
    // A file that cannot be opened.
    let denied = |_: Opened<'_>| -> Result<Box<dyn ReadAt>, String> { Err("nope".into()) };
    let found = from_parts(
        7,
        Ok(&pyenv_maps()),
        Some("/opt/py/bin/python3.11"),
        &denied,
    )
    .unwrap();
    assert_eq!(found.interpreter(), Err(RuntimeError::Proc("nope".into())));
    assert_eq!(found.version().as_deref(), Some("3.11"));
}

#[test]
fn a_free_threaded_build_is_refused_by_name() {
    let lib = elf(3, &[("_PyRuntime", 0), ("Py_Version", 0x030D_00F0)]);
    let maps = pyenv_maps().replace("3.11", "3.13t");
    let open = opener(Vec::new(), lib);
    let found = from_parts(7, Ok(&maps), Some("/opt/py/bin/python3.13t"), &open).unwrap();
    assert_eq!(found.version().as_deref(), Some("3.13.0"));
    assert_eq!(found.free_threaded().as_deref(), Some("3.13t"));
    assert_eq!(
        found.interpreter(),
        Err(RuntimeError::FreeThreaded(
            "3.13t".into(),
            "its file name ends in t"
        ))
    );
}

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

/// The interpreters on this machine: pyenv's (libpython shared; 3.10 without `Py_Version`) and
/// Debian's static one. Each found once, with the version it reports and a readable
/// `_PyRuntime` (its first word is not all zero: 3.13+ starts with the `xdebugpy` cookie).
#[test]
fn discovers_the_interpreters_of_this_machine() {
    let home = std::env::var("HOME").unwrap_or_default();
    let mut tried = 0;
    for python in [
        format!("{home}/.pyenv/versions/3.10.13/bin/python3.10"),
        format!("{home}/.pyenv/versions/3.11.7/bin/python3.11"),
        format!("{home}/.pyenv/versions/3.12.1/bin/python3.12"),
        format!("{home}/.pyenv/versions/3.13.0/bin/python3.13"),
        "/usr/bin/python3.11".to_string(),
    ] {
        if !std::path::Path::new(&python).exists() {
            eprintln!("skipped: no {python}");
            continue;
        }
        tried += 1;
        let mut child = PyChild::spawn_with(&python, &[]);
        let version = child.run("import platform; result = platform.python_version()");
        let version = version.trim_matches('\'');
        let found = discover(child.pid()).unwrap_or_else(|| panic!("{python}: not found"));
        let reported = found.version().unwrap();
        assert!(
            reported == version || version.starts_with(&format!("{reported}.")),
            "{python}: {reported} for {version}"
        );
        let interpreter = found
            .interpreter()
            .unwrap_or_else(|e| panic!("{python}: {e}"));
        let (major, minor) = interpreter.major_minor();
        assert!(
            version.starts_with(&format!("{major}.{minor}.")),
            "{python}"
        );
        assert!(found.runtime_file().is_ok(), "{python}");
        assert!(
            found
                .data_mappings()
                .iter()
                .any(|m| m.contains(&interpreter.address)),
            "{python}: _PyRuntime outside its data"
        );
        if minor <= 11 {
            // pymalloc's statics: in pyenv's builds; Debian strips its executable.
            let statics = found.static_addresses([b"arenas", b"maxarenas"]);
            let stripped = statics.as_ref().is_err_and(|e| e.contains("stripped"));
            assert!(
                statics.is_ok() || (stripped && python.starts_with("/usr/")),
                "{python}: {statics:?}"
            );
        }
    }
    assert!(tried > 0, "no interpreter to try");
}

#[test]
fn corrupt_maps_and_files_give_errors_never_a_panic() {
    let lib = elf(3, &[("_PyRuntime", 0), ("Py_Version", 0x030B_07F0)]);
    let maps = pyenv_maps();
    // Every byte of the library flipped in turn, every maps line cut short.
    for i in 0..lib.len() {
        let mut bad = lib.clone();
        bad[i] ^= 0xFF;
        let open = opener(Vec::new(), bad);
        if let Some(found) = from_parts(7, Ok(&maps), Some("/opt/py/bin/python3.11"), &open) {
            let _ = (found.interpreter(), found.version(), found.runtime_file());
        }
    }
    let open = opener(Vec::new(), lib);
    for cut in 0..maps.len() {
        let text = &maps[..cut];
        if let Some(found) = from_parts(7, Ok(text), Some("/opt/py/bin/python3.11"), &open) {
            let _ = (found.interpreter(), found.data_mappings().len());
        }
    }
    for garbage in [
        "",
        "\n\n",
        "x-y rw-p zz 0 0 /a",
        "ffffffffffffffffff-1 rw-p 0 0 0 /a",
    ] {
        let found = from_parts(7, Ok(garbage), Some("/usr/bin/python3.12"), &open).unwrap();
        assert!(found.interpreter().is_err(), "{garbage:?}");
    }
}

//! Telling CPython versions from names and values: the executable's name (`python3.11`), a
//! mapped `libpython3.X.so`, and the `Py_Version` constant (CPython 3.11+, `3.11.7`). Pure;
//! `runtime` applies them to a process.

/// `python3.11` -> `3.11` (also `python3.11d`, `python3.12t`); `python3`, `python` -> `None`.
pub fn version_from_exe_name(name: &str) -> Option<String> {
    let rest = name.strip_prefix("python")?;
    major_minor_prefix(rest)
}

/// `3.11` at the start of `text`, followed by nothing or a non-digit.
fn major_minor_prefix(text: &str) -> Option<String> {
    let (major, rest) = text.split_once('.')?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let minor = &rest[..digits];
    let valid = |s: &str| !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit());
    (valid(major) && valid(minor)).then(|| format!("{major}.{minor}"))
}

/// The first mapped `libpythonX.Y*.so*` in the text of /proc/PID/maps: its path and `X.Y`.
pub fn libpython_in_maps(maps: &str) -> Option<(&str, String)> {
    maps.lines().find_map(|line| {
        // address perms offset dev inode path; the path is everything after the fifth field
        // and may contain spaces.
        let path = line.splitn(6, ' ').nth(5)?.trim_start();
        let name = path.rsplit('/').next()?;
        let version = major_minor_prefix(name.strip_prefix("libpython")?)?;
        name.contains(".so").then_some((path, version))
    })
}

/// `Py_Version` / `PY_VERSION_HEX` -> `3.11.7`, `3.12.0a5`, `3.13.0rc1`. `None` for values no
/// CPython release has.
pub fn format_version_hex(hex: u64) -> Option<String> {
    if hex > u64::from(u32::MAX) {
        return None;
    }
    let major = (hex >> 24) & 0xFF;
    let minor = (hex >> 16) & 0xFF;
    let micro = (hex >> 8) & 0xFF;
    let level = (hex >> 4) & 0xF;
    let serial = hex & 0xF;
    if !(2..=9).contains(&major) {
        return None;
    }
    let suffix = match level {
        0xA => format!("a{serial}"),
        0xB => format!("b{serial}"),
        0xC => format!("rc{serial}"),
        0xF => String::new(),
        _ => return None,
    };
    Some(format!("{major}.{minor}.{micro}{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_executable_names() {
        assert_eq!(version_from_exe_name("python3.11").as_deref(), Some("3.11"));
        assert_eq!(
            version_from_exe_name("python3.13t").as_deref(),
            Some("3.13")
        );
        assert_eq!(version_from_exe_name("python2.7").as_deref(), Some("2.7"));
        for name in [
            "python",
            "python3",
            "python3.",
            "python.11",
            "pythonx.y",
            "py3.11",
            "",
            "python3.x",
        ] {
            assert_eq!(version_from_exe_name(name), None, "{name:?}");
        }
    }

    #[test]
    fn libpython_from_maps() {
        let maps = "\
55d0a4a1e000-55d0a4a1f000 r--p 00000000 08:01 1234 /root/.pyenv/versions/3.11.7/bin/python3.11
7f1c2a000000-7f1c2a0a0000 r--p 00000000 08:01 5678 /root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0
7f1c2b000000-7f1c2b001000 rw-p 00000000 00:00 0 
7ffd1e5db000-7ffd1e5fc000 rw-p 00000000 00:00 0                          [stack]
";
        let (path, version) = libpython_in_maps(maps).unwrap();
        assert_eq!(
            path,
            "/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0"
        );
        assert_eq!(version, "3.11");
        let spaced = "7f0-7f1 r--p 00000000 08:01 9 /opt/my app/lib/libpython3.12.so.1.0\n";
        assert_eq!(
            libpython_in_maps(spaced).map(|(p, _)| p),
            Some("/opt/my app/lib/libpython3.12.so.1.0")
        );
        for bad in [
            "",
            "garbage",
            "a b c d e libpython3.11.a",
            "a b c d e /x/libpython.so",
        ] {
            assert_eq!(libpython_in_maps(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn version_hex_formats() {
        assert_eq!(format_version_hex(0x030B_07F0).as_deref(), Some("3.11.7"));
        assert_eq!(format_version_hex(0x030C_00A5).as_deref(), Some("3.12.0a5"));
        assert_eq!(format_version_hex(0x030D_00B1).as_deref(), Some("3.13.0b1"));
        assert_eq!(
            format_version_hex(0x030D_00C2).as_deref(),
            Some("3.13.0rc2")
        );
        for bad in [0, 0x030B_0700, 0x0A00_00F0, 0x1_030B_07F0, u64::MAX] {
            assert_eq!(format_version_hex(bad), None, "{bad:#x}");
        }
    }
}

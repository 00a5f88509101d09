//! /proc/PID/maps text and executable names: finding libpython and its version never panics,
//! and a version found is `X.Y` with short numbers.
#![no_main]

use leak_monitor::targets::python::{format_version_hex, libpython_in_maps, version_from_exe_name};
use libfuzzer_sys::fuzz_target;

fn check_version(version: &str) {
    let (major, minor) = version.split_once('.').expect("X.Y");
    assert!(!major.is_empty() && major.len() <= 3, "{version}");
    assert!(!minor.is_empty() && minor.len() <= 3, "{version}");
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some((path, version)) = libpython_in_maps(&text) {
        assert!(path.contains("libpython"), "{path}");
        check_version(&version);
    }
    if let Some(version) = version_from_exe_name(&text) {
        check_version(&version);
    }
    if data.len() >= 8 {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&data[..8]);
        let _ = format_version_hex(u64::from_le_bytes(bytes));
    }
});

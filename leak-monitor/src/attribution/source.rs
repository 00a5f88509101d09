//! Reading the target's own source files: through `/proc/PID/root` so a process in a
//! container (another mount namespace) is read from its own filesystem, with a size cap.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Larger files are not read (a Python source file this big is generated, not written).
pub const MAX_SOURCE_BYTES: u64 = 2 * 1024 * 1024;

/// Reads `path` as the process `pid` sees it: `/proc/PID/root/<path>` (a relative path, as
/// `python3 app.py` records it, from `/proc/PID/cwd`), or the plain path only when that
/// procfs entry itself cannot be read (no permission, procfs without it). A file over
/// `MAX_SOURCE_BYTES` is an error; invalid UTF-8 is replaced, not refused.
pub fn read_target_source(pid: i32, path: &str) -> io::Result<String> {
    let base = if Path::new(path).is_absolute() {
        PathBuf::from(format!("/proc/{pid}/root"))
    } else {
        PathBuf::from(format!("/proc/{pid}/cwd"))
    };
    let file = if std::fs::read_link(&base).is_ok() || base.is_dir() {
        in_root(&base, path)
    } else {
        PathBuf::from(path)
    };
    read_capped(&file, MAX_SOURCE_BYTES)
}

/// `base` joined with `path` taken as relative to it (`/srv/app.py` -> `base/srv/app.py`).
fn in_root(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Reads at most `cap` bytes of a file, failing when it is larger.
pub fn read_capped(path: &Path, cap: u64) -> io::Result<String> {
    let file = File::open(path)
        .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: larger than {cap} bytes, not read", path.display()),
        ));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_file_through_proc_root() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.py");
        std::fs::write(&path, "x = 1\n").unwrap();
        let pid = i32::try_from(std::process::id()).unwrap();
        let text = read_target_source(pid, path.to_str().unwrap()).unwrap();
        assert_eq!(text, "x = 1\n");
    }

    #[test]
    fn relative_paths_are_read_from_the_target_cwd() {
        // cargo runs unit tests in the package directory.
        let pid = i32::try_from(std::process::id()).unwrap();
        let text = read_target_source(pid, "Cargo.toml").unwrap();
        assert!(text.contains("name = \"leak-monitor\""), "{text}");
    }

    #[test]
    fn falls_back_to_plain_path_without_proc_root() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.py");
        std::fs::write(&path, "y = 2\n").unwrap();
        // No such process: /proc/PID/root is not readable, the plain path is used.
        let text = read_target_source(i32::MAX, path.to_str().unwrap()).unwrap();
        assert_eq!(text, "y = 2\n");
    }

    #[test]
    fn refuses_files_over_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.py");
        std::fs::write(&path, vec![b'#'; 100]).unwrap();
        let err = read_capped(&path, 99).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(read_capped(&path, 100).unwrap().len(), 100);
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = read_target_source(i32::MAX, "/no/such/file.py").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("/no/such/file.py"));
    }
}

//! Writing reports to disk. Reports quote the target's source code, so files are created
//! readable by their owner only (0600) and report directories 0700.

use anyhow::Context;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Checks before a run that `path` can be written, so a long observation is not lost to a typo
/// in the output path at the end.
pub fn check_writable(path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        anyhow::bail!(
            "cannot write {}: {} is not a directory",
            path.display(),
            dir.display()
        );
    }
    if path.is_dir() {
        anyhow::bail!("cannot write {}: it is a directory", path.display());
    }
    Ok(())
}

/// Writes `contents` to `path` atomically (temp file + rename), mode 0600.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let tmp = temp_sibling(path);
    let result = (|| -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// Creates a report directory (and its parents), mode 0700.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating report directory {}", dir.display()))
}

fn temp_sibling(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn reports_are_private() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let reports = dir.path().join("reports");
        create_private_dir(&reports)?;
        let path = reports.join("r.json");
        write_private(&path, "{}")?;
        assert_eq!(fs::read_to_string(&path)?, "{}");
        assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&reports)?.permissions().mode() & 0o777, 0o700);
        Ok(())
    }

    #[test]
    fn unwritable_paths_are_refused_up_front() {
        assert!(check_writable(Path::new("/nonexistent-dir/r.json")).is_err());
        assert!(check_writable(Path::new("/tmp")).is_err());
        assert!(check_writable(Path::new("r.json")).is_ok());
    }
}

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

/// Writes `contents` to `path` atomically (temp file + rename), mode 0600. A path that is not a
/// regular file (`/dev/null`, `/dev/stdout`, a FIFO) is written into, never replaced: a rename
/// over `/dev/null` would turn it into a file every reader of /dev/null then reads.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    if fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        return OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut file| file.write_all(contents.as_bytes()))
            .with_context(|| format!("writing {}", path.display()));
    }
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

/// Where a report went when it could not be written where asked.
#[derive(Debug)]
pub enum Fallback {
    /// A private file in the temp dir (`$TMPDIR`, else /tmp).
    File(PathBuf),
    /// Neither could be written: printed on stdout.
    Stdout,
}

/// A report that was not written where asked, and where it went instead.
#[derive(Debug, thiserror::Error)]
#[error("{error:#}; {}", match went_to {
    Fallback::File(path) => format!("the report is in {} instead", path.display()),
    Fallback::Stdout => "the report follows on stdout instead".to_string(),
})]
pub struct NotWrittenWhereAsked {
    pub error: anyhow::Error,
    pub went_to: Fallback,
}

/// Writes `contents` to `path` as `write_private` does. When that fails (the directory was
/// removed during the run, the disk is full), the report is not lost: it goes to a new private
/// file in the temp dir named after `path`, or, failing that too, to stdout.
pub fn write_or_fall_back(path: &Path, contents: &str) -> Result<(), NotWrittenWhereAsked> {
    let Err(error) = write_private(path, contents) else {
        return Ok(());
    };
    let went_to = match write_fallback_file(path, contents) {
        Ok(fallback) => Fallback::File(fallback),
        Err(_) => {
            print!("{contents}");
            Fallback::Stdout
        }
    };
    Err(NotWrittenWhereAsked { error, went_to })
}

/// `$TMPDIR/leak-monitor-STEM-XXXXXX.EXT`, created new (never through an existing name) and 0600.
fn write_fallback_file(path: &Path, contents: &str) -> std::io::Result<PathBuf> {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let suffix = path
        .extension()
        .map(|ext| format!(".{}", ext.to_string_lossy()))
        .unwrap_or_default();
    let mut file = tempfile::Builder::new()
        .prefix(&format!("leak-monitor-{stem}-"))
        .suffix(&suffix)
        .tempfile()?;
    file.write_all(contents.as_bytes())?;
    file.as_file().sync_all()?;
    let (_, kept) = file.keep().map_err(|err| err.error)?;
    Ok(kept)
}

/// Creates a report directory (and its parents), mode 0700.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating report directory {}", dir.display()))
}

/// Keeps file names to a safe alphabet: the group name comes from process names and flags.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
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
    fn a_fifo_or_device_is_written_into_not_replaced() -> anyhow::Result<()> {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir()?;
        let fifo = dir.path().join("report.fifo");
        let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes())?;
        // SAFETY: a NUL-terminated path this test owns.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read_to_string(fifo))
        };
        write_private(&fifo, "{\"schema\": 1}")?;
        assert_eq!(reader.join().expect("reader")?, "{\"schema\": 1}");
        assert!(
            fs::metadata(&fifo)?.file_type().is_fifo(),
            "the FIFO was replaced"
        );
        // /dev/null stays the device.
        write_private(Path::new("/dev/null"), "{}")?;
        assert!(fs::metadata("/dev/null")?.file_type().is_char_device());
        Ok(())
    }

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
    fn a_report_that_cannot_go_where_asked_goes_to_a_private_temp_file() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let gone = dir.path().join("removed").join("run.json");
        let Err(err) = write_or_fall_back(&gone, "{}") else {
            anyhow::bail!("wrote into a directory that does not exist");
        };
        let Fallback::File(fallback) = &err.went_to else {
            anyhow::bail!("not a fallback file: {err}");
        };
        assert_eq!(fs::read_to_string(fallback)?, "{}");
        assert_eq!(fs::metadata(fallback)?.permissions().mode() & 0o777, 0o600);
        let name = fallback.file_name().unwrap_or_default().to_string_lossy();
        assert!(
            name.starts_with("leak-monitor-run-") && name.ends_with(".json"),
            "{name}"
        );
        let message = err.to_string();
        assert!(message.contains(&gone.display().to_string()), "{message}");
        assert!(
            message.contains(&fallback.display().to_string()),
            "{message}"
        );
        fs::remove_file(fallback)?;
        Ok(())
    }

    #[test]
    fn unwritable_paths_are_refused_up_front() {
        assert!(check_writable(Path::new("/nonexistent-dir/r.json")).is_err());
        assert!(check_writable(Path::new("/tmp")).is_err());
        assert!(check_writable(Path::new("r.json")).is_ok());
    }
}

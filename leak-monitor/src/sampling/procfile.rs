//! A procfs file opened once and re-read from offset 0 every tick into a caller's buffer, and
//! the mapping of I/O errors onto `SampleError`.
//!
//! Keeping the file open saves the path walk of an `open` per tick, and the open file stays
//! bound to the process it was opened for: once that process exits, reads fail with `ESRCH`
//! (or return nothing) instead of ever reading a process that reused the PID.

use super::SampleError;
use procfs::process::Process;
use procfs::ProcError;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Reads happen in chunks of this size; the buffer grows until the file fits.
const CHUNK: usize = 16 * 1024;

pub(crate) struct ProcFile {
    file: File,
    what: &'static str,
}

impl ProcFile {
    /// Opens `what` (a path relative to /proc/PID, such as `status` or `net/tcp`).
    pub(crate) fn open(process: &Process, what: &'static str) -> Result<Self, SampleError> {
        let file = process
            .open_relative(what)
            .map_err(|err| proc_error(process.pid, what, err))?;
        Ok(Self { file, what })
    }

    /// Replaces `buf` with the whole current content. An empty file means the process exited.
    pub(crate) fn read_all(&self, pid: i32, buf: &mut Vec<u8>) -> Result<(), SampleError> {
        buf.clear();
        loop {
            let start = buf.len();
            buf.resize(start + CHUNK, 0);
            let read = self.file.read_at(&mut buf[start..], start as u64);
            match read {
                Ok(n) => {
                    buf.truncate(start + n);
                    if n == 0 {
                        break;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => buf.truncate(start),
                Err(err) => {
                    buf.truncate(start);
                    return Err(io_error(pid, self.what, err));
                }
            }
        }
        if buf.is_empty() {
            return Err(SampleError::Gone { pid });
        }
        Ok(())
    }

    /// One read from offset 0 into `buf`: the whole of a file shorter than `buf` (statm).
    pub(crate) fn read_once(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read_at(buf, 0)
    }

    /// Reads the next chunk at `offset`, appending it to `buf`; returns the number of bytes
    /// read, 0 at the end of the file. For tables too large to want in memory at once.
    pub(crate) fn read_chunk(
        &self,
        pid: i32,
        offset: u64,
        buf: &mut Vec<u8>,
    ) -> Result<usize, SampleError> {
        let start = buf.len();
        buf.resize(start + CHUNK, 0);
        loop {
            match self.file.read_at(&mut buf[start..], offset) {
                Ok(n) => {
                    buf.truncate(start + n);
                    return Ok(n);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    buf.truncate(start);
                    return Err(io_error(pid, self.what, err));
                }
            }
        }
    }
}

/// Classifies an I/O error on /proc/PID/`what`: a vanished process is `Gone`, a refused read is
/// `PermissionDenied`, anything else is `Io`.
pub(crate) fn io_error(pid: i32, what: &'static str, err: io::Error) -> SampleError {
    match err.raw_os_error() {
        Some(libc::ENOENT | libc::ESRCH) => SampleError::Gone { pid },
        Some(libc::EACCES | libc::EPERM) => SampleError::PermissionDenied { pid, what },
        _ => SampleError::Io {
            pid,
            what,
            source: err,
        },
    }
}

/// The same classification for errors the `procfs` crate returns.
pub(crate) fn proc_error(pid: i32, what: &'static str, err: ProcError) -> SampleError {
    match err {
        ProcError::NotFound(_) => SampleError::Gone { pid },
        ProcError::PermissionDenied(_) => SampleError::PermissionDenied { pid, what },
        ProcError::Io(source, _) => io_error(pid, what, source),
        other => SampleError::Io {
            pid,
            what,
            source: io::Error::other(other.to_string()),
        },
    }
}

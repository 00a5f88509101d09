//! Open file descriptors by kind, from the link targets in /proc/PID/fd.
//!
//! The directory is opened once and rewound every tick; entries are read into a buffer shared
//! by every scanner of the thread (one per target would be 32 KiB each in a fleet) and each link is read into a stack buffer, so a tick costs one `getdents64` per
//! directory page plus one `readlinkat` per fd, and allocates nothing.

use super::procfile::io_error;
use super::{FdKind, SampleError};
use procfs::process::Process;
use rustix::fd::OwnedFd;
use rustix::fs::{OFlags, RawDir, SeekFrom};
use rustix::io::Errno;
use std::cell::RefCell;
use std::mem::MaybeUninit;

/// What one fd link says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdLink {
    pub kind: FdKind,
    /// The socket inode of `socket:[INODE]`; the key into the net tables.
    pub socket_inode: Option<u64>,
}

/// Classifies the target of a /proc/PID/fd link: `socket:[N]`, `pipe:[N]`, `anon_inode:...`
/// (eventfd, epoll, timerfd, signalfd, inotify, pidfd, bpf objects), paths (files, including
/// deleted ones, memfds and /dev/shm) are `File`; devices under /dev, namespaces and anything
/// unrecognised are `Other`. Takes bytes because paths need not be UTF-8; only the prefix
/// matters, so a truncated link classifies the same.
pub fn parse_fd_link(link: &[u8]) -> FdLink {
    let kind_only = |kind| FdLink {
        kind,
        socket_inode: None,
    };
    if let Some(rest) = link.strip_prefix(b"socket:[") {
        return FdLink {
            kind: FdKind::Socket,
            socket_inode: parse_bracketed_inode(rest),
        };
    }
    if link.starts_with(b"pipe:[") {
        return kind_only(FdKind::Pipe);
    }
    if link.starts_with(b"anon_inode:") {
        return kind_only(FdKind::AnonInode);
    }
    if link.starts_with(b"/dev/shm/") {
        return kind_only(FdKind::File);
    }
    if link.starts_with(b"/dev/") {
        return kind_only(FdKind::Other);
    }
    if link.starts_with(b"/") {
        return kind_only(FdKind::File);
    }
    kind_only(FdKind::Other)
}

/// `12345]` -> 12345.
fn parse_bracketed_inode(rest: &[u8]) -> Option<u64> {
    let digits = rest.strip_suffix(b"]")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A socket fd seen in the fd directory: the inode joins the net tables, the fd number names
/// the link to ask for the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SocketFd {
    pub inode: u64,
    pub fd: i32,
}

/// Counts per kind, indexed in `FdKind::ALL` order.
pub(crate) type KindCounts = [u64; FdKind::ALL.len()];

pub(crate) fn kind_index(kind: FdKind) -> usize {
    match kind {
        FdKind::File => 0,
        FdKind::Socket => 1,
        FdKind::Pipe => 2,
        FdKind::AnonInode => 3,
        FdKind::Other => 4,
    }
}

/// Reads /proc/PID/fd once per tick through a directory fd opened at attach time.
pub(crate) struct FdScanner {
    dir: OwnedFd,
}

/// Longest link prefix read; classification only looks at the start of the link.
const LINK_PREFIX: usize = 64;
const DIRENT_BUFFER: usize = 32 * 1024;

thread_local! {
    /// The directory entries of the scan under way on this thread.
    static DIRENTS: RefCell<Vec<MaybeUninit<u8>>> =
        RefCell::new(vec![MaybeUninit::uninit(); DIRENT_BUFFER]);
}

impl FdScanner {
    pub(crate) fn open(process: &Process) -> Result<Self, SampleError> {
        let dir = process
            .open_relative_flags("fd", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC)
            .map_err(|err| super::procfile::proc_error(process.pid, "fd", err))?;
        Ok(Self { dir: dir.into() })
    }

    /// The number of open fds, from the directory's size (`stat` of /proc/PID/fd counts them
    /// since Linux 6.2, without listing them); `None` where the kernel says 0 (older kernels).
    pub(crate) fn count(&self) -> Option<u64> {
        let size = rustix::fs::fstat(&self.dir).ok()?.st_size;
        u64::try_from(size).ok().filter(|&n| n > 0)
    }

    /// Counts the fds by kind and appends every socket to `sockets`.
    pub(crate) fn scan(
        &mut self,
        pid: i32,
        sockets: &mut Vec<SocketFd>,
    ) -> Result<KindCounts, SampleError> {
        DIRENTS.with_borrow_mut(|dirents| self.scan_into(dirents, pid, sockets))
    }

    fn scan_into(
        &self,
        dirents: &mut [MaybeUninit<u8>],
        pid: i32,
        sockets: &mut Vec<SocketFd>,
    ) -> Result<KindCounts, SampleError> {
        let fail = |errno: Errno| io_error(pid, "fd", errno.into());
        rustix::fs::seek(&self.dir, SeekFrom::Start(0)).map_err(fail)?;
        let mut counts = KindCounts::default();
        let mut entries = RawDir::new(&self.dir, dirents);
        while let Some(entry) = entries.next() {
            let entry = entry.map_err(fail)?;
            let name = entry.file_name();
            let Some(fd) = std::str::from_utf8(name.to_bytes())
                .ok()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue; // "." and ".."
            };
            let mut link = [0u8; LINK_PREFIX];
            let len = match rustix::fs::readlinkat_raw(&self.dir, name, &mut link[..]) {
                Ok(len) => len,
                // Closed between listing and reading: it is not open any more.
                Err(Errno::NOENT) => continue,
                Err(errno) => return Err(fail(errno)),
            };
            let parsed = parse_fd_link(&link[..len.min(LINK_PREFIX)]);
            counts[kind_index(parsed.kind)] += 1;
            if let Some(inode) = parsed.socket_inode {
                sockets.push(SocketFd { inode, fd });
            }
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(link: &str) -> FdKind {
        parse_fd_link(link.as_bytes()).kind
    }

    #[test]
    fn classifies_real_link_targets() {
        assert_eq!(
            parse_fd_link(b"socket:[183745]"),
            FdLink {
                kind: FdKind::Socket,
                socket_inode: Some(183_745)
            }
        );
        assert_eq!(kind("pipe:[99120]"), FdKind::Pipe);
        assert_eq!(kind("anon_inode:[eventpoll]"), FdKind::AnonInode);
        assert_eq!(kind("anon_inode:[eventfd]"), FdKind::AnonInode);
        assert_eq!(kind("anon_inode:[pidfd]"), FdKind::AnonInode);
        assert_eq!(kind("anon_inode:inotify"), FdKind::AnonInode);
        assert_eq!(kind("/srv/app/data.db"), FdKind::File);
        assert_eq!(kind("/tmp/upload-1 (deleted)"), FdKind::File);
        assert_eq!(kind("/memfd:buffer (deleted)"), FdKind::File);
        assert_eq!(kind("/dev/shm/psm_1234"), FdKind::File);
        assert_eq!(kind("/dev/null"), FdKind::Other);
        assert_eq!(kind("/dev/pts/3"), FdKind::Other);
        assert_eq!(kind("net:[4026531840]"), FdKind::Other);
        assert_eq!(kind("mnt:[4026531841]"), FdKind::Other);
    }

    #[test]
    fn non_utf8_paths_are_files() {
        assert_eq!(parse_fd_link(b"/data/\xff\xfe.bin").kind, FdKind::File);
    }

    #[test]
    fn malformed_socket_links_are_sockets_without_inode() {
        for link in [
            &b"socket:["[..],
            b"socket:[]",
            b"socket:[12",
            b"socket:[-1]",
            b"socket:[99999999999999999999999]",
            b"socket:[1 2]",
            b"socket:[\xff]",
        ] {
            let parsed = parse_fd_link(link);
            assert_eq!(parsed.kind, FdKind::Socket, "{link:?}");
            assert_eq!(parsed.socket_inode, None, "{link:?}");
        }
    }

    #[test]
    fn odd_links_are_other() {
        for link in [&b""[..], b"socket", b"pipe", b"[eventpoll]", b"\0\0"] {
            assert_eq!(parse_fd_link(link).kind, FdKind::Other, "{link:?}");
        }
    }

    #[test]
    fn kind_index_follows_all_order() {
        for (i, kind) in FdKind::ALL.into_iter().enumerate() {
            assert_eq!(kind_index(kind), i);
        }
    }
}

//! The target's sockets by (protocol, state): its socket inodes joined with the socket tables of
//! its own network namespace.
//!
//! Host-wide tables can hold tens of thousands of rows, so only the tables the target needs
//! are read: each socket's protocol comes from its `system.sockprotoname` attribute (one
//! `getxattr` per socket when it is first seen, cached by inode), and a table is read only
//! when the target has a socket of that protocol, stopping as soon as every socket is found.
//! Without that attribute (old kernels) every table is read.

use super::fds::SocketFd;
use super::net_tables::{parse_sockprotoname, parse_table_row, NetTable};
use super::procfile::ProcFile;
use super::{Protocol, SampleError, SocketCounts};
use procfs::process::Process;
use rustix::io::Errno;
use std::collections::HashMap;
use std::fmt::Write;

/// What the attribute said about a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Listed(NetTable),
    /// A protocol in none of the tables read (netlink, packet, raw, ...).
    Unlisted,
    /// The attribute could not be read: look in every table.
    Unknown,
}

/// Where a socket stands in the current tick.
#[derive(Clone, Copy)]
struct Pending {
    kind: Kind,
    found: Option<(Protocol, &'static str)>,
}

/// Per-target state kept between ticks.
#[derive(Default)]
pub(crate) struct SocketCensus {
    /// inode -> (kind, tick last seen); entries not seen in a tick are dropped.
    kinds: HashMap<u64, (Kind, u64)>,
    tick: u64,
    /// This tick's sockets, by inode (a socket dup'ed onto several fds counts once).
    pending: HashMap<u64, Pending>,
    tables: [Option<ProcFile>; NetTable::ALL.len()],
    buf: Vec<u8>,
    path: String,
}

impl SocketCensus {
    pub(crate) fn count(
        &mut self,
        process: &Process,
        sockets: &[SocketFd],
    ) -> Result<SocketCounts, SampleError> {
        let pid = process.pid;
        self.tick += 1;
        self.pending.clear();
        let mut wanted = [false; NetTable::ALL.len()];
        for socket in sockets {
            let kind = match self.kinds.get_mut(&socket.inode) {
                Some((kind, seen)) => {
                    *seen = self.tick;
                    *kind
                }
                None => match self.ask_kind(pid, socket.fd) {
                    Some(kind) => {
                        self.kinds.insert(socket.inode, (kind, self.tick));
                        kind
                    }
                    // Closed since the fd scan: no longer one of the target's sockets.
                    None => continue,
                },
            };
            match kind {
                Kind::Listed(table) => wanted[table.index()] = true,
                Kind::Unknown => wanted = [true; NetTable::ALL.len()],
                Kind::Unlisted => {}
            }
            self.pending
                .insert(socket.inode, Pending { kind, found: None });
        }
        let tick = self.tick;
        self.kinds.retain(|_, (_, seen)| *seen == tick);

        let mut remaining = self
            .pending
            .values()
            .filter(|p| p.kind != Kind::Unlisted)
            .count();
        for table in NetTable::ALL {
            if remaining == 0 {
                break;
            }
            if wanted[table.index()] {
                remaining = self.search_table(process, table, remaining)?;
            }
        }
        Ok(self.tally())
    }

    /// The protocol a socket fd reports; `Unknown` when the attribute cannot be read (old
    /// kernel), `None` when the fd was closed meanwhile.
    fn ask_kind(&mut self, pid: i32, fd: i32) -> Option<Kind> {
        self.path.clear();
        // Writing to a String cannot fail.
        let _ = write!(self.path, "/proc/{pid}/fd/{fd}");
        let mut name = [0u8; 32];
        match rustix::fs::getxattr(self.path.as_str(), "system.sockprotoname", &mut name[..]) {
            Ok(len) => Some(match parse_sockprotoname(&name[..len.min(name.len())]) {
                Some(table) => Kind::Listed(table),
                None => Kind::Unlisted,
            }),
            Err(Errno::NOENT) => None,
            Err(_) => Some(Kind::Unknown),
        }
    }

    /// Reads `table` chunk by chunk, marking the pending sockets it lists, until the `remaining`
    /// unfound sockets are all found or the table ends; returns how many are still unfound.
    fn search_table(
        &mut self,
        process: &Process,
        table: NetTable,
        mut remaining: usize,
    ) -> Result<usize, SampleError> {
        let pid = process.pid;
        let file = match &mut self.tables[table.index()] {
            Some(file) => file,
            slot => slot.insert(ProcFile::open(process, table.path())?),
        };
        let mut offset = 0u64;
        let mut header = true;
        self.buf.clear();
        while remaining > 0 {
            let read = file.read_chunk(pid, offset, &mut self.buf)?;
            offset += read as u64;
            let at_end = read == 0;
            // Only complete lines are parsed; a partial last line waits for the next chunk.
            let complete = match self.buf.iter().rposition(|&b| b == b'\n') {
                Some(last) => last + 1,
                None if at_end => self.buf.len(),
                None => continue,
            };
            let text = String::from_utf8_lossy(&self.buf[..complete]);
            for line in text.lines() {
                if std::mem::take(&mut header) {
                    continue;
                }
                let Some(row) = parse_table_row(table, line) else {
                    continue;
                };
                if let Some(pending) = self.pending.get_mut(&row.inode) {
                    if pending.found.is_none() && pending.kind != Kind::Unlisted {
                        pending.found = Some((table.protocol(), table.state_name(&row)));
                        remaining -= 1;
                    }
                }
            }
            drop(text);
            self.buf.drain(..complete);
            if at_end {
                break;
            }
        }
        Ok(remaining)
    }

    fn tally(&self) -> SocketCounts {
        let mut counts = SocketCounts::default();
        for pending in self.pending.values() {
            let key = match (pending.found, pending.kind) {
                (Some(found), _) => found,
                (None, Kind::Listed(table)) => (table.protocol(), table.unlisted_state()),
                (None, Kind::Unlisted | Kind::Unknown) => (Protocol::Other, "unknown"),
            };
            *counts.by_protocol_state.entry(key).or_insert(0) += 1;
        }
        counts
    }
}

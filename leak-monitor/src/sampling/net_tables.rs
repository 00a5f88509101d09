//! Parsing of the socket tables under /proc/PID/net (`tcp`, `tcp6`, `udp`, `udp6`, `unix`) and of
//! the protocol name a socket reports in its `system.sockprotoname` attribute, plus the names
//! of the states those tables encode.

use super::Protocol;

/// One of the socket tables the sampler reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetTable {
    Tcp,
    Tcp6,
    Udp,
    Udp6,
    Unix,
}

impl NetTable {
    pub const ALL: [NetTable; 5] = [
        NetTable::Tcp,
        NetTable::Tcp6,
        NetTable::Udp,
        NetTable::Udp6,
        NetTable::Unix,
    ];

    /// Path relative to /proc/PID: the target's own network namespace.
    pub fn path(self) -> &'static str {
        match self {
            NetTable::Tcp => "net/tcp",
            NetTable::Tcp6 => "net/tcp6",
            NetTable::Udp => "net/udp",
            NetTable::Udp6 => "net/udp6",
            NetTable::Unix => "net/unix",
        }
    }

    pub fn protocol(self) -> Protocol {
        match self {
            NetTable::Tcp => Protocol::Tcp,
            NetTable::Tcp6 => Protocol::Tcp6,
            NetTable::Udp => Protocol::Udp,
            NetTable::Udp6 => Protocol::Udp6,
            NetTable::Unix => Protocol::Unix,
        }
    }

    /// Position in `ALL`, for per-table arrays and bit sets.
    pub fn index(self) -> usize {
        match self {
            NetTable::Tcp => 0,
            NetTable::Tcp6 => 1,
            NetTable::Udp => 2,
            NetTable::Udp6 => 3,
            NetTable::Unix => 4,
        }
    }

    /// The state of a row of this table, as the `state` label says it.
    pub fn state_name(self, row: &TableRow) -> &'static str {
        match self {
            NetTable::Tcp | NetTable::Tcp6 => tcp_state_name(row.state),
            NetTable::Udp | NetTable::Udp6 => udp_state_name(row.state),
            NetTable::Unix => unix_state_name(row.flags, row.state),
        }
    }

    /// The state of a socket of this protocol that its table does not list. The kernel lists
    /// only hashed inet sockets: a TCP socket outside the table is closed (never connected, or
    /// reset), a UDP one is unbound. Every unix socket is listed, so absence means it went away.
    pub fn unlisted_state(self) -> &'static str {
        match self {
            NetTable::Tcp | NetTable::Tcp6 => "close",
            NetTable::Udp | NetTable::Udp6 => "unconnected",
            NetTable::Unix => "unknown",
        }
    }
}

/// Which table lists a socket, from its `system.sockprotoname` attribute (`TCP`, `TCPv6`, `UDP`,
/// `UDPv6`, `UNIX`, `UNIX-STREAM`, ...; NUL-terminated). `None` for protocols in none of the
/// tables read (netlink, packet, raw, UDP-Lite, ...).
pub fn parse_sockprotoname(name: &[u8]) -> Option<NetTable> {
    let name = name.split(|&b| b == 0).next().unwrap_or_default();
    match name {
        b"TCP" => Some(NetTable::Tcp),
        b"TCPv6" => Some(NetTable::Tcp6),
        b"UDP" => Some(NetTable::Udp),
        b"UDPv6" => Some(NetTable::Udp6),
        b"UNIX" => Some(NetTable::Unix),
        _ if name.starts_with(b"UNIX-") => Some(NetTable::Unix),
        _ => None,
    }
}

/// The fields of a table row the sampler uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableRow {
    pub inode: u64,
    /// `st`: a TCP state code for inet tables, a `socket_state` for unix.
    pub state: u8,
    /// unix `Flags` (`__SO_ACCEPTCON` marks a listener); 0 for inet tables.
    pub flags: u32,
}

/// Parses one line of `table`; `None` for the header and for malformed lines.
///
/// inet: `sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout
/// inode ...`; unix: `Num RefCount Protocol Flags Type St Inode [Path]`.
pub fn parse_table_row(table: NetTable, line: &str) -> Option<TableRow> {
    let mut fields = line.split_ascii_whitespace();
    // Both formats start with a slot or address ending in ':' (the header does not).
    if !fields.next()?.ends_with(':') {
        return None;
    }
    match table {
        NetTable::Unix => {
            let _refcount = hex_u32(fields.next()?)?;
            let _protocol = hex_u32(fields.next()?)?;
            let flags = hex_u32(fields.next()?)?;
            let _type = hex_u32(fields.next()?)?;
            let state = u8::from_str_radix(fields.next()?, 16).ok()?;
            let inode = fields.next()?.parse().ok()?;
            Some(TableRow {
                inode,
                state,
                flags,
            })
        }
        _ => {
            let _local = fields.next()?;
            let _remote = fields.next()?;
            let state = u8::from_str_radix(fields.next()?, 16).ok()?;
            // tx:rx queues, timer, retransmits, uid, timeout, then the inode.
            let inode = fields.nth(5)?.parse().ok()?;
            Some(TableRow {
                inode,
                state,
                flags: 0,
            })
        }
    }
}

/// Every well-formed row of a whole table text (the first line is the header).
pub fn parse_table(table: NetTable, text: &str) -> impl Iterator<Item = TableRow> + '_ {
    text.lines()
        .skip(1)
        .filter_map(move |line| parse_table_row(table, line))
}

/// TCP state codes of include/net/tcp_states.h, as lowercase names.
pub fn tcp_state_name(code: u8) -> &'static str {
    match code {
        0x01 => "established",
        0x02 => "syn_sent",
        0x03 => "syn_recv",
        0x04 => "fin_wait1",
        0x05 => "fin_wait2",
        0x06 => "time_wait",
        0x07 => "close",
        0x08 => "close_wait",
        0x09 => "last_ack",
        0x0A => "listen",
        0x0B => "closing",
        0x0C => "new_syn_recv",
        _ => "unknown",
    }
}

/// UDP reuses the TCP codes: ESTABLISHED once connected, CLOSE otherwise.
pub fn udp_state_name(code: u8) -> &'static str {
    match code {
        0x01 => "established",
        0x07 => "unconnected",
        _ => "unknown",
    }
}

/// The `state` label named `name`, as the tables' state names spell it (a recording read back);
/// `unknown` for a name no table gives.
pub fn known_state(name: &str) -> &'static str {
    let unix = (0..=4).map(|state| unix_state_name(0, state));
    (0..=0x0C)
        .map(tcp_state_name)
        .chain([udp_state_name(0x07), unix_state_name(SO_ACCEPTCON, 0)])
        .chain(unix)
        .find(|known| *known == name)
        .unwrap_or("unknown")
}

/// `__SO_ACCEPTCON` in the unix table's Flags column: the socket listens.
const SO_ACCEPTCON: u32 = 0x0001_0000;

/// unix sockets: a listener is flagged; otherwise St is a `socket_state` (SS_UNCONNECTED = 1,
/// SS_CONNECTING, SS_CONNECTED, SS_DISCONNECTING).
pub fn unix_state_name(flags: u32, state: u8) -> &'static str {
    if flags & SO_ACCEPTCON != 0 {
        return "listening";
    }
    match state {
        1 => "unconnected",
        2 => "connecting",
        3 => "connected",
        4 => "disconnecting",
        _ => "unknown",
    }
}

fn hex_u32(field: &str) -> Option<u32> {
    u32::from_str_radix(field, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:A0D5 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 51234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:A0D5 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 51240 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:C350 0100007F:A0D5 06 00000000:00000000 03:00000F9A 00000000     0        0 0 3 0000000000000000
   3: 0100007F:1F90 0100007F:D2F0 08 00000000:00000001 00:00000000 00000000  1000        0 77001 1 0000000000000000 20 4 1 10 -1
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 90001 1 0000000000000000 100 0 0 10 0
";

    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  115: 0100007F:E0B3 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 61001 2 0000000000000000 0
  116: 0100007F:E0B4 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 61002 2 0000000000000000 0
";

    const UNIX: &str = "Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 31001 /run/app.sock
0000000000000000: 00000003 00000000 00000000 0001 03 31002
0000000000000000: 00000002 00000000 00000000 0002 01 31003 @abstract\u{1}name
0000000000000000: 00000002 00000000 00000000 0001 01 31004 /tmp/path with spaces
";

    fn states(table: NetTable, text: &str) -> Vec<(u64, &'static str)> {
        parse_table(table, text)
            .map(|row| (row.inode, table.state_name(&row)))
            .collect()
    }

    #[test]
    fn tcp_rows_give_inode_and_state() {
        assert_eq!(
            states(NetTable::Tcp, TCP),
            [
                (51234, "listen"),
                (51240, "established"),
                (0, "time_wait"),
                (77001, "close_wait")
            ]
        );
        assert_eq!(states(NetTable::Tcp6, TCP6), [(90001, "listen")]);
    }

    #[test]
    fn udp_rows_are_unconnected_or_established() {
        assert_eq!(
            states(NetTable::Udp, UDP),
            [(61001, "unconnected"), (61002, "established")]
        );
    }

    #[test]
    fn unix_rows_derive_listening_connected_unconnected() {
        assert_eq!(
            states(NetTable::Unix, UNIX),
            [
                (31001, "listening"),
                (31002, "connected"),
                (31003, "unconnected"),
                (31004, "unconnected")
            ]
        );
    }

    #[test]
    fn headers_and_malformed_rows_are_skipped() {
        for line in [
            "",
            "  sl  local_address rem_address   st tx_queue",
            "Num       RefCount Protocol Flags    Type St Inode Path",
            "   0:",
            "   0: 0100007F:A0D5 00000000:0000 ZZ 0:0 0:0 0 0 0 51234",
            "   0: 0100007F:A0D5 00000000:0000 0A 0:0 0:0 0 0 0 -5",
            "   0: 0100007F:A0D5 00000000:0000 1FF 0:0 0:0 0 0 0 5",
            "   0: 0100007F:A0D5 00000000:0000 0A 0:0 0:0 0 0 0",
            "   0: a b 01 c d e f g 99999999999999999999999",
        ] {
            assert_eq!(parse_table_row(NetTable::Tcp, line), None, "{line:?}");
            assert_eq!(parse_table_row(NetTable::Unix, line), None, "{line:?}");
        }
        assert_eq!(
            parse_table_row(NetTable::Unix, "x: 2 0 GG 1 1 5"),
            None,
            "bad flags"
        );
    }

    #[test]
    fn unknown_codes_have_a_name() {
        assert_eq!(tcp_state_name(0), "unknown");
        assert_eq!(tcp_state_name(0xFF), "unknown");
        assert_eq!(udp_state_name(0x0A), "unknown");
        assert_eq!(unix_state_name(0, 9), "unknown");
    }

    #[test]
    fn sockprotoname_picks_the_table() {
        assert_eq!(parse_sockprotoname(b"TCP\0"), Some(NetTable::Tcp));
        assert_eq!(parse_sockprotoname(b"TCPv6\0"), Some(NetTable::Tcp6));
        assert_eq!(parse_sockprotoname(b"UDP\0"), Some(NetTable::Udp));
        assert_eq!(parse_sockprotoname(b"UDPv6"), Some(NetTable::Udp6));
        assert_eq!(parse_sockprotoname(b"UNIX\0"), Some(NetTable::Unix));
        assert_eq!(parse_sockprotoname(b"UNIX-STREAM\0"), Some(NetTable::Unix));
        for other in [
            &b"NETLINK\0"[..],
            b"PACKET\0",
            b"RAW\0",
            b"UDPLITE\0",
            b"",
            b"\0TCP",
        ] {
            assert_eq!(parse_sockprotoname(other), None, "{other:?}");
        }
    }
}

//! /proc/PID/net/{tcp,tcp6,udp,udp6,unix} and the socket protocol xattr: any text parses
//! without a panic, in every table's format, and every row's state has a name.
#![no_main]

use leak_monitor::sampling::net_tables::{parse_sockprotoname, parse_table, NetTable};
use libfuzzer_sys::fuzz_target;

const TABLES: [NetTable; 5] = [
    NetTable::Tcp,
    NetTable::Tcp6,
    NetTable::Udp,
    NetTable::Udp6,
    NetTable::Unix,
];

fuzz_target!(|data: &[u8]| {
    let _ = parse_sockprotoname(data);
    let text = String::from_utf8_lossy(data);
    for table in TABLES {
        for row in parse_table(table, &text) {
            let _ = table.state_name(&row);
        }
        let _ = table.unlisted_state();
    }
});

//! `/proc/PID/fd/N` link targets (`socket:[123]`, `pipe:[4]`, `anon_inode:[eventfd]`, paths):
//! any bytes classify without a panic.
#![no_main]

use leak_monitor::sampling::parse_fd_link;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let link = parse_fd_link(data);
    let _ = (link.kind, link.socket_inode);
});

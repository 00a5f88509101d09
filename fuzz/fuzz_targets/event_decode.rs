//! Ring buffer records from the kernel programs: any bytes decode or are refused, never a
//! panic, and so does the second event of a pair record.
#![no_main]

use leak_monitor::events::event::{decode, metric_kind, pair_second_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(traced) = decode(data) {
        let _ = metric_kind(&traced.event);
    }
    if let Some(second) = pair_second_bytes(data) {
        let _ = metric_kind(&second.event);
    }
});

//! cgroup `memory.max` / `memory.limit_in_bytes` text and cgroup paths: any text parses without
//! a panic, and the ancestor walk of a path ends.
#![no_main]

use leak_monitor::sampling::{cgroup_ancestors, parse_cgroup_memory_limit, parse_pss};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_cgroup_memory_limit(&text);
    let _ = parse_pss(&text);
    // A path of n bytes has at most n + 1 ancestors (itself and the root included).
    let steps = cgroup_ancestors(&text).take(text.len() + 2).count();
    assert!(
        steps <= text.len() + 1,
        "ancestor walk of {text:?} does not end"
    );
});

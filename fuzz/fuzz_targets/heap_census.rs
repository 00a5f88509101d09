//! The heap census reader on adversarial memory: a valid synthetic CPython heap whose words the
//! fuzzer overwrites (links, lengths, type fields, dict tables), then a census and a walk from
//! the roots. Neither may panic, loop without bound, or count past its bounds.
#![no_main]

use leak_monitor::pyheap::census::{synthetic, take, Bounds};
use leak_monitor::pyheap::objects::Types;
use leak_monitor::pyheap::reader::Reader;
use leak_monitor::pyheap::roots::{walk, Roots};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let (mut image, objects) = synthetic::heap(&[10, 3, 40, 9]);
    // Each 10 bytes: a 16-bit offset into the heap's 64 KiB and a word to write there.
    for chunk in data.chunks_exact(10) {
        let offset = u64::from(u16::from_le_bytes([chunk[0], chunk[1]])) & !7;
        image.write(synthetic::BASE + offset, &chunk[2..10]);
    }
    let layout = synthetic::layout();
    let bounds = Bounds {
        max_objects: 100_000,
        max_time: Duration::from_secs(2),
        ..Bounds::default()
    };
    let mut reader = Reader::new(&image, image.mappings());
    if let Ok(census) = take(&mut reader, &layout, synthetic::BASE, bounds) {
        assert!(census.objects <= bounds.max_objects);
        assert!(census.containers.len() <= bounds.max_tracked);
    }
    let mut types = Types::default();
    let modules = objects.first().copied().unwrap_or(0);
    let found = walk(
        &mut reader,
        &layout,
        &mut types,
        &Roots {
            modules,
            frames: &[],
            is_user_file: &|_| true,
        },
    );
    assert!(found.len() <= 40_000);
});

//! Ledger tests on hand-made event sequences.

use super::*;
use crate::events::event::Syscall;
use leak_monitor_common::nr;

fn at(tid: u32, event: TraceEvent) -> Traced {
    Traced {
        tgid: 100,
        tid,
        ts_ns: 1,
        event,
        stack: None,
    }
}

fn open(fd: i32, call: u64, kind: FdKind) -> TraceEvent {
    TraceEvent::FdOpened {
        fd,
        kind,
        call: Syscall(call as u32),
        copied_from: None,
    }
}

#[test]
fn fds_open_close_and_dup_keep_kind() {
    let mut ledger = TargetLedger::default();
    ledger.apply(&at(101, open(3, nr::SOCKET, FdKind::Socket)), Some(7));
    ledger.apply(&at(101, open(4, nr::OPENAT, FdKind::File)), Some(8));
    ledger.apply(
        &at(
            101,
            TraceEvent::FdOpened {
                fd: 9,
                kind: FdKind::Other,
                call: Syscall(nr::DUP as u32),
                copied_from: Some(3),
            },
        ),
        Some(7),
    );
    let counts = ledger.counts();
    assert_eq!((counts.fds, counts.sockets), (3, 2));
    ledger.apply(&at(101, TraceEvent::FdClosed { fd: 4 }), None);
    ledger.apply(
        &at(
            101,
            TraceEvent::FdRangeClosed {
                first: 5,
                last: i32::MAX,
            },
        ),
        None,
    );
    assert_eq!(ledger.counts().fds, 1);
    assert_eq!(ledger.live_by_site().sockets.get(&7), Some(&1));
}

#[test]
fn reconcile_marks_unknown_fds_preexisting_and_drops_missing() {
    let mut ledger = TargetLedger::default();
    ledger.apply(&at(1, open(5, nr::OPENAT, FdKind::File)), Some(1));
    ledger.apply(&at(1, open(6, nr::OPENAT, FdKind::File)), Some(1));
    // procfs: 0-2 were there before, 5 is still open, 6 was closed, 7 appeared unseen,
    // and 5's kind is unchanged so it keeps its origin.
    ledger.reconcile(
        [
            (0, FdKind::Other),
            (1, FdKind::Other),
            (2, FdKind::Other),
            (5, FdKind::File),
            (7, FdKind::Socket),
        ],
        [100, 101],
    );
    let counts = ledger.counts();
    assert_eq!((counts.fds, counts.fds_preexisting), (5, 4));
    assert_eq!(ledger.live_by_site().fds.get(&1), Some(&1));
    assert_eq!((counts.threads, counts.threads_preexisting), (2, 2));
}

#[test]
fn threads_come_and_go_and_exec_leaves_one() {
    let mut ledger = TargetLedger::default();
    ledger.reconcile([], [100]);
    for child in 200..210 {
        ledger.apply(&at(100, TraceEvent::ThreadCreated { child }), Some(3));
    }
    ledger.apply(&at(205, TraceEvent::ThreadExited), None);
    assert_eq!(ledger.counts().threads, 10);
    assert_eq!(ledger.live_by_site().threads.get(&3), Some(&9));
    ledger.apply(&at(201, TraceEvent::Exec), None);
    assert_eq!(ledger.counts().threads, 1);
    assert!(ledger.needs_resync);
}

#[test]
fn an_exited_process_keeps_the_threads_it_had_at_its_last_sample() {
    let mut ledger = TargetLedger::default();
    let when = |tid, ts_ns, event| Traced {
        ts_ns,
        ..at(tid, event)
    };
    // Threads 200..204 made at t=10 by site 3; 203 exits at t=20 (before the sample at
    // t=50); the process exits at t=100, taking the others; 204 was made after the sample.
    for child in 200..203 {
        ledger.apply(&when(100, 10, TraceEvent::ThreadCreated { child }), Some(3));
    }
    ledger.apply(
        &when(100, 10, TraceEvent::ThreadCreated { child: 203 }),
        Some(3),
    );
    ledger.apply(&when(203, 20, TraceEvent::ThreadExited), None);
    ledger.apply(
        &when(100, 60, TraceEvent::ThreadCreated { child: 204 }),
        Some(3),
    );
    for tid in 200..205 {
        if tid != 203 {
            ledger.apply(&when(tid, 100, TraceEvent::ThreadExited), None);
        }
    }
    assert_eq!(ledger.counts().threads, 0);
    assert_eq!(ledger.live_by_site().threads.get(&3), None);
    assert_eq!(
        ledger.live_by_site_as_of(Some(50)).threads.get(&3),
        Some(&3)
    );
    assert_eq!(ledger.live_by_site_as_of(Some(100)).threads.get(&3), None);
}

#[test]
fn pages_fault_once_and_leave_with_unmap_brk_and_remap() {
    let mut ledger = TargetLedger::default();
    let base = 0x7f00_0000_0000u64;
    for i in 0..100 {
        ledger.apply(
            &at(
                1,
                TraceEvent::PageFault {
                    address: base + i * 4096 + 17,
                },
            ),
            Some(2),
        );
    }
    // A second fault on a tracked page (e.g. swapped back in) is not a new page.
    ledger.apply(&at(1, TraceEvent::PageFault { address: base }), Some(9));
    assert_eq!(ledger.counts().pages, 100);
    assert_eq!(ledger.live_by_site().rss_bytes.get(&2), Some(&(100 * 4096)));

    // munmap of the first 10 pages; a partial page length rounds up.
    ledger.apply(
        &at(
            1,
            TraceEvent::Unmapped {
                start: base,
                len: 9 * 4096 + 1,
            },
        ),
        None,
    );
    assert_eq!(ledger.counts().pages, 90);

    // mremap of pages 10..20 to a new place, shrunk to 5 pages.
    ledger.apply(
        &at(
            1,
            TraceEvent::Remapped {
                old_start: base + 10 * 4096,
                old_len: 10 * 4096,
                new_start: 0x1000_0000,
                new_len: 5 * 4096,
            },
        ),
        None,
    );
    assert_eq!(ledger.counts().pages, 85);

    // The heap: grow the break, fault its pages, shrink it back.
    ledger.apply(&at(1, TraceEvent::BrkMoved { brk: 0x60_0000 }), None);
    ledger.apply(&at(1, TraceEvent::BrkMoved { brk: 0x64_0000 }), None);
    for i in 0..64 {
        ledger.apply(
            &at(
                1,
                TraceEvent::PageFault {
                    address: 0x60_0000 + i * 4096,
                },
            ),
            Some(4),
        );
    }
    assert_eq!(ledger.counts().pages, 85 + 64);
    ledger.apply(&at(1, TraceEvent::BrkMoved { brk: 0x62_0000 }), None);
    assert_eq!(ledger.counts().pages, 85 + 32);
}

#[test]
fn the_page_ledger_is_bounded() {
    let mut pages = PageLedger::with_cap(10);
    let origin = Origin {
        tid: 1,
        at_ns: 0,
        site: None,
    };
    for i in 0..25u64 {
        pages.fault(i * PAGE_SIZE, origin);
    }
    assert_eq!((pages.len(), pages.untracked()), (10, 15));
    assert!(pages.pages_by_site().is_empty(), "no site, no blame");
    assert_eq!(pages.pages_by_thread().get(&1), Some(&10));
}

#[test]
fn a_steady_leak_costs_runs_not_pages() {
    let mut pages = PageLedger::default();
    let leak = Origin {
        tid: 1,
        at_ns: 0,
        site: Some(7),
    };
    let other = Origin {
        tid: 2,
        at_ns: 0,
        site: Some(8),
    };
    // 10 000 pages faulted in order by one line, in two orders of arrival: one run.
    for i in (0..5_000u64).chain((5_000..10_000).rev()) {
        pages.fault(0x1000_0000 + i * PAGE_SIZE, leak);
    }
    assert_eq!((pages.len(), pages.runs()), (10_000, 1));
    // Another line's page in a hole of it, then an unmap through the middle of both.
    pages.remove(0x1000_0000 + 100 * PAGE_SIZE, PAGE_SIZE);
    pages.fault(0x1000_0000 + 100 * PAGE_SIZE, other);
    assert_eq!((pages.len(), pages.runs()), (10_000, 3));
    pages.remove(0x1000_0000 + 50 * PAGE_SIZE, 100 * PAGE_SIZE);
    assert_eq!(pages.len(), 9_900);
    assert_eq!(pages.pages_by_site().get(&7), Some(&9_900));
    assert_eq!(pages.pages_by_site().get(&8), None);
    // Moving the tail elsewhere keeps its origin and count; a refault changes nothing.
    pages.remap(
        0x1000_0000 + 9_000 * PAGE_SIZE,
        1_000 * PAGE_SIZE,
        0x9000_0000,
        500 * PAGE_SIZE,
    );
    assert_eq!(pages.len(), 9_400);
    pages.fault(0x9000_0000, other);
    assert_eq!(pages.pages_by_site().get(&7), Some(&9_400));
    assert_eq!(pages.runs(), 3);
}

#[test]
fn huge_unmaps_cost_what_is_tracked_not_their_length() {
    let mut pages = PageLedger::default();
    let origin = Origin {
        tid: 1,
        at_ns: 0,
        site: Some(1),
    };
    pages.fault(0x5000, origin);
    // 128 TiB of address space: must not iterate page by page.
    pages.remove(0, 1 << 47);
    assert!(pages.is_empty());
}

#[test]
fn a_page_run_takes_the_site_of_the_page_it_continues() {
    let mut ledger = TargetLedger::default();
    let base = 0x7f00_0000_0000u64;
    // Thread 1 faults one page (with its stack: site 4), then the kernel sends the next 31 as a
    // run.
    ledger.apply(&at(1, TraceEvent::PageFault { address: base + 5 }), Some(4));
    ledger.apply(
        &at(
            1,
            TraceEvent::PageRun {
                start: base + 4096,
                pages: 31,
            },
        ),
        None,
    );
    assert_eq!(ledger.counts().pages, 32);
    assert_eq!(ledger.live_by_site().rss_bytes.get(&4), Some(&(32 * 4096)));

    // A run whose page below belongs to another thread (or is unknown) is counted, not blamed.
    ledger.apply(
        &at(
            2,
            TraceEvent::PageRun {
                start: base + 32 * 4096,
                pages: 8,
            },
        ),
        None,
    );
    ledger.apply(
        &at(
            2,
            TraceEvent::PageRun {
                start: base + (1 << 30),
                pages: 2,
            },
        ),
        None,
    );
    assert_eq!(ledger.counts().pages, 42);
    assert_eq!(ledger.live_by_site().rss_bytes.get(&4), Some(&(32 * 4096)));
    assert_eq!(ledger.live_by_site().rss_bytes.len(), 1);
}

#[test]
fn heap_blocks_live_until_freed_and_count_per_site() {
    let mut ledger = TargetLedger::default();
    let alloc = |address, size| TraceEvent::Allocated { address, size };
    ledger.apply(&at(1, alloc(0x1000, 30_000)), Some(3));
    ledger.apply(&at(1, alloc(0x9000, 30_000)), Some(3));
    ledger.apply(&at(1, alloc(0x20000, 65_536)), Some(5));
    ledger.apply(&at(1, TraceEvent::Freed { address: 0x20000 }), None);
    // A block allocated before attach, freed now: not known, nothing changes.
    ledger.apply(&at(1, TraceEvent::Freed { address: 0x50000 }), None);
    let counts = ledger.counts();
    assert_eq!((counts.heap_blocks, counts.heap_bytes), (2, 60_000));
    let live = ledger.live_by_site();
    assert_eq!(live.heap_bytes.get(&3), Some(&60_000));
    assert_eq!(live.heap_bytes.get(&5), None);
    // An exec starts a new heap.
    ledger.apply(&at(1, TraceEvent::Exec), None);
    assert_eq!(ledger.counts().heap_blocks, 0);
}

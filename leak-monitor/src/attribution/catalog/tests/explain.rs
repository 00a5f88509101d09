//! `explain`: the resource hint picks the pattern, fixes quote the line's names, evidence
//! marks the line, and lines with no pattern are `Unknown`.

use crate::attribution::catalog::{explain, UNKNOWN};
use crate::attribution::LeakType;
use crate::resource::Resource;

const RENDER: &str = "class Renderer:\n    def __init__(self):\n        self._rendered = {}\n\n    def handle(self, key, page):\n        self._rendered[key] = bytearray(page)\n        return key\n";

#[test]
fn rss_growth_at_a_setitem_is_an_unbounded_collection_with_a_quoted_fix() {
    let e = explain(RENDER, 6, Resource::RssBytes);
    assert_eq!(e.leak_type, LeakType::UnboundedCollection);
    assert_eq!(e.pattern, "unbounded-collection");
    assert!(e.fix.contains("self._rendered"), "{}", e.fix);
    assert!(
        e.evidence
            .lines()
            .any(|l| l.starts_with('>') && l.contains("self._rendered[key]")),
        "{}",
        e.evidence
    );
    assert_eq!(e.evidence.lines().count(), 4, "{}", e.evidence);
}

#[test]
fn fd_growth_at_open_is_resource_not_closed() {
    let src = "KEEP = []\n\ndef log(path):\n    f = open(path, 'a')\n    KEEP.append(f)\n";
    let e = explain(src, 4, Resource::OpenFds);
    assert_eq!(e.leak_type, LeakType::ResourceNotClosed);
    assert!(e.fix.contains("with open(path, 'a') as f:"), "{}", e.fix);
    // Even where a `with` is used, fd growth at the opening line is the opened resource.
    let managed = "def f(p):\n    with open(p) as fh:\n        return fh.read()\n";
    let e = explain(managed, 2, Resource::OpenFds);
    assert_eq!(e.leak_type, LeakType::ResourceNotClosed);
    // Its fix reads as one sentence (the source's line continuations are not in it).
    assert!(e.fix.contains("block short, move"), "{}", e.fix);
    assert!(!e.fix.contains("   "), "{}", e.fix);
}

#[test]
fn thread_growth_at_start_is_thread_not_joined() {
    let src = "import threading\n\ndef handle(req):\n    t = threading.Thread(target=work)\n    t.start()\n    t.join()\n";
    // Joined statically, but the runtime saw threads grow here: still the thread pattern.
    for line in [4, 5] {
        let e = explain(src, line, Resource::Threads);
        assert_eq!(e.leak_type, LeakType::ThreadNotJoined, "line {line}");
        assert_eq!(e.pattern, "thread-not-joined");
    }
}

#[test]
fn body_of_unbounded_memoized_function_is_the_cache() {
    let src = "import functools\n\n@functools.lru_cache(maxsize=None)\ndef render(k):\n    return bytes(k)\n";
    let e = explain(src, 5, Resource::RssBytes);
    assert_eq!(e.leak_type, LeakType::UnboundedCache);
    assert!(e.fix.contains("maxsize=1024"), "{}", e.fix);
    assert!(e.fix.contains("render"), "{}", e.fix);
}

#[test]
fn tensor_and_handler_and_cycle_are_explained() {
    let tensor = "import torch\nlosses = []\n\ndef step(model, x):\n    loss = model(x)\n    losses.append(loss)\n";
    let e = explain(tensor, 6, Resource::RssBytes);
    assert_eq!(e.leak_type, LeakType::TensorAccumulation);
    assert!(e.fix.contains("losses.append(loss.item())"), "{}", e.fix);

    let handler = "class V:\n    def __init__(self, bus):\n        bus.connect(self.on)\n";
    let e = explain(handler, 3, Resource::RssBytes);
    assert_eq!(e.leak_type, LeakType::EventHandler);
    assert!(e.fix.contains("bus.disconnect(self.on)"), "{}", e.fix);

    let cycle = "def make(a, b):\n    a.other = b\n    b.other = a\n";
    let e = explain(cycle, 2, Resource::RssBytes);
    assert_eq!(e.leak_type, LeakType::CircularReference);
    assert!(e.fix.contains("weakref"), "{}", e.fix);
}

#[test]
fn resource_hint_rules_out_mismatched_weak_guesses() {
    // A local list appended to: weak for memory, nothing at all for threads.
    let src = "def f(xs):\n    out = []\n    out.append(xs)\n    return out\n";
    assert_eq!(
        explain(src, 3, Resource::RssBytes).leak_type,
        LeakType::UnboundedCollection
    );
    assert_eq!(
        explain(src, 3, Resource::Threads).leak_type,
        LeakType::Unknown
    );
}

#[test]
fn lines_without_a_pattern_are_unknown_with_an_honest_fix() {
    let src = "def f(x):\n    y = x + 1\n    return y\n";
    let e = explain(src, 2, Resource::RssBytes);
    assert_eq!(e.leak_type, LeakType::Unknown);
    assert_eq!(e.pattern, UNKNOWN);
    assert!(
        e.fix.starts_with("No known leak pattern at this line"),
        "{}",
        e.fix
    );
    assert!(e.evidence.contains(">"), "{}", e.evidence);
    // Out of range or empty sources never panic.
    let e = explain(src, 999, Resource::OpenFds);
    assert_eq!(e.leak_type, LeakType::Unknown);
    assert_eq!(e.evidence, "");
    assert_eq!(
        explain("", 0, Resource::Sockets).leak_type,
        LeakType::Unknown
    );
}

/// The runnable corpus of `tests/python/patterns/`: (source, resource it leaks, leak type).
const CORPUS: &[(&str, Resource, LeakType)] = &[
    (
        include_str!("../../../../../tests/python/patterns/unbounded_collection.py"),
        Resource::RssBytes,
        LeakType::UnboundedCollection,
    ),
    (
        include_str!("../../../../../tests/python/patterns/unbounded_cache.py"),
        Resource::RssBytes,
        LeakType::UnboundedCache,
    ),
    (
        include_str!("../../../../../tests/python/patterns/unbounded_memo_dict.py"),
        Resource::RssBytes,
        LeakType::UnboundedCache,
    ),
    (
        include_str!("../../../../../tests/python/patterns/circular_reference.py"),
        Resource::RssBytes,
        LeakType::CircularReference,
    ),
    (
        include_str!("../../../../../tests/python/patterns/event_handler.py"),
        Resource::RssBytes,
        LeakType::EventHandler,
    ),
    (
        include_str!("../../../../../tests/python/patterns/resource_not_closed.py"),
        Resource::OpenFds,
        LeakType::ResourceNotClosed,
    ),
    (
        include_str!("../../../../../tests/python/patterns/socket_not_closed.py"),
        Resource::Sockets,
        LeakType::ResourceNotClosed,
    ),
    (
        include_str!("../../../../../tests/python/patterns/tensor_accumulation.py"),
        Resource::RssBytes,
        LeakType::TensorAccumulation,
    ),
    (
        include_str!("../../../../../tests/python/patterns/thread_not_joined.py"),
        Resource::Threads,
        LeakType::ThreadNotJoined,
    ),
];

#[test]
fn every_corpus_leak_line_is_explained_with_its_type() {
    for (source, resource, leak_type) in CORPUS {
        let line = source
            .lines()
            .position(|l| l.trim_end().ends_with("# LEAK"))
            .map(|i| u32::try_from(i + 1).unwrap())
            .expect("a # LEAK line");
        let e = explain(source, line, *resource);
        assert_eq!(e.leak_type, *leak_type, "line {line}:\n{}", e.evidence);
        assert!(
            e.evidence
                .lines()
                .any(|l| l.starts_with('>') && l.contains("# LEAK")),
            "{}",
            e.evidence
        );
        assert!(!e.fix.is_empty());
    }
}

#[test]
fn every_line_of_the_corpus_is_explained_without_panicking() {
    for (source, _, _) in CORPUS {
        let lines = u32::try_from(source.lines().count()).unwrap();
        for line in 0..=lines + 1 {
            for resource in Resource::ALL {
                let e = explain(source, line, resource);
                let in_range = (1..=lines).contains(&line);
                assert_eq!(
                    e.evidence.lines().filter(|l| l.starts_with('>')).count(),
                    usize::from(in_range),
                    "line {line}:\n{}",
                    e.evidence
                );
                assert_eq!(e.pattern == "unknown", e.leak_type == LeakType::Unknown);
            }
        }
    }
}

#[test]
fn evidence_rows_have_no_trailing_blanks_and_thread_fix_names_the_handle() {
    let src = "import threading\n\ndef handle(req):\n    t = threading.Thread(target=work)\n    t.start()\n\n";
    let e = explain(src, 5, Resource::Threads);
    assert!(
        e.evidence.lines().all(|l| l == l.trim_end()),
        "{:?}",
        e.evidence
    );
    assert!(e.fix.contains("`t.join(timeout=...)`"), "{}", e.fix);
}

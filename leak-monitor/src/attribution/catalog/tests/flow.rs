//! `locate`: from the line the runtime blames (the allocation) to the line that keeps the
//! value (the `# LEAK` line of the corpus), in the same function or from the caller's line;
//! decoys and values that die with the function are not located.

use crate::attribution::catalog::locate;
use crate::attribution::LeakType;
use crate::resource::Resource;

macro_rules! corpus {
    ($name:literal) => {
        include_str!(concat!("../../../../../tests/python/patterns/", $name))
    };
}

/// 1-based line of the `# LEAK` marker.
fn leak_line(source: &str) -> u32 {
    let index = source
        .lines()
        .position(|l| l.trim_end().ends_with("# LEAK"))
        .expect("a # LEAK line");
    u32::try_from(index + 1).unwrap()
}

/// The line containing `needle` nearest to `from` (inclusive), searching up or down.
fn nearest(source: &str, needle: &str, from: u32, up: bool) -> u32 {
    let lines: Vec<&str> = source.lines().collect();
    let from = usize::try_from(from - 1).unwrap();
    let index = if up {
        (0..=from).rev().find(|&i| lines[i].contains(needle))
    } else {
        (from..lines.len()).find(|&i| lines[i].contains(needle))
    };
    u32::try_from(index.expect(needle) + 1).unwrap()
}

/// Asserts `locate` at the `needle` line nearest the leak goes to the `# LEAK` line.
fn assert_located(source: &str, needle: &str, up: bool, resource: Resource, leak_type: LeakType) {
    let leak = leak_line(source);
    let blamed = nearest(source, needle, leak, up);
    // Allocations other than the opening call itself are not on the `# LEAK` line.
    assert_eq!(
        blamed == leak,
        needle.contains("open(") || needle.contains("socket(") || needle == ".start()"
    );
    let located = locate(source, blamed, resource)
        .unwrap_or_else(|| panic!("nothing located from line {blamed} ({needle})"));
    assert_eq!(located.line, leak, "from line {blamed} ({needle})");
    assert_eq!(located.explanation.leak_type, leak_type, "from {blamed}");
    assert!(
        located
            .explanation
            .evidence
            .lines()
            .any(|l| l.starts_with('>') && l.contains("# LEAK")),
        "{}",
        located.explanation.evidence
    );
}

#[test]
fn allocation_lines_of_the_corpus_are_located_at_the_retaining_line() {
    let rss = Resource::RssBytes;
    let cases: &[(&str, &str, bool, Resource, LeakType)] = &[
        (
            corpus!("unbounded_collection.py"),
            "bytearray(",
            true,
            rss,
            LeakType::UnboundedCollection,
        ),
        (
            corpus!("unbounded_memo_dict.py"),
            "bytearray(",
            true,
            rss,
            LeakType::UnboundedCache,
        ),
        (
            corpus!("event_handler.py"),
            "bytearray(",
            true,
            rss,
            LeakType::EventHandler,
        ),
        // The body of the memoized function allocates; the decorator keeps it.
        (
            corpus!("unbounded_cache.py"),
            "bytes(",
            false,
            rss,
            LeakType::UnboundedCache,
        ),
        (
            corpus!("resource_not_closed.py"),
            "os.open(",
            true,
            Resource::OpenFds,
            LeakType::ResourceNotClosed,
        ),
        (
            corpus!("socket_not_closed.py"),
            "socket.socket(",
            true,
            Resource::Sockets,
            LeakType::ResourceNotClosed,
        ),
        (
            corpus!("thread_not_joined.py"),
            ".start()",
            true,
            Resource::Threads,
            LeakType::ThreadNotJoined,
        ),
    ];
    for (source, needle, up, resource, leak_type) in cases {
        assert_located(source, needle, *up, *resource, *leak_type);
    }
}

#[test]
fn retention_in_another_function_is_located_from_the_callers_line() {
    let rss = Resource::RssBytes;
    for source in [
        corpus!("tensor_accumulation.py"),
        corpus!("circular_reference.py"),
    ] {
        // The allocating frame (`Model.__call__`, `Node.__init__`) keeps nothing itself.
        let allocation = nearest(source, "bytearray(", 1, false);
        assert_eq!(locate(source, allocation, rss), None, "line {allocation}");
    }
    let tensor = corpus!("tensor_accumulation.py");
    assert_located(tensor, "model(", true, rss, LeakType::TensorAccumulation);
    let cycle = corpus!("circular_reference.py");
    assert_located(cycle, "Node(", true, rss, LeakType::CircularReference);
    assert_located(
        cycle,
        "parent = Node(",
        true,
        rss,
        LeakType::CircularReference,
    );

    let inline = "import torch\nLOSSES = []\n\ndef step(model, batch):\n    loss = criterion(model(batch))\n    loss.backward()\n    LOSSES.append(loss)\n";
    let located = locate(inline, 5, rss).expect("located");
    assert_eq!(located.line, 7);
    assert_eq!(located.explanation.leak_type, LeakType::TensorAccumulation);
}

#[test]
fn values_held_by_other_objects_are_followed_and_rebound_names_are_not() {
    let rss = Resource::RssBytes;
    let boxed = "LOG = []\n\ndef f(k):\n    data = bytearray(10)\n    entry = (k, data)\n    LOG.append(entry)\n";
    assert_eq!(locate(boxed, 4, rss).map(|l| l.line), Some(6));
    let rebound =
        "LOG = []\n\ndef f():\n    data = bytearray(10)\n    data = None\n    LOG.append(data)\n";
    assert_eq!(locate(rebound, 4, rss), None);
    let measured =
        "LOG = []\n\ndef f():\n    data = bytearray(10)\n    n = len(data)\n    LOG.append(n)\n";
    assert_eq!(locate(measured, 4, rss), None);
}

#[test]
fn local_lists_and_other_functions_are_not_followed() {
    let rss = Resource::RssBytes;
    let local =
        "def f(n):\n    x = bytearray(n)\n    out = []\n    out.append(x)\n    return out\n";
    assert_eq!(locate(local, 2, rss), None);
    let nested = "LOG = []\n\ndef f():\n    x = bytearray(1)\n    def g():\n        LOG.append(x)\n    return g\n";
    assert_eq!(locate(nested, 4, rss), None);
    let module = "LOG = []\nx = bytearray(1)\nLOG.append(x)\n";
    assert_eq!(locate(module, 2, rss), None);
}

#[test]
fn no_line_of_a_decoy_is_located_as_a_leak() {
    let decoys = [
        corpus!("clean_bounded_cache.py"),
        corpus!("clean_dict_pop.py"),
        corpus!("clean_joined_thread.py"),
        corpus!("clean_local_list.py"),
        corpus!("clean_tensor_item.py"),
        corpus!("clean_unsubscribe.py"),
        corpus!("clean_with_open.py"),
    ];
    for source in decoys {
        let lines = u32::try_from(source.lines().count()).unwrap();
        for line in 1..=lines {
            for resource in Resource::ALL {
                let located = locate(source, line, resource);
                assert!(
                    located
                        .as_ref()
                        .is_none_or(|l| l.explanation.leak_type == LeakType::Unknown),
                    "line {line} {resource:?}: {located:?}"
                );
            }
        }
    }
}

#[test]
fn broken_or_out_of_range_sources_never_panic() {
    let sources = [
        "",
        "def f(:\n    x = bytearray(\n    LOG.append(x\n",
        "class A:\n    def __init__(self\n        self.b = [\n        BUS.subscribe(self.on",
        corpus!("event_handler.py"),
    ];
    for source in sources {
        let lines = u32::try_from(source.lines().count()).unwrap();
        for line in 0..=lines + 2 {
            for resource in Resource::ALL {
                let _ = locate(source, line, resource);
            }
        }
    }
}

/// A worker sampled at its `sleep` is located at the statement of its loop that keeps the
/// value; a sleep outside a loop, or a loop with nothing kept, is not located.
#[test]
fn a_thread_resting_in_its_loop_is_located_at_the_loop_statement_that_keeps_the_value() {
    use crate::attribution::catalog::locate_in_resting_loop;
    let source = include_str!("../../../../../tests/python/worker_thread_leak.py");
    let leak = leak_line(source);
    let sleep = nearest(source, "time.sleep(", leak, false);
    let located = locate_in_resting_loop(source, sleep, Resource::RssBytes).expect("located");
    assert_eq!(located.line, leak);
    assert_eq!(located.explanation.leak_type, LeakType::UnboundedCollection);

    let clean = "import time\n\ndef poll(q):\n    while True:\n        item = q.get()\n        print(item)\n        time.sleep(1)\n";
    assert_eq!(locate_in_resting_loop(clean, 7, Resource::RssBytes), None);
    let once = "import time\nLOG = []\n\ndef once():\n    LOG.append(1)\n    time.sleep(1)\n";
    assert_eq!(locate_in_resting_loop(once, 6, Resource::RssBytes), None);
    // Not a resting call: the caller keeps its own explanation.
    assert_eq!(
        locate_in_resting_loop(source, leak - 1, Resource::RssBytes),
        None
    );
}

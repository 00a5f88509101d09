//! `scan`: each pattern found on its line, each near miss left alone.

use super::found;
use crate::attribution::catalog::scan;
use crate::attribution::LeakType;

#[test]
fn global_list_appended_in_a_function_is_unbounded() {
    let src = "EVENTS = []\n\ndef handle(e):\n    EVENTS.append(e)\n";
    assert_eq!(found(src), [(4, "unbounded-collection")]);
    let finding = &scan(src)[0];
    assert_eq!(finding.leak_type, LeakType::UnboundedCollection);
    assert!(finding.message.contains("EVENTS"), "{}", finding.message);
}

#[test]
fn self_attribute_setitem_and_closure_are_unbounded() {
    let src = "class R:\n    def __init__(self):\n        self.pages = {}\n    def handle(self, k, p):\n        self.pages[k] = p\n\ndef outer():\n    items = []\n    def inner(x):\n        items.append(x)\n    return inner\n";
    assert_eq!(
        found(src),
        [(5, "unbounded-collection"), (10, "unbounded-collection")]
    );
}

#[test]
fn local_list_and_drained_containers_are_not_findings() {
    let local =
        "def f(xs):\n    out = []\n    for x in xs:\n        out.append(x)\n    return out\n";
    assert_eq!(found(local), []);
    let popped = "PENDING = {}\n\ndef add(k, v):\n    PENDING[k] = v\n\ndef done(k):\n    PENDING.pop(k, None)\n";
    assert_eq!(found(popped), []);
    let deque = "import collections\nRECENT = collections.deque(maxlen=100)\n\ndef add(x):\n    RECENT.append(x)\n";
    assert_eq!(found(deque), []);
    let init =
        "class A:\n    def __init__(self, x):\n        self.xs = []\n        self.xs.append(x)\n";
    assert_eq!(found(init), []);
}

#[test]
fn unbounded_lru_cache_and_cache_decorators_are_findings() {
    let src = "import functools\n\n@functools.lru_cache(maxsize=None)\ndef render(k):\n    return k * 2\n\n@functools.cache\ndef load(k):\n    return k\n";
    assert_eq!(found(src), [(3, "unbounded-cache"), (7, "unbounded-cache")]);
}

#[test]
fn bounded_lru_cache_is_not_a_finding() {
    let src = "import functools\n\n@functools.lru_cache(maxsize=128)\ndef render(k):\n    return k * 2\n\n@functools.lru_cache\ndef other(k):\n    return k\n";
    assert_eq!(found(src), []);
}

#[test]
fn memo_dict_never_evicted_is_a_cache_finding() {
    let src = "_memo = {}\n\ndef fib(n):\n    if n in _memo:\n        return _memo[n]\n    _memo[n] = n\n    return n\n";
    assert_eq!(found(src), [(6, "unbounded-cache")]);
    let named = "class S:\n    def __init__(self):\n        self._cache = {}\n    def get(self, k):\n        self._cache[k] = k\n";
    assert_eq!(found(named), [(5, "unbounded-cache")]);
}

#[test]
fn cache_dict_with_eviction_is_not_a_finding() {
    let src = "_cache = {}\n\ndef get(k):\n    if len(_cache) > 100:\n        _cache.pop(next(iter(_cache)))\n    _cache[k] = k\n";
    assert_eq!(found(src), []);
}

#[test]
fn mutual_and_self_references_are_cycles() {
    let src = "def link(a, b):\n    a.peer = b\n    b.peer = a\n\nclass Node:\n    def __init__(self):\n        self.me = self\n    def __del__(self):\n        pass\n";
    let got = found(src);
    assert!(got.contains(&(2, "circular-reference")), "{got:?}");
    assert!(got.contains(&(7, "circular-reference")), "{got:?}");
    let del = scan(src).into_iter().find(|f| f.line == 7).unwrap();
    assert!(del.message.contains("__del__"), "{}", del.message);
}

#[test]
fn weak_back_reference_is_not_a_cycle() {
    let src = "import weakref\n\ndef link(parent, child):\n    child.parent = weakref.ref(parent)\n    parent.children.append(child)\n";
    assert_eq!(found(src), []);
}

#[test]
fn handler_registered_per_call_without_removal_is_a_finding() {
    let src = "class View:\n    def __init__(self, bus):\n        bus.subscribe(self.on_event)\n    def on_event(self, e):\n        pass\n\ndef watch(emitter):\n    emitter.on('data', lambda d: print(d))\n";
    assert_eq!(found(src), [(3, "event-handler")]);
    let closure = "BUS = object()\n\ndef attach():\n    def on_tick(t):\n        pass\n    BUS.add_listener(on_tick)\n";
    assert_eq!(found(closure), [(6, "event-handler")]);
}

#[test]
fn handler_with_unsubscribe_is_not_a_finding() {
    let src = "class View:\n    def __init__(self, bus):\n        self.bus = bus\n        self.bus.subscribe(self.on_event)\n    def close(self):\n        self.bus.unsubscribe(self.on_event)\n    def on_event(self, e):\n        pass\n";
    assert_eq!(found(src), []);
    let data = "import socket\n\ndef dial(addr):\n    s = socket.socket()\n    s.connect(addr)\n    s.close()\n";
    assert_eq!(found(data), []);
}

#[test]
fn opened_file_kept_without_close_is_a_finding() {
    let src = "HANDLES = []\n\ndef log(path):\n    f = open(path, 'a')\n    f.write('x')\n    HANDLES.append(f)\n\ndef dial(addr):\n    CONNS.append(socket.create_connection(addr))\n";
    let got = found(src);
    assert!(got.contains(&(4, "resource-not-closed")), "{got:?}");
    assert!(got.contains(&(9, "resource-not-closed")), "{got:?}");
}

#[test]
fn with_open_and_closed_resources_are_not_findings() {
    let src = "import os\n\ndef read(path):\n    with open(path) as f:\n        return f.read()\n\ndef raw(path):\n    fd = os.open(path, os.O_RDONLY)\n    try:\n        return os.read(fd, 10)\n    finally:\n        os.close(fd)\n\ndef peek(path):\n    return len(open(path).read())\n";
    assert_eq!(found(src), []);
}

#[test]
fn loss_appended_without_item_is_tensor_accumulation() {
    let src = "import torch\nlosses = []\n\ndef train(model, criterion, batches):\n    total = 0\n    for x, y in batches:\n        loss = criterion(model(x), y)\n        losses.append(loss)\n        total += loss\n";
    assert_eq!(
        found(src),
        [(8, "tensor-accumulation"), (9, "tensor-accumulation")]
    );
}

#[test]
fn model_words_outside_ml_code_are_not_tensors() {
    // No framework, no grad_fn: `encoder(...)` in an email module is not a tensor.
    let src = "LINES = []\n\ndef wrap(encoder, data):\n    for d in data:\n        out = encoder(d)\n        LINES.append(out)\n";
    let got = found(src);
    assert_eq!(got, [(6, "unbounded-collection")]);
    let net =
        "import torch\nNETS = []\n\ndef grow(net):\n    s = net.supernet()\n    NETS.append(s)\n";
    assert_eq!(found(net), [(6, "unbounded-collection")]);
}

#[test]
fn loss_item_is_not_tensor_accumulation() {
    let src = "import torch\nlosses = []\n\ndef train(model, criterion, batches):\n    total = 0.0\n    for x, y in batches:\n        loss = criterion(model(x), y)\n        losses.append(loss.item())\n        total += loss.item()\n";
    let got = found(src);
    assert!(
        !got.iter().any(|(_, p)| *p == "tensor-accumulation"),
        "{got:?}"
    );
}

#[test]
fn thread_started_without_join_is_a_finding() {
    let src = "import threading\n\ndef handle(req):\n    t = threading.Thread(target=work, args=(req,), daemon=True)\n    t.start()\n\ndef fire():\n    threading.Thread(target=work).start()\n";
    assert_eq!(
        found(src),
        [(5, "thread-not-joined"), (8, "thread-not-joined")]
    );
}

#[test]
fn joined_threads_are_not_findings() {
    let src = "import threading\n\ndef handle(req):\n    t = threading.Thread(target=work)\n    t.start()\n    t.join()\n\ndef many(n):\n    threads = []\n    for _ in range(n):\n        t = threading.Thread(target=work)\n        t.start()\n        threads.append(t)\n    for t in threads:\n        t.join()\n";
    assert_eq!(found(src), []);
}

#[test]
fn broken_source_is_scanned_as_far_as_it_parses() {
    let src = "EVENTS = []\n\ndef handle(e):\n    EVENTS.append(e)\n\ndef broken(:\n    ((( \n";
    assert_eq!(found(src), [(4, "unbounded-collection")]);
    for garbage in ["", "\0\0\0", "def", ")))", "class :\n  x[", "@\n"] {
        let _ = scan(garbage);
    }
}

#[test]
fn constant_index_writes_are_not_growth() {
    let src = "class B:\n    def __init__(self):\n        self.buf = bytearray(10)\n    def on(self, e):\n        self.buf[0] = e\n        self.buf[-1] = e\n        self.meta['last'] = e\n";
    assert_eq!(found(src), []);
}

#[test]
fn self_referring_definitions_and_deep_nesting_terminate() {
    let src = "TOTALS = []\n\ndef f(parts):\n    s = ''\n    for p in parts:\n        s = s + p\n        TOTALS.append(s)\n";
    assert_eq!(found(src), [(7, "unbounded-collection")]);
    let deep = format!("x = {}1{}\n", "(".repeat(2000), ")".repeat(2000));
    let _ = scan(&deep);
    let chain = format!(
        "def f(a):\n    y = a{}\n    OUT.append(y)\n",
        " + a".repeat(5000)
    );
    let _ = scan(&chain);
}

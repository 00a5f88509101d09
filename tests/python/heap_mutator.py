#!/usr/bin/env python3
"""Decoy: mutates its heap as fast as it can, while its memory stays bounded.

A tight loop (no sleep, one core busy) keeps the heap changing under any reader. Every
step it creates and drops a list, dict, set, tuple, str or bytes of a random size (up to
--max-items items); appends to one of the long-lived `_grow_list`, `_grow_dict` and
`_grow_set` and clears it once it passes a random cap below --max-items (so their item
arrays and hash tables are reallocated again and again); overwrites a random slot of the
long-lived `_slots` list with a fresh object; and builds reference cycles (pairs of Nodes
pointing at each other, self-referencing lists and dicts), dropping some to the cyclic GC
and keeping others in `_cycles`, which are broken by hand and cleared once it holds 2000.
gc.collect() runs every --collect-ms (default 200). Every container is capped, so memory
stays within a few tens of MB.
Not a leak. READY is printed after the first second of work.
"""

import argparse
import gc
import random
import time


class Node:
    def __init__(self, label):
        self.label = label
        self.peer = None
        self.children = []


_grow_list = []
_grow_dict = {}
_grow_set = set()
_slots = [None] * 4096
_cycles = []


def random_size(rng, max_items):
    """Mostly small, sometimes large: sizes spread over every allocator size class."""
    return min(max_items, int(rng.expovariate(1.0 / rng.choice((4, 40, 400, 4000)))))


def make_object(rng, max_items, serial):
    size = random_size(rng, max_items)
    kind = rng.randrange(6)
    if kind == 0:
        return [serial + i for i in range(size)]
    if kind == 1:
        return {f"k{serial}-{i}": i for i in range(size)}
    if kind == 2:
        return {serial * 31 + i for i in range(size)}
    if kind == 3:
        return tuple(range(serial, serial + size))
    if kind == 4:
        return f"s{serial}-" * size
    return bytes(size * 8)


def grow(rng, serial, caps, max_items):
    which = rng.randrange(3)
    for i in range(rng.randrange(1, 64)):
        if which == 0:
            _grow_list.append((serial, i))
        elif which == 1:
            _grow_dict[f"g{serial}-{i}"] = [serial, i]
        else:
            _grow_set.add(serial * 64 + i)
    container = (_grow_list, _grow_dict, _grow_set)[which]
    if len(container) > caps[which]:
        container.clear()
        caps[which] = rng.randrange(16, max_items)


def make_cycle(rng, serial):
    kind = rng.randrange(3)
    if kind == 0:
        a, b = Node(f"a{serial}"), Node(f"b{serial}")
        a.peer, b.peer = b, a
        a.children.append(b)
        return a
    if kind == 1:
        loop = [serial]
        loop.append(loop)
        return loop
    loop = {"serial": serial}
    loop["self"] = loop
    return loop


def break_cycles():
    for item in _cycles:
        if isinstance(item, Node):
            item.peer.peer = None
            item.peer = None
            item.children.clear()
        else:
            item.clear()
    _cycles.clear()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-items", type=int, default=50_000)
    parser.add_argument("--collect-ms", type=float, default=200.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    # Seeded, so every run mutates the same way.
    rng = random.Random(args.seed)
    caps = [rng.randrange(16, args.max_items) for _ in range(3)]
    collect_every = args.collect_ms / 1000.0
    started = time.monotonic()
    next_collect = started + collect_every
    ready = False
    serial = 0
    while True:
        serial += 1
        # Short-lived: built and dropped at once.
        make_object(rng, args.max_items, serial)
        grow(rng, serial, caps, args.max_items)
        _slots[rng.randrange(len(_slots))] = make_object(rng, 64, serial)
        cycle = make_cycle(rng, serial)
        if serial % 2:
            _cycles.append(cycle)
            if len(_cycles) >= 2000:
                break_cycles()
        del cycle
        now = time.monotonic()
        if now >= next_collect:
            gc.collect()
            next_collect = now + collect_every
        if not ready and now - started > 1.0:
            print("READY", flush=True)
            ready = True


if __name__ == "__main__":
    main()

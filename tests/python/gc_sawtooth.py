#!/usr/bin/env python3
"""Decoy: a batch job whose memory is a sawtooth over a flat floor.

Every --period seconds (default 4) a batch builds a tree of --nodes nodes (default 60,000:
~30 MiB) over ~1.5 s. Children point back to their parents, so the tree is all reference
cycles and only the cyclic GC can free it. The batch is summarised, dropped and
gc.collect() reclaims it; RSS falls back to the same floor every time.
Not a leak. READY is printed after one batch has run (the allocator's pools are warm).
"""

import argparse
import gc
import time


class Node:
    __slots__ = ("parent", "children", "label", "payload")

    def __init__(self, parent, index):
        self.parent = parent
        self.children = []
        self.label = f"node-{index}"
        self.payload = bytes(300 + index % 400)


def build_batch(node_count, build_seconds):
    """Builds the tree in steps, pausing between them so the ramp lasts ~build_seconds."""
    steps = 10
    root = Node(None, 0)
    frontier = [root]
    built = 1
    for step in range(steps):
        target = node_count * (step + 1) // steps
        while built < target:
            parent = frontier[built % len(frontier)]
            child = Node(parent, built)
            parent.children.append(child)
            frontier.append(child)
            built += 1
        time.sleep(build_seconds / steps)
    return root, frontier


def summarise(nodes):
    return sum(len(node.payload) for node in nodes)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--period", type=float, default=4.0, help="seconds between batches")
    parser.add_argument("--nodes", type=int, default=60_000)
    parser.add_argument("--build-seconds", type=float, default=1.5)
    args = parser.parse_args()

    ready = False
    next_at = time.monotonic()
    while True:
        root, nodes = build_batch(args.nodes, args.build_seconds)
        summarise(nodes)
        del root, nodes
        gc.collect()
        if not ready:
            print("READY", flush=True)
            ready = True
        next_at += args.period
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main()

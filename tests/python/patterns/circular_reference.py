"""Circular reference: parent and child point at each other, and the service disabled the
cyclic GC for latency, so no pair is ever freed.

Leaks about 1 MB/s of RSS; runs until killed and prints nothing.
"""

import gc
import time


class Node:
    def __init__(self, name):
        self.name = name
        self.payload = bytearray(10_000)
        self.parent = None
        self.child = None


def build(name):
    parent = Node(name)
    child = Node(name + "/child")
    child.parent = parent  # LEAK
    parent.child = child
    return len(parent.name)


def main():
    gc.disable()
    step = 0
    while True:
        step += 1
        build(f"n{step}")
        time.sleep(0.02)


if __name__ == "__main__":
    main()

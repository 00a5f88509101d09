"""Decoy: lists built per call and dropped when the call returns; a weak back-reference
instead of a cycle.

Runs until killed and prints nothing.
"""

import weakref
import time


class Node:
    def __init__(self, name):
        self.name = name
        self.parent = None
        self.children = []


def batch(n):
    out = []
    for i in range(n):
        out.append(bytearray(1_000))
    return out


def build(name):
    parent = Node(name)
    child = Node(name + "/child")
    child.parent = weakref.ref(parent)
    parent.children.append(child)
    return len(parent.children)


def main():
    step = 0
    while True:
        step += 1
        batch(100)
        build(f"n{step}")
        time.sleep(0.01)


if __name__ == "__main__":
    main()

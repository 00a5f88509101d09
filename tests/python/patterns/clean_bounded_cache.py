"""Decoy: a bounded `lru_cache(maxsize=128)` and a bounded history deque. Memory levels off.

Runs until killed and prints nothing.
"""

import collections
import functools
import time

HISTORY = collections.deque(maxlen=100)


@functools.lru_cache(maxsize=128)
def render(page_id):
    return bytes(10_000) + page_id.to_bytes(8, "little")


def handle(page_id):
    page = render(page_id % 1000)
    HISTORY.append(len(page))


def main():
    page_id = 0
    while True:
        page_id += 1
        handle(page_id)
        time.sleep(0.01)


if __name__ == "__main__":
    main()

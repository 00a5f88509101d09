"""Unbounded cache: `lru_cache(maxsize=None)` memoizes a renderer called with ever-new keys.

Leaks about 1 MB/s of RSS; runs until killed and prints nothing.
"""

import functools
import time


@functools.lru_cache(maxsize=None)  # LEAK
def render(page_id):
    return bytes(10_000) + page_id.to_bytes(8, "little")


def main():
    page_id = 0
    while True:
        page_id += 1
        render(page_id)
        time.sleep(0.01)


if __name__ == "__main__":
    main()

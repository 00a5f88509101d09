"""Unbounded cache: a dict memo table on the renderer object that is never evicted.

Leaks about 1 MB/s of RSS; runs until killed and prints nothing.
"""

import time


class Renderer:
    def __init__(self):
        self._rendered_cache = {}

    def render(self, key):
        if key in self._rendered_cache:
            return self._rendered_cache[key]
        page = bytearray(10_000)
        self._rendered_cache[key] = page  # LEAK
        return page


def main():
    renderer = Renderer()
    key = 0
    while True:
        key += 1
        renderer.render(f"page-{key}")
        time.sleep(0.01)


if __name__ == "__main__":
    main()

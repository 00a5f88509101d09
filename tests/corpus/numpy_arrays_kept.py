#!/usr/bin/env python3
"""C-extension-backed leak: every request keeps a numpy array (its buffer is malloc'd by numpy,
not by Python's allocator) in a module-level list. ~1 MB/s. Needs numpy; prints READY, then
runs until killed.
"""

import time

import numpy as np

_history = []


def handle(request_id):
    frame = np.ones(128 * 1024 // 8 * 1, dtype=np.float64) * request_id
    _history.append(frame)  # LEAK
    return float(frame[0])


def main():
    print("READY", flush=True)
    request_id = 0
    while True:
        handle(request_id)
        request_id += 1
        time.sleep(0.125)


if __name__ == "__main__":
    main()

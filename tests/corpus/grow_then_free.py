#!/usr/bin/env python3
"""Decoy: a batch job that builds a large result for ~12 s, then frees it and idles.

Grows about 2 MB/s while it builds, drops everything at once, and stays flat. Growth that is
given back is not a leak. Prints READY at start, then runs until killed.
"""

import time


def main():
    print("READY", flush=True)
    while True:
        batch = []
        for _ in range(120):
            batch.append(bytearray(200 * 1024))
            time.sleep(0.1)
        del batch
        time.sleep(20)


if __name__ == "__main__":
    main()

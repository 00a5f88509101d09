#!/usr/bin/env python3
"""Leaks fds and threads for --seconds (default 30), then exits on its own.

Each tick (every 0.1 s) opens /dev/null and keeps the handle, and every fifth tick starts a
thread that waits forever. True rates: 10 fds/s and 2 threads/s. Prints READY once leaking.
"""

import argparse
import threading
import time

_handles = []


def wait_forever():
    threading.Event().wait()


def tick(n):
    _handles.append(open("/dev/null", encoding="utf-8"))  # LEAK fd
    if n % 5 == 0:
        threading.Thread(target=wait_forever, daemon=True).start()  # LEAK thread


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    print("READY", flush=True)
    end = time.monotonic() + args.seconds
    n = 0
    while time.monotonic() < end:
        tick(n)
        n += 1
        time.sleep(0.1)


if __name__ == "__main__":
    main()

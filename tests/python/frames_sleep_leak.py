#!/usr/bin/env python3
"""A leak line followed at once by a sleep: what a stack read after the event misses.

--mode fd: one file opened and kept per iteration; --mode bytes: one 100 KiB bytearray kept
per iteration. Prints the leaking thread's native id (TID n) and READY, then runs until killed.
"""

import argparse
import threading
import time

files = []
blobs = []


def leak_fd(path):
    files.append(open(path))  # LEAK fd


def leak_bytes():
    blobs.append(bytearray(100 * 1024))  # LEAK bytes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["fd", "bytes"], default="fd")
    parser.add_argument("--sleep", type=float, default=0.05)
    args = parser.parse_args()
    print(f"TID {threading.get_native_id()}", flush=True)
    print("READY", flush=True)
    while True:
        if args.mode == "fd":
            leak_fd(__file__)
        else:
            leak_bytes()
        time.sleep(args.sleep)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""fd churn benchmark: os.close(os.open(path, os.O_RDONLY)) as fast as one thread can.

Prints READY, then for each line read on stdin (the benchmark attaches its monitor in
between) runs --windows windows of --window seconds each (defaults 4 x 0.5 s) opening and
closing --path (default: this file), and prints one line, `RESULT` followed by the operations
per second of each window. Exits at the end of stdin. No fd is kept: a steady process, all
churn (unless --leak-fds-per-second keeps that many fds a second open for good, a slow leak
under the churn); measuring several monitors in one process keeps the differences between processes
(placement, caches, address layout) out of their ratios.

    python3 tests/python/bench_fd_churn.py --windows 6 --window 1.0 < /dev/null
    python3 tests/python/bench_fd_churn.py --leak-fds-per-second 1 < /dev/null
"""

import argparse
import os
import select
import sys
import time

# Ops between clock reads: keeps time.perf_counter() out of the measured cost.
CHECK_EVERY = 256


LEAKED = []


def churn(path, seconds, leak_every):
    flags = os.O_RDONLY
    ops = 0
    start = time.perf_counter()
    deadline = start + seconds
    next_leak = start + leak_every
    while True:
        for _ in range(CHECK_EVERY):
            os.close(os.open(path, flags))
        ops += CHECK_EVERY
        now = time.perf_counter()
        if now >= next_leak:
            LEAKED.append(os.open(path, flags))
            next_leak += leak_every
        if now >= deadline:
            return ops / (now - start)


def wait_for_go():
    """Reads one line of stdin, polling: a thread blocked in read() would never run the pending
    calls through which a tool injects code (memray attach), so it could not attach. False at
    the end of stdin."""
    while not select.select([sys.stdin], [], [], 0.05)[0]:
        pass
    return sys.stdin.readline() != ""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default=__file__, help="file opened and closed")
    parser.add_argument("--windows", type=int, default=4, help="measurement windows")
    parser.add_argument("--window", type=float, default=0.5, help="seconds per window")
    parser.add_argument(
        "--leak-fds-per-second", type=float, default=0.0, help="fds kept open for good"
    )
    args = parser.parse_args()
    leak_every = 1.0 / args.leak_fds_per_second if args.leak_fds_per_second > 0 else float("inf")

    print("READY", flush=True)
    while wait_for_go():
        rates = [churn(args.path, args.window, leak_every) for _ in range(args.windows)]
        print("RESULT " + " ".join(f"{r:.1f}" for r in rates), flush=True)


if __name__ == "__main__":
    main()

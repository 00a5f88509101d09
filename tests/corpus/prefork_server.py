#!/usr/bin/env python3
"""Multi-process server, pre-fork style: the master forks --workers workers (default 2); each
worker keeps every request body (~500 KB/s per worker) while the master only waits. Followed with
`serve --match prefork_server`: all processes match, only the workers leak.
Prints `READY <worker pids>` once the workers run, then runs until killed (workers die with it).
"""

import argparse
import os
import signal
import time

_bodies = []


def work():
    # Die with the master.
    while os.getppid() != 1:
        _bodies.append(bytearray(50 * 1024))  # LEAK
        time.sleep(0.1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    children = []
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:
            work()
            os._exit(0)
        children.append(pid)
    print("READY " + " ".join(str(c) for c in children), flush=True)
    try:
        while True:
            time.sleep(1)
    finally:
        for child in children:
            os.kill(child, signal.SIGKILL)


if __name__ == "__main__":
    main()

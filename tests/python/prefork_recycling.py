#!/usr/bin/env python3
"""Pre-fork pool that recycles its workers, as gunicorn --max-requests does: the master keeps
--workers workers; each handles --rate "requests" a second, driven by itself (no network), and
exits after --requests of them; the master forks a new one in its place. With --leak, each
request's body (--body-bytes) is kept in a module-level list. Prints READY once the first workers
run, then runs until killed (workers die with it).
"""

import argparse
import os
import signal
import time

_kept = []


def handle(body_bytes, leak):
    if leak:
        _kept.append(bytearray(body_bytes))  # LEAK
    else:
        body = bytearray(body_bytes)
        del body


def work(master, args):
    period = 1.0 / args.rate
    next_at = time.monotonic()
    for _ in range(args.requests):
        # Die with the master.
        if os.getppid() != master:
            break
        handle(args.body_bytes, args.leak)
        next_at += period
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rate", type=float, default=60.0)
    parser.add_argument("--body-bytes", type=int, default=20 * 1024)
    parser.add_argument("--leak", action="store_true")
    # Only seen in the command line: lets a test follow its own pool and no other.
    parser.add_argument("--name", default="pool")
    args = parser.parse_args()
    master = os.getpid()
    children = set()

    def spawn():
        pid = os.fork()
        if pid == 0:
            try:
                work(master, args)
            finally:
                os._exit(0)
        children.add(pid)

    def stop(signum, frame):
        for child in children:
            os.kill(child, signal.SIGKILL)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    for _ in range(args.workers):
        spawn()
    print("READY", flush=True)
    while True:
        pid, _ = os.wait()
        children.discard(pid)
        spawn()


if __name__ == "__main__":
    main()

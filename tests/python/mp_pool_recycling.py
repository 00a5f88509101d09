#!/usr/bin/env python3
"""A multiprocessing.Pool whose workers are recycled after --tasks-per-child tasks
(maxtasksperchild), fed --rate tasks a second by the main process. With --leak, each task keeps
its result's buffer (--body-bytes) in a module-level list of the worker, which goes when the
worker is recycled: a leak per task that no worker lives long enough to show. Prints READY once
the pool runs, then runs until killed (the pool's workers die with it).
"""

import argparse
import ctypes
import multiprocessing
import os
import signal
import time

_kept = []


def die_with_master():
    # PR_SET_PDEATHSIG: a worker goes with the master even when the master is killed.
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)


def task(body_bytes, leak):
    body = bytearray(body_bytes)
    if leak:
        _kept.append(body)  # LEAK
    return len(body)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks-per-child", type=int, default=300)
    parser.add_argument("--rate", type=float, default=120.0)
    parser.add_argument("--body-bytes", type=int, default=20 * 1024)
    parser.add_argument("--leak", action="store_true")
    # Lets a test tell its pool's processes from others' (unused otherwise).
    parser.add_argument("--name", default="")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    # Workers forked from this process, as on Linux by default before Python 3.14.
    context = multiprocessing.get_context("fork")
    with context.Pool(
        args.workers, initializer=die_with_master, maxtasksperchild=args.tasks_per_child
    ) as pool:
        pool.apply(task, (1, False))
        print("READY", flush=True)
        period = 1.0 / args.rate
        next_at = time.monotonic()
        while True:
            pool.apply_async(task, (args.body_bytes, args.leak))
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)


if __name__ == "__main__":
    main()

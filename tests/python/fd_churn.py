#!/usr/bin/env python3
"""fd churn: opens and closes --path (default: this file) as fast as one thread can, keeping
none: a steady process whose fds come and go. With --leak-after S, from S seconds after READY
on, it also keeps one more fd every --leak-every seconds (default 0.1), in a list (the LEAK
line), until killed.
Prints READY once looping, then runs until killed.
"""

import argparse
import os
import time

_kept = []


def keep(path):
    _kept.append(open(path, "rb"))  # LEAK


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default=__file__, help="file opened and closed")
    parser.add_argument("--leak-after", type=float, default=None, help="seconds before leaking")
    parser.add_argument("--leak-every", type=float, default=0.1, help="seconds between kept fds")
    args = parser.parse_args()

    print("READY", flush=True)
    start = time.monotonic()
    next_leak = None if args.leak_after is None else start + args.leak_after
    while True:
        for _ in range(256):
            os.close(os.open(args.path, os.O_RDONLY))
        if next_leak is not None and time.monotonic() >= next_leak:
            keep(args.path)
            next_leak += args.leak_every


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Allocator retention (fragmentation, no leak of objects): in phases of different object
sizes, a batch job builds --batch objects, keeps one in fifty and drops the rest. The kept
ones pin nearly every pymalloc pool of their size, so the freed space cannot go back to the
system nor serve the next phase's size. Every few phases the oldest kept objects are dropped
in halves,
so live objects shrink while RSS stays high. Prints READY after the first phase.
"""

import argparse
import time

SIZES = [40, 100, 200, 300, 420]
_kept = []


def phase(size, batch):
    made = [bytes(size) + str(i).encode() for i in range(batch)]
    _kept.append(made[::50])
    del made


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=300_000)
    parser.add_argument("--period", type=float, default=4.0)
    args = parser.parse_args()
    phase(SIZES[0], args.batch)
    print("READY", flush=True)
    n = 1
    while True:
        time.sleep(args.period)
        if n < len(SIZES):
            phase(SIZES[n], args.batch)
        elif n < len(SIZES) + 2:
            # Later, half of what each phase kept is let go: live objects shrink, but the
            # rest still pin their pools.
            _kept[:] = [kept[::2] for kept in _kept]
        n += 1


if __name__ == "__main__":
    main()

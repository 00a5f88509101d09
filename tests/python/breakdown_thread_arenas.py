#!/usr/bin/env python3
"""glibc arena growth that plateaus: --threads worker threads each make bursts of --burst
buffers above pymalloc's limit (so glibc serves them, each thread from its own arena), keep
the last of each burst for a while and free the rest. Each arena grows to a burst's size and
keeps it (a kept buffer near the top stops the trim). Threads start one per second: RSS rises
for the first --threads seconds, then holds, with most of it free space inside glibc's
arenas. No leak. Prints READY at start.
"""

import argparse
import random
import threading
import time


def worker(seed, burst, stop):
    kept = []
    while not stop.is_set():
        # The same sizes every burst: freed chunks fit the next burst, so the arena stops
        # growing once it holds one burst.
        rng = random.Random(seed)
        made = [bytearray(rng.randrange(1_000, 60_000)) for _ in range(burst)]
        kept.append(made[-1])
        del made
        if len(kept) > 4:
            kept.pop(0)
        time.sleep(0.2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=12)
    parser.add_argument("--burst", type=int, default=60)
    args = parser.parse_args()
    stop = threading.Event()
    threads = [
        threading.Thread(target=worker, args=(i, args.burst, stop), daemon=True)
        for i in range(args.threads)
    ]
    print("READY", flush=True)
    # One more thread (and arena) per second: RSS rises for --threads seconds, then holds.
    for t in threads:
        t.start()
        time.sleep(1)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()

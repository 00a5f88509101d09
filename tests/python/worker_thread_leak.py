#!/usr/bin/env python3
"""RSS leak in a worker thread while the main thread is busy computing.

The main thread spends about --busy-ms of every 100 ms (default 70) in pure-Python number
crunching, holding the GIL. A "price refresher" worker thread takes a --snapshot-bytes
snapshot (default 64 KiB) every --period-ms (default 125) and files it in
`_price_history` under its timestamp, where it stays forever.
True rate = snapshot_bytes / period: 65536 B / 0.125 s = 524,288 bytes/s with the
defaults; the thread count stays at 2. READY is printed once the worker runs.
"""

import argparse
import threading
import time

# Snapshots by time, "for the history chart", never expired.
_price_history = {}


def refresh_prices(snapshot_bytes, period, started):
    next_at = time.monotonic()
    tick = 0
    while True:
        _price_history[tick] = bytearray(snapshot_bytes)  # LEAK
        if tick == 0:
            started.set()
        tick += 1
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))


def crunch(seed):
    total = 0
    for i in range(20_000):
        total = (total * 31 + i * seed) % 1_000_003
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot-bytes", type=int, default=64 * 1024)
    parser.add_argument("--period-ms", type=float, default=125.0)
    parser.add_argument("--busy-ms", type=float, default=70.0)
    args = parser.parse_args()

    started = threading.Event()
    threading.Thread(
        target=refresh_prices,
        args=(args.snapshot_bytes, args.period_ms / 1000.0, started),
        name="price-refresher",
        daemon=True,
    ).start()
    started.wait()
    print("READY", flush=True)

    busy = args.busy_ms / 1000.0
    seed = 1
    while True:
        tick_start = time.monotonic()
        while time.monotonic() - tick_start < busy:
            seed = crunch(seed) or 1
        time.sleep(max(0.0, 0.1 - (time.monotonic() - tick_start)))


if __name__ == "__main__":
    main()

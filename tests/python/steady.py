#!/usr/bin/env python3
"""Decoy: an allocation-heavy service loop with no growth at all.

Every tick (--period-ms, default 100) it spends about --busy-ms (default 40) handling
requests: building dicts and lists of small objects, JSON round trips, sorting, and a
1 MiB scratch buffer. Everything is dropped before the next request, so RSS stays flat
while the allocator churns. Not a leak. READY is printed after the first second of work.
"""

import argparse
import json
import time


def handle_request(request_id):
    rows = [{"id": i, "name": f"user-{request_id}-{i}", "score": (i * 7919) % 1000} for i in range(2000)]
    encoded = json.dumps(rows)
    decoded = json.loads(encoded)
    ranked = sorted(decoded, key=lambda row: row["score"])
    scratch = bytearray(1024 * 1024)
    scratch[:: 4096] = b"\x01" * len(scratch[:: 4096])
    return len(ranked) + len(encoded) + scratch[4096]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--period-ms", type=float, default=100.0)
    parser.add_argument("--busy-ms", type=float, default=40.0)
    args = parser.parse_args()

    period, busy = args.period_ms / 1000.0, args.busy_ms / 1000.0
    started = time.monotonic()
    ready = False
    next_at = started
    request_id = 0
    while True:
        tick_end = time.monotonic() + busy
        while time.monotonic() < tick_end:
            handle_request(request_id)
            request_id += 1
        if not ready and time.monotonic() - started > 1.0:
            print("READY", flush=True)
            ready = True
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main()

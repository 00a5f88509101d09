#!/usr/bin/env python3
"""Decoy: the same service churn with two bounded stores. Memory fills for ~10 s, then stays flat.

A service loop handles --rps requests per second (default 250). Each request builds about
--scratch-bytes (default 600,000) of short-lived scratch: a decode buffer, a list of 40
small dicts and a JSON round trip of them, all freed when the request returns. It keeps a
small record (a 3-key dict holding a --record-bytes bytes payload, default 3000) in two
places: the module-level dict `_cache`, bounded to --cache-size entries (default 2000; once
full, each insert evicts the oldest entry, `next(iter(_cache))`), and the module-level
`_recent`, a collections.deque(maxlen=--maxlen) (default 3000). The cache is full after
cache_size / rps = 8 s and the deque after maxlen / rps = 12 s, ~16 MB in all; from then on
every request evicts as much as it adds.
Not a leak. READY is printed after the first second of work, during the fill.
"""

import argparse
import collections
import json
import random
import time

# Recent responses by key, "for retries", evicted oldest first.
_cache = {}
# The last --maxlen records "for the debug page"; main() recreates it with the flag's maxlen.
_recent = collections.deque(maxlen=3000)


def handle_request(request_id, rng, scratch_bytes):
    """Builds ~scratch_bytes of scratch, all freed on return; returns the ~3 KB response body."""
    buffer = bytearray(scratch_bytes)
    rows = [
        {"id": i, "user": f"u{request_id}-{i}", "score": rng.random(), "tags": [i % 7, i % 11]}
        for i in range(40)
    ]
    body = json.dumps(rows).encode()
    buffer[: len(body)] = body
    parsed = json.loads(body)
    index = {row["user"]: row for row in parsed}
    return body if index else b""


def remember(request_id, body, record_bytes, cache_size):
    record = {"request": request_id, "status": 200, "payload": body[:record_bytes].ljust(record_bytes)}
    if len(_cache) >= cache_size:
        del _cache[next(iter(_cache))]
    _cache[f"req-{request_id}"] = record
    _recent.append({"request": request_id, "payload": body[:record_bytes].ljust(record_bytes)})


def main():
    global _recent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rps", type=float, default=250.0, help="requests per second")
    parser.add_argument("--record-bytes", type=int, default=3000)
    parser.add_argument("--scratch-bytes", type=int, default=600_000)
    parser.add_argument("--cache-size", type=int, default=2000)
    parser.add_argument("--maxlen", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    _recent = collections.deque(maxlen=args.maxlen)
    period = 1.0 / args.rps
    # Seeded, so every run churns the same way.
    rng = random.Random(args.seed)
    started = time.monotonic()
    ready = False
    # Deadline schedule: a late request is caught up, so the long-run rate is exact.
    next_at = started
    request_id = 0
    while True:
        body = handle_request(request_id, rng, args.scratch_bytes)
        remember(request_id, body, args.record_bytes, args.cache_size)
        request_id += 1
        if not ready and time.monotonic() - started > 1.0:
            print("READY", flush=True)
            ready = True
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Heap leak in a worker thread's local variable, under heavy churn in the main thread.

The main thread runs a service loop of --rps requests per second (default 250). Each
request builds about --scratch-bytes (default 600,000) of short-lived scratch: a decode
buffer, a list of 40 small dicts and a JSON round trip of them, all freed when the request
returns. It then hands one --record-bytes bytes item (default 3000) to a "dedup" worker
thread through a queue.Queue. The worker keeps every item it has seen in `seen`, a local
variable of `worker`, which is never trimmed; so the leak is reachable only from that
thread's frame.
True rate ~= rps * (record_bytes + ~40 B of bytes header and list slot): 250 * ~3040 B
~= 760,000 bytes/s with the defaults, against ~150 MB/s of churn (~195x the leak).
The thread count stays at 2. READY is printed after the first second of work.
"""

import argparse
import json
import queue
import random
import threading
import time


def worker(q):
    seen = []
    while True:
        item = q.get()
        seen.append(item)  # LEAK


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rps", type=float, default=250.0, help="requests per second")
    parser.add_argument("--record-bytes", type=int, default=3000)
    parser.add_argument("--scratch-bytes", type=int, default=600_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    q = queue.Queue()
    threading.Thread(target=worker, args=(q,), name="dedup-worker", daemon=True).start()

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
        q.put(body[: args.record_bytes].ljust(args.record_bytes))
        request_id += 1
        if not ready and time.monotonic() - started > 1.0:
            print("READY", flush=True)
            ready = True
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main()

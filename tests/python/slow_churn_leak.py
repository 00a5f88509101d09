#!/usr/bin/env python3
"""Slow RSS leak hidden under heavy allocation churn.

Every tick (--period-ms, default 100) the service handles a burst of requests for about
--busy-ms (default 40): thousands of short-lived dicts, strings and lists, JSON round
trips and a working set of 0 to --max-working-set-bytes (default 4 MiB) of buffers, all
freed again, so RSS moves by megabytes from one moment to the next. One request per tick also appends a fixed-size
--record-bytes audit record (default 30 KiB) to `_audit_trail`, which is never trimmed.
True rate = record_bytes / period: 30720 B / 0.1 s = 307,200 bytes/s with the defaults.
READY is printed after the first second of work.
"""

import argparse
import json
import random
import time

# Every audited response, "until the exporter ships them", which it never does.
_audit_trail = []


def handle_request(request_id, working_set_bytes):
    rows = [{"id": i, "user": f"u{request_id}-{i}", "tags": [i % 7, i % 11]} for i in range(1500)]
    body = json.dumps(rows).encode()
    parsed = json.loads(body)
    # A working set of varying size (decode buffers, partial results) that makes RSS noisy.
    buffers = [bytearray(64 * 1024) for _ in range(working_set_bytes // (64 * 1024))]
    return body[:200] if parsed and buffers is not None else b""


def audit(response, record_bytes):
    _audit_trail.append(response.ljust(record_bytes))  # LEAK


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--period-ms", type=float, default=100.0)
    parser.add_argument("--busy-ms", type=float, default=40.0)
    parser.add_argument("--record-bytes", type=int, default=30 * 1024)
    parser.add_argument("--max-working-set-bytes", type=int, default=4 * 1024 * 1024)
    args = parser.parse_args()

    period, busy = args.period_ms / 1000.0, args.busy_ms / 1000.0
    started = time.monotonic()
    ready = False
    next_at = started
    request_id = 0
    # Seeded, so every run churns the same way.
    sizes = random.Random(1)
    while True:
        tick_end = time.monotonic() + busy
        response = handle_request(request_id, sizes.randrange(args.max_working_set_bytes))
        audit(response, args.record_bytes)
        while time.monotonic() < tick_end:
            request_id += 1
            handle_request(request_id, sizes.randrange(args.max_working_set_bytes))
        if not ready and time.monotonic() - started > 1.0:
            print("READY", flush=True)
            ready = True
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Heap leak under heavy churn: every connection subscribes to an event bus and never unsubscribes.

A service loop handles --rps requests per second (default 250). Each request builds about
--scratch-bytes (default 600,000) of short-lived scratch: a decode buffer, a list of 40
small dicts and a JSON round trip of them, all freed when the request returns. It also
creates a Connection holding a --record-bytes bytes payload (default 3000) and subscribes
its bound method `conn.on_event` to the module-level `BUS` (an EventBus). The bound method
keeps the Connection (and its payload) alive in `BUS._handlers` forever.
True rate ~= rps * (record_bytes + ~200 B of Connection, bound method and list slot): 250 *
~3200 B ~= 800,000 bytes/s with the defaults, against ~150 MB/s of churn (~185x the leak).
READY is printed after the first second of work.
"""

import argparse
import json
import random
import time


class EventBus:
    def __init__(self):
        self._handlers = []

    def subscribe(self, handler):
        self._handlers.append(handler)

    def unsubscribe(self, handler):
        # Nothing ever calls this.
        self._handlers.remove(handler)

    def publish(self, event):
        for handler in self._handlers:
            handler(event)


BUS = EventBus()


class Connection:
    def __init__(self, payload):
        self.payload = payload
        self.events = 0

    def on_event(self, event):
        self.events += 1


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
        conn = Connection(body[: args.record_bytes].ljust(args.record_bytes))
        BUS.subscribe(conn.on_event)  # LEAK
        request_id += 1
        if not ready and time.monotonic() - started > 1.0:
            print("READY", flush=True)
            ready = True
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Request loop benchmark: an allocation-heavy handler called as fast as one thread can.

Each request builds 200 small dicts with f-strings, round-trips them through JSON and sorts
them, then drops everything: the allocator churns, RSS stays flat. With --leak-bytes N, one
N-byte audit record (written through, so its pages are resident) is also kept every
--leak-every-ms milliseconds (default 100) and never freed: a slow leak under heavy churn at a
rate that does not depend on the loop's speed (30720 bytes every 100 ms = 307,200 bytes/s).

Prints READY, then waits for one line on stdin (the benchmark attaches its monitor in
between), then runs --windows windows of --window seconds each (defaults 4 x 1.0 s). Prints
one line, `RESULT` followed by the requests per second of each window, and exits.

    python3 tests/python/bench_requests.py --windows 4 --window 1.0 < /dev/null
    python3 tests/python/bench_requests.py --leak-bytes 30720 < /dev/null
"""

import argparse
import json
import select
import sys
import time

# Every audited response, "until the exporter ships them", which it never does.
_audit_trail = []

# Requests between clock reads.
CHECK_EVERY = 8


def handle(request_id):
    rows = [{"id": i, "name": f"user-{request_id}-{i}", "score": (i * 7919) % 1000} for i in range(200)]
    decoded = json.loads(json.dumps(rows))
    ranked = sorted(decoded, key=lambda row: row["score"])
    return len(ranked)


def serve(seconds, leak_bytes, leak_every, state):
    requests = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(CHECK_EVERY):
            handle(state["id"])
            state["id"] += 1
        requests += CHECK_EVERY
        now = time.perf_counter()
        if leak_bytes and now >= state["next_leak"]:
            record = f"audit {state['id']} ".encode().ljust(leak_bytes, b".")
            _audit_trail.append(record)  # LEAK
            state["next_leak"] += leak_every
        if now >= deadline:
            return requests / (now - start)


def wait_for_go():
    """Reads one line of stdin, polling: a thread blocked in read() would never run the pending
    calls through which a tool injects code (memray attach), so it could not attach."""
    while not select.select([sys.stdin], [], [], 0.05)[0]:
        pass
    sys.stdin.readline()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=4, help="measurement windows")
    parser.add_argument("--window", type=float, default=1.0, help="seconds per window")
    parser.add_argument("--leak-bytes", type=int, default=0, help="bytes kept per leak tick")
    parser.add_argument("--leak-every-ms", type=float, default=100.0)
    args = parser.parse_args()

    print("READY", flush=True)
    wait_for_go()
    state = {"id": 0, "next_leak": time.perf_counter()}
    leak_every = args.leak_every_ms / 1000.0
    rates = [serve(args.window, args.leak_bytes, leak_every, state) for _ in range(args.windows)]
    print("RESULT " + " ".join(f"{r:.1f}" for r in rates), flush=True)


if __name__ == "__main__":
    main()

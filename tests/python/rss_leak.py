#!/usr/bin/env python3
"""RSS leak: a request handler keeps every response body in a module-level list.

One request every --period-ms; its --body-bytes body is zero-filled when created (so its
pages are resident at once) and stays in `_sent_bodies` forever.
True rate = body_bytes / period: 102400 B / 0.1 s = 1,024,000 bytes/s with the defaults.
Prints READY once serving, then runs until killed.
"""

import argparse
import time

# Kept "for debugging", never trimmed.
_sent_bodies = []


def handle_request(request_id, body_bytes):
    header = f"HTTP/1.1 200 OK\r\nX-Request-Id: {request_id}\r\n\r\n".encode()
    _sent_bodies.append(bytearray(body_bytes))  # LEAK
    return len(header) + body_bytes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--body-bytes", type=int, default=100 * 1024)
    parser.add_argument("--period-ms", type=float, default=100.0)
    args = parser.parse_args()

    period = args.period_ms / 1000.0
    print("READY", flush=True)
    # Deadline schedule: a late tick is caught up, so the long-run rate is exact.
    next_at = time.monotonic()
    request_id = 0
    while True:
        handle_request(request_id, args.body_bytes)
        request_id += 1
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main()

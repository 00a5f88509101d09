#!/usr/bin/env python3
"""Decoy: a bounded buffer of recent responses. RSS fills for ~10 s, then stays flat.

Each request (--rate per second, default 10) keeps its --item-bytes response (default
256 KiB) in a collections.deque(maxlen=--maxlen) (default 100): the buffer fills to
~25 MiB in maxlen / rate = 10 s, then every append evicts the oldest item.
Not a leak. READY is printed before the fill so a monitor sees the fill itself.
"""

import argparse
import collections
import json
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second")
    parser.add_argument("--item-bytes", type=int, default=256 * 1024)
    parser.add_argument("--maxlen", type=int, default=100)
    args = parser.parse_args()

    recent = collections.deque(maxlen=args.maxlen)
    period = 1.0 / args.rate
    print("READY", flush=True)
    next_at = time.monotonic()
    request_id = 0
    while True:
        request = json.dumps({"id": request_id, "path": f"/items/{request_id % 500}"})
        response = bytearray(args.item_bytes)
        response[: len(request)] = request.encode()
        recent.append(response)
        request_id += 1
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main()

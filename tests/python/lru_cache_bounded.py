#!/usr/bin/env python3
"""Decoy: functools.lru_cache(maxsize=...) over ever-new keys. RSS fills, then stays flat.

Thumbnails are rendered for --rate requests per second (default 20), mostly for new image
ids (keys keep growing) with some repeats of recent ones. Each value is --value-bytes
(default 64 KiB); the cache holds at most --maxsize (default 256) values, ~16 MiB, reached
after ~15 s, after which every miss evicts the least recently used value.
Not a leak. READY is printed before the fill so a monitor sees the fill itself.
"""

import argparse
import functools
import time


def render_thumbnail(image_id, value_bytes):
    thumbnail = bytearray(value_bytes)
    thumbnail[:16] = image_id.to_bytes(16, "little")
    return thumbnail


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--value-bytes", type=int, default=64 * 1024)
    parser.add_argument("--maxsize", type=int, default=256)
    args = parser.parse_args()

    cached_render = functools.lru_cache(maxsize=args.maxsize)(render_thumbnail)
    period = 1.0 / args.rate
    print("READY", flush=True)
    next_at = time.monotonic()
    newest_id = 0
    request = 0
    while True:
        # One request in five asks again for a recent image: a cache hit.
        if request % 5 == 4 and newest_id > 10:
            image_id = newest_id - (request % 10)
        else:
            newest_id += 1
            image_id = newest_id
        cached_render(image_id, args.value_bytes)
        request += 1
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main()

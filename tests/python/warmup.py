#!/usr/bin/env python3
"""Decoy: a service that loads a lot during its first seconds, then serves with flat RSS.

Start-up loads --shards shards (default 12) of lookup tables, one every --shard-seconds
(default 0.7), each smaller than the last (12 MiB, then x0.8 each time: ~55 MiB in ~8 s),
like imports, a vocabulary and a model being read. Then it serves small requests forever
with nothing retained. Not a leak. READY is printed before loading, so a monitor sees the
warm-up itself.
"""

import argparse
import time

_tables = {}


def load_shard(index, size_bytes):
    # Half the shard in one big blob, half as many small strings in a dict.
    blob = bytearray(size_bytes // 2)
    entries = {f"term-{index}-{i}": f"definition {i} " * 4 for i in range(size_bytes // 2 // 160)}
    _tables[index] = (blob, entries)


def handle_request(request_id):
    shard = _tables[request_id % len(_tables)][1]
    return shard.get(f"term-0-{request_id % 1000}", "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=12)
    parser.add_argument("--first-shard-bytes", type=int, default=12 * 1024 * 1024)
    parser.add_argument("--shard-seconds", type=float, default=0.7)
    args = parser.parse_args()

    print("READY", flush=True)
    size = args.first_shard_bytes
    for index in range(args.shards):
        load_shard(index, size)
        size = int(size * 0.8)
        time.sleep(args.shard_seconds)

    next_at = time.monotonic()
    request_id = 0
    while True:
        handle_request(request_id)
        request_id += 1
        next_at += 0.01
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Python-object leak for the memory breakdown: every request's small session record (a dict
of small strings, ints and a short list, all under pymalloc's 512-byte limit) is kept in a
module-level list that is never trimmed. ~300 records of ~600 bytes every 0.1 s: ~1.8 MB/s,
nearly all of it live Python objects. Prints READY once serving, then runs until killed.
"""

import time

_sessions = []


def handle_request(request_id):
    for i in range(300):
        _sessions.append({"user": f"user-{request_id}-{i}", "hits": [i, i + 1], "n": i * 1000003})  # LEAK


def main():
    print("READY", flush=True)
    next_at = time.monotonic()
    request_id = 0
    while True:
        handle_request(request_id)
        request_id += 1
        next_at += 0.1
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main()

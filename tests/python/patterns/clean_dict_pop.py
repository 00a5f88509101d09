"""Decoy: in-flight requests are kept in a dict and popped when done, and the memo table
evicts its oldest entry when full.

Runs until killed and prints nothing.
"""

import time

IN_FLIGHT = {}
_memo_cache = {}
MAX_MEMO = 100


def start(request_id):
    IN_FLIGHT[request_id] = bytearray(10_000)


def finish(request_id):
    IN_FLIGHT.pop(request_id, None)


def lookup(key):
    if key in _memo_cache:
        return _memo_cache[key]
    if len(_memo_cache) >= MAX_MEMO:
        _memo_cache.pop(next(iter(_memo_cache)))
    value = bytearray(1_000)
    _memo_cache[key] = value
    return value


def main():
    request_id = 0
    while True:
        request_id += 1
        start(request_id)
        lookup(request_id)
        finish(request_id)
        time.sleep(0.01)


if __name__ == "__main__":
    main()

"""Unbounded collection: every request's payload is kept in a module-level list.

Leaks about 1 MB/s of RSS; runs until killed and prints nothing.
"""

import time

REQUEST_LOG = []


def handle(request_id):
    payload = bytearray(10_000)
    payload[0] = request_id % 256
    REQUEST_LOG.append(payload)  # LEAK
    return len(payload)


def main():
    request_id = 0
    while True:
        request_id += 1
        handle(request_id)
        time.sleep(0.01)


if __name__ == "__main__":
    main()

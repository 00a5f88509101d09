#!/usr/bin/env python3
"""fd leak: every request opens its template file and keeps the handle in a dict.

--rate requests per second (default 20), each opening --path (default: this file) for
reading. The handle is stored by request id and never closed.
True rate = 20 fds/s with the defaults (regular files, no sockets, no threads).
Prints READY once serving, then runs until killed.
"""

import argparse
import time

# Handles by request id, "closed later" by code that was never written.
_templates = {}


def handle_request(request_id, path):
    _templates[request_id] = open(path, encoding="utf-8")  # LEAK
    first_line = _templates[request_id].readline()
    return len(first_line)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="fds opened per second")
    parser.add_argument("--path", default=__file__, help="file each request opens")
    args = parser.parse_args()

    period = 1.0 / args.rate
    print("READY", flush=True)
    next_at = time.monotonic()
    request_id = 0
    while True:
        handle_request(request_id, args.path)
        request_id += 1
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main()

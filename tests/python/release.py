#!/usr/bin/env python3
"""Two releases of one service, for `leak-monitor diff`: the second fixes the first's leak and
brings its own.

RELEASE=1 (environment): every request opens its template file and keeps the handle (an fd
leak). RELEASE=2: the handle is closed after use (fixed), but every request starts a watchdog
thread that waits for an event nobody sets (a thread leak). The release is not on the command
line, so both run as the same program, as two deploys of one service do.
--rate requests per second (default 5). Prints READY once serving, then runs until killed.
"""

import argparse
import os
import threading
import time

_templates = {}


def handle_v1(request_id):
    _templates[request_id] = open(__file__, encoding="utf-8")  # LEAK release 1
    return len(_templates[request_id].readline())


def watchdog(done):
    done.wait()


def handle_v2(request_id):
    with open(__file__, encoding="utf-8") as template:
        first_line = template.readline()
    threading.Thread(target=watchdog, args=(threading.Event(),), daemon=True).start()  # LEAK release 2
    return len(first_line) + request_id * 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5.0, help="requests per second")
    args = parser.parse_args()

    handle = {"1": handle_v1, "2": handle_v2}[os.environ["RELEASE"]]
    period = 1.0 / args.rate
    print("READY", flush=True)
    next_at = time.monotonic()
    request_id = 0
    while True:
        handle(request_id)
        request_id += 1
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main()

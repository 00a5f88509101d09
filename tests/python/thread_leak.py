#!/usr/bin/env python3
"""Thread leak: each request starts a watchdog thread that waits for an event nobody sets.

--rate requests per second (default 1). The watchdog blocks forever on its own
threading.Event; it is never set and the thread is never joined.
True rate = 1 thread/s with the defaults; fds and sockets stay constant.
Prints READY once serving, then runs until killed.
"""

import argparse
import threading
import time


def watchdog(request_id, done):
    # Meant to log a slow request; `done` is never set, so this never returns.
    if not done.wait():
        print(f"request {request_id} is slow", flush=True)


def handle_request(request_id):
    done = threading.Event()
    threading.Thread(target=watchdog, args=(request_id, done), daemon=True).start()  # LEAK
    return request_id * 2


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1.0, help="threads started per second")
    args = parser.parse_args()

    period = 1.0 / args.rate
    print("READY", flush=True)
    next_at = time.monotonic()
    request_id = 0
    while True:
        handle_request(request_id)
        request_id += 1
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main()

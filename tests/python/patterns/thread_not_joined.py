"""Thread never joined: each request starts a daemon worker that waits forever for an event
nobody sets, and nobody joins it.

Leaks about 5 threads/s; runs until killed and prints nothing.
"""

import threading
import time

NEVER = threading.Event()


def worker(request_id):
    NEVER.wait()
    return request_id


def handle(request_id):
    t = threading.Thread(target=worker, args=(request_id,), daemon=True)
    t.start()  # LEAK


def main():
    request_id = 0
    while True:
        request_id += 1
        handle(request_id)
        time.sleep(0.2)


if __name__ == "__main__":
    main()

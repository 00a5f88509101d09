"""Decoy: each request's worker thread is started and joined before the next request.

Runs until killed and prints nothing.
"""

import threading
import time


def worker(results, request_id):
    results[request_id % 10] = request_id


def handle(results, request_id):
    t = threading.Thread(target=worker, args=(results, request_id))
    t.start()
    t.join()


def main():
    results = [0] * 10
    request_id = 0
    while True:
        request_id += 1
        handle(results, request_id)
        time.sleep(0.05)


if __name__ == "__main__":
    main()

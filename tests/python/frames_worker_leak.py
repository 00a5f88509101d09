#!/usr/bin/env python3
"""An fd leak in a worker thread while the main thread is busy computing.

Prints the worker's native id (TID n) and READY, then runs until killed.
"""

import threading
import time

files = []
started = threading.Event()
worker_tid = []


def worker():
    worker_tid.append(threading.get_native_id())
    started.set()
    while True:
        files.append(open(__file__))  # LEAK fd
        time.sleep(0.03)


def busy():
    total = 0
    while True:
        for i in range(10000):
            total += i * i
        total %= 1000003


def main():
    threading.Thread(target=worker, daemon=True).start()
    started.wait()
    print(f"TID {worker_tid[0]}", flush=True)
    print("READY", flush=True)
    busy()


if __name__ == "__main__":
    main()

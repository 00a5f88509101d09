#!/usr/bin/env python3
"""Threads that start after the monitor attached: every second a new worker opens and keeps 15
files (one every 20 ms) and ends. Prints READY, then runs until killed.
"""

import threading
import time

files = []


def worker():
    for _ in range(15):
        files.append(open(__file__))  # LEAK fd
        time.sleep(0.02)


def main():
    print("READY", flush=True)
    while True:
        time.sleep(0.7)
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Many threads allocating at once, only one leaking.

Six threads map, touch and unmap 64 KiB of anonymous memory (page faults on every round); one keeps a 100 KiB bytearray per round. Prints the leaker's native id (TID n) and
READY, then runs until killed.
"""

import mmap
import threading
import time

kept = []
leaker_tid = []
ready = threading.Event()


def churn():
    while True:
        m = mmap.mmap(-1, 16 * 4096)
        m.write(bytes(16 * 4096))  # CHURN
        m.close()
        time.sleep(0.005)


def leaker():
    leaker_tid.append(threading.get_native_id())
    ready.set()
    while True:
        kept.append(bytearray(100 * 1024))  # LEAK bytes
        time.sleep(0.02)


def main():
    for _ in range(6):
        threading.Thread(target=churn, daemon=True).start()
    threading.Thread(target=leaker, daemon=True).start()
    ready.wait()
    print(f"TID {leaker_tid[0]}", flush=True)
    print("READY", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()

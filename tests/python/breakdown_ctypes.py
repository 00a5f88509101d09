#!/usr/bin/env python3
"""Native leak for the memory breakdown: a "codec" asks libc for a 64 KiB buffer through
ctypes every 0.05 s, fills it, and never frees it (~1.3 MB/s, all outside Python's objects).
Prints READY once serving, then runs until killed.
"""

import ctypes
import ctypes.util
import time

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]

BUFFER_BYTES = 64 * 1024


def encode_frame(frame_id):
    buffer = libc.malloc(BUFFER_BYTES)  # LEAK
    ctypes.memset(buffer, frame_id & 0xFF, BUFFER_BYTES)
    return buffer


def main():
    print("READY", flush=True)
    next_at = time.monotonic()
    frame_id = 0
    while True:
        encode_frame(frame_id)
        frame_id += 1
        next_at += 0.05
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main()

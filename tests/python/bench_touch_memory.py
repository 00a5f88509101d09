#!/usr/bin/env python3
"""Memory touch benchmark: maps --mib MiB (default 1024) of new anonymous memory and writes
one byte per --stride bytes (default 4096, one per 4 KiB page), so every page is faulted in.

Prints READY, then for each line read on stdin (the benchmark attaches its monitor in
between) maps new memory, touches it, prints `RESULT` followed by the seconds the touching
took, and unmaps it. Exits at the end of stdin. Transparent huge pages are refused with MADV_NOHUGEPAGE unless --hugepages
is given, so the kernel takes one page fault per 4 KiB page (the worst case for a tracer that
sees each fault).

    python3 tests/python/bench_touch_memory.py --mib 256 < /dev/null
"""

import argparse
import mmap
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="MiB of memory touched")
    parser.add_argument("--stride", type=int, default=4096, help="bytes between writes")
    parser.add_argument(
        "--hugepages", action="store_true", help="allow transparent huge pages"
    )
    args = parser.parse_args()

    size = args.mib << 20
    print("READY", flush=True)
    while sys.stdin.readline():
        print(f"RESULT {touch(size, args):.6f}", flush=True)


def touch(size, args):
    """Seconds to fault in `size` bytes of new memory."""
    memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if not args.hugepages and hasattr(mmap, "MADV_NOHUGEPAGE"):
        memory.madvise(mmap.MADV_NOHUGEPAGE)
    start = time.perf_counter()
    for offset in range(0, size, args.stride):
        memory[offset] = 1
    seconds = time.perf_counter() - start
    memory.close()
    return seconds


if __name__ == "__main__":
    main()

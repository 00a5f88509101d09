"""Resource not closed: a descriptor opened with `os.open` on every poll and never closed
(an int fd is not closed by garbage collection).

Leaks about 20 fds/s; runs until killed and prints nothing.
"""

import os
import time


def poll_status(path):
    fd = os.open(path, os.O_RDONLY)  # LEAK
    data = os.read(fd, 64)
    return len(data)


def main():
    while True:
        poll_status("/proc/self/stat")
        time.sleep(0.05)


if __name__ == "__main__":
    main()

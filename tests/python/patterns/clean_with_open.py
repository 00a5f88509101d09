"""Decoy: files opened in `with`, descriptors closed in `finally`, sockets closed after use.

Runs until killed and prints nothing.
"""

import os
import socket
import time


def read_status(path):
    with open(path, "rb") as f:
        return len(f.read(64))


def poll_status(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return len(os.read(fd, 64))
    finally:
        os.close(fd)


def report():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.sendto(b"metric", ("127.0.0.1", 9))
    finally:
        sock.close()


def main():
    while True:
        read_status("/proc/self/stat")
        poll_status("/proc/self/stat")
        report()
        time.sleep(0.05)


if __name__ == "__main__":
    main()

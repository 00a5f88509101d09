"""Resource not closed: a UDP socket per report, kept in a registry and never closed.

Leaks about 20 sockets/s; runs until killed and prints nothing.
"""

import socket
import time

SENT = {}


def report(metric_id):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # LEAK
    sock.sendto(b"metric", ("127.0.0.1", 9))
    SENT[metric_id] = sock


def main():
    metric_id = 0
    while True:
        metric_id += 1
        report(metric_id)
        time.sleep(0.05)


if __name__ == "__main__":
    main()

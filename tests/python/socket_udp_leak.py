#!/usr/bin/env python3
"""UDP socket leak: a metrics client creates a socket per flush and caches it by flush id.

--rate flushes per second (default 5); each creates a UDP socket, sends one statsd-style
datagram to the process's own collector socket on 127.0.0.1 and keeps the sender socket
in `_senders`. The collector drains what it receives.
True rate = 5 sockets/s and 5 fds/s with the defaults; the thread count stays constant.
Prints READY once the collector is bound, then runs until killed.
"""

import argparse
import socket
import time

# Sender sockets by flush id, meant to be reused, never looked up again.
_senders = {}


def flush(collector_address, flush_id):
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # LEAK
    sender.sendto(f"requests.count:{flush_id}|c".encode(), collector_address)
    _senders[flush_id] = sender


def drain(collector):
    try:
        while True:
            collector.recv(2048)
    except BlockingIOError:
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5.0, help="sockets per second")
    args = parser.parse_args()

    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.setblocking(False)
    address = collector.getsockname()

    period = 1.0 / args.rate
    print("READY", flush=True)
    next_at = time.monotonic()
    flush_id = 0
    while True:
        flush(address, flush_id)
        drain(collector)
        flush_id += 1
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main()

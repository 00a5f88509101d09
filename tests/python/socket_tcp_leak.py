#!/usr/bin/env python3
"""TCP socket leak: a client opens a connection per call and parks it in a "pool" it never reuses.

The process runs its own tiny server on 127.0.0.1 (one accept thread that answers and
closes), and a client that makes --rate calls per second (default 5). Each call connects a
new socket, does one request/response and appends the socket to `_pool`, where it stays
open (in CLOSE_WAIT once the server hangs up).
True rate = 5 sockets/s and 5 fds/s with the defaults; the thread count stays constant.
Prints READY once the server listens, then runs until killed.
"""

import argparse
import socket
import threading
import time

# Connections "kept for reuse"; nothing ever takes one back out.
_pool = []


def serve(listener):
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")


def call(address, request_id):
    conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # LEAK
    conn.connect(address)
    conn.sendall(f"GET /items/{request_id} HTTP/1.1\r\nHost: local\r\n\r\n".encode())
    reply = conn.recv(1024)
    _pool.append(conn)
    return reply


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5.0, help="connections per second")
    args = parser.parse_args()

    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    threading.Thread(target=serve, args=(listener,), name="server", daemon=True).start()
    address = listener.getsockname()

    period = 1.0 / args.rate
    print("READY", flush=True)
    next_at = time.monotonic()
    request_id = 0
    while True:
        call(address, request_id)
        request_id += 1
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main()

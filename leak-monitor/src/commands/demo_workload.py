#!/usr/bin/env python3
"""The `leak-monitor demo` workload: a small web service simulation with three real leaks.

It serves --rate simulated requests per second (default 20) and leaks, each at one line:
  - memory: rendered pages go into an unbounded dict cache keyed by (user, path, version),
    and the version changes on every request, so nothing is ever hit or evicted
    (64 KiB per request: 1,310,720 bytes/s with the defaults);
  - file descriptors: every 4th request opens its user's audit log and keeps the handle
    (5 fds/s);
  - threads: every 2 s a batch of metrics is handed to a new uploader thread that waits
    for an acknowledgement that never comes and is never joined (0.5 threads/s).
The healthy part is bounded: a session LRU cache (functools.lru_cache) and a deque of
recent latencies.

Python 3 standard library only. Prints READY once serving. Exits by itself when its
parent dies, so it never outlives the demo that started it.
"""

import argparse
import collections
import functools
import os
import queue
import signal
import sys
import tempfile
import threading
import time

PAGE_BYTES = 64 * 1024
USERS = 50


class Service:
    def __init__(self, log_dir):
        self._log_dir = log_dir
        self._page_cache = {}
        self._audit_logs = []
        self._latencies = collections.deque(maxlen=1000)
        self._pending_metrics = []
        self._acks = queue.Queue()

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def session(user):
        # Healthy: a bounded cache of small session records.
        return {"user": user, "roles": ("reader", "writer"), "token": os.urandom(16).hex()}

    def render(self, user, path, version):
        session = self.session(user)
        page = f"<html><body><h1>{path}</h1><p>Hello {session['user']}</p></body></html>"
        cache_key = (user, path, version)
        if cache_key not in self._page_cache:
            self._page_cache[cache_key] = page.encode().ljust(PAGE_BYTES)  # LEAK
        return self._page_cache[cache_key]

    def audit(self, request_id, user):
        log = open(os.path.join(self._log_dir, f"user-{user}.log"), "a", encoding="utf-8")  # LEAK
        log.write(f"request {request_id} served\n")
        log.flush()
        self._audit_logs.append(log)

    def handle(self, request_id):
        started = time.monotonic()
        user = request_id % USERS
        body = self.render(user, f"/dashboard/{user}", version=request_id)
        if request_id % 4 == 0:
            self.audit(request_id, user)
        self._pending_metrics.append(("latency", time.monotonic() - started, len(body)))
        self._latencies.append(time.monotonic() - started)

    def flush_metrics(self):
        batch, self._pending_metrics = self._pending_metrics, []
        threading.Thread(target=self._upload, args=(batch,), daemon=True).start()  # LEAK

    def _upload(self, batch):
        summary = sum(latency for _, latency, _ in batch)
        # Waits for the collector's acknowledgement, which this simulation never sends.
        self._acks.get()
        return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--flush-seconds", type=float, default=2.0)
    args = parser.parse_args()

    # SIGTERM ends the process through normal exit, so the log directory is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    parent = os.getppid()
    with tempfile.TemporaryDirectory(prefix="leak-monitor-demo-") as log_dir:
        service = Service(log_dir)
        period = 1.0 / args.rate
        requests_per_flush = max(1, round(args.flush_seconds * args.rate))
        print("READY", flush=True)
        next_at = time.monotonic()
        request_id = 0
        while os.getppid() == parent:
            service.handle(request_id)
            request_id += 1
            if request_id % requests_per_flush == 0:
                service.flush_metrics()
            next_at += period
            time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main()

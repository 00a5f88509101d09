#!/usr/bin/env python3
"""Measure a workload's real resource growth from procfs, independently of leak-monitor.

Starts `python3 SCRIPT ARGS...` (or attaches to --pid), waits for READY, then samples
/proc/PID every --interval seconds for --duration seconds: resident memory (statm, in
bytes), open fds, socket fds and threads. Prints, per resource, the first/last/min/max
values, the least-squares and Theil-Sen slopes (per second) and the floor of each half of
the run, which is what tells a bounded fill or a sawtooth from a leak.

    python3 tests/python/measure.py --duration 40 -- tests/python/rss_leak.py
    python3 tests/python/measure.py --pid 1234 --duration 30
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def sample(pid):
    with open(f"/proc/{pid}/statm") as f:
        resident_pages = int(f.read().split()[1])
    fds = os.listdir(f"/proc/{pid}/fd")
    sockets = 0
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                sockets += 1
        except OSError:
            pass  # closed between listdir and readlink
    threads = len(os.listdir(f"/proc/{pid}/task"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu_ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return {
        "rss_bytes": resident_pages * PAGE_SIZE,
        "open_fds": len(fds),
        "sockets": sockets,
        "threads": threads,
        "cpu_ticks": cpu_ticks,
    }


def least_squares_slope(ts, ys):
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    den = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / den if den else 0.0


def theil_sen_slope(ts, ys):
    slopes = [
        (ys[j] - ys[i]) / (ts[j] - ts[i])
        for i in range(len(ts))
        for j in range(i + 1, len(ts))
        if ts[j] > ts[i]
    ]
    return statistics.median(slopes) if slopes else 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int, help="attach to this process instead of starting one")
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--csv", help="also write every sample to this CSV file")
    parser.add_argument("command", nargs="*", help="workload script and its arguments")
    args = parser.parse_args()

    child = None
    if args.pid is None:
        if not args.command:
            parser.error("give a workload script or --pid")
        child = subprocess.Popen(
            [sys.executable, *args.command], stdout=subprocess.PIPE, text=True
        )
        line = child.stdout.readline().strip()
        if line != "READY":
            sys.exit(f"workload printed {line!r} instead of READY")
        pid = child.pid
    else:
        pid = args.pid

    rows = []
    start = time.monotonic()
    next_at = start
    try:
        while True:
            now = time.monotonic()
            if now - start > args.duration:
                break
            try:
                rows.append((now - start, sample(pid)))
            except FileNotFoundError:
                print("target exited", file=sys.stderr)
                break
            next_at += args.interval
            time.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        if child is not None:
            child.kill()
            child.wait()

    if len(rows) < 3:
        sys.exit("too few samples")
    if args.csv:
        with open(args.csv, "w") as f:
            keys = list(rows[0][1])
            f.write("t," + ",".join(keys) + "\n")
            for t, s in rows:
                f.write(f"{t:.3f}," + ",".join(str(s[k]) for k in keys) + "\n")

    ts = [t for t, _ in rows]
    elapsed = ts[-1] - ts[0]
    cpu = (rows[-1][1]["cpu_ticks"] - rows[0][1]["cpu_ticks"]) / os.sysconf("SC_CLK_TCK")
    print(f"pid {pid}: {len(rows)} samples over {elapsed:.1f} s, cpu {100 * cpu / elapsed:.0f}%")
    print(f"{'resource':<10} {'first':>12} {'last':>12} {'min':>12} {'max':>12} "
          f"{'lsq/s':>12} {'theil-sen/s':>12} {'floor 1st half':>15} {'floor 2nd half':>15}")
    half = len(rows) // 2
    for key in ("rss_bytes", "open_fds", "sockets", "threads"):
        ys = [s[key] for _, s in rows]
        print(f"{key:<10} {ys[0]:>12} {ys[-1]:>12} {min(ys):>12} {max(ys):>12} "
              f"{least_squares_slope(ts, ys):>12.1f} {theil_sen_slope(ts, ys):>12.1f} "
              f"{min(ys[:half]):>15} {min(ys[half:]):>15}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""What each part of leak-monitor's kernel fd tracing costs a target that churns fds and leaks
one a second (bench_fd_churn.py --leak-fds-per-second 1): the target's own CPU time (user +
system, which includes the eBPF programs it runs into) per os.close(os.open()) pair, with
leak-monitor attached in each setting of LEAK_MONITOR_FD_PAIRING and with none attached.

Settings: `none` (no monitor), `off` (every open and close an event, a stack walked at each
open: leak-monitor before the pairing), `0` (pairing, no stack walked once the target churns),
`32` (the default: one open in 32 walked), `1` (pairing, every open walked and kept). The
monitor runs with --kernel-tracing always (programs attached from the start, as once a leak
engaged them) and --no-heap-census (its periodic pauses are another part).

Each round runs every setting once in a rotated order, in the same target process; per setting
it prints the median over rounds of the target's CPU ns per pair, the ratio of pairs per CPU
second to the unmonitored run of the same round (load-independent), the wall-clock ratio, and
the monitor's own CPU per second.

    sudo python3 tests/python/fd_pairing_cost.py --binary target/release/leak-monitor --rounds 5
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime, stime are fields 14 and 15; after the ")" they are at 11 and 12.
    return (int(fields[11]) + int(fields[12])) / TICK


def measure(target, windows, window):
    """Runs the target's windows; (pairs, wall seconds, target CPU seconds)."""
    cpu0, wall0 = cpu_seconds(target.pid), time.monotonic()
    target.stdin.write("go\n")
    target.stdin.flush()
    line = target.stdout.readline().split()
    wall, cpu = time.monotonic() - wall0, cpu_seconds(target.pid) - cpu0
    assert line and line[0] == "RESULT", line
    pairs = sum(float(r) for r in line[1:]) * window
    return pairs, wall, cpu


def run_setting(args, target, setting):
    monitor = None
    if setting != "none":
        env = dict(os.environ, LEAK_MONITOR_FD_PAIRING=setting)
        monitor = subprocess.Popen(
            [args.binary, "run", "--pid", str(target.pid), "--kernel-tracing", "always",
             "--no-heap-census", "--duration", "600", "--interval", "1000"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(args.settle)
        monitor_cpu0 = cpu_seconds(monitor.pid)
    pairs, wall, cpu = measure(target, args.windows, args.window)
    monitor_cpu = 0.0
    if monitor is not None:
        monitor_cpu = (cpu_seconds(monitor.pid) - monitor_cpu0) / wall
        monitor.send_signal(signal.SIGINT)
        try:
            monitor.wait(timeout=30)
        except subprocess.TimeoutExpired:
            monitor.kill()
            monitor.wait()
    return {"ns": cpu / pairs * 1e9, "per_cpu": pairs / cpu, "per_wall": pairs / wall,
            "monitor_cpu": monitor_cpu}  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default="target/release/leak-monitor")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--window", type=float, default=1.0)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after attaching")
    parser.add_argument("--settings", default="none,off,0,32,1")
    args = parser.parse_args()
    settings = args.settings.split(",")
    target = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "bench_fd_churn.py"), "--leak-fds-per-second", "1",
         "--windows", str(args.windows), "--window", str(args.window)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert target.stdout.readline().strip() == "READY"
    results = {s: [] for s in settings}
    try:
        for round_ in range(args.rounds):
            order = settings[round_ % len(settings):] + settings[: round_ % len(settings)]
            this_round = {s: run_setting(args, target, s) for s in order}
            base = this_round.get("none")
            for s, r in this_round.items():
                if base:
                    r["ratio_cpu"] = r["per_cpu"] / base["per_cpu"]
                    r["ratio_wall"] = r["per_wall"] / base["per_wall"]
                results[s].append(r)
            print(f"round {round_ + 1}: " + ", ".join(
                f"{s} {r['ns']:.0f} ns" for s, r in this_round.items()), file=sys.stderr)  # fmt: skip
    finally:
        target.stdin.close()
        target.wait()
    med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
    print("| LEAK_MONITOR_FD_PAIRING | target CPU ns per open+close | pairs per CPU s vs none "
          "| wall vs none | monitor CPU |")  # fmt: skip
    print("| --- | --- | --- | --- | --- |")
    for s in settings:
        rs = results[s]
        ratio = (f"{med(rs, 'ratio_cpu'):.2f} | {med(rs, 'ratio_wall'):.2f}"
                 if "ratio_cpu" in rs[0] else "- | -")  # fmt: skip
        print(f"| {s} | {med(rs, 'ns'):.0f} | {ratio} | {100 * med(rs, 'monitor_cpu'):.1f} % |")


if __name__ == "__main__":
    main()

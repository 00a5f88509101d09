#!/usr/bin/env python3
"""The floor of tracing syscalls on this kernel: what a do-nothing eBPF program on the syscall
exit path costs an os.close(os.open(path)) loop, before leak-monitor's programs do anything.

Loads tiny programs through bpf(2) directly (root): on the raw tracepoint `sys_exit`, one that
returns at once, one that reads the pid (bpf_get_current_pid_tgid), one that also looks the
tgid up in a hash map (leak-monitor's filter), one that looks it up in an array instead; and a
do-nothing program on the tracepoint of a syscall the loop never makes (`sys_exit_munmap`):
the cost of the slow syscall path alone, which any syscall tracepoint turns on for every task.
Also tries fentry on `fd_install` (which would see fd creation alone) and says whether the
kernel takes it.

Windows of --window seconds alternate in this one process (baseline, traced, baseline), so
the ratio of each traced window to its neighbours leaves the machine's slow drifts out;
prints the median ratio and its quartiles per program over --rounds rounds.

    sudo python3 tests/python/syscall_floor.py --rounds 60
"""

import argparse
import ctypes
import os
import statistics
import struct
import time

SYS_BPF = 321  # x86_64
BPF_MAP_CREATE, BPF_PROG_LOAD, BPF_RAW_TRACEPOINT_OPEN = 0, 5, 17
PROG_TRACEPOINT, PROG_RAW_TRACEPOINT, PROG_TRACING = 5, 17, 26
MAP_HASH, MAP_ARRAY = 1, 2
SYS_PERF_EVENT_OPEN = 298
PERF_EVENT_IOC_ENABLE, PERF_EVENT_IOC_SET_BPF = 0x2400, 0x40042408

libc = ctypes.CDLL(None, use_errno=True)


def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, 128)
    result = libc.syscall(SYS_BPF, cmd, buf, 128)
    return result, ctypes.get_errno()


def insn(op, regs, off, imm):
    return struct.pack("<BBhi", op, regs, off, imm)


RETURN_0 = insn(0xB7, 0, 0, 0) + insn(0x95, 0, 0, 0)  # r0 = 0; exit
GET_PID_TGID = insn(0x85, 0, 0, 14)  # call bpf_get_current_pid_tgid


def lookup(map_fd, shift):
    """key = pid_tgid >> shift, stored at fp-4; bpf_map_lookup_elem(map, &key)."""
    return (
        GET_PID_TGID
        + insn(0x77, 0, 0, shift)  # r0 >>= shift
        + insn(0x63, 0x0A, -4, 0)  # *(u32 *)(r10 - 4) = r0
        + insn(0xBF, 0xA2, 0, 0)  # r2 = r10
        + insn(0x07, 2, 0, -4)  # r2 += -4
        + insn(0x18, 0x11, 0, map_fd)  # r1 = map (ld_imm64, pseudo map fd)
        + insn(0, 0, 0, 0)
        + insn(0x85, 0, 0, 1)  # call bpf_map_lookup_elem
        + RETURN_0
    )


def load(prog_type, code, attach_type=0, btf_id=0):
    insns = ctypes.create_string_buffer(code)
    license = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(65536)
    attr = struct.pack(
        "<IIQQIIQII16sIIIIQIIQII",
        prog_type, len(code) // 8, ctypes.addressof(insns), ctypes.addressof(license),
        1, len(log), ctypes.addressof(log), 0, 0, b"floor", 0, attach_type,
        0, 0, 0, 0, 0, 0, 0, btf_id,
    )  # fmt: skip
    fd, err = bpf(BPF_PROG_LOAD, attr)
    if fd < 0:
        raise OSError(err, f"{os.strerror(err)} {log.value.decode(errors='replace')}".strip())
    return fd


def on_raw_tracepoint(name, code):
    prog = load(PROG_RAW_TRACEPOINT, code)
    tp = ctypes.create_string_buffer(name)
    link, err = bpf(BPF_RAW_TRACEPOINT_OPEN, struct.pack("<QI", ctypes.addressof(tp), prog))
    if link < 0:
        raise OSError(err, os.strerror(err))
    return [prog, link]


def on_syscall_tracepoint(event, code):
    prog = load(PROG_TRACEPOINT, code)
    with open(f"/sys/kernel/tracing/events/syscalls/{event}/id") as f:
        tp_id = int(f.read())
    # perf_event_attr: type 2 (tracepoint), size, config = id, sample_period 1, wakeup 1.
    attr = struct.pack("<IIQQQQQII", 2, 128, tp_id, 1, 0, 0, 0, 1, 0).ljust(128, b"\0")
    buf = ctypes.create_string_buffer(attr, 128)
    event_fd = libc.syscall(SYS_PERF_EVENT_OPEN, buf, -1, 0, -1, 8)  # every pid, cpu 0
    if event_fd < 0:
        raise OSError(ctypes.get_errno(), "perf_event_open")
    if libc.ioctl(event_fd, PERF_EVENT_IOC_SET_BPF, prog) or libc.ioctl(
        event_fd, PERF_EVENT_IOC_ENABLE, 0
    ):
        raise OSError(ctypes.get_errno(), "attaching to the perf event")
    return [prog, event_fd]


def map_create(map_type, key_size, value_size, entries):
    fd, err = bpf(BPF_MAP_CREATE, struct.pack("<IIIII", map_type, key_size, value_size, entries, 0))
    if fd < 0:
        raise OSError(err, os.strerror(err))
    return fd


def btf_id(function):
    """The BTF id of a kernel function, from bpftool (None without it)."""
    try:
        out = os.popen("bpftool btf dump file /sys/kernel/btf/vmlinux 2>/dev/null").read()
    except OSError:
        return None
    for line in out.splitlines():
        if f"FUNC '{function}'" in line:
            return int(line.split("]")[0].lstrip("["))
    return None


def churn(path, seconds):
    """Nanoseconds per open+close pair over `seconds`."""
    ops = 0
    start = time.perf_counter()
    while True:
        for _ in range(256):
            os.close(os.open(path, os.O_RDONLY))
        ops += 256
        now = time.perf_counter()
        if now - start >= seconds:
            return (now - start) / ops * 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--window", type=float, default=0.1, help="seconds per window")
    args = parser.parse_args()

    install = btf_id("fd_install")
    if install is None:
        print("fentry on fd_install: bpftool or BTF missing, not tried")
    else:
        try:
            os.close(load(PROG_TRACING, RETURN_0, attach_type=24, btf_id=install))
            print("fentry on fd_install: the kernel takes it")
        except OSError as err:
            print(f"fentry on fd_install: refused ({err})")

    hash_map = map_create(MAP_HASH, 4, 4, 4096)
    array_map = map_create(MAP_ARRAY, 4, 8, 65536)
    programs = {
        "sys_exit: return": lambda: on_raw_tracepoint(b"sys_exit", RETURN_0),
        "sys_exit: read pid": lambda: on_raw_tracepoint(b"sys_exit", GET_PID_TGID + RETURN_0),
        "sys_exit: pid in hash map": lambda: on_raw_tracepoint(b"sys_exit", lookup(hash_map, 32)),
        "sys_exit: pid in array": lambda: on_raw_tracepoint(b"sys_exit", lookup(array_map, 38)),
    }
    # Syscall tracepoints need tracefs; without it the slow path alone is not measured.
    if os.path.exists("/sys/kernel/tracing/events/syscalls/sys_exit_munmap/id"):
        programs["slow path only (munmap tp)"] = lambda: on_syscall_tracepoint(
            "sys_exit_munmap", RETURN_0
        )
    else:
        print("slow path only (munmap tp): tracefs not mounted, not measured")
    ratios = {name: [] for name in programs}
    baseline = []
    for _ in range(args.rounds):
        for name, attach in programs.items():
            before = churn(__file__, args.window)
            fds = attach()
            traced = churn(__file__, args.window)
            for fd in fds:
                os.close(fd)
            after = churn(__file__, args.window)
            ratios[name].append(traced / ((before + after) / 2))
            baseline.append(before)
    print(f"baseline: {statistics.median(baseline):.0f} ns per open+close pair")
    for name, values in ratios.items():
        q1, median, q3 = statistics.quantiles(values, n=4)
        print(f"{name:28} ratio {median:.3f}  (quartiles {q1:.3f} .. {q3:.3f})")


if __name__ == "__main__":
    main()

"""Writes linetables.txt: real CPython 3.11 code objects' co_linetable with the line of every
code unit as co_positions() gives it, for linetable/tests.rs. Rerun with python3.11:

    python3.11 leak-monitor/src/pyframes/linetable/make_fixture.py > leak-monitor/src/pyframes/linetable/linetables.txt

Under 3.10 (no co_positions) it writes the 3.10 format's fixture from co_lines() instead:

    ~/.pyenv/versions/3.10.13/bin/python3 leak-monitor/src/pyframes/linetable/make_fixture.py > leak-monitor/src/pyframes/linetable/linetables310.txt
"""

import sys


def simple(a, b):
    c = a + b
    return c * 2


def branches(items):
    total = 0
    for i in items:
        if i % 2:
            total += i
        else:
            total -= (
                i
                * 3
            )
    try:
        1 / 0
    except ZeroDivisionError:
        total = -total
    return total


def far_jump():
    x = 1
    # A long gap forces the long form with a big line delta.
















































































    y = x + 1
    return [
        z for z in range(y)
    ]


def leaky(files, path):
    files.append(open(path))
    import time
    time.sleep(0.05)


class Outer:
    def method(self, value):
        def nested(k):
            return {k: value for _ in range(2)}
        return nested(value)


def codes():
    for fn in (simple, branches, far_jump, leaky, Outer.method):
        yield fn.__code__
        for const in fn.__code__.co_consts:
            if hasattr(const, "co_linetable"):
                yield const
    yield compile(open(__file__).read(), __file__, "exec")


def lines_310(code):
    """The line of each code unit (2 bytes) from co_lines()'s byte ranges."""
    units = ["-"] * (len(code.co_code) // 2)
    for start, end, line in code.co_lines():
        for unit in range(start // 2, end // 2):
            units[unit] = "-" if line is None else str(line)
    return units


print(f"# {sys.version.split()[0]}: name first_line linetable_hex lines_per_code_unit")
for code in codes():
    if sys.version_info >= (3, 11):
        name = code.co_qualname
        lines = ",".join("-" if p[0] is None else str(p[0]) for p in code.co_positions())
    else:
        name = code.co_name
        lines = ",".join(lines_310(code))
    print(name, code.co_firstlineno, code.co_linetable.hex(), lines)

"""Measures CPython 3.10's dict keys object in a live interpreter (its struct lives in
Objects/dict-common.h, which 3.10 does not install): the fields are found by their values in a
dict of three string keys, not assumed. Run by measure.sh under 3.10; prints `3.10 key value`."""

import ctypes
import sys

WORD = 8


def word(address):
    return ctypes.c_uint64.from_address(address).value


def main():
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    first = "".join(["first", "-key"])  # not interned: its address is its own
    d = {first: 1, "b": 2, "c": 3}
    keys = word(id(d) + 32)  # `ma_keys`, measured from the headers by offsets.c
    fields = [word(keys + i * WORD) for i in range(5)]
    size = 8  # the smallest table: three entries fit
    at = {name: fields.index(value) * WORD for name, value in (("size", size), ("nentries", 3))}
    # The entries follow the indices (one byte each at this size): the first entry's key is
    # the second word of a {hash, key, value} entry.
    entry_key = next(o for o in range(0, 512, WORD) if word(keys + o) == id(first))
    entry_hash = word(keys + entry_key - WORD)
    assert entry_hash == hash(first) & (2**64 - 1), "the word before the key is its hash"
    assert word(keys + entry_key + WORD) == id(1), "the word after the key is its value"
    indices = entry_key - WORD - size
    # The second entry's key, one stride after the first's.
    stride = next(s for s in range(WORD, 64, WORD) if word(keys + entry_key + s) == id("b"))
    print(f"{version} keys_size {at['size']}")
    print(f"{version} keys_nentries {at['nentries']}")
    print(f"{version} keys_indices {indices}")
    print(f"{version} keys_entry_size {stride}")


main()

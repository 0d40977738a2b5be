"""HeapTrimmer (embed / features between forward batches): freed heap memory that glibc
keeps resident is given back once the resident size grows past the allowance, and the
allowance is measured again from the level after a trim. Reference: the process's own
resident size (/proc/self/statm) around blocks allocated and freed with libc's malloc."""

from __future__ import annotations

import ctypes
import sys

import pytest

from gridmatch import _heap
from gridmatch._heap import HeapTrimmer

MIB = 1 << 20

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or _heap._TRIM is None or _heap._resident() is None,
    reason="malloc_trim and /proc/self/statm: Linux with glibc",
)


def test_freed_heap_is_given_back_past_the_allowance_then_the_level_is_taken_again():
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    trimmer = HeapTrimmer()
    trimmer.after_batch()  # nothing grew
    assert trimmer.trims == 0
    # 200 MB in 100 kB blocks (heap, not mmap), touched, then freed but the last: it
    # pins the top of the heap, so glibc keeps the freed pages resident
    size, count = 100_000, 2000
    blocks = [libc.malloc(size) for _ in range(count)]
    assert all(blocks)
    for b in blocks:
        ctypes.memset(b, 1, size)
    for b in blocks[:-1]:
        libc.free(b)
    held = _heap._resident()
    try:
        trimmer.after_batch()
        assert trimmer.trims == 1
        after = _heap._resident()
        assert after < held - 150 * MIB, (held, after)
        # no growth since the trim: no second one
        trimmer.after_batch()
        assert trimmer.trims == 1
    finally:
        libc.free(blocks[-1])


def test_memory_in_use_moves_the_level_and_is_not_trimmed_again():
    trimmer = HeapTrimmer()
    trimmer.after_batch()
    kept = bytearray(100 * MIB)  # resident, in use (the output array filling up)
    kept[::4096] = b"\1" * len(kept[::4096])
    trimmer.after_batch()
    assert trimmer.trims == 1
    trimmer.after_batch()
    trimmer.after_batch()
    assert trimmer.trims == 1
    del kept

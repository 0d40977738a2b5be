"""Give freed heap memory back to the system between forward batches.

libtorch allocates each forward pass's activations (megabytes each) with ``malloc`` on
gridmatch's worker threads. glibc serves them from per-thread arenas and keeps the
freed pages resident; as ``embed`` / ``features`` stream thousands of batches,
fragmentation leaves more and more freed but resident memory in those arenas
(measured after ``embed`` of 5,000 / 50,000 catalogue images: thread arenas of
150-390 MB with under 1 MB in use), so the peak resident size grew with the catalogue.

:class:`HeapTrimmer` reads the resident size after each batch and, once it is more than
``ALLOWANCE`` above the level before the first batch (or after the last trim), calls
glibc's ``malloc_trim(0)``, which releases the free pages of every arena; the level is
then taken again, so memory really in use (the output array filling up) only moves
it. A trim costs its call and the page faults of the next batch touching the pages
again (about 5 times the call): measured +1 % a batch for ResNet-18 at 224 px, but
+90 % for the convnet's 100 ms batches of 256 images at 28 px, so
:class:`~gridmatch.GridSearchNetwork` trims only when streaming a catalogue (arrays
are in memory anyway). Elsewhere than Linux with glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable

__all__ = ["ALLOWANCE", "HeapTrimmer"]

#: Resident growth (bytes) left alone between trims.
ALLOWANCE = 64 << 20


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None (not Linux, or another C library)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _resident() -> int | None:
    """Resident size of this process in bytes (``/proc/self/statm``), or None."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class HeapTrimmer:
    """Bound the freed memory that glibc keeps resident over a stream of forward batches.

    Create one before the first batch and call :meth:`after_batch` after each.

    Attributes
    ----------
    trims : int
        How many times ``malloc_trim`` ran.
    """

    def __init__(self) -> None:
        self.trims = 0
        self._level = _resident() if _TRIM is not None else None

    def after_batch(self) -> None:
        """Trim the heap if the resident size is more than ``ALLOWANCE`` above the
        level, then take the level again."""
        if self._level is None or _TRIM is None:
            return
        now = _resident()
        if now is None or now <= self._level + ALLOWANCE:
            return
        _TRIM(0)
        self.trims += 1
        self._level = _resident() or now

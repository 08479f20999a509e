"""Giving freed memory back to the system.

A controller or eswitchd at 2^16 buckets a service builds tens of MB of short-lived
objects for a check, a listing or a large change; once freed, glibc keeps most of that
heap mapped, so the process's resident size stays at its peak for good. malloc_trim(0)
returns the free pages. A no-op where the C library has no malloc_trim (musl, macOS)."""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from typing import Any, Optional

_trim: Any = None


def _load() -> Optional[Any]:
    global _trim
    if _trim is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _trim = libc.malloc_trim
            _trim.argtypes, _trim.restype = [ctypes.c_size_t], ctypes.c_int
        except (OSError, AttributeError):
            _trim = False
    return _trim or None


def give_back() -> bool:
    """Return free heap pages to the system; True when the C library could."""
    trim = _load()
    return bool(trim is not None and trim(0))


class Trimmer:
    """give_back() at most every `every` seconds: a trim walks the heap (milliseconds at a
    few hundred MB), so it is paced, not run after every poll."""

    def __init__(self, every: float = 10.0, clock: Any = time.monotonic) -> None:
        self.every, self.clock, self.last = every, clock, None

    def tick(self) -> bool:
        now = self.clock()
        if self.last is not None and now - self.last < self.every:
            return False
        self.last = now
        give_back()
        return True

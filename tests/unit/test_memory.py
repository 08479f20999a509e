"""Giving freed heap back: paced trims, and a trim really lowers the resident size after a
large, freed allocation (glibc; skipped where the C library has no malloc_trim)."""

import pytest

from xenoflow_ovs import memory


def rss_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


def test_trims_are_paced():
    now = [100.0]
    calls = []
    t = memory.Trimmer(every=10.0, clock=lambda: now[0])
    orig = memory.give_back
    memory.give_back = lambda: calls.append(now[0]) or True
    try:
        ticks = []
        for step in (0, 3, 9.9, 10, 15, 25):
            now[0] = 100.0 + step
            ticks.append(t.tick())
    finally:
        memory.give_back = orig
    assert ticks == [True, False, False, True, False, True] and calls == [100.0, 110.0, 125.0]


def test_a_trim_returns_freed_heap():
    if memory._load() is None:
        pytest.skip("this C library has no malloc_trim")
    # many small dicts (malloc'd, not pymalloc) interleaved with survivors: fragmentation
    # keeps the heap's top in use, so only a trim gives the free pages in between back
    keep, junk = [], []
    for i in range(200000):
        (keep if i % 64 == 0 else junk).append({j: j for j in range(12)})
    del junk
    before = rss_kb()
    assert memory.give_back()
    assert rss_kb() < before - 10000, "a trim freed less than 10 MB"
    assert keep

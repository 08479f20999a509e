"""softdoca-only knobs of an open ESwitch: what the behavioural model has and a BlueField's
eSwitch does not -- fault injection, the hardware's limits (a BlueField knows its own), the
software forwarder's polling policy and cost, the benchmarks' plain io-loop baseline, and
running one frame through the pipes without packet I/O.  For the lab, the tests and the
benchmarks; the product path (dpdk_glue.ESwitch) never needs them (eswitchd sets the limits
and the polling policy when it runs on softdoca).

    from dpdk_glue import softdoca_ctl
    softdoca_ctl.fault_inject(sw, 2)          # the 2nd entry add from now fails: DOCA_ERROR_FULL
    softdoca_ctl.classify(sw, "p0", frame)    # -> ("p1", frame with the new dst MAC)

Their C side (glue_softdoca.c) is compiled into dpdk_glue for the softdoca target only.  On a
dpdk_glue built against the real DOCA SDK every function here raises
``GlueError("DOCA_ERROR_NOT_SUPPORTED")`` saying that the knob is softdoca-only;
``available()`` tells beforehand.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Union

from dpdk_glue.binding import (
    ESwitch,
    GlueEntry,
    GlueError,
    Meter,
    _load,
    _mac_bytes,
    _raise_last,
    _uint,
    glue_target,
)

__all__ = ["available", "fault_inject", "set_capacity", "set_busy_poll", "forwarder_stats", "bench_bypass",
           "classify", "classify_meters", "set_manual_clock", "advance_clock", "use_real_clock",
           "meter_stats"]

_SOFTDOCA_ONLY = ("softdoca-only knob: this dpdk_glue is built against the real DOCA SDK, "
                  "whose eSwitch has no such knob")


def available() -> bool:
    """True if dpdk_glue was built against softdoca, so the knobs exist.  Raises GlueMissing
    when the module is not built."""
    return glue_target() == "softdoca"


def _softdoca_lib(call: str) -> Tuple[Any, Any]:
    lib, ffi = _load()
    if glue_target() != "softdoca":
        raise GlueError("DOCA_ERROR_NOT_SUPPORTED", call, _SOFTDOCA_ONLY)
    return lib, ffi


def fault_inject(sw: ESwitch, nth: int, at_process: bool = False) -> None:
    """Make the nth entry add from now fail with a capacity error (DOCA_ERROR_FULL) -- in the
    add call, or (at_process) in entries_process.  nth=0 disarms."""
    lib, _ = _softdoca_lib("xf_fault_inject")
    _uint(nth, 32, "nth")
    with sw._lock:
        sw._check_open()
        rc = lib.xf_fault_inject(nth, 1 if at_process else 0)
        if rc:
            _raise_last(rc)


def set_capacity(sw: ESwitch, entries_per_pipe: Optional[int] = None, pipes: Optional[int] = None) -> None:
    """The hardware's limits, which real DOCA needs no knob for (the hardware fails by
    itself): at most ``entries_per_pipe`` entries in one pipe and ``pipes`` pipes on one port
    (in switch mode its e-switch manager).  Past them an entry add or a pipe create fails with
    DOCA_ERROR_DRIVER.  None: no limit."""
    lib, _ = _softdoca_lib("xf_set_capacity")
    e = _uint(entries_per_pipe or 0, 32, "entries_per_pipe")
    n = _uint(pipes or 0, 32, "pipes")
    with sw._lock:
        sw._check_open()
        rc = lib.xf_set_capacity(e, n)
        if rc:
            _raise_last(rc)


def set_busy_poll(sw: ESwitch, busy_poll: bool, spin_us: int = 0, sleep_us: int = 0,
                  idle_max_us: int = 0) -> None:
    """The forwarder's policy: busy-poll (benchmarks), or spin ``spin_us`` after the last
    packet and then sleep ``sleep_us`` between empty polls; after ``idle_max_us`` without a
    packet the sleep doubles up to ``idle_max_us`` (<= sleep_us: a fixed sleep; at most
    1 s).  0 = keep the current value; defaults 50, 20 and 1000 us."""
    lib, _ = _softdoca_lib("xf_set_poll_mode")
    spin, sleep = _uint(spin_us, 32, "spin_us"), _uint(sleep_us, 32, "sleep_us")
    ceiling = _uint(idle_max_us, 32, "idle_max_us")
    with sw._lock:
        sw._check_open()
        if ceiling:
            rc = lib.xf_set_idle_max(ceiling)
            if rc:
                _raise_last(rc)
        lib.xf_set_poll_mode(1 if busy_poll else 0, spin, sleep)


def forwarder_stats(sw: ESwitch) -> Dict[str, int]:
    """The forwarder's busy time (ns, iterations that moved packets) and the packets moved
    then; busy_ns / pkts = its cost per packet.  Its idle back-off: ``sleep_us``, the length
    of its current (or next) idle sleep, ``sleeps`` taken so far, and ``backoff_resets``, the
    times a packet brought a grown sleep back to sleep_us."""
    lib, ffi = _softdoca_lib("xf_fwd_stats")
    with sw._lock:
        sw._check_open()
        ns, pk = ffi.new("uint64_t *"), ffi.new("uint64_t *")
        cur, sleeps, resets = ffi.new("uint32_t *"), ffi.new("uint64_t *"), ffi.new("uint64_t *")
        rc = lib.xf_fwd_stats(ns, pk) or lib.xf_fwd_backoff(cur, sleeps, resets)
        if rc:
            _raise_last(rc)
    return {"busy_ns": int(ns[0]), "pkts": int(pk[0]), "sleep_us": int(cur[0]), "sleeps": int(sleeps[0]),
            "backoff_resets": int(resets[0])}


def bench_bypass(sw: ESwitch, on: bool, dst_mac: Optional[Union[str, bytes]] = None) -> None:
    """Benchmarks: forward port X's wire frames to port X^1 with no lookup, the plain-io-loop
    baseline the pipeline is compared against; with ``dst_mac`` every frame gets that
    destination MAC (testpmd's macfwd)."""
    lib, ffi = _softdoca_lib("xf_bench_bypass")
    mac = ffi.NULL if dst_mac is None else ffi.new("uint8_t[6]", _mac_bytes(dst_mac))
    with sw._lock:
        sw._check_open()
        rc = lib.xf_bench_bypass(1 if on else 0, mac)
        if rc:
            _raise_last(rc)


def classify(sw: ESwitch, port: str, frame: bytes) -> Tuple[Union[str, None], bytes]:
    """Ports without packet I/O only (tests): run one frame through ``port``'s pipes.
    Returns (egress port name | "miss" (default miss to the kernel) | "miss-rss" (default miss
    to the application's queues: lost) | "drop", the frame after actions)."""
    lib, ffi = _softdoca_lib("softdoca_classify_frame")
    with sw._lock:
        sw._check_open()
        buf = ffi.new("uint8_t[]", bytes(frame) or b"\0")
        r = lib.xf_classify(sw._port_id(port), buf, len(frame))
    if r == -1:
        res: Optional[str] = "miss"
    elif r == -2:
        res = "drop"
    elif r == -5:
        res = "miss-rss"
    elif r >= 0:
        res = next(p.name for p in sw.ports if p.id == r)
    else:
        raise GlueError("DOCA_ERROR_BAD_STATE" if r == -4 else "DOCA_ERROR_NOT_SUPPORTED",
                        "softdoca_classify_frame", "classify needs softdoca with no port doing packet I/O")
    return res, ffi.buffer(buf, len(frame))[:]


def classify_meters(sw: ESwitch, port: str, frame: bytes) -> Tuple[Union[str, None], bytes, int, int]:
    """classify, and what the frame met on its way: (result, frame after actions, the number
    of meters that marked it, the colour it was left with -- COLOR_GREEN when none did)."""
    res, out = classify(sw, port, frame)
    lib, ffi = _softdoca_lib("softdoca_classify_trace")
    n, color = ffi.new("uint32_t *"), ffi.new("uint8_t *")
    with sw._lock:
        rc = lib.xf_classify_trace(n, color)
        if rc:
            _raise_last(rc)
    return res, out, int(n[0]), int(color[0])


def set_manual_clock(sw: ESwitch, ns: int) -> None:
    """Meters read a manual clock standing at ``ns`` nanoseconds from now on (tests: exact
    token arithmetic); it moves only with advance_clock."""
    lib, _ = _softdoca_lib("xf_set_clock")
    with sw._lock:
        sw._check_open()
        lib.xf_set_clock(1, _uint(ns, 64, "ns"))


def advance_clock(sw: ESwitch, ns: int) -> None:
    """Move the manual clock ``ns`` nanoseconds on (needs set_manual_clock)."""
    lib, _ = _softdoca_lib("xf_advance_clock")
    with sw._lock:
        sw._check_open()
        rc = lib.xf_advance_clock(_uint(ns, 64, "ns"))
        if rc:
            _raise_last(rc)


def use_real_clock(sw: ESwitch) -> None:
    """Meters read CLOCK_MONOTONIC again (the default)."""
    lib, _ = _softdoca_lib("xf_set_clock")
    with sw._lock:
        sw._check_open()
        lib.xf_set_clock(0, 0)


def meter_stats(sw: ESwitch, x: Union[Meter, GlueEntry]) -> Dict[str, int]:
    """Colour counters {"green": packets, "red": packets} of a shared Meter or of an entry with
    its own meter.  Tests only: DOCA has no such query (the product counts drops with the drop
    stage's entry counters)."""
    lib, ffi = _softdoca_lib("softdoca_meter_stats")
    g, r = ffi.new("uint64_t *"), ffi.new("uint64_t *")
    with sw._lock:
        sw._check_open()
        if isinstance(x, Meter) and x._sw is sw and x.alive:
            rc = lib.xf_meter_stats(x._handle, g, r)
        elif isinstance(x, GlueEntry) and x.pipe._sw is sw and x.alive:
            rc = lib.xf_entry_meter_stats(x._handle, g, r)
        else:
            raise ValueError("not a live Meter or entry of this eSwitch: %r" % (x,))
        if rc:
            _raise_last(rc)
    return {"green": int(g[0]), "red": int(r[0])}

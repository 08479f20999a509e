"""softdoca's idle back-off (root): with no traffic the forwarder's sleep doubles from
sleep_us up to the ceiling (idle_max_us), so an idle eswitchd costs little CPU; the first
packet brings it back to sleep_us; a ceiling at sleep_us is the old fixed back-off.

The child (glue_child.py idle_backoff) watches the forwarder's back-off counters and waits
for events (the ceiling reached, a reset), never for a time: how fast it wakes and what it
costs are benchmarks/bench_idle.py's to measure.  The ceiling here is 200 ms, so the short
sleep after the packet lasts 200 ms before it may grow again: the child reads it well before.
"""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.root]

SLEEP_US = 20
CEILING_US = 200_000


def _wire(netns) -> str:
    """One namespace: wire veths dpu-pN <-> xN, representor veths rep-pN <-> rN."""
    from xenoflow_ovs.lab import netns as nl

    d = netns("d")
    for i in (0, 1):
        nl.add_veth("dpu-p%d" % i, "x%d" % i, ns=d, peer_ns=d)
        nl.add_veth("rep-p%d" % i, "r%d" % i, ns=d, peer_ns=d)
        for ifn in ("dpu-p%d" % i, "x%d" % i, "rep-p%d" % i, "r%d" % i):
            nl.prepare_link(ifn, ns=d)
    return d


def test_sleep_grows_to_the_ceiling_and_snaps_back(glue, netns):
    from xenoflow_ovs.lab import netns as nl

    d = _wire(netns)
    res = glue.run("idle_backoff", timeout=180, argv_prefix=nl.ns_argv(d, []),
                   ceiling_us=CEILING_US, sleep_us=SLEEP_US)

    assert res["bad_ceiling"]["doca_error"] == "DOCA_ERROR_INVALID_VALUE"
    assert "idle_max_us" in res["bad_ceiling"]["msg"]
    # idle: the sleep only grows, from sleep_us (or on its way) up to the ceiling
    seen = res["seen_idle"]
    assert seen == sorted(seen) and seen[-1] == CEILING_US
    assert all(SLEEP_US <= s <= CEILING_US for s in seen)
    assert res["idle"]["sleeps"] > 0
    # a packet: the grown back-off is cut short, the next idle sleep is the short one again
    after = res["after_packet"]
    assert res["p0"]["rx_pkts"] >= 1
    assert after["backoff_resets"] >= res["idle"]["backoff_resets"] + 1
    assert after["sleep_us"] == SLEEP_US
    # ceiling lowered to sleep_us: fixed sleeps, as before the adaptive back-off
    assert res["fixed"]["sleep_us"] == SLEEP_US

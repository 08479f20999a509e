"""When a DPU announces its VIPs (fleet/announce.py) and the drain-dpu edit (fleet/edits.py)."""

import pytest

from xenoflow_ovs.fleet import announce, edits

VIP = "198.18.0.53/32"


def inputs(**kw):
    base = dict(started=True, verdict="consistent", bad_for=0.0, stale=False, drained=False,
                rejected=False, in_service={VIP: 2})
    base.update(kw)
    return announce.Inputs(**base)


def test_announces_when_consistent_with_a_backend_in_service():
    d = announce.decide(inputs(), frozenset())
    assert d.want == {VIP} and d.why == "announced"


@pytest.mark.parametrize("kw, why", [
    (dict(drained=True), "drained"),
    (dict(rejected=True), "rejects"),
    (dict(in_service={VIP: 0}), "no backend in service"),
    (dict(verdict="drift", bad_for=1.5), "verdict drift"),
    (dict(verdict="inconsistent", bad_for=5.0), "verdict inconsistent"),
])
def test_withdraws(kw, why):
    d = announce.decide(inputs(**kw), frozenset({VIP}))
    assert d.want == frozenset() and why in d.why


@pytest.mark.parametrize("kw", [dict(started=False), dict(stale=True), dict(verdict="drift", bad_for=0.2)])
def test_keeps_what_bgpd_announces_when_it_cannot_judge(kw):
    """A controller restart, a store outage, a verdict caught mid-update: nothing moves."""
    for current in (frozenset(), frozenset({VIP})):
        assert announce.decide(inputs(**kw), current).want == current


def test_drained_beats_fail_static():
    assert announce.decide(inputs(stale=True, drained=True), frozenset({VIP})).want == frozenset()


def test_fallback_still_forwards_the_vip():
    assert announce.decide(inputs(verdict="fallback"), frozenset()).want == {VIP}


def test_vip_prefixes_counts_backends_in_service_per_vip():
    class B:
        def __init__(self, name):
            self.name = name

    class S:
        def __init__(self, name, vip, backends):
            self.name, self.vip, self.backends = name, vip, [B(n) for n in backends]

    svcs = (S("udp", "198.18.0.53", ["a", "b"]), S("tcp", "198.18.0.53", ["a"]), S("x", "198.18.0.54", ["c"]))
    assert announce.vip_prefixes(svcs, {"udp": {"a"}, "tcp": {"a"}, "x": {"c"}}) == {
        VIP: 1, "198.18.0.54/32": 0}


def test_quiet_after_flat_counters_and_gives_up_at_timeout():
    q = announce.Quiet(quiet=1.0, timeout=5.0)
    assert q.feed(0.0, 10) is None          # not draining
    q.start(0.0)
    assert q.feed(0.1, 10) is None
    assert q.feed(0.6, 20) is None          # still moving: the router has not dropped the route yet
    assert q.feed(1.2, 20) is None
    assert q.feed(1.7, 20) is True          # flat for 1.1 s
    q.start(10.0)
    for t in range(1, 6):
        assert q.feed(10.0 + t - 0.5, t) is None
    assert q.feed(15.1, 99) is False


def snap(announced):
    return {"dpus": {n: {"announced": a} for n, a in announced.items()}, "drained_dpus": []}


def test_drain_dpu_is_stored_and_undone():
    s = snap({"dpu1": True, "dpu2": True})
    edits.drain_dpu("dpu1")([], s)
    assert s["drained_dpus"] == ["dpu1"]
    edits.drain_dpu("dpu1", on=False)([], s)
    assert s["drained_dpus"] == []


def test_drain_dpu_refuses_to_withdraw_the_whole_fleet():
    s = snap({"dpu1": True, "dpu2": False})
    with pytest.raises(edits.Conflict, match="no DPU announcing"):
        edits.drain_dpu("dpu1")([], s)
    assert s["drained_dpus"] == []
    edits.drain_dpu("dpu1", force=True)([], s)
    assert s["drained_dpus"] == ["dpu1"]


def test_drain_dpu_names_unknown_dpus():
    with pytest.raises(LookupError, match="no DPU 'dpu9'.*dpu1"):
        edits.drain_dpu("dpu9")([], snap({"dpu1": True}))


class FakeFrr:
    """bgpd's networks as a set (the real FRR is driven in tests/integration/test_frr_speaker.py)."""
    pathspace = "xf-test"

    def __init__(self, networks=()):
        self.nets, self.calls = set(networks), []

    def networks(self, asn):
        return set(self.nets)

    def peers(self):
        return {"198.18.11.1": {"bgp": "Established", "bfd": "up"}}

    def announce(self, asn, prefix):
        self.calls.append(("announce", prefix))
        self.nets.add(prefix)

    def withdraw(self, asn, prefix):
        self.calls.append(("withdraw", prefix))
        self.nets.discard(prefix)


def announcer(frr, state, packets):
    import os

    from xenoflow_ovs.fleet.announcer import Announcer
    from xenoflow_ovs.intent import config
    cfg = config.load(os.path.join(os.path.dirname(__file__), "..", "..", "topologies", "fleet", "dpu1.yaml"))
    return Announcer(cfg, frr, lambda: inputs(**state), lambda: packets[0], sleep=lambda s: None)


def test_announcer_adopts_reannounces_after_bgpd_restart_and_reports_a_quiet_drain():
    frr = FakeFrr({VIP})
    state, packets = {"started": False}, [100]
    a = announcer(frr, state, packets)
    a.round(0.0)
    assert frr.calls == [] and a.row()["announced"] is True          # a restart adopts, changes nothing
    state["started"] = True
    a.round(0.5)
    assert frr.calls == []
    frr.nets.clear()                                                 # bgpd restarted: it forgot
    a.round(3.0)
    assert frr.calls == [("announce", VIP)]
    state["drained"] = True
    a.round(3.5)
    assert frr.calls[-1] == ("withdraw", VIP) and a.row()["quiet"] is False
    packets[0] = 150                                                 # the router still sends a little
    a.round(3.8)
    a.round(4.5)
    assert a.row()["quiet"] is False
    a.round(5.0)
    assert a.row() == {"announced": False, "announce_why": "drained (fleet drain-dpu)", "quiet": True,
                       "bgp": {"198.18.11.1": "Established, bfd up"}}

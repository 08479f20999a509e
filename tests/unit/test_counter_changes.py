"""Counters across changes: an eSwitch entry is read at the moment it changes (eswitchd's
apply reply, and a poll right before), so what it counted until then stays with the
backend it sent those packets to, not the one it names afterwards."""

import os

import pytest
from config_samples import ipv4_udp  # noqa: E402  (tests/unit, beside this file)

from xenoflow_ovs.controller.runtime import EswitchTotals, Runtime
from xenoflow_ovs.eswitch import wire
from xenoflow_ovs.intent import config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(ROOT, "topologies", "paper", "xenoflow.yaml")


class CountingEswitch:
    """eswitchd with a forwarder: `traffic(n)` sends n packets to each installed bucket entry.
    With `read_on_change`, an apply reply carries each changed entry's counts read right
    before the change (the daemon's `counted`); without, it carries none (an older daemon)."""

    def __init__(self, read_on_change=True, in_flight=0):
        self.entries = {}          # key -> [entry, pkts]
        self.sent = {}             # backend -> packets it really got
        self.read_on_change = read_on_change
        self.in_flight = in_flight   # packets per bucket between a read and the next apply

    def installed(self):
        return [], [e for e, _ in self.entries.values()]

    def traffic(self, n):
        for rec in self.entries.values():
            if rec[0].kind == "bucket":
                rec[1] += n
                self.sent[rec[0].backend] = self.sent.get(rec[0].backend, 0) + n

    def _wire(self, e, n):
        return {"entry": wire.entry_to_wire(e), "pkts": n, "bytes": n * 100}

    def counters(self):
        return {"entries": [self._wire(e, n) for e, n in self.entries.values()], "ports": {}}

    def apply(self, changes):
        self.traffic(self.in_flight)
        counted = []
        for c in changes:
            if c.op == "add":
                self.entries[c.item.key] = [c.item, 0]
            elif c.op == "update":
                counted.append(self._wire(*self.entries[c.item.key]))
                self.entries[c.item.key][0] = c.item
            elif c.op == "remove":
                counted.append(self._wire(*self.entries.pop(c.item.key)))
        return {"ok": True, "counted": counted if self.read_on_change else []}


def cfg(bits=2):
    data = ipv4_udp(config.to_data(config.load(PAPER)))   # one pipe: a bucket is one entry
    data["services"][0]["policy"]["bits"] = bits
    return config.from_data(data, base_dir=os.path.dirname(PAPER))


def totals(rt):
    return {be: v[0] for (svc, be), v in rt.es_totals.backends.items()}


def run(es, after_change_traffic=0):
    rt = Runtime(cfg(), lambda changes: None, eswitch=es)
    rt.start()
    rt.poll_eswitch()
    es.traffic(1000)                    # counted since the last poll, not polled yet
    rt.drain("dns", "fips2")            # fips2's buckets move to fips3 in place
    es.traffic(after_change_traffic)
    rt.poll_eswitch()
    return rt


def test_a_drain_credits_the_drained_backend_with_what_it_got():
    es = CountingEswitch(in_flight=7)
    rt = run(es, after_change_traffic=500)
    assert totals(rt) == es.sent == {"fips2": 2014, "fips3": 2014 + 4 * 500}


def test_without_the_daemons_reading_only_packets_in_flight_are_misattributed():
    # An eswitchd whose apply reply carries no counts: the poll right before the change
    # bounds the error to what arrives between that poll and the change.
    es = CountingEswitch(read_on_change=False, in_flight=7)
    rt = run(es, after_change_traffic=500)
    assert sum(totals(rt).values()) == sum(es.sent.values())
    assert es.sent["fips2"] - totals(rt)["fips2"] == 2 * 7      # 2 moved buckets x 7 in flight


def test_a_removed_entry_credits_its_last_packets():
    es = CountingEswitch()
    rt = Runtime(cfg(), lambda changes: None, eswitch=es)
    rt.start()
    rt.poll_eswitch()
    es.traffic(300)
    rt.reload(cfg(bits=1), why="bits 2 -> 1")     # a new pipe: every old entry removed
    rt.poll_eswitch()
    assert totals(rt) == es.sent == {"fips2": 600, "fips3": 600}


def test_settle_then_poll_attributes_each_part_once():
    t = EswitchTotals()
    ent = {"port": "p0", "pipe": "dns", "match": [["ipv4_src", 0, 1]], "kind": "bucket",
           "owner": "dns", "backend": "a"}
    t.update({"entries": [{"entry": ent, "pkts": 10, "bytes": 1000}]})
    t.settle([{"entry": ent, "pkts": 15, "bytes": 1500}])                   # read before the move
    moved = dict(ent, backend="b")
    t.update({"entries": [{"entry": moved, "pkts": 18, "bytes": 1800}]})
    assert t.backends == {("dns", "a"): [15, 1500], ("dns", "b"): [3, 300]}


# -- OVS: a flow modified to another backend is read right before ---------------------


def test_an_ovs_flow_modified_to_another_backend_is_counted_for_the_one_it_had(tmp_path, monkeypatch):
    pytest.importorskip("xenoflow_ovs.controller.compat")
    from test_app_smoke import Harness

    from xenoflow_ovs.controller import counters
    from xenoflow_ovs.controller.app import XenoFlowApp

    monkeypatch.setenv("XENOFLOW_STATE", str(tmp_path / "state.json"))
    data = config.to_data(config.load(PAPER))
    data["dpu"]["eswitch"]["driver"] = "none"
    data["services"][0]["policy"]["bits"] = 2
    for i in (4, 5):
        data["services"][0]["backends"].append({"name": "fips%d" % i, "ip": "198.18.0.%d" % i,
                                                "mac": "02:00:c6:12:00:%02x" % i, "weight": 1})
    cfg = config.from_data(data, base_dir=os.path.dirname(PAPER))
    app = XenoFlowApp(xenoflow_cfg=cfg)
    app.kill_on_exception = False
    app.dispatch = lambda ev: {"EventPoll": app.poll, "EventCall": app.call}[type(ev).__name__](ev)
    h = Harness(app, cfg)
    for name in h.dps:
        h.connect(name)
    app.runtime.start()
    app.runtime.ovs_read = lambda: counters.read_now(app.bridges, app.run_in_app)
    flow5 = next(e for e in h.ours("ovsbr1").values()
                 if ("set_field", "eth_dst", 0x0200C6120005) in e.actions)
    flow5.packets, flow5.bytes = 10, 800
    h.poll()
    flow5.packets, flow5.bytes = 17, 1360            # since the last poll
    # the table (fips2 fips3 fips4 fips5) -> (fips2 fips3 fips4 fips2): fips5's flow is modified
    out = app.runtime.drain("dns", "fips5")
    assert out["moved_buckets"] == 1
    assert ("set_field", "eth_dst", 0x0200C6120002) in flow5.actions      # the same flow, moved
    flow5.packets, flow5.bytes = 20, 1600             # after the change: fips2's
    h.poll()
    svc = app.status.app_view()["services"]["dns"]
    assert svc["fips5"] == {"ovs_packets": 17, "ovs_bytes": 1360}
    assert svc["fips2"]["ovs_packets"] == 3

"""eswitchd at scale, without the glue: totals per backend that stay exact across bucket
moves and removals (and a rolled-back apply), the table version that spares the controller
listing 2^16 entries to find drift, and the compact wire form of bucket runs. eswitchd runs
in this process on a stand-in driver; the controller talks to it over its real socket."""

import os
import tempfile
import threading

import pytest
from config_samples import ipv4_udp  # noqa: E402  (tests/unit, beside this file)

from xenoflow_ovs.controller.runtime import EswitchTotals, Runtime
from xenoflow_ovs.eswitch import daemon, wire
from xenoflow_ovs.eswitch.client import EswitchClient, EswitchError
from xenoflow_ovs.intent import config
from xenoflow_ovs.intent import plan as plan_mod
from xenoflow_ovs.intent.plan import Change

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(ROOT, "topologies", "paper", "xenoflow.yaml")


class Boom(Exception):
    pass


class FakeDriver:
    """The glue's part eswitchd uses: entries are handles with counters; `traffic(n)` sends
    n packets through every bucket entry to the MAC it sets now."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.next = 1
        self.live = {}           # handle -> [entry, pkts, dst_mac]
        self.by_mac = {}         # MAC -> packets it really got
        self.fail_update = False

    def create_pipe(self, p, pipes=None):
        return ("pipe", p.key)

    def destroy_pipe(self, h):
        pass

    def add(self, entries, pipes, meters=None):
        out = []
        for e in entries:
            self.live[self.next] = [e, 0, e.dst_mac]
            out.append(self.next)
            self.next += 1
        return out

    def add_beside(self, h, e, pipes, meters=None):
        assert h in self.live and e.pipe == "root"
        return self.add([e], pipes)[0]

    def update_macs(self, pairs):
        if self.fail_update:
            raise Boom("the glue refused the batch")
        for h, mac in pairs:
            self.live[h][2] = mac

    def remove(self, handles):
        for h in handles:
            del self.live[h]

    def query(self, handles):
        return [(self.live[h][1], self.live[h][1] * 100) for h in handles]

    def prepare_sum(self, handles):
        return list(handles)

    def query_sum(self, handles):
        counts = self.query(handles)
        return sum(c[0] for c in counts), sum(c[1] for c in counts)

    def port_stats(self, port):
        return {"miss_pkts": 0}

    def traffic(self, n):
        for rec in self.live.values():
            if rec[0].kind == "bucket":
                rec[1] += n
                self.by_mac[rec[2]] = self.by_mac.get(rec[2], 0) + n


def cfg(bits=2):
    data = ipv4_udp(config.to_data(config.load(PAPER)))   # one pipe: a bucket is one entry
    data["services"][0]["policy"]["bits"] = bits
    return config.from_data(data, base_dir=os.path.dirname(PAPER))


@pytest.fixture
def eswitchd():
    c = cfg()
    driver = FakeDriver(c)
    state = daemon.EswitchState(driver)
    with tempfile.TemporaryDirectory(prefix="xfes") as tmp:
        server = daemon.Server(os.path.join(tmp, "es.sock"), state, {"driver": "fake"})
        t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        t.start()
        try:
            yield c, driver, state, server.server_address
        finally:
            server.shutdown()
            server.server_close()


def by_mac(c, totals):
    macs = {b.name: b.mac for b in c.services[0].backends}
    return {macs[be]: v[0] for (svc, be), v in totals.backends.items()}


def test_totals_stay_with_the_backend_that_got_the_packets(eswitchd):
    c, driver, state, sock = eswitchd
    client = EswitchClient(sock)
    assert {"runs", "totals", "version"} <= set(client.features())
    rt = Runtime(c, lambda changes: None, eswitch=client)
    rt.start()
    rt.poll_eswitch()
    driver.traffic(1000)
    rt.drain("dns", "fips2")                # fips2's buckets move to fips3 in place
    driver.traffic(10)
    rt.reload(cfg(bits=1), why="bits 2 -> 1")   # every old entry removed, new ones added
    driver.traffic(3)
    # a rolled-back apply: what moved and moved back is still counted once, where it went
    driver.fail_update = True
    with pytest.raises(Exception):
        rt.drain("dns", "fips2", on=False)
    driver.fail_update = False
    driver.traffic(5)
    rt.poll_eswitch()
    assert by_mac(c, rt.es_totals) == driver.by_mac
    assert driver.by_mac[c.services[0].backend("fips2").mac] == 2 * 1000   # its 2 of 4 buckets
    # the poll carried totals, not entries
    reply = client.counters(entries=False)
    assert "entries" not in reply and len(reply["totals"]) == 5   # 2 backends, 2 routes, dispatch
    # the detailed form agrees with the totals (no entry was removed since)
    detail = client.counters()
    assert sum(e["pkts"] for e in detail["entries"] if e["entry"]["kind"] == "bucket") == 2 * 8
    client.close()


def test_a_restarted_eswitchd_counts_from_zero_without_losing_what_was_counted():
    t = EswitchTotals()
    g = {"kind": "bucket", "owner": "dns", "backend": "a"}
    t.update({"totals": [dict(g, pkts=10, bytes=100)], "table": {"boot": "one", "version": 3}})
    t.update({"totals": [dict(g, pkts=15, bytes=150)], "table": {"boot": "one", "version": 3}})
    t.update({"totals": [dict(g, pkts=20, bytes=200)], "table": {"boot": "two", "version": 1}})
    t.update({"totals": [dict(g, pkts=4, bytes=40)], "table": {"boot": "two", "version": 1}})
    assert t.backends == {("dns", "a"): [15 + 20 + 4, 150 + 200 + 40]}
    t.update({"totals": [{"kind": "route", "owner": "r", "backend": None, "pkts": 7, "bytes": 70}],
              "table": {"boot": "two", "version": 1}})
    assert t.routes == {"r": [7, 70]}


def test_drift_is_looked_for_only_when_the_table_moved_behind_our_back(eswitchd):
    c, driver, state, sock = eswitchd
    client = EswitchClient(sock)
    listings = []
    real = client.installed

    def counting():
        listings.append(1)
        return real()
    client.installed = counting
    rt = Runtime(c, lambda changes: None, eswitch=client)
    rt.start()
    assert rt.reconcile_eswitch() == []          # the first look after start lists
    n = len(listings)
    assert rt.reconcile_eswitch() == [] and len(listings) == n
    rt.drain("dns", "fips2")                     # our own write: nothing to look for
    assert rt.reconcile_eswitch() == [] and len(listings) == n
    # another client (the fault suite's "removed behind our back") moves the version
    other = EswitchClient(sock)
    victim = [e for e in other.installed()[1] if e.kind == "bucket"][0]
    other.apply([Change("eswitch", "remove", victim)])
    repaired = rt.reconcile_eswitch()
    assert len(listings) == n + 1
    assert len(repaired) == 1 and repaired[0].startswith("add ")
    assert rt.reconcile_eswitch() == [] and len(listings) == n + 1
    # a failed apply leaves the version unknown: the next look lists
    with pytest.raises(EswitchError):
        client.apply([Change("eswitch", "remove", victim), Change("eswitch", "remove", victim)])
    before = state.version
    driver.fail_update = True
    with pytest.raises(Exception):
        rt.drain("dns", "fips2", on=False)
    driver.fail_update = False
    assert state.version == before + 1
    assert rt.reconcile_eswitch() == [] and len(listings) == n + 2
    other.close()
    client.close()


def test_bucket_runs_travel_compact_and_come_back_the_same():
    p = plan_mod.plan(cfg(bits=3))
    empty = plan_mod.Plan((), (), ())
    changes = plan_mod.adoption_changes([], [], p)
    drained = plan_mod.plan(cfg(bits=3), exclude={"dns": ["fips2"]})
    moved = plan_mod.adoption_changes(p.pipes, p.entries, drained)
    gone = plan_mod.adoption_changes(p.pipes, p.entries, empty)
    for cs in (changes, moved, gone):
        compact = wire.changes_to_wire(cs)
        assert len(compact) < len(cs)
        back = wire.changes_from_wire(compact)
        assert [(c.op, c.item) for c in back] == [(c.op, c.item) for c in cs]
        # the first protocol's form still reads
        assert [(c.op, c.item) for c in wire.changes_from_wire(wire.changes_to_wire(cs, runs=False))] == \
            [(c.op, c.item) for c in cs]
    with pytest.raises(ValueError, match=r"changes\[0\]: malformed"):
        wire.changes_from_wire([{"op": "add", "run": {"port": "p0"}, "items": []}])

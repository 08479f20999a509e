"""The worker's verdict refresh at scale: with an eSwitch that reports its table version,
an unchanged fingerprint costs one round trip, never a listing of every entry; a moved
version brings one listing and one check."""

import os
from types import SimpleNamespace

from xenoflow_ovs.controller import status as status_mod
from xenoflow_ovs.intent import config, consistency, plan

PAPER = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                     "topologies", "paper", "xenoflow.yaml")


class VersionedEswitch:
    def __init__(self, p):
        self.version, self.listings, self.plan = ("boot", 1), 0, p

    def table_version(self):
        return self.version

    def installed(self):
        self.listings += 1
        return list(self.plan.pipes), list(self.plan.entries)


def make_status(monkeypatch):
    cfg = config.load(PAPER)
    p = plan.plan(cfg)
    es = VersionedEswitch(p)
    flows = {br.name: p.bridge_flows(br.name) for br in cfg.bridges}
    rt = SimpleNamespace(cfg=cfg, eswitch=es, in_force=p, transitions=0, last_transition={})
    bridges = SimpleNamespace(dump_digests=lambda: {"ovsbr1": 1, "ovsbr2": 1},
                              installed_flows=lambda: flows)
    st = status_mod.Status(SimpleNamespace(runtime=rt, bridges=bridges), "osken")
    monkeypatch.setattr(st, "_stale", lambda: False)
    checks = []
    real = consistency.check
    monkeypatch.setattr(consistency, "check", lambda *a, **kw: checks.append(1) or real(*a, **kw))
    return st, es, checks


def test_an_unchanged_table_version_skips_the_listing_and_the_check(monkeypatch):
    st, es, checks = make_status(monkeypatch)
    st.refresh_verdict()
    assert checks == [1] and es.listings == 1
    assert st._last_check["verdict"] == "consistent"
    for _ in range(3):
        st.refresh_verdict()
    assert checks == [1] and es.listings == 1          # one round trip per poll, nothing listed
    es.version = ("boot", 2)                          # someone wrote to eswitchd
    st.refresh_verdict()
    assert checks == [1, 1] and es.listings == 2


def test_an_eswitch_without_versions_is_listed_for_its_fingerprint(monkeypatch):
    st, es, checks = make_status(monkeypatch)
    es.table_version = lambda: None                   # an older eswitchd
    st.refresh_verdict()
    st.refresh_verdict()
    assert checks == [1] and es.listings == 2         # listed each time, checked once

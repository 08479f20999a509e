"""The DoS guard in the paper lab (`xenoflow lab demo --flood`): the flood variant (16 buckets,
every bucket limited to 200 pps, burst 20), one source flooding its bucket at 5x the limit for
10 s with the benchmarks' pacer while one source in each of the 15 other buckets asks at a
steady rate. Every figure comes from counters: eswitchd's bucket and drop-stage entries, the
controller's API (OVS, fallback, the verdict) and bind9's statistics, never from timing.

The first tests need no lab: the flood variant's derived config and the choice of sources.
The lab's tests share one flood (module fixture) in a private run dir, as tests/lab/test_lab.py.
The namespace names are fixed: run one lab test session at a time (`flock /tmp/xf/lab.lock`).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOPOLOGY = os.path.join(REPO, "topologies", "paper")
LAB = [pytest.mark.root, pytest.mark.ovs, pytest.mark.lab, pytest.mark.slow]


def _flood_cfg(tmp_path):
    from xenoflow_ovs.intent import config as config_mod
    from xenoflow_ovs.lab.labctl import write_derived_config
    from xenoflow_ovs.lab.topology import load_topology

    topo = load_topology(os.path.join(TOPOLOGY, "topology.yaml"))
    return topo, config_mod.load(write_derived_config(topo, str(tmp_path), None, None, None, flood=True))


# ---------------------------------------------------------------- no lab


def test_flood_variant_has_bits_4_and_a_per_bucket_limit(tmp_path):
    topo, cfg = _flood_cfg(tmp_path)
    svc = cfg.services[0]
    assert svc.policy.kind == "src-ip-bits" and svc.policy.bits >= 4
    assert svc.limits.bucket == (200, 20) and svc.limits.service is None
    # the rest is the paper's config: same VIPs, listeners, backends
    from xenoflow_ovs.intent import config as config_mod
    paper = config_mod.load(topo.config_path).services[0]
    assert (svc.vip, svc.vip6, svc.listeners, svc.backends) == (paper.vip, paper.vip6, paper.listeners,
                                                                paper.backends)


def test_merge_refuses_a_service_the_config_lacks():
    from xenoflow_ovs.lab.labctl import LabError, merge_services

    data = {"services": [{"name": "dns", "port": 53}]}
    assert merge_services(data, {"services": {"dns": {"port": 5353}}})["services"] == [
        {"name": "dns", "port": 5353}]
    assert data["services"][0]["port"] == 53        # pure: the input is untouched
    with pytest.raises(LabError, match="nope"):
        merge_services(data, {"services": {"nope": {"port": 1}}})


def test_one_flood_source_and_one_other_source_per_other_bucket(tmp_path):
    from xenoflow_ovs.intent.plan import plan
    from xenoflow_ovs.lab.flood import bucket_of, plan_flood

    topo, cfg = _flood_cfg(tmp_path)
    svc = cfg.services[0]
    table = plan(cfg).table(svc.name)
    fp = plan_flood(svc, table, topo.clients, times=5, seconds=10)
    others = fp.other_sources
    buckets = [bucket_of(s, svc.policy.bits) for s in others]
    assert fp.source == "198.18.0.11" and fp.netns == "fips1" and fp.bucket == 11
    assert fp.backend == table[11] and fp.offered_pps == 5 * 200
    assert len(others) == 15 and sorted(buckets) == [b for b in range(16) if b != 11]
    assert fp.source not in others


def test_problems_name_what_breaks_the_guard():
    from xenoflow_ovs.lab.flood import problems

    ok = {"delivered": 2010, "allowed": (1800.0, 2020.0), "dropped": 7990, "dropped_elsewhere": 0,
          "ovs_service": 0, "fallback": 0, "others": {"lost": 0, "wrong": 0, "sent": 300},
          "status_eswitch_limited": 7990, "status_ovs_limited": 0}
    assert problems(ok) == []
    assert "outside" in problems(dict(ok, delivered=2100))[0]
    assert "OVS carried 3" in problems(dict(ok, ovs_service=3))[0]
    assert "meters dropped 5" in problems(dict(ok, status_ovs_limited=5))[0]
    assert "counts 7000" in problems(dict(ok, status_eswitch_limited=7000))[0]
    assert "1 lost" in problems(dict(ok, others={"lost": 1, "wrong": 0, "sent": 300}))[0]


# ---------------------------------------------------------------- the lab


@pytest.fixture(scope="module")
def lab():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    from xenoflow_ovs.lab.labctl import LabCtl, Progress
    from xenoflow_ovs.lab.topology import LabBusy

    run_dir = tempfile.mkdtemp(prefix="xf-labflood-")
    args = argparse.Namespace(action="up", topology=TOPOLOGY, run_dir=run_dir, eswitch="softdoca",
                              mirror_routes=None, eswitch_mode=None, flood=True)
    ctl = LabCtl(args, Progress(out=open(os.devnull, "w")))
    foreign = ctl.lab.foreign_namespaces()
    if foreign:
        pytest.fail("another lab is up (namespaces %s exist): run `xenoflow lab down` first"
                    % ", ".join(foreign))
    try:
        ctl.up()
    except LabBusy as e:
        pytest.fail(str(e))
    except Exception:
        ctl.down()
        raise
    yield ctl
    ctl.down()
    shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def flood(lab):
    """One flood: 5x the bucket's limit for 10 s, the 15 other buckets asking meanwhile."""
    from xenoflow_ovs.lab.flood import FloodDemo
    return FloodDemo(lab).measure(times=5, seconds=10.0)


def _entry_kinds(lab):
    from xenoflow_ovs.eswitch.client import EswitchClient
    cfg = lab.load_cfg()
    c = EswitchClient(cfg.path(cfg.eswitch.socket))
    try:
        entries = c.counters()["entries"]
    finally:
        c.close()
    kinds = {}
    for e in entries:
        ent = e["entry"]
        kinds.setdefault(ent["kind"], set()).add(ent.get("bucket"))
    return kinds


def _mark(fn):
    """The lab's marks, on the tests that use it (the ones above run anywhere)."""
    for m in LAB:
        fn = m(fn)
    return fn


@_mark
def test_lab_runs_the_flood_variant_with_a_drop_stage_per_bucket(lab):
    svc = lab.load_cfg().services[0]
    assert svc.policy.bits >= 4 and svc.limits.bucket == (200, 20)
    kinds = _entry_kinds(lab)
    assert kinds["bucket"] == set(range(16)) and kinds["drop"] == set(range(16))


@_mark
def test_the_flood_offers_at_least_5x_the_limit_and_reaches_the_eswitch(flood):
    t = flood["seconds"]
    assert 9.5 <= t <= 11
    assert flood["sent"] >= 0.95 * 5 * flood["rate"] * t
    # the bucket entry counts what arrived: all but what the client's kernel held back for ARP
    assert flood["arrived"] >= 0.95 * flood["sent"]


@_mark
def test_the_other_buckets_lose_no_query(flood):
    o = flood["others"]
    assert o["sources"] == 15 and flood["bucket"] not in o["buckets"]
    assert o["sent"] == 15 * 20
    assert (o["answered"], o["wrong"], o["lost"]) == (o["sent"], 0, 0)
    assert flood["dropped_elsewhere"] == 0


@_mark
def test_the_eswitch_delivers_the_limit_and_drops_the_rest_in_its_drop_stage(flood):
    rate, burst, t = flood["rate"], flood["burst"], flood["seconds"]
    d = flood["delivered"]
    assert 0.9 * rate * t <= d <= rate * t + burst
    # at 5x the rate, four in five packets meet a red meter: the bucket's drop stage counts them
    assert flood["dropped"] >= 0.75 * flood["arrived"]
    # the backend answered what the eSwitch let through (the others' answers taken off)
    assert 0.9 * rate * t <= flood["backend_answered"] <= d


@_mark
def test_ovs_counts_none_of_it_and_fallback_stays_0(flood):
    assert flood["ovs_backend"] == 0 and flood["ovs_service"] == 0
    assert flood["status_ovs_limited"] == 0       # OVS's meters never saw the flood either
    assert flood["fallback"] == 0


@_mark
def test_the_controller_counts_the_drops_as_the_drop_stage_does(flood):
    # GET /status's limits: the eSwitch's drops, read by the controller from eswitchd (the
    # flood's bucket dropped all of them)
    assert flood["status_eswitch_limited"] == flood["dropped"] > 0 and flood["dropped_elsewhere"] == 0


@_mark
def test_the_planes_stay_consistent_after_the_flood(lab, flood):
    from xenoflow_ovs.lab.labctl import Demo
    chk = Demo(lab).api("/check")
    assert chk is not None and chk["verdict"] == "consistent"

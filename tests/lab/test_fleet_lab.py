"""End-to-end: the fleet lab (`xenoflow lab --topology fleet`, docs/lab-fleet.md): two DPUs
behind an FRR router with L4 ECMP, one intent in a 3-member Raft store.

ONE fleet lab per module, brought up with the CLI in a private run dir and taken down at
the end, checking that nothing of it is left. Its namespaces fips1/fips2/fips3 are the
paper lab's names too: while another lab holds them, the fixture waits (polling, bounded).
Traffic stays inside the lab's namespaces; addresses are 198.18.0.0/15 only.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.lab, pytest.mark.slow]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOPOLOGY = os.path.join(REPO, "topologies", "fleet")
WAIT_FREE = 900.0      # s to wait while another lab holds the namespaces


def _env():
    import xenoflow_ovs
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(xenoflow_ovs.__file__)))
    return dict(os.environ, PYTHONPATH=os.pathsep.join([pkg_root, os.environ.get("PYTHONPATH", "")]))


def _cli(run_dir, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "lab"] + list(args)
                          + ["--topology", TOPOLOGY, "--run-dir", run_dir], env=_env(), cwd=run_dir,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=timeout)


def _fleet(run_dir):
    from xenoflow_ovs.lab.fleet_lab import FleetLab
    from xenoflow_ovs.lab.labctl import Progress, topology_path
    from xenoflow_ovs.lab.topology import load_topology
    args = argparse.Namespace(action="status", topology=TOPOLOGY, run_dir=run_dir, eswitch=None,
                              mirror_routes=None, eswitch_mode=None)
    return FleetLab(args, Progress(out=open(os.devnull, "w")), load_topology(topology_path(TOPOLOGY)))


def _recorded(lab):
    """(name, pid, start) of every process the lab recorded: its own and each DPU's."""
    out = [(n, p["pid"], p["start"]) for n, p in lab.state.data["processes"].items()]
    for d in lab.dpus:
        out += [("%s/%s" % (d.spec.name, n), p["pid"], p["start"])
                for n, p in d.state.data["processes"].items()]
    return out


@pytest.fixture(scope="module")
def fleet():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    run_dir = tempfile.mkdtemp(prefix="xf-fleet-")
    lab = _fleet(run_dir)
    deadline = time.monotonic() + WAIT_FREE
    while lab.lab.foreign_namespaces():
        if time.monotonic() > deadline:
            pytest.fail("another lab holds %s for more than %.0f s"
                        % (lab.lab.foreign_namespaces(), WAIT_FREE))
        time.sleep(10)
    t0 = time.monotonic()
    r = _cli(run_dir, "up")
    lab.up_seconds = time.monotonic() - t0
    if r.returncode != 0:
        _cli(run_dir, "down")
        shutil.rmtree(run_dir, ignore_errors=True)
        pytest.fail("xenoflow lab up --topology fleet failed:\n" + r.stdout)
    lab = _fleet(run_dir)            # reads what the up recorded
    lab.up_seconds = time.monotonic() - t0
    lab.recorded = _recorded(lab)
    yield lab
    r = _cli(run_dir, "down")
    try:
        assert r.returncode == 0, r.stdout
        _assert_nothing_left(lab)
        assert _cli(run_dir, "down").returncode == 0      # idempotent
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _assert_nothing_left(lab):
    from xenoflow_ovs.lab import netns as nsh
    from xenoflow_ovs.lab.topology import proc_alive
    left = [ns for ns in lab.topo.namespaces if nsh.ns_exists(ns)]
    assert not left, "namespaces left: %s" % left
    alive = [(n, pid) for n, pid, start in lab.recorded if proc_alive(pid, start)]
    assert not alive, "processes left: %s" % alive
    frr = [n for n, _, _ in lab.recorded if "frr" in n]
    assert len(frr) == 9, frr           # zebra, bfdd, bgpd in rtr and in both DPUs: all recorded
    pathspaces = [lab.topo.router.pathspace] + ["xf-" + d.spec.name for d in lab.dpus]
    assert not [p for p in pathspaces if os.path.exists(os.path.join("/var/run/frr", p))]
    assert not [d for d in ("xf-dpu1", "xf-dpu2") if os.path.exists(os.path.join("/var/run/dpdk", d))]
    assert not os.path.exists(os.path.join(lab.run_dir, "state.json"))
    assert not os.path.exists(os.path.join(lab.run_dir, "store"))


def _dpu_by_gateway(lab):
    return {a: dpu for a, _, dpu in lab.neighbors()}


def _route_dpu(lab, src, sport):
    from xenoflow_ovs.lab.fleet_lab import FleetDemo
    return FleetDemo(lab).dpu_of(src, sport, lab.vip())


def _eswitch_bucket_pkts(d):
    """Packets of the service's bucket entries in this DPU's eSwitch."""
    from xenoflow_ovs.eswitch.client import EswitchClient
    cfg = d.load_cfg()
    c = EswitchClient(cfg.path(cfg.eswitch.socket))
    try:
        res = c.counters()
    finally:
        c.close()
    return sum(e["pkts"] for e in res["entries"] if e["entry"].get("kind") == "bucket")


def _expected(lab, src):
    from xenoflow_ovs.lab.labctl import Demo
    d0 = lab.dpus[0]
    p = d0.planes.planned()
    svc = p.services[0].svc
    return Demo(d0).expected_backend(svc, list(p.table(svc.name)), src)


def _query(lab, flows):
    from xenoflow_ovs.lab.fleet_lab import FleetDemo
    return FleetDemo(lab).query("fips1", lab.vip(), flows, 1)


def _wait_grown(d, before, n, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        got = _eswitch_bucket_pkts(d) - before
        if got >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_up_took_and_status_exits_0(fleet):
    assert fleet.up_seconds < 120, fleet.up_seconds
    r = _cli(fleet.run_dir, "status")
    assert r.returncode == 0, r.stdout
    assert r.stdout.count("Established, BFD up") == 2, r.stdout
    assert "198.18.0.53 via 198.18.11.2 (dpu1), 198.18.12.2 (dpu2)" in r.stdout, r.stdout


def test_ecmp_spreads_the_sources_over_both_dpus(fleet):
    srcs = fleet.topo.clients["fips1"]
    flows = [(s, 41000 + i) for i, s in enumerate(srcs)]
    carried = {f: _route_dpu(fleet, *f) for f in flows}
    per = {}
    for dpu in carried.values():
        per[dpu] = per.get(dpu, 0) + 1
    assert set(per) == {"dpu1", "dpu2"}, per
    assert min(per.values()) >= len(flows) // 4, per           # an L4 hash, not one DPU for all
    before = {d.spec.name: _eswitch_bucket_pkts(d) for d in fleet.dpus}
    res = _query(fleet, flows)
    wrong = {k: v for k, v in res.items() if set(v) != {_expected(fleet, k.split(":")[0])}}
    assert not wrong, wrong
    for d in fleet.dpus:
        grew = _wait_grown(d, before[d.spec.name], per[d.spec.name])
        assert grew == per[d.spec.name], (d.spec.name, grew, per)


def test_same_source_same_backend_through_either_dpu(fleet):
    """One source, source ports that the router hashes to different DPUs: the same backend
    answers, since both DPUs apply the same table from the store."""
    for src in fleet.topo.clients["fips1"][:4]:       # one of each bucket of the 2 bits
        by_dpu = {}
        for sport in range(42000, 42100):
            by_dpu.setdefault(_route_dpu(fleet, src, sport), sport)
            if {"dpu1", "dpu2"} <= set(by_dpu):
                break
        assert {"dpu1", "dpu2"} <= set(by_dpu), by_dpu
        exp = _expected(fleet, src)
        for dpu in ("dpu1", "dpu2"):
            d = next(x for x in fleet.dpus if x.spec.name == dpu)
            before = _eswitch_bucket_pkts(d)
            res = _query(fleet, [(src, by_dpu[dpu])])
            assert res == {"%s:%d" % (src, by_dpu[dpu]): {exp: 1}}, (dpu, res, exp)
            assert _wait_grown(d, before, 1) == 1, dpu


def test_both_controllers_announce_the_vip(fleet):
    for d in fleet.dpus:
        st = d.api("/status")
        assert "198.18.0.53/32" in st["fleet"]["bgp"]["announced"], st["fleet"]


def test_up_relays_each_dpus_dashboard_to_the_hosts_loopback(fleet):
    r = _cli(fleet.run_dir, "status")
    urls = []
    for i, d in enumerate(fleet.dpus):
        url = "http://127.0.0.1:%d/dashboard/" % (9302 + i)
        assert d.dashboard_url() == url, d.spec.name
        urls.append("%s %s" % (d.spec.name, url))
        with urllib.request.urlopen(url.replace("/dashboard/", "/status"), timeout=5) as resp:
            assert json.load(resp)["fleet"]["dpu"] == d.spec.name
    assert "dashboards: %s" % ", ".join(urls) in r.stdout, r.stdout


def test_each_dpus_status_shows_every_dpu_of_the_fleet(fleet):
    """What the dashboard's fleet table shows on either DPU: both, as the store has them."""
    for d in fleet.dpus:
        f = d.api("/status")["fleet"]
        assert set(f["dpus"]) == {"dpu1", "dpu2"}, f["dpus"]
        for name, row in f["dpus"].items():
            assert row["applied_version"] == f["store_version"], (name, row)
            assert row["verdict"] == "consistent" and row["announced"] is True and row["heard"], (name, row)


def test_demo_exits_0_and_leaves_the_lab_up(fleet):
    r = _cli(fleet.run_dir, "demo")
    assert r.returncode == 0, r.stdout
    assert "0 by the wrong backend, 0 lost" in r.stdout, r.stdout
    for dpu in ("dpu1", "dpu2"):
        line = next(x for x in r.stdout.splitlines() if "] %s: eSwitch packets" % dpu in x)
        assert "fallback 0, verdict consistent, announced 198.18.0.53/32" in line, line
    assert "already up: the demo uses it and leaves it up" in r.stdout
    assert _cli(fleet.run_dir, "status").returncode == 0


def test_a_paper_lab_is_refused_while_the_fleet_is_up(fleet, tmp_path):
    """fips1..fips3 are both labs' names: the paper lab refuses and touches nothing."""
    from xenoflow_ovs.lab.labctl import LabCtl, Progress
    from xenoflow_ovs.lab.topology import LabBusy
    args = argparse.Namespace(action="up", topology=os.path.join(REPO, "topologies", "paper"),
                              run_dir=str(tmp_path / "paper"), eswitch="softdoca", mirror_routes=None)
    ctl = LabCtl(args, Progress(out=open(os.devnull, "w")))
    with pytest.raises(LabBusy):
        ctl.up()
    ctl.down()
    assert json.loads(json.dumps(fleet.status()["namespaces"])) == {ns: True for ns in fleet.topo.namespaces}


# ---------------------------------------------------------------- DPU events under load
# Goals (loss windows, re-announce times) are measured by benchmarks/bench_fleet_events.py;
# these tests check the behaviour: who withdraws, that it comes back consistent, that no
# client changes backend, and bounds far from the goals.

RATE = 2000.0


@pytest.fixture(scope="module")
def events(fleet):
    import fleet_lab_events as ev
    fr = ev.FleetRun(fleet)
    fr.bfd_at_start = ev.bfd_down_events(fr)
    fr.caused = {}
    yield fr
    for ld in fr.loads:
        ld.kill()


def _run(events, kind, dpu="dpu1"):
    import fleet_lab_events as ev
    out = ev.run_event(events, kind, dpu=dpu, rate=RATE)
    if kind in ("eswitchd_killed", "silent_failure"):
        events.caused[dpu] = events.caused.get(dpu, 0) + 1
    return out


def test_planned_drain_dpu_loses_nothing(events):
    r = _run(events, "planned_drain")
    assert r["drain_rc"] == 0 and "its data plane may go" in r["drain_output"], r
    assert r["withdrawn_in"] is not None, r
    assert r["lost"] == 0, r
    assert r["changed_share"] == 0.0 and r["changed_share_back"] == 0.0, r
    assert r["verdict_when_back"] == "consistent", r


def test_eswitchd_killed_fails_over_and_returns_consistent(events):
    r = _run(events, "eswitchd_killed")
    assert r["withdrawn_in"] is not None and r["announced_again_in"] is not None, r
    assert 0 < r["lost"] and r["loss_window"] < 3.0, r        # BFD, not the 3 s hold timer
    assert r["changed_share"] == 0.0 and r["changed_share_back"] == 0.0, r
    assert r["verdict_when_back"] == "consistent", r


def test_silent_failure_fails_over_by_bfd(events):
    r = _run(events, "silent_failure", dpu="dpu2")
    assert r["withdrawn_in"] is not None and r["withdrawn_in"] < 2.9, r
    assert r["loss_window"] < 3.0, r
    assert r["changed_share"] == 0.0 and r["changed_share_back"] == 0.0, r


def test_dpu_that_reaches_no_backend_withdraws(events):
    r = _run(events, "backends_out")
    assert r["withdrawn_in"] is not None, r
    assert r["changed_share"] == 0.0, r
    st = events.status("dpu1")
    assert st["fleet"]["bgp"]["announced"] == ["198.18.0.53/32"], st["fleet"]["bgp"]


def test_a_backend_drain_moves_the_same_buckets_on_both_dpus_losing_nothing(events):
    """Drained once in the store, applied by both DPUs make-before-break: only the drained
    backend's clients move, to the same new backend whichever DPU carries them."""
    fr = events
    db = fr.db()
    ld = fr.load(RATE, 8.0)
    time.sleep(2.5)
    t_event = time.time()
    p = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "backend", "drain", "fips3", "--db", db],
                       env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout
    try:
        res = ld.wait()
    finally:
        subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "backend", "undrain", "fips3", "--db", db],
                       env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    import fleet_events as fe
    assert res.lost == 0, res.summary()
    share, changed = fe.changed_share(res.records, t_event, settle=2.0, window=1.5, t_end=t_event + 5.0)
    before = fe.backends_by_source(res.records, t_event - 2.0, t_event)
    after = fe.backends_by_source(res.records, t_event + 2.0, t_event + 5.0)
    moved = {i for i, b in before.items() if b == "fips3"}
    assert set(changed) == moved and moved, (changed, moved)
    assert set(after.values()) == {"fips2"}, after


def test_a_controller_restart_never_withdraws(events):
    fr = events
    d = fr.by_name["dpu1"]
    rec = d.state.process("controller")
    seen = []
    os.kill(rec["pid"], 15)
    t_end = time.monotonic() + 4.0
    while time.monotonic() < t_end:
        seen.append(tuple(fr.nexthops()))
        time.sleep(0.05)
    d.state.drop_process("controller")
    d.start_controller()
    t_end = time.monotonic() + 6.0
    while time.monotonic() < t_end:
        seen.append(tuple(fr.nexthops()))
        time.sleep(0.05)
    assert set(seen) == {("dpu1", "dpu2")}, sorted(set(seen))
    st = lh_wait_status(fr, "dpu1")
    assert st["fleet"]["bgp"]["announced"] == ["198.18.0.53/32"], st["fleet"]["bgp"]


def lh_wait_status(fr, dpu, timeout=30.0):
    import lab_harness as lh
    return lh.wait_until(lambda: (fr.status(dpu) or {}).get("verdict") == "consistent" and fr.status(dpu),
                         timeout, 0.2, "%s's controller back and consistent" % dpu)


def test_no_false_bfd_failovers(events):
    """BFD went down only for the events that kill a DPU's path (300 ms x 3 through two
    user-space hops on a busy 2-core machine)."""
    import fleet_lab_events as ev
    now = ev.bfd_down_events(events)
    false = {d: now.get(d, 0) - events.bfd_at_start.get(d, 0) - events.caused.get(d, 0) for d in now}
    assert all(v == 0 for v in false.values()), (false, now, events.caused)


def test_fleet_status_json_shows_announcements_and_peers(fleet):
    from xenoflow_ovs.lab.fleet_lab import _remotes_unix
    p = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "fleet", "status", "--json", "--db",
                        ",".join(_remotes_unix(fleet.run_dir, fleet.topo))], env=_env(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert p.returncode == 0, p.stderr
    view = json.loads(p.stdout)
    assert not view["lagging"] and not view["differing"], view
    for name, gw in (("dpu1", "198.18.11.1"), ("dpu2", "198.18.12.1")):
        d = view["dpus"][name]
        assert d["announced"] is True and d["announce_why"] == "announced", d
        assert d["bgp"] == {gw: "Established, bfd up"}, d["bgp"]
        assert set(d["packets"]) == {"dns/fips2", "dns/fips3"}, d["packets"]


def test_a_dpu_cut_off_from_the_store_keeps_announcing(fleet):
    """Fail static: dpu1 loses its management link (the store); it turns stale and keeps
    forwarding and announcing; back, it is not stale any more."""
    import lab_harness as lh

    from xenoflow_ovs.lab import netns as nsh
    d = next(x for x in fleet.dpus if x.spec.name == "dpu1")
    nsh.run_in_ns("dpu1", ["ip", "link", "set", "mgmt0", "down"])
    try:
        # the announcer's next round (every 0.25 s) says why it keeps the announcement
        st = lh.wait_until(lambda: ((d.api("/status") or {}).get("fleet") or {}).get("bgp", {}).get(
            "why", "").startswith("stale") and d.api("/status")["fleet"], 40, 0.2,
            "dpu1 to notice the store is gone")
        assert st["stale"] and not st["connected"], st
        assert st["bgp"]["announced"] == ["198.18.0.53/32"], st["bgp"]
        hops = {_dpu_by_gateway(fleet).get(h) for h in fleet.vip_nexthops(fleet.vip())}
        assert hops == {"dpu1", "dpu2"}, hops
    finally:
        nsh.run_in_ns("dpu1", ["ip", "link", "set", "mgmt0", "up"])
    lh.wait_until(lambda: not (d.api("/status") or {}).get("fleet", {}).get("stale", True), 60, 0.5,
                  "dpu1 back on the store")

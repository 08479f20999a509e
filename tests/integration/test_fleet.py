"""A fleet on this machine: a 3-member Raft cluster of the store on loopback, three DPUs
(each a namespace with its own OVS and controller, reaching the store through its own
relay), real processes throughout (xenoflow_ovs/lab/fleet_bed.py).

An edit reaches every DPU; concurrent edits lose nothing; a bad edit changes nothing; the
Raft leader killed, writes resume and the DPUs keep forwarding; a DPU cut off keeps its
tables and catches up when healed; a drain survives controller and store restarts; health
is agreed in the store and applied by all. The Raft faults are the store's, the same under
either runtime: they run once, in the os-ken env (`once`)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import yaml

from xenoflow_ovs.fleet import edits
from xenoflow_ovs.lab.fleet_bed import SERVICE, FleetBed, backends
from xenoflow_ovs.lab.pyenv import subprocess_env

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.slow]

VIP = "nw_dst=198.18.0.53"


def mac(i):
    return backends(4)[i]["mac"]


def xenoflow(*argv, timeout=60):
    return subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli"] + list(argv), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, env=subprocess_env(),
                          timeout=timeout)


@pytest.fixture(scope="module")
def bed(lab_prefix):
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces, private daemons)")
    root = tempfile.mkdtemp(prefix="xf-fleet-")
    b = FleetBed(root, 3, prefix=lab_prefix + "-f", relays=True, base_port=16741)
    try:
        b.start([dict(SERVICE, backends=backends(4))], election_timer=500)
        yield b
    finally:
        b.stop()
        shutil.rmtree(root, ignore_errors=True)


def store_of(bed):
    return bed.cluster.store()


def commit(bed, mutate, why="test"):
    """One edit through a client of its own; the version it committed."""
    s = store_of(bed)
    try:
        return s.change(mutate, why)
    finally:
        s.close()


def settle(bed, timeout=20.0):
    """Every DPU on the store's version; the version."""
    s = store_of(bed)
    try:
        deadline = time.monotonic() + timeout
        while True:
            snap = s.snapshot()
            names = {d.name for d in bed.dpus}
            got = {n: d["applied_version"] for n, d in snap["dpus"].items() if n in names}
            if set(got) == names and all(v == snap["version"] for v in got.values()):
                return snap["version"]
            assert time.monotonic() < deadline, (snap["version"], got)
            time.sleep(0.05)
    finally:
        s.close()


def api(dpu, *argv):
    p = xenoflow("backend", *argv, "-c", dpu.config, "--socket", dpu.api_socket, "--json")
    return p.returncode, (json.loads(p.stdout) if p.stdout.strip() else None), p.stderr


def check(bed):
    return xenoflow("fleet", "check", "--db", ",".join(bed.cluster.remotes), "--json")


def check_ok(bed, timeout=15.0):
    """`fleet check` passes once every DPU's verdict caught up with the last change (each
    DPU checks its planes every poll and publishes its verdict within a heartbeat)."""
    deadline = time.monotonic() + timeout
    while True:
        p = check(bed)
        if p.returncode == 0:
            return json.loads(p.stdout)
        assert time.monotonic() < deadline, p.stdout
        time.sleep(0.3)


def test_an_edit_made_once_reaches_every_dpu(bed):
    v0 = settle(bed)
    assert all(mac(1) in d.flows() for d in bed.dpus)
    rc, reply, err = api(bed.dpus[0], "drain", "be1", "--service", "dns")
    assert rc == 0, err
    assert reply["version"] == v0 + 1 and reply["applied"] is True
    assert settle(bed) == v0 + 1
    for d in bed.dpus:
        flows = d.flows()
        assert VIP in flows and mac(1) not in flows, d.name
        assert d.status()["services"]["dns"]["be1"]["drained"] is True
    assert check_ok(bed)["ok"] is True
    rc, reply, err = api(bed.dpus[2], "undrain", "be1", "--service", "dns")
    assert rc == 0 and reply["applied"], err
    settle(bed)
    assert all(mac(1) in d.flows() for d in bed.dpus)


def test_concurrent_edits_lose_none(bed):
    v0 = settle(bed)
    errors = []

    def weight(i):
        s = store_of(bed)
        try:
            s.change(edits.backend_edit("weight", "dns", "be%d" % i, weight=2 + i), "weight be%d" % i)
        except Exception as exc:   # reported below, with the others
            errors.append(exc)
        finally:
            s.close()
    threads = [threading.Thread(target=weight, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert settle(bed) == v0 + 4            # one version each: none overwrote another
    s = store_of(bed)
    try:
        got = {b["name"]: b["weight"] for b in s.snapshot()["services"][0]["backends"]}
        assert got == {"be%d" % i: 2 + i for i in range(4)}
        for i in range(4):
            s.change(edits.backend_edit("weight", "dns", "be%d" % i, weight=1), "reset")
    finally:
        s.close()
    settle(bed)
    assert check_ok(bed)["ok"] is True


def test_a_bad_edit_is_refused_and_changes_nothing(bed, tmp_path):
    v0 = settle(bed)
    flows = bed.dpus[1].flows()
    # a backend whose address another backend has: the API names the DPU and the key path
    rc, reply, err = api(bed.dpus[1], "add", "be9", "--service", "dns", "--ip", backends(4)[0]["ip"],
                         "--mac", "02:00:c6:12:09:09")
    assert rc == 2
    assert "dpu dpu1: services[0].backends[4].ip: duplicate backend ip" in err
    rc, reply, err = api(bed.dpus[1], "drain", "nosuch", "--service", "dns")
    assert rc == 2 and "no backend 'nosuch'" in err
    # an import naming a port no DPU has: refused, naming each DPU
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"services": [dict(SERVICE, ingress="p9", backends=backends(2))]}))
    p = xenoflow("fleet", "import", str(bad), "--db", ",".join(bed.cluster.remotes))
    assert p.returncode == 2
    for d in bed.dpus:
        assert "dpu %s: services[0].ingress: unknown port 'p9'" % d.name in p.stderr
    assert "nothing imported" in p.stderr
    # the last backend in service cannot be drained
    s = store_of(bed)
    try:
        for i in range(3):
            s.change(edits.drain("dns", "be%d" % i), "drain")
        with pytest.raises(edits.Conflict):
            s.change(edits.drain("dns", "be3"), "drain the last")
        for i in range(3):
            s.change(edits.drain("dns", "be%d" % i, on=False), "undrain")
    finally:
        s.close()
    assert settle(bed) == v0 + 6
    assert bed.dpus[1].flows().count(VIP) == flows.count(VIP)


def test_export_and_import_round_trip(bed, tmp_path):
    v0 = settle(bed)
    out = tmp_path / "services.yaml"
    p = xenoflow("fleet", "export", "-o", str(out), "--db", ",".join(bed.cluster.remotes))
    assert p.returncode == 0, p.stderr
    assert yaml.safe_load(out.read_text())["services"][0]["name"] == "dns"
    p = xenoflow("fleet", "import", str(out), "--db", ",".join(bed.cluster.remotes))
    assert p.returncode == 0, p.stderr
    assert "already in the store (version %d)" % v0 in p.stdout


@pytest.mark.once
def test_leader_killed_writes_resume_and_dpus_keep_forwarding(bed):
    v0 = settle(bed)
    leader = bed.cluster.leader()
    assert leader is not None
    i = bed.cluster.members.index(leader)
    t0 = time.monotonic()
    leader.stop(signal.SIGKILL)
    s = bed.cluster.store(timeout=10)
    try:
        while True:
            try:
                s.change(edits.drain("dns", "be2"), "drain after the leader died")
                break
            except Exception:
                assert time.monotonic() - t0 < 15, "no write committed 15 s after the leader died"
        resumed = time.monotonic() - t0
        for d in bed.dpus:          # forwarding state untouched meanwhile
            assert VIP in d.flows()
        assert settle(bed) == v0 + 1
        assert all(mac(2) not in d.flows() for d in bed.dpus)
        s.change(edits.drain("dns", "be2", on=False), "undrain")
    finally:
        s.close()
    print("writes resumed %.2f s after the leader was killed" % resumed)
    bed.cluster.serve(i)
    bed.cluster.wait_formed()
    settle(bed)


@pytest.mark.once
def test_a_member_lost_for_good_is_replaced(bed):
    """The documented steps: kick the dead member from a live one, create the replacement's
    file with `fleet init --join`, serve it. The DPUs never notice."""
    v0 = settle(bed)
    c = bed.cluster
    lost = next(i for i, m in enumerate(c.members) if c.leader() is not m)
    c.members[lost].stop(signal.SIGKILL)
    os.unlink(c.members[lost].db)
    live = next(m for i, m in enumerate(c.members) if i != lost)
    p = xenoflow("fleet", "kick", "--ctl", live.ctl, c.raft[lost])
    assert p.returncode == 0, p.stderr
    deadline = time.monotonic() + 10
    while c.raft[lost] in live.status()["servers"]:
        assert time.monotonic() < deadline, live.status()
        time.sleep(0.1)
    new_raft = "tcp:127.0.0.1:%d" % (16751 + lost)
    db = c.members[lost].db
    p = xenoflow("fleet", "init", "--file", db, "--raft", new_raft, "--join",
                 *[r for i, r in enumerate(c.raft) if i != lost], "--serve", "punix:" + c.sockets[lost],
                 "--run-dir", c.members[lost].run_dir, "--name", c.members[lost].name)
    assert p.returncode == 0, p.stderr
    c.raft[lost] = new_raft
    deadline = time.monotonic() + 20
    while True:
        p = xenoflow("fleet", "members", "--ctl", c.members[lost].ctl, "--json")
        st = json.loads(p.stdout) if p.returncode == 0 else {}
        if st.get("Status") == "cluster member" and st.get("servers", "").count(" at tcp:") == 3:
            break
        assert time.monotonic() < deadline, (p.stdout, p.stderr)
        time.sleep(0.2)
    s = store_of(bed)
    try:
        v = s.change(edits.backend_edit("weight", "dns", "be0", weight=5), "after the replacement")
        assert v == v0 + 1
        s.change(edits.backend_edit("weight", "dns", "be0", weight=1), "back")
    finally:
        s.close()
    assert settle(bed) == v0 + 2


def test_a_partitioned_dpu_keeps_forwarding_and_catches_up(bed):
    v0 = settle(bed)
    cut = bed.dpus[2]
    bed.relays[3].cut()
    try:
        deadline = time.monotonic() + 20
        while cut.status()["fleet"]["connected"]:
            assert time.monotonic() < deadline, "the cut DPU still thinks it reaches the store"
            time.sleep(0.2)
        s = store_of(bed)
        try:
            v = s.change(edits.drain("dns", "be3"), "drain while dpu3 is cut off")
            got = s.wait_version(v, ["dpu1", "dpu2"], timeout=20)
            assert got == {"dpu1": v, "dpu2": v}
        finally:
            s.close()
        st = cut.status()
        assert st["fleet"]["stale"] is True and st["fleet"]["applied_version"] == v0
        assert mac(3) in cut.flows() and VIP in cut.flows()       # fail static: old tables kept
        p = check(bed)
        assert p.returncode == 1
        assert "dpu3: on version %d of %d" % (v0, v) in json.loads(p.stdout)["problems"]
    finally:
        bed.relays[3].heal()
    assert settle(bed, timeout=30) == v0 + 1
    assert mac(3) not in cut.flows()
    assert cut.status()["fleet"]["stale"] is False
    check_ok(bed)
    commit(bed, edits.drain("dns", "be3", on=False), "undrain")
    settle(bed)


def test_a_drain_survives_controller_and_store_restarts(bed):
    settle(bed)
    v = commit(bed, edits.drain("dns", "be0"), "drain")
    settle(bed)
    d = bed.dpus[1]
    d.stop()
    d.start()                                  # from the store
    assert d.status()["services"]["dns"]["be0"]["drained"] is True
    assert mac(0) not in d.flows()
    # the whole store down: every DPU keeps forwarding; a controller restarted meanwhile
    # (its relay gone too: a relay would serve its last copy) starts from the intent it
    # applied last
    for m in bed.cluster.members:
        m.stop()
    relay = bed.relays[d.i]
    try:
        relay.stop()
        d.stop()
        d.start(wait=False)
        deadline = time.monotonic() + 60
        while True:
            st = d.status() if os.path.exists(d.api_socket) else None
            if st and st.get("fleet") and st["fleet"]["source"] == "cache" and all(
                    b.get("in_sync") for b in st["bridges"].values()):
                break
            assert d.proc.poll() is None, d.tail()
            assert time.monotonic() < deadline, d.tail()
            time.sleep(0.3)
        assert st["fleet"]["stale"] is True and st["fleet"]["connected"] is False
        assert st["services"]["dns"]["be0"]["drained"] is True
        for x in bed.dpus:
            assert VIP in x.flows() and mac(0) not in x.flows(), x.name
        deadline = time.monotonic() + 20       # the others see their writes fail: stale
        while not all(x.status()["fleet"]["stale"] for x in bed.dpus):
            assert time.monotonic() < deadline, [x.status()["fleet"] for x in bed.dpus]
            time.sleep(0.5)
    finally:
        for i in range(len(bed.cluster.members)):
            bed.cluster.serve(i)
        bed.cluster.wait_formed()
        relay.start()
    assert settle(bed, timeout=40) == v
    deadline = time.monotonic() + 30         # the restarted one back on the store
    while not (d.status()["fleet"]["source"] == "store" and d.status()["fleet"]["connected"]):
        assert time.monotonic() < deadline, d.status()["fleet"]
        time.sleep(0.3)
    commit(bed, edits.drain("dns", "be0", on=False), "undrain")
    settle(bed)


def test_health_is_agreed_in_the_store_and_applied_by_all(bed):
    """Two observers standing in for probing DPUs (the probes themselves are tested in
    tests/unit/test_health.py): both say down, the fleet takes the backend out; they
    disagree, it stays out; both say up, it comes back."""
    settle(bed)
    s = store_of(bed)

    def say(a, b, wait=True):
        s.observe("probe-a", {"dns/be1": a})
        s.observe("probe-b", {"dns/be1": b})
        deadline = time.monotonic() + 15
        while wait:
            be = s.snapshot()["services"][0]["backends"][1]
            if be["health"] == ("down" if "down" == a == b else "up" if "up" == a == b else be["health"]):
                return be
            assert time.monotonic() < deadline, be
            time.sleep(0.05)
    try:
        be = say("down", "down")
        assert be["health"] == "down" and "probe-a down" in be["health_why"]
        settle(bed)
        assert all(mac(1) not in d.flows() for d in bed.dpus)
        assert all(d.status()["services"]["dns"]["be1"]["healthy"] is False for d in bed.dpus)
        v = settle(bed)
        say("up", "down", wait=False)
        time.sleep(2.5)                         # a few heartbeats: no DPU changes it
        assert s.snapshot()["services"][0]["backends"][1]["health"] == "down"
        assert settle(bed) == v
        say("up", "up")
        settle(bed)
        assert all(mac(1) in d.flows() for d in bed.dpus)
    finally:
        s.forget("probe-a")
        s.forget("probe-b")
        s.close()


def test_fleet_status_shows_every_dpu(bed):
    settle(bed)
    p = xenoflow("fleet", "status", "--db", ",".join(bed.cluster.remotes), "--json")
    assert p.returncode == 0, p.stderr
    view = json.loads(p.stdout)
    assert sorted(view["dpus"]) == ["dpu1", "dpu2", "dpu3"]
    for d in view["dpus"].values():
        assert d["state"] == "ok" and d["applied_version"] == view["version"] and d["heard"]
        assert set(d["digests"]) == {"dns"}
        assert set(d["packets"]) == {"dns/be%d" % i for i in range(4)}    # its counters, per backend
    assert len({tuple(sorted(d["digests"].items())) for d in view["dpus"].values()}) == 1
    d = bed.dpus[0]                           # and the DPU's own status says where it stands
    p = xenoflow("status", "-c", d.config, "--socket", d.api_socket)
    assert "fleet: version %d of the store's %d, ok" % (view["version"], view["version"]) in p.stdout

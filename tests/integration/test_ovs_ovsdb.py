"""ovsdb.py against a real (private) ovsdb-server + ovs-vswitchd: bridges made as the
config says, idempotently, leaving what exists; port numbers; surviving a restart
of ovsdb-server; the same from a green thread of an eventlet-patched process, as
ryu-manager runs the app. Runs under both tox envs (Python 3.11 and 3.9)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from xenoflow_ovs.controller import ovsdb
from xenoflow_ovs.intent import config
from xenoflow_ovs.lab import netns as nsh
from xenoflow_ovs.lab.ovs_instance import OvsInstance
from xenoflow_ovs.lab.pyenv import subprocess_env

pytestmark = [pytest.mark.root, pytest.mark.ovs]

try:
    import ryu.lib.hub  # noqa: F401
    RYU = True
except ImportError:
    RYU = False

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(REPO, "topologies", "paper", "xenoflow.yaml")


@pytest.fixture
def inst(netns, short_tmp):
    ns = netns("o")
    o = OvsInstance(os.path.join(short_tmp, "ovs"), netns=ns)
    o.start()
    try:
        for p in ("p0", "p1", "pf0hpf", "pf1hpf"):   # the config's ports, as veths in the OVS netns
            nsh.add_veth(p, p + "x", ns=ns, peer_ns=ns)
            nsh.prepare_link(p, ns)
            nsh.prepare_link(p + "x", ns)
        yield o
    finally:
        o.stop()


def cfg_for(o, short_tmp):
    data = config.to_data(config.load(PAPER))
    data["ovs"]["db"] = o.db
    data["dpu"]["state_dir"] = os.path.join(short_tmp, "state")  # its lock and overlay: this test's own
    path = os.path.join(short_tmp, "x.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return config.load(path)


def col(o, table, row, column):
    return o.vsctl("get", table, row, column).strip()


def test_ensure_builds_the_bridges_once_and_is_idempotent(inst, short_tmp):
    cfg = cfg_for(inst, short_tmp)
    db = ovsdb.Ovsdb(cfg.path(cfg.ovs_db), timeout=10)
    try:
        changed = db.ensure(ovsdb.desired(cfg))
        assert "bridge ovsbr1 created" in changed and "bridge ovsbr2 created" in changed
        assert db.ensure(ovsdb.desired(cfg)) == []                       # nothing differs: no txn
        for br in ("ovsbr1", "ovsbr2"):
            assert col(inst, "bridge", br, "fail_mode") == "secure"
            assert col(inst, "bridge", br, "datapath_type") == "netdev"
            assert col(inst, "bridge", br, "protocols") == '[OpenFlow13]'
            assert col(inst, "bridge", br, "other_config:disable-in-band") == '"true"'
            assert col(inst, "bridge", br, "other_config:datapath-id") == \
                '"%016x"' % ovsdb.datapath_id(br)
            assert col(inst, "bridge", br, "external_ids:xenoflow") == "bf3"
            assert "tcp:127.0.0.1:6653" in inst.vsctl("get-controller", br)
        assert col(inst, "interface", "patch-ovsbr2", "type") == "patch"
        assert col(inst, "interface", "patch-ovsbr2", "options:peer") == "patch-ovsbr1"
        assert col(inst, "port", "patch-ovsbr1", "tag") == "4095"        # no NORMAL flooding in
        assert col(inst, "interface", "pf1sf0", "type") == "internal"
        assert col(inst, "interface", "pf1sf0", "mac_in_use") == '"02:00:c6:12:00:fa"'
        assert db.port_numbers("ovsbr1") == {"p0": 1, "pf0hpf": 3, "patch-ovsbr2": 200,
                                             "ovsbr1": 65534}
        assert db.port_numbers("ovsbr2") == {"p1": 2, "pf1hpf": 4, "pf1sf0": 100,
                                             "patch-ovsbr1": 200, "ovsbr2": 65534}
        assert inst.vsctl("--bare", "--columns=name", "find", "interface", "error!=[]").split() == []
    finally:
        db.close()


def test_may_exist_leaves_foreign_ports_and_fixes_only_what_matters(inst, short_tmp):
    cfg = cfg_for(inst, short_tmp)
    inst.add_bridge("ovsbr1", "--", "set", "bridge", "ovsbr1", "fail_mode=standalone")
    nsh.add_veth("extra", "extrax", ns=inst.netns, peer_ns=inst.netns)
    inst.vsctl("add-port", "ovsbr1", "extra")
    inst.vsctl("add-port", "ovsbr1", "p0", "--", "set", "interface", "p0", "ofport_request=7")
    db = ovsdb.Ovsdb(cfg.path(cfg.ovs_db), timeout=10)
    try:
        changed = db.ensure(ovsdb.desired(cfg))
        assert "bridge ovsbr1: fail_mode=['secure']" in changed
        assert not any("port p0 added" in c for c in changed)
        nums = db.port_numbers("ovsbr1")
        assert nums["extra"] > 0 and nums["p0"] == 7                   # left as they were
        inst.vsctl("set", "bridge", "ovsbr2", "fail_mode=standalone")   # drift in the DB
        assert db.ensure(ovsdb.desired(cfg)) == ["bridge ovsbr2: fail_mode=['secure']"]
    finally:
        db.close()


def test_survives_an_ovsdb_server_restart(inst, short_tmp):
    cfg = cfg_for(inst, short_tmp)
    db = ovsdb.Ovsdb(cfg.path(cfg.ovs_db), timeout=20)
    try:
        db.ensure(ovsdb.desired(cfg))
        assert db.reconnected()                  # the first connection counts once
        assert not db.reconnected()
        inst.restart_ovsdb()
        inst.vsctl("--if-exists", "del-br", "ovsbr2")                    # lost meanwhile
        changed = db.ensure(ovsdb.desired(cfg))   # waits for the session to come back
        assert "bridge ovsbr2 created" in changed
        assert db.reconnected() and db.is_connected()
        assert db.port_numbers("ovsbr2")["patch-ovsbr1"] == 200
    finally:
        db.close()


GREEN = """
import json, os, sys, time
try:                                  # what ryu-manager does before it loads an app
    from ryu.lib import hub
    hub.patch(thread=False)
    hub.patch(thread=True)
    spawn, sleep, lock = hub.spawn, hub.sleep, hub.BoundedSemaphore(1)
    hubname = "ryu"
except ImportError:                   # no Ryu here: eventlet alone, patched the same way
    import eventlet, eventlet.semaphore
    eventlet.monkey_patch(thread=False)
    eventlet.monkey_patch(thread=True)
    spawn, sleep, lock = eventlet.spawn, eventlet.sleep, eventlet.semaphore.BoundedSemaphore(1)
    hubname = "eventlet"
import eventlet.patcher
from xenoflow_ovs.controller import ovsdb
from xenoflow_ovs.intent import config

cfg = config.load(%(cfg)r)
gaps, out, done = [], {"hub": hubname}, []

def ticker():                         # another green thread: starved if OVSDB blocked the hub
    last = time.monotonic()
    while not done:
        sleep(0.01)
        now = time.monotonic()
        gaps.append(now - last)
        last = now

def timed(name, fn):
    n, t = len(gaps), time.monotonic()
    out[name] = fn()
    out[name + "_s"] = time.monotonic() - t
    out[name + "_ticks"] = len(gaps) - n
    return out[name]

def work():
    try:
        db = ovsdb.Ovsdb(cfg.path(cfg.ovs_db), timeout=20, lock=lock)
        timed("connect", db.connect)
        timed("first", lambda: db.ensure(ovsdb.desired(cfg)))
        timed("again", lambda: db.ensure(ovsdb.desired(cfg)))
        out["reconnected"] = [db.reconnected(), db.reconnected()]
        print("READY", flush=True)    # the parent restarts ovsdb-server, deletes ovsbr2
        out["restarted"], out["longest"] = [], [0, 0]
        while True:                   # ensure on, across the restart
            last = os.path.exists(%(flag)r)
            out["restarted"] += timed("loop", lambda: db.ensure(ovsdb.desired(cfg)))
            out["longest"] = max(out["longest"], [out["loop_s"], out["loop_ticks"]])
            if last:
                break
            sleep(0.05)
        out["after"] = [db.reconnected(), db.is_connected()]
        timed("ports", lambda: db.port_numbers("ovsbr2"))
        db.close()
        out["patched"] = eventlet.patcher.is_monkey_patched("thread")
        out["max_gap"] = max(gaps)
    finally:
        done.append(1)

t = spawn(ticker)
w = spawn(work)
w.wait()
t.wait()
print(json.dumps(out), flush=True)
"""


def test_green_threads_under_ryu_patching(inst, short_tmp):
    """ovsdbapp's connection thread, queues and lock become green under ryu-manager's
    patching; a green thread calling ensure() waits for ovs-vswitchd and for the
    reconnection without blocking the other green threads."""
    cfg_for(inst, short_tmp)
    cfg_path, flag = os.path.join(short_tmp, "x.yaml"), os.path.join(short_tmp, "restarted")
    env = subprocess_env()
    proc = subprocess.Popen([sys.executable, "-c", GREEN % {"cfg": cfg_path, "flag": flag}],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        ready = proc.stdout.readline()
        if ready.strip() == "READY":
            inst.restart_ovsdb()
            inst.vsctl("--if-exists", "del-br", "ovsbr2")
            open(flag, "w").close()
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert ready.strip() == "READY" and proc.returncode == 0, ready + out + err
    res = json.loads(out.strip().splitlines()[-1])
    assert res["patched"] and res["hub"] == ("ryu" if RYU else "eventlet")
    assert "bridge ovsbr1 created" in res["first"] and "bridge ovsbr2 created" in res["first"]
    assert res["again"] == [] and res["reconnected"] == [True, False]
    assert "bridge ovsbr2 created" in res["restarted"]
    assert res["after"] == [True, True] and res["ports"]["patch-ovsbr1"] == 200
    # the hub kept running while ensure() waited (for ovs-vswitchd, for the server)
    assert res["first_ticks"] >= int(res["first_s"] / 0.05), res
    longest_s, longest_ticks = res["longest"]
    assert longest_s > 0.2, "no ensure() waited across the restart: %r" % res
    assert longest_ticks >= int(longest_s / 0.05), res
    assert res["max_gap"] < 0.5, res

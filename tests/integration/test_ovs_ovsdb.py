"""ovsdb.py against a real (private) ovsdb-server + ovs-vswitchd: bridges made as the
config says, idempotently, leaving what exists; port numbers; surviving a restart
of ovsdb-server. Runs under both tox envs (Python 3.11 and 3.9)."""
from __future__ import annotations

import os

import pytest
import yaml

from xenoflow_ovs.intent import config
from xenoflow_ovs.controller import ovsdb
from xenoflow_ovs.lab import netns as nsh
from xenoflow_ovs.lab.ovs_instance import OvsInstance

pytestmark = [pytest.mark.root, pytest.mark.ovs]

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
        assert db.interface_errors("ovsbr1") == {}
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

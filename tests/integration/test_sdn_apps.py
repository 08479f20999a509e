"""XenoFlow as one SDN app among others, against a real private OVS, under this test
environment's runtime:

- beside another app in one manager (`xenoflow controller --app`, or ryu-manager with
  several modules; on Ryu also `ryu.app.ofctl_rest`, which os-ken 4 no longer ships):
  with `ovs.table: 10` the other app owns table 0 and sends packets on with a goto_table;
  XenoFlow keeps to its tables and cookies, leaves the other app's flows alone through
  its reconciles and reloads, and the other app reads XenoFlow's flows;
- with a second controller on the bridge (OpenFlow 1.3 roles): as master XenoFlow keeps
  working beside a slave and an equal, stops writing when a newer master takes over, and
  takes the bridge back with a newer generation id; as slave it writes nothing, OVSDB
  included.

The bridge's ports are veths to nowhere: packets are followed with ofproto/trace."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import netaddr
import pytest
import yaml
from process_helpers import RUNTIME, controller_argv

from xenoflow_ovs.controller import ovsdb
from xenoflow_ovs.intent import config, plan
from xenoflow_ovs.lab import netns as nsh
from xenoflow_ovs.lab.pyenv import subprocess_env

compat = pytest.importorskip("xenoflow_ovs.controller.compat")
from test_ovs_meters import OFP, PARSER, OfConn  # noqa: E402  (the raw OpenFlow client)

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.slow]

HERE = os.path.dirname(os.path.abspath(__file__))
BR, P0, P1 = "xsbr", "xsp0", "xsp1"
OF_PORT, API_PORT, METRICS_PORT, WS_PORT = 6653, 18080, 19302, 18081
VIP, VIP_MAC = "198.18.0.53", "02:00:c6:12:00:35"
BACKENDS = [("b2", "198.18.0.2", "02:00:c6:12:00:02"), ("b3", "198.18.0.3", "02:00:c6:12:00:03")]
SOURCES = ["198.18.0.7", "198.18.0.8", "198.18.0.9", "198.18.0.10"]
FOREIGN = 0xF0F0                   # foreign_app's cookie
REST_COOKIE = 0xF1                 # a flow added through ofctl_rest


CHANGED = {"bits": 2, "weights": (3, 1)}    # a reload that changes the balancing flows


def sdn_config(workdir, ovs, bits=1, table=0, role=None, weights=(1, 1)):
    data = {
        "dpu": {"name": "xsdn", "eswitch": {"driver": "none"}, "state_dir": os.path.join(workdir, "state"),
                "ports": {P0: {"id": 0}, P1: {"id": 1}}},
        "ovs": {"db": ovs.db, "bridges": {BR: {"ports": [P0, P1]}}, "table": table},
        "controller": {"openflow": dict({"host": "127.0.0.1", "port": OF_PORT}, **(role or {})),
                       "api": {"host": "127.0.0.1", "port": API_PORT, "socket": "run/api.sock"},
                       "metrics": {"host": "127.0.0.1", "port": METRICS_PORT}},
        "services": [{"name": "dns", "vip": VIP, "vip_mac": VIP_MAC, "protocol": "udp", "port": 53,
                      "ingress": P0, "egress": P1, "policy": {"kind": "src-ip-bits", "bits": bits},
                      "health": {"enabled": False},
                      "backends": [{"name": n, "ip": ip, "mac": mac, "weight": w}
                                   for (n, ip, mac), w in zip(BACKENDS, weights)]}],
    }
    path = os.path.join(workdir, "xenoflow.yaml")
    with open(path + ".tmp", "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    os.replace(path + ".tmp", path)
    return path, config.load(path)


class Manager:
    """One manager process (XenoFlow and the given apps) in the OVS namespace, by PID."""

    def __init__(self, ns, workdir, cfg_path, apps=(), manager_args=(), env=None):
        self.ns, self.workdir, self.cfg_path = ns, workdir, cfg_path
        self.state_path = os.path.join(workdir, "state.json")
        self.log_path = os.path.join(workdir, "manager.log")
        e = subprocess_env()
        e.update({"XENOFLOW_CONFIG": cfg_path, "XENOFLOW_STATE": self.state_path,
                  "XENOFLOW_POLL_INTERVAL": "0.3", "XENOFLOW_ENSURE_INTERVAL": "2",
                  "PYTHONPATH": HERE + os.pathsep + e["PYTHONPATH"]}, **(env or {}))
        with open(self.log_path, "ab") as log:
            self.proc = nsh.popen_in_ns(ns, controller_argv(cfg_path, apps=apps, manager_args=manager_args),
                                        env=e, stdout=log, stderr=log, cwd=workdir)

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def bridge(self):
        try:
            with open(self.state_path) as f:
                st = json.load(f)
        except (OSError, ValueError):
            return None
        return st["bridges"].get(BR) if st.get("pid") == self.proc.pid else None

    def wait(self, pred, what, timeout=40):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.proc.poll() is None, "manager exited rc=%s:\n%s" % (self.proc.returncode,
                                                                            self.log()[-3000:])
            b = self.bridge()
            if b is not None and pred(b):
                return b
            time.sleep(0.2)
        raise AssertionError("%s: timed out; bridge %s\nlog:\n%s" % (what, self.bridge(), self.log()[-3000:]))

    def wait_synced(self, planned=None, unlike=None):
        """In sync with a plan of `planned` flows, or of another count than `unlike`."""
        return self.wait(lambda b: b["connected"] and b["in_sync"] and b["flows"] == b["planned"]
                         and (planned is None or b["planned"] == planned)
                         and (unlike is None or b["planned"] != unlike), "bridge in sync")

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("the manager did not stop on SIGTERM")


@pytest.fixture
def bed(ovs):
    """Two veths to nowhere in the OVS namespace, a work dir; the bridge removed after."""
    workdir = tempfile.mkdtemp(prefix="xf-sdn-")
    managers = []
    try:
        for port in (P0, P1):
            nsh.add_veth(port, port + "p", ns=ovs.netns, peer_ns=ovs.netns)
            nsh.prepare_link(port, ovs.netns)
            nsh.prepare_link(port + "p", ovs.netns)
        yield ovs, workdir, managers
    finally:
        for m in managers:
            m.stop()
        ovs.vsctl("--if-exists", "del-br", BR)
        for port in (P0, P1):
            nsh.delete_link(port, ovs.netns)
        shutil.rmtree(workdir, ignore_errors=True)


def flows(ovs):
    """[(cookie, table, priority, text)] of every flow on the bridge, as ovs-ofctl reads them."""
    out = []
    for line in ovs.ofctl("-O", "OpenFlow13", "dump-flows", BR).splitlines():
        words = dict(w.split("=", 1) for w in line.strip().rstrip(",").split(", ") if "=" in w)
        if "cookie" in words:
            prio = [w for w in line.split(",") if w.strip().startswith("priority=")]
            out.append((int(words["cookie"], 16), int(words.get("table", "0")),
                        int(prio[0].split("=")[1].split()[0]) if prio else 32768, line.strip()))
    return out


def ours(fl):
    return [f for f in fl if plan.is_ours(f[0])]


def rules(fl):
    """The flows without their counters and ages: what was written."""
    return sorted(re.sub(r"(duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*, ?", "", f[3]) for f in fl)


def traced_mac(ovs, src):
    """The destination MAC a DNS query from `src` to the VIP leaves the bridge with (ofproto/trace)."""
    out = ovs.appctl("ovs-vswitchd", "ofproto/trace", BR,
                     "udp,in_port=%s,dl_dst=%s,nw_src=%s,nw_dst=%s,udp_dst=53" % (P0, VIP_MAC, src, VIP))
    final = [line for line in out.splitlines() if line.startswith("Datapath actions:")]
    assert final, out
    acts = final[-1]
    assert re.search(r"\boutput:(2|%s)\b" % P1, out), out     # out of p1 (OpenFlow port 2)
    for _, _, mac in BACKENDS:
        if mac in acts:
            return mac
    raise AssertionError("no backend MAC set:\n" + out)


def expected_mac(cfg, src):
    table = plan.plan(cfg).table("dns")
    name = table[int(netaddr.IPAddress(src)) & (len(table) - 1)]
    return {n: mac for n, _, mac in BACKENDS}[name]


def rest(ns, method, path, body=None):
    """ofctl_rest inside the OVS namespace (where the manager listens)."""
    code = ("import json, sys, urllib.request as u\n"
            "req = u.Request('http://127.0.0.1:%d' + sys.argv[1], method=sys.argv[2],"
            " data=sys.argv[3].encode() if sys.argv[3] else None)\n"
            "print(u.urlopen(req, timeout=10).read().decode())\n" % WS_PORT)
    p = nsh.run_in_ns(ns, [sys.executable, "-c", code, path, method, json.dumps(body) if body else ""],
                      check=False)
    assert p.returncode == 0, "%s %s: %s" % (method, path, p.stderr[-2000:])
    return json.loads(p.stdout) if p.stdout.strip() else None


def test_beside_another_app_in_one_manager_in_tables_of_its_own(bed):
    ovs, workdir, managers = bed
    first = 10
    cfg_path, cfg = sdn_config(workdir, ovs, table=first)
    seen_path = os.path.join(workdir, "foreign.json")
    apps, margs = ["foreign_app"], []
    if RUNTIME == "ryu":
        apps.append("ryu.app.ofctl_rest")
        margs = ["--wsapi-host", "127.0.0.1", "--wsapi-port", str(WS_PORT)]
    m = Manager(ovs.netns, workdir, cfg_path, apps, margs,
                env={"XF_FOREIGN_OUT": seen_path, "XF_FOREIGN_GOTO": str(first)})
    managers.append(m)
    b = m.wait_synced()

    fl = flows(ovs)
    mine = ours(fl)
    assert len(mine) == b["planned"] and mine
    assert {t for _, t, _, _ in mine} <= {first, first + 1, first + 2}, mine
    foreign = [f for f in fl if f[0] == FOREIGN]
    assert sorted((t, p) for _, t, p, _ in foreign) == [(0, 0), (0, 500)], fl
    assert all(t >= first for c, t, _, _ in fl if c != FOREIGN and c != REST_COOKIE)

    # table 0 (the other app's) -> goto table 10 -> the backend the plan gives each source
    for src in SOURCES:
        assert traced_mac(ovs, src) == expected_mac(cfg, src), src

    if RUNTIME == "ryu":        # ofctl_rest: it sees XenoFlow's flows, and adds one of its own
        dpid = ovsdb.datapath_id(BR)
        got = rest(ovs.netns, "GET", "/stats/flow/%d" % dpid)[str(dpid)]
        assert sum(1 for f in got if plan.is_ours(f["cookie"])) == len(mine)
        rest(ovs.netns, "POST", "/stats/flowentry/add",
             {"dpid": dpid, "cookie": REST_COOKIE, "table_id": 0, "priority": 400,
              "match": {"eth_type": 2048, "ip_proto": 17, "udp_dst": 7}, "actions": []})

    # XenoFlow's reconciles and a reload with a changed plan leave the other apps' flows alone
    dumps = b["full_dumps"]
    cfg_path, cfg = sdn_config(workdir, ovs, table=first, **CHANGED)
    m.reload()
    b = m.wait(lambda b: b["in_sync"] and b["flows"] == b["planned"] and b["full_dumps"] != dumps
               and b["planned"] != len(mine), "reloaded plan in sync")
    fl = flows(ovs)
    assert sorted((t, p) for c, t, p, _ in fl if c == FOREIGN) == [(0, 0), (0, 500)], fl
    if RUNTIME == "ryu":
        assert [(t, p) for c, t, p, _ in fl if c == REST_COOKIE] == [(0, 400)], fl
    for src in SOURCES:
        assert traced_mac(ovs, src) == expected_mac(cfg, src), src

    # the other app read every flow, XenoFlow's included, and met no error
    want, end = len(ours(fl)), time.monotonic() + 10
    while True:     # it reads twice a second: a read after the reload's flows went in
        with open(seen_path) as f:
            seen = json.load(f)
        n = sum(1 for s in seen["flows"] if plan.is_ours(s["cookie"]))
        if n == want or time.monotonic() > end:
            break
        time.sleep(0.2)
    assert n == want and seen["errors"] == [], seen
    assert any(s["cookie"] == FOREIGN for s in seen["flows"])

    # XenoFlow's own check follows packets from its first table: consistent
    p = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "check", "--socket",
                        os.path.join(workdir, "run", "api.sock")], capture_output=True, text=True,
                       env=subprocess_env(), timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "OpenFlow error" not in m.log()


def role_of(conn, role, gen):
    req = PARSER.OFPRoleRequest(None, role, gen)
    conn.set_xid(req)
    conn.send_msg(req)
    return conn.recv()


def foreign_write(conn, udp_dst):
    """A flow-mod and a barrier from the second controller: the error, if any."""
    fm = PARSER.OFPFlowMod(None, cookie=0xB, table_id=0, command=OFP.OFPFC_ADD, priority=600,
                           match=PARSER.OFPMatch(eth_type=0x0800, ip_proto=17, udp_dst=udp_dst),
                           instructions=[])
    conn.set_xid(fm)
    conn.send_msg(fm)
    bar = PARSER.OFPBarrierRequest(None)
    conn.set_xid(bar)
    conn.send_msg(bar)
    errors = []
    while True:
        msg = conn.recv()
        if isinstance(msg, PARSER.OFPErrorMsg):
            errors.append((msg.type, msg.code))
        elif isinstance(msg, PARSER.OFPBarrierReply):
            return errors


def test_master_keeps_working_beside_a_slave_and_an_equal_and_yields_to_a_newer_master(bed):
    ovs, workdir, managers = bed
    master = {"role": "master", "generation_id": 5}
    cfg_path, cfg = sdn_config(workdir, ovs, bits=1, role=master)
    m = Manager(ovs.netns, workdir, cfg_path)
    managers.append(m)
    b = m.wait_synced()
    b = m.wait(lambda b: b["role"]["state"] == "master", "role master")
    assert b["role"]["generation_id"] == 5 and b["role"]["writes"]
    one_bit = b["planned"]

    other = OfConn(os.path.join(ovs.rundir, BR + ".mgmt"))     # the second controller
    try:
        assert role_of(other, OFP.OFPCR_ROLE_SLAVE, 5).role == OFP.OFPCR_ROLE_SLAVE
        assert foreign_write(other, 9) == [(OFP.OFPET_BAD_REQUEST, OFP.OFPBRC_IS_SLAVE)]
        sdn_config(workdir, ovs, role=master, **CHANGED)
        m.reload()
        b = m.wait_synced(unlike=one_bit)
        assert b["role"]["writes"]

        assert role_of(other, OFP.OFPCR_ROLE_EQUAL, 0).role == OFP.OFPCR_ROLE_EQUAL
        assert foreign_write(other, 9) == []
        sdn_config(workdir, ovs, bits=1, role=master)
        m.reload()
        b = m.wait_synced(planned=one_bit)
        assert [(t, p) for c, t, p, _ in flows(ovs) if c == 0xB] == [(0, 600)]  # the equal's flow stays

        # a newer master: XenoFlow's next writes are refused, it turns read-only and holds back;
        # the reload whose writes were refused is not in force (the plan stays the one in OVS)
        assert role_of(other, OFP.OFPCR_ROLE_MASTER, 6).role == OFP.OFPCR_ROLE_MASTER
        before = rules(ours(flows(ovs)))
        sdn_config(workdir, ovs, role=master, **CHANGED)
        m.reload()
        b = m.wait(lambda b: not b["role"]["writes"], "read-only after the newer master")
        assert "another controller is master" in b["role"]["read_only"]
        time.sleep(1.5)       # a few polls: nothing more is written, repairs included
        assert rules(ours(flows(ovs))) == before
        b = m.bridge()
        assert b["role"]["unwritten_changes"] > 0 and b["planned"] == one_bit, b

        # a newer generation id takes the bridge back; the plan goes in
        sdn_config(workdir, ovs, role={"role": "master", "generation_id": 7}, **CHANGED)
        m.reload()
        b = m.wait(lambda b: b["role"]["state"] == "master" and b["role"]["writes"]
                   and b["in_sync"] and b["flows"] == b["planned"] != one_bit, "master again, in sync")
        assert b["role"]["generation_id"] == 7
        assert foreign_write(other, 11) == [(OFP.OFPET_BAD_REQUEST, OFP.OFPBRC_IS_SLAVE)]
    finally:
        other.close()


def test_a_slave_only_reads(bed):
    ovs, workdir, managers = bed
    # the bridge as its owner set it up: XenoFlow as slave adds nothing to it, OVSDB included
    ovs.add_bridge(BR)
    ovs.vsctl("set", "bridge", BR, "protocols=OpenFlow13", "fail_mode=secure",
              "--", "add-port", BR, P0, "--", "set", "interface", P0, "ofport_request=1",
              "--", "add-port", BR, P1, "--", "set", "interface", P1, "ofport_request=2",
              "--", "set-controller", BR, "tcp:127.0.0.1:%d" % OF_PORT)
    dpid_before = ovs.vsctl("get", "bridge", BR, "datapath_id").strip()
    cfg_path, cfg = sdn_config(workdir, ovs, role={"role": "slave", "generation_id": 1})
    m = Manager(ovs.netns, workdir, cfg_path)
    managers.append(m)
    b = m.wait(lambda b: b["connected"] and b["role"]["state"] == "slave" and b["last_dump"], "slave, dumped")
    time.sleep(1.5)     # several polls and reconciles
    b = m.bridge()
    assert not b["role"]["writes"] and b["role"]["read_only"] == "role slave"
    assert b["planned"] > 0 and b["flows"] == 0 and not b["in_sync"]
    assert b["role"]["unwritten_changes"] >= b["planned"]
    assert ours(flows(ovs)) == []
    assert ovs.vsctl("get", "bridge", BR, "datapath_id").strip() == dpid_before
    assert "xenoflow" not in ovs.vsctl("get", "bridge", BR, "external_ids")

    # promoted by its config: it asks for master, and programs the bridge
    sdn_config(workdir, ovs, role={"role": "master", "generation_id": 2})
    m.reload()
    b = m.wait(lambda b: b["role"]["state"] == "master" and b["in_sync"] and b["flows"] == b["planned"],
               "master after the reload, in sync")
    assert len(ours(flows(ovs))) == b["planned"]
    for src in SOURCES:
        assert traced_mac(ovs, src) == expected_mac(cfg, src), src

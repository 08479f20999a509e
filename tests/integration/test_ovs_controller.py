"""The controller against a real OVS, with real DNS traffic, under the runtime of this
test environment: os-ken 4 (`xenoflow controller -c FILE`) or, when os_ken is not
importable, Ryu 4.34 (`ryu-manager xenoflow_ovs.app`, config from XENOFLOW_CONFIG).

Wiring (the paper's, shrunk). OVS and the controller run in the session OVS's
namespace (so its 127.0.0.1:6653 is private); a Linux bridge `br0` in namespace
`tor` joins the client, both backends and the DPU's wire ports, as the paper's
ToR does. Queries go client -> tor -> xcp0 (xcbr1: bucket by the source's low bit,
set the backend's MAC) -> patch -> xcbr2 -> xcp1 -> tor -> backend; the backends
hold the VIP on loopback and answer straight to the client through tor (DSR).
tor does not learn on the DPU ports and has static FDB entries for every MAC, so
a reply never wanders into the DPU.

    cli (198.18.0.7..12) ─┐        ┌─ xcp0 [xcbr1] patch [xcbr2] xcp1 ─┐
                          ├─ br0 ──┤                                   │
    b2 fips2, b3 fips3 ───┘        └───────────────────────────────────┘
    xch0/xch1 (host-side ports of the routes) are veths to nowhere.

Only 198.18.0.0/15 inside namespaces created here; TX checksum offload off on every
link; everything is removed by exact name / PID.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import netaddr
import pytest
import yaml

from xenoflow_ovs.controller import ovsdb
from xenoflow_ovs.intent import buckets, config, plan, render
from xenoflow_ovs.lab import dnsclient
from xenoflow_ovs.lab import netns as nsh
from xenoflow_ovs.lab.bind9 import Bind9
from xenoflow_ovs.lab.pyenv import subprocess_env

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.slow]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(REPO, "topologies", "paper", "xenoflow.yaml")
VIP, VIP_MAC = "198.18.0.53", "02:00:c6:12:00:35"
CLIENT_MAC = "02:00:c6:12:00:07"
SOURCES = ["198.18.0.7", "198.18.0.8", "198.18.0.9", "198.18.0.10", "198.18.0.11", "198.18.0.12"]
BACKENDS = {"fips2": ("198.18.0.2", "02:00:c6:12:00:02"), "fips3": ("198.18.0.3", "02:00:c6:12:00:03")}
BR1, BR2 = "xcbr1", "xcbr2"
P0, P1, H0, H1, SF = "xcp0", "xcp1", "xch0", "xch1", "xcsf0"


def _osken():
    try:
        import os_ken.base.app_manager  # noqa: F401
        return True
    except ImportError:
        return False


RUNTIME = "osken" if _osken() else "ryu"


def _env(extra=None):
    env = subprocess_env()
    env.update(extra or {})
    return env


def test_config(ovs, workdir):
    data = config.to_data(config.load(PAPER))
    data["dpu"]["eswitch"]["driver"] = "none"
    data["dpu"]["ports"] = {P0: {"id": 0}, P1: {"id": 1}, H0: {"id": 2}, H1: {"id": 3}}
    data["dpu"]["state_dir"] = os.path.join(workdir, "state")  # its lock and overlay: this test's own
    data["ovs"]["db"] = ovs.db
    data["ovs"]["bridges"] = {BR1: {"ports": [P0, H0]},
                              BR2: {"ports": [P1, H1],
                                    "internal": {SF: {"ip": "198.18.0.250/24",
                                                      "mac": "02:00:c6:12:00:fa"}}}}
    data["ovs"]["patches"] = [[BR1, BR2]]
    data["routes"] = [{"from": H1, "to": P1}, {"from": P1, "to": H1, "dst": "198.18.0.5/32"}]
    data["controller"] = {"openflow": {"host": "127.0.0.1", "port": 6653},
                          "api": {"host": "127.0.0.1", "port": 8080, "socket": "run/api.sock"}}
    svc = data["services"][0]
    svc["ingress"], svc["egress"] = P0, P1
    svc.get("health", {})["enabled"] = False
    path = os.path.join(workdir, "xenoflow.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return path, config.load(path)
test_config.__test__ = False  # a helper, not a test


class Controller:
    """The controller process, in the OVS namespace, by PID."""

    def __init__(self, ns, cfg_path, workdir):
        self.ns, self.cfg_path, self.workdir = ns, cfg_path, workdir
        self.state_path = os.path.join(workdir, "state.json")
        self.log_path = os.path.join(workdir, "controller.log")
        self.proc = None

    def argv(self):
        if RUNTIME == "osken":
            return [sys.executable, "-m", "xenoflow_ovs.cli", "controller", "-c", self.cfg_path]
        ryu = os.path.join(os.path.dirname(sys.executable), "ryu-manager")
        base = [ryu] if os.path.exists(ryu) else [sys.executable, "-c",
                                                   "import sys; from ryu.cmd.manager import main; "
                                                   "sys.argv[0] = 'ryu-manager'; main()"]
        return base + ["--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", "6653",
                       "xenoflow_ovs.app"]

    def start(self, extra_env=None):
        log = open(self.log_path, "ab")
        env = _env(dict({"XENOFLOW_CONFIG": self.cfg_path, "XENOFLOW_STATE": self.state_path,
                         "XENOFLOW_POLL_INTERVAL": "0.5", "XENOFLOW_ENSURE_INTERVAL": "2"},
                        **(extra_env or {})))
        self.proc = nsh.popen_in_ns(self.ns, self.argv(), env=env, stdout=log, stderr=log,
                                    cwd=self.workdir)
        log.close()
        return self

    def stop(self, timeout=15):
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return p.returncode if p else None
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
            raise AssertionError("the controller did not stop on SIGTERM")

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def state(self):
        try:
            with open(self.state_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def wait(self, pred, timeout=40, what="controller ready"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError("controller exited rc=%s:\n%s" % (self.proc.returncode,
                                                                       self.log()[-3000:]))
            st = self.state()
            if st is not None and st.get("pid") == self.proc.pid and pred(st):
                return st
            time.sleep(0.2)
        raise AssertionError("%s: timed out; state %s\nlog:\n%s"
                             % (what, json.dumps(self.state())[:2000], self.log()[-3000:]))

    def wait_synced(self, timeout=40):
        def ok(st):
            brs = st["bridges"]
            return len(brs) == 2 and all(b["connected"] and b["in_sync"] and b["flows"] == b["planned"]
                                         for b in brs.values())
        return self.wait(ok, timeout, "bridges connected and in sync")


@pytest.fixture(scope="module")
def lab(ovs, session_netns):
    workdir = tempfile.mkdtemp(prefix="xf-ctl-")
    names = {k: session_netns(k) for k in ("xtor", "xcli", "xb2", "xb3")}
    tor, cli = names["xtor"], names["xcli"]
    servers = []
    ctl = None
    try:
        nsh.run_in_ns(tor, ["ip", "link", "add", "br0", "type", "bridge"])
        nsh.disable_ipv6("br0", tor)
        nsh.set_link("br0", ns=tor, up=True)

        def tor_port(name):
            nsh.prepare_link(name, tor)
            nsh.run_in_ns(tor, ["ip", "link", "set", name, "master", "br0"])

        for ovs_end, tor_end in ((P0, "t-p0"), (P1, "t-p1")):      # the DPU's wire ports
            nsh.add_veth(ovs_end, tor_end, ns=ovs.netns, peer_ns=tor)
            nsh.prepare_link(ovs_end, ovs.netns)
            tor_port(tor_end)
            nsh.run_in_ns(tor, ["bridge", "link", "set", "dev", tor_end, "learning", "off"])
        for port in (H0, H1):                                       # host side: nowhere
            nsh.add_veth(port, port + "p", ns=ovs.netns, peer_ns=ovs.netns)
            nsh.prepare_link(port, ovs.netns)
            nsh.prepare_link(port + "p", ovs.netns)
        hosts = [(cli, "t-cli", CLIENT_MAC, SOURCES[0])]
        hosts += [(names["xb" + n[-1]], "t-b" + n[-1], mac, ip) for n, (ip, mac) in BACKENDS.items()]
        for ns, tor_end, mac, ip in hosts:
            nsh.add_veth(tor_end, "eth0", ns=tor, peer_ns=ns)
            nsh.prepare_link("eth0", ns, mac=mac, cidr=ip + "/24")
            tor_port(tor_end)
            nsh.run_in_ns(tor, ["bridge", "fdb", "add", mac, "dev", tor_end, "master", "static"])
        nsh.run_in_ns(tor, ["bridge", "fdb", "add", VIP_MAC, "dev", "t-p0", "master", "static"])
        for src in SOURCES[1:]:
            nsh.add_address("eth0", src + "/24", ns=cli)
        for name, (ip, mac) in BACKENDS.items():                    # DSR backends
            ns = names["xb" + name[-1]]
            nsh.add_lo_address(ns, VIP + "/32")
            nsh.set_arp_dsr(ns)
            servers.append(Bind9(ns, os.path.join(workdir, "bind-" + name), name, VIP).start())

        cfg_path, cfg = test_config(ovs, workdir)
        ctl = Controller(ovs.netns, cfg_path, workdir).start()
        ctl.wait_synced()
        yield {"ovs": ovs, "cli": cli, "ctl": ctl, "cfg": cfg, "servers": dict(
            zip(BACKENDS, servers)), "workdir": workdir}
    finally:
        if ctl is not None:
            ctl.stop()
        for s in servers:
            s.stop()
        for br in (BR1, BR2):
            ovs.vsctl("--if-exists", "del-br", br, check=False)
        for port in (P0, P1, H0, H1):
            nsh.delete_link(port, ovs.netns)
        for ns in names.values():
            nsh.delete_ns(ns)
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------- helpers


def _tokens(head):
    out = []
    for part in head.replace(", ", ",").replace(" ", ",").split(","):
        if part and not part.startswith(("duration=", "n_packets=", "n_bytes=", "idle_age=",
                                         "hard_age=", "reset_counts", "send_flow_rem")):
            out.append(part)
    return out


def parse_flows(text):
    """ovs-ofctl dump-flows lines -> {(cookie, table, priority, match tokens): actions}."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("cookie="):
            continue
        head, _, actions = line.partition(" actions=")
        toks = _tokens(head)
        fields = dict(t.split("=", 1) for t in toks if "=" in t)
        match = frozenset(t for t in toks if not t.startswith(("cookie=", "table=", "priority=")))
        out[(int(fields["cookie"], 16), int(fields.get("table", 0)), int(fields.get("priority", 32768)),
             match)] = actions
    return out


def planned_flows(cfg, bridge, ports):
    """The plan in ovs-ofctl syntax with port numbers, parsed the same way."""
    lines = []
    for f in plan.plan(cfg).bridge_flows(bridge):
        text = render.to_ofctl(f)
        for name, no in sorted(ports.items(), key=lambda kv: -len(kv[0])):
            text = text.replace("in_port=%s," % name, "in_port=%d," % no)
            text = text.replace("in_port=%s " % name, "in_port=%d " % no)
            text = text.replace("output:%s" % name, "output:%d" % no)
        lines.append(text)
    return parse_flows("\n".join(lines))


def durations(ovs, bridge):
    out = {}
    for line in ovs.ofctl("dump-flows", bridge).splitlines():
        if "duration=" in line:
            key = line.split("duration=")[0] + line.split(" priority=", 1)[-1]
            out[key] = float(line.split("duration=")[1].split("s,")[0])
    return out


def expected_backend(cfg, src):
    tbl = buckets.table(cfg.service("dns"))
    return tbl[int(netaddr.IPAddress(src)) & (len(tbl) - 1)]


def ovs_packets(st):
    return {be: c["ovs_packets"] for be, c in st["services"]["dns"].items()}


# ---------------------------------------------------------------- tests


def test_bridges_hold_exactly_the_plans_flows(lab):
    ovs, cfg = lab["ovs"], lab["cfg"]
    st = lab["ctl"].state()
    assert st["runtime"] == RUNTIME
    db = ovsdb.Ovsdb(ovs.db)
    try:
        for br in (BR1, BR2):
            ports = db.port_numbers(br)
            have = parse_flows(ovs.ofctl("dump-flows", br))
            assert have == planned_flows(cfg, br, ports), br
            assert st["bridges"][br]["dpid"] == "%016x" % ovsdb.datapath_id(br)
        assert db.port_numbers(BR1)[P0] == 1 and db.port_numbers(BR2)["patch-" + BR1] == 200
    finally:
        db.close()
    row = ovs.vsctl("--columns=fail_mode,protocols,datapath_type,other_config,external_ids",
                    "list", "bridge", BR1)
    for want in ("secure", "OpenFlow13", "netdev", 'disable-in-band="true"', "xenoflow=bf3",
                 'datapath-id="%016x"' % ovsdb.datapath_id(BR1)):
        assert want in row, row
    assert st["packet_ins"] == 0 and st["fallback_packets"] is None


def test_queries_go_to_the_planned_backend_and_are_counted(lab):
    ctl, cfg, cli = lab["ctl"], lab["cfg"], lab["cli"]
    n = 5
    before = ctl.wait(lambda s: True)
    answered_before = {name: s.queries_answered() for name, s in lab["servers"].items()}
    want = {b: 0 for b in BACKENDS}
    for src in SOURCES:
        r = dnsclient.query_many_in_ns(cli, VIP, src=src, count=n, timeout=2.0)
        be = expected_backend(cfg, src)
        assert r["by_answer"] == {be: n}, (src, r)
        want[be] += n
    assert all(v > 0 for v in want.values())

    def counted(st):
        got = ovs_packets(st)
        return all(got[b] - ovs_packets(before)[b] >= want[b] for b in want)
    st = ctl.wait(counted, 10, "per-backend counters")
    time.sleep(1.2)                    # two more polls: nothing more may arrive
    st = ctl.wait(lambda s: s["time"] > st["time"] + 1.0, 5)
    got = ovs_packets(st)
    assert {b: got[b] - ovs_packets(before)[b] for b in want} == want
    # the backends' own counters agree
    assert {name: s.queries_answered() - answered_before[name]
            for name, s in lab["servers"].items()} == want
    assert st["packet_ins"] == 0 and st["miss_other_packets"] >= 0


def test_drift_is_repaired_on_the_next_poll(lab):
    ovs, ctl = lab["ovs"], lab["ctl"]
    st0 = ctl.state()
    victim = [ln for ln in ovs.ofctl("dump-flows", BR2).splitlines() if "priority=250" in ln][0]
    match = "cookie=%s/-1,priority=250,%s" % (victim.split("cookie=")[1].split(",")[0],
                                              victim.split("priority=250,")[1].split(" ")[0])
    ovs.ofctl("--strict", "del-flows", BR2, match)
    ovs.ofctl("--strict", "mod-flows", BR1, "priority=30,in_port=patch-%s,actions=NORMAL" % BR2)
    ctl.wait(lambda s: s["repairs"] >= st0["repairs"] + 2, 10, "drift repaired")
    ctl.wait_synced(10)
    assert "repaired: add %s" % BR2 in ctl.log() and "repaired: modify %s" % BR1 in ctl.log()
    ports = {BR1: None, BR2: None}
    db = ovsdb.Ovsdb(ovs.db)
    try:
        for br in ports:
            assert parse_flows(ovs.ofctl("dump-flows", br)) == planned_flows(
                lab["cfg"], br, db.port_numbers(br))
    finally:
        db.close()


def test_with_aggregate_polls_a_flow_deleted_behind_our_back_is_repaired_and_counted(lab):
    """The controller as it runs a big table (aggregates every poll, full dumps only when
    they move; here forced on this small one): a service flow deleted behind our back is
    seen in the aggregates and repaired, and the per-backend counters still add up to
    exactly the queries sent, before and after, as bind9 counts them."""
    ctl, cfg, cli, ovs = lab["ctl"], lab["cfg"], lab["cli"], lab["ovs"]
    ctl.stop()
    ctl.start({"XENOFLOW_FULL_DUMP_FLOWS": "0", "XENOFLOW_AUDIT_RATE": "0.001"})
    try:
        ctl.wait_synced()
        time.sleep(1.5)                            # the verify dump, then aggregates only
        st0 = ctl.wait(lambda s: s["bridges"][BR1]["last_aggregates"] is not None, 10)
        dumps0 = sum(st0["bridges"][BR1]["full_dumps"].values())
        time.sleep(2.0)                            # four quiet polls: no full dump
        st = ctl.state()
        assert sum(st["bridges"][BR1]["full_dumps"].values()) == dumps0, st["bridges"][BR1]
        answered0 = {name: s.queries_answered() for name, s in lab["servers"].items()}

        def send(n):
            want = {b: 0 for b in BACKENDS}
            for src in SOURCES:
                r = dnsclient.query_many_in_ns(cli, VIP, src=src, count=n, timeout=2.0)
                assert r["by_answer"] == {expected_backend(cfg, src): n}, (src, r)
                want[expected_backend(cfg, src)] += n
            return want

        def counted(base, want):
            return lambda s: {b: ovs_packets(s)[b] - ovs_packets(base)[b] for b in want} == want
        want = send(3)
        st1 = ctl.wait(counted(st, want), 10, "counted from the aggregates' full dump")
        assert st1["bridges"][BR1]["full_dumps"].get("traffic", 0) >= 1
        # one balancing flow deleted behind our back (OVS reports its final counts)
        victim = [ln for ln in ovs.ofctl("dump-flows", BR1).splitlines()
                  if "priority=20" in ln and "nw_src" in ln][0]
        spec = "cookie=%s/-1,priority=%s" % (victim.split("cookie=")[1].split(",")[0],
                                             victim.split(" priority=")[1].split(" ")[0])
        ovs.ofctl("--strict", "del-flows", BR1, spec)
        ctl.wait(lambda s: s["repairs"] >= st1["repairs"] + 1, 10, "deleted flow repaired")
        ctl.wait_synced(10)
        db = ovsdb.Ovsdb(ovs.db)
        try:
            assert parse_flows(ovs.ofctl("dump-flows", BR1)) == planned_flows(
                cfg, BR1, db.port_numbers(BR1))
        finally:
            db.close()
        more = send(2)
        total = {b: want[b] + more[b] for b in want}
        st2 = ctl.wait(counted(st, total), 10, "counters after the repair")
        time.sleep(1.5)                            # nothing more may arrive
        st3 = ctl.wait(lambda s: s["time"] > st2["time"] + 1.0, 5)
        assert {b: ovs_packets(st3)[b] - ovs_packets(st)[b] for b in total} == total
        assert {name: s.queries_answered() - answered0[name]
                for name, s in lab["servers"].items()} == total
        assert "repaired: add %s" % BR1 in ctl.log()
    finally:
        ctl.stop()
        ctl.start()
        ctl.wait_synced()


LOOP = """
import json, sys, time
from xenoflow_ovs.lab.dnsclient import query_txt
srcs, end, out = %r, time.time() + %f, []
while time.time() < end:
    src = srcs[len(out) %% len(srcs)]
    out.append([src, query_txt(%r, src, timeout=1.0)])
    time.sleep(0.02)
print(json.dumps(out))
"""


def test_restart_keeps_flows_and_foreign_flows_and_loses_no_query(lab):
    ovs, ctl, cfg, cli = lab["ovs"], lab["ctl"], lab["cfg"], lab["cli"]
    foreign = "cookie=0x1234,priority=5,ip,nw_dst=198.18.1.99,actions=drop"
    ovs.ofctl("add-flow", BR1, foreign)
    ctl.wait(lambda s: s["bridges"][BR1]["foreign_flows"] == 1, 5)
    before = durations(ovs, BR1)
    t0 = time.monotonic()
    loop = nsh.popen_in_ns(cli, [sys.executable, "-c", LOOP % (SOURCES, 12.0, VIP)], env=_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(2)
        rc = ctl.stop()
        if RUNTIME == "osken":
            assert rc == 0, ctl.log()[-2000:]
        assert "SIGTERM" in ctl.log() or RUNTIME == "ryu"
        time.sleep(1.5)                                  # no controller at all for a while
        assert parse_flows(ovs.ofctl("dump-flows", BR1))  # flows stay (fail_mode=secure)
        ctl.start()
        st = ctl.wait_synced(40)
        out, err = loop.communicate(timeout=60)
    finally:
        if loop.poll() is None:
            loop.kill()
            loop.wait(5)
    results = json.loads(out)
    assert len(results) > 100, err
    lost = [r for r in results if r[1] is None]
    assert not lost, "%d of %d queries lost during the restart" % (len(lost), len(results))
    assert all(ans == expected_backend(cfg, src) for src, ans in results)
    # adopted, not re-added: no change at all, durations continued, the foreign flow is there
    assert "synced:" not in ctl.log().rsplit("XenoFlow controller", 1)[-1]
    assert st["repairs"] == 0 and st["bridges"][BR1]["foreign_flows"] == 1
    elapsed = time.monotonic() - t0
    after = durations(ovs, BR1)
    ours = [k for k in before if "cookie=0x5846" in k]
    assert ours and all(after[k] >= before[k] + elapsed - 1.5 for k in ours)
    assert any("cookie=0x1234" in k for k in after)
    ovs.ofctl("--strict", "del-flows", BR1, "cookie=0x1234/-1,priority=5,ip,nw_dst=198.18.1.99")


def test_ovsdb_server_restart_is_survived_and_the_bridges_kept_as_configured(lab):
    ovs, ctl = lab["ovs"], lab["ctl"]
    ovs.restart_ovsdb()
    ctl.wait(lambda s: s["ovsdb"]["connected"] and s["ovsdb"]["last_error"] is None, 20,
             "ovsdb reconnected")
    ovs.vsctl("del-port", BR2, SF)                      # someone removes our internal port
    ovs.vsctl("set", "bridge", BR1, "fail_mode=standalone")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if (SF in ovs.vsctl("list-ports", BR2).split()
                and ovs.vsctl("get", "bridge", BR1, "fail_mode").strip() == "secure"):
            break
        time.sleep(0.3)
    else:
        raise AssertionError("OVSDB drift not repaired:\n" + ctl.log()[-2000:])
    ctl.wait_synced(20)
    assert "ovsdb: bridge %s: port %s" % (BR2, SF) in ctl.log()


# ---------------------------------------------------------------- the API on the live controller


def _api(lab, method, path, body=None):
    from xenoflow_ovs.api import server as api
    cfg = lab["cfg"]
    return api.request(method, path, unix_path=cfg.path(cfg.api.socket), body=body)


def _openapi_validate(method, template, code, body):
    from openapi_check import validate
    validate(method, template, code, body)


def _answers(lab, n=3):
    out = {}
    for src in SOURCES:
        r = dnsclient.query_many_in_ns(lab["cli"], VIP, src=src, count=n, timeout=2.0)
        out[src] = r["by_answer"]
    return out


def test_api_status_check_and_metrics_agree(lab):
    code, st = _api(lab, "GET", "/status")
    assert code == 200
    _openapi_validate("GET", "/status", code, st)
    assert st["verdict"] == "consistent" and st["fallback_packets"] is None
    assert all(c["in_service"] and c["eswitch_packets"] is None for c in st["services"]["dns"].values())
    code, rep = _api(lab, "GET", "/check")
    _openapi_validate("GET", "/check", code, rep)
    assert rep["consistent"] and len(rep["buckets"]) == 2 and all(b["ok"] for b in rep["buckets"])
    assert {r["route"] for r in rep["routes"]} == {r.label for r in lab["cfg"].routes}
    # Scraped over HTTP, the per-backend series carry the packets counted on the switch
    # (the earlier test checked those against the queries sent and bind9's own counts).
    n = 4
    before = st["services"]["dns"]
    for src in SOURCES[:2]:
        dnsclient.query_many_in_ns(lab["cli"], VIP, src=src, count=n, timeout=2.0)
    want = {be: before[be]["ovs_packets"] + n * sum(1 for src in SOURCES[:2]
                                                    if expected_backend(lab["cfg"], src) == be)
            for be in before}
    lab["ctl"].wait(lambda s: ovs_packets(s) == want, 10, "counters after the queries")
    code, text = _api(lab, "GET", "/metrics")
    assert code == 200
    for be, packets in want.items():
        line = 'xenoflow_backend_packets_total{backend="%s",dpu="bf3",plane="ovs",service="dns"} ' % be
        got = [float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith(line)]
        assert got == [float(packets)], (be, got, packets)
    # The CLI reaches the same API through the socket.
    out = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "check", "--socket",
                          lab["cfg"].path(lab["cfg"].api.socket)], capture_output=True, text=True,
                         env=_env())
    assert out.returncode == 0 and "verdict: consistent" in out.stdout, out.stderr


def test_api_drain_moves_real_queries_and_undrain_restores(lab):
    cfg = lab["cfg"]
    code, body = _api(lab, "POST", "/services/dns/backends/fips3/drain")
    assert code == 200 and body["ovs"] > 0, body
    assert all(a == {"fips2": 3} for a in _answers(lab).values())
    st = _api(lab, "GET", "/status")[1]
    assert st["services"]["dns"]["fips3"]["in_service"] is False and st["verdict"] == "consistent"
    code, body = _api(lab, "POST", "/services/dns/backends/fips2/drain")
    assert code == 409, body                       # the last one in service
    assert _api(lab, "POST", "/services/dns/backends/ghost/drain")[0] == 404
    assert _api(lab, "POST", "/services/dns/backends/fips3/undrain")[0] == 200
    assert all(a == {expected_backend(cfg, src): 3} for src, a in _answers(lab).items())


def test_reload_bad_file_keeps_state_good_file_and_sighup_apply(lab):
    ovs, ctl = lab["ovs"], lab["ctl"]
    original = open(ctl.cfg_path).read()
    flows_before = parse_flows(ovs.ofctl("dump-flows", BR1))
    try:
        with open(ctl.cfg_path, "w") as f:
            f.write(original.replace("vip: 198.18.0.53", "vip: 198.18.0.999"))
        code, body = _api(lab, "POST", "/reload")
        assert code == 400 and any("services[0].vip" in e for e in body["errors"]), body
        assert parse_flows(ovs.ofctl("dump-flows", BR1)) == flows_before
        data = yaml.safe_load(original)
        data["services"][0]["policy"]["bits"] = 2
        data["services"][0]["backends"][1]["weight"] = 3   # fips3 takes 3 of 4 buckets
        with open(ctl.cfg_path, "w") as f:
            yaml.safe_dump(data, f, sort_keys=False)
        ctl.proc.send_signal(signal.SIGHUP)
        ctl.wait(lambda s: (s.get("last_transition") or {}).get("why") == "reload", 15,
                 "SIGHUP reload applied")
        answers = _answers(lab, 2)
        assert sum(1 for a in answers.values() if a == {"fips3": 2}) > sum(
            1 for a in answers.values() if a == {"fips2": 2})
        code, rep = _api(lab, "GET", "/check")
        assert rep["verdict"] == "consistent" and len(rep["buckets"]) == 4, rep
    finally:
        with open(ctl.cfg_path, "w") as f:
            f.write(original)
        assert _api(lab, "POST", "/reload")[0] == 200
        ctl.wait_synced(20)
    assert parse_flows(ovs.ofctl("dump-flows", BR1)) == flows_before

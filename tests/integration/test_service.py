"""eswitchd and the controller as services, on softdoca in namespaces of this test:
one eswitchd per DPU, the session fence against a stale controller, the repeated-repair
alarm, and both daemons under a small notify-socket supervisor (READY=1 only once both
planes are programmed; SIGTERM of the controller leaves the eSwitch forwarding).

    client ns  c0 ==veth== w0 [p0]  eswitch ns (eswitchd)  [p1] w1 ==veth== b1  backend ns
                                    r0 ==veth== <p0 in OVS's ns>, r1 ==veth== <p1 ...>
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml
from process_helpers import RUNTIME, free_port

from xenoflow_ovs.api import server as api
from xenoflow_ovs.eswitch.client import EswitchClient, EswitchError
from xenoflow_ovs.intent import config, plan
from xenoflow_ovs.lab import netns as N
from xenoflow_ovs.lab.pyenv import subprocess_env

pytestmark = [pytest.mark.root, pytest.mark.slow]

VIP, VIP_MAC = "198.18.0.53", "02:00:c6:12:00:35"
BE = [("fips2", "198.18.0.2", "02:00:c6:12:00:02"), ("fips3", "198.18.0.3", "02:00:c6:12:00:03")]
P0, P1, BR = "xsvp0", "xsvp1", "xsvbr"     # port and bridge names: unique in the session's OVS ns

SENDER = """
import socket, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
for i in range(n):
    s.sendto(b"x" * 32, (dst, 53))
"""






def wait_for(fn, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.1)


def rx_packets(ns, ifname):
    return int(N.run_in_ns(ns, ["cat", "/sys/class/net/%s/statistics/rx_packets" % ifname]).stdout)


class Rig:
    """Namespaces, veths, a config; eswitchd and controllers started by PID."""

    def __init__(self, netns, tmp, ovs=None):
        self.tmp, self.ovs, self.procs = tmp, ovs, []
        self.es, self.cl, self.be = netns("e"), netns("c"), netns("b")
        rep_ns = ovs.netns if ovs else self.es
        N.add_veth("w0", "c0", ns=self.es, peer_ns=self.cl)
        N.add_veth("w1", "b1", ns=self.es, peer_ns=self.be)
        N.add_veth("r0", P0, ns=self.es, peer_ns=rep_ns)
        N.add_veth("r1", P1, ns=self.es, peer_ns=rep_ns)
        for ifname in ("w0", "w1", "r0", "r1"):
            N.prepare_link(ifname, ns=self.es)
        for ifname in (P0, P1):
            N.prepare_link(ifname, ns=rep_ns)
        N.prepare_link("c0", ns=self.cl, mac="02:00:c6:12:00:0b", cidr="198.18.0.11/24")
        N.add_address("c0", "198.18.0.12/24", ns=self.cl)
        N.run_in_ns(self.cl, ["ip", "neigh", "replace", VIP, "lladdr", VIP_MAC, "dev", "c0", "nud",
                              "permanent"])
        N.prepare_link("b1", ns=self.be)
        for ifname, ns in (("c0", self.cl), ("b1", self.be), ("w0", self.es), ("w1", self.es)):
            N.wait_oper_up(ifname, ns)
        self.of_port = free_port()
        self.data = {
            "dpu": {"name": "t", "state_dir": os.path.join(tmp, "state"),
                    "eswitch": {"driver": "softdoca", "socket": os.path.join(tmp, "es.sock"),
                                "connect_timeout": 60,
                                "eal_args": ["--no-huge", "-m", "256", "--no-pci", "-l", "0-1",
                                             "--file-prefix", "xf-svc-%d" % os.getpid(),
                                             "--log-level", "lib.eal:warning"]},
                    "ports": {P0: {"id": 0, "iface": "w0", "rep_iface": "r0"},
                              P1: {"id": 1, "iface": "w1", "rep_iface": "r1"}}},
            "ovs": {"db": ovs.db if ovs else "unix:" + os.path.join(tmp, "no-ovsdb.sock"),
                    "bridges": {BR: {"ports": [P0, P1]}}},
            "controller": {"openflow": {"host": "127.0.0.1", "port": self.of_port},
                           "api": {"host": "127.0.0.1", "port": free_port(),
                                   "socket": os.path.join(tmp, "api.sock")}},
            "services": [{"name": "dns", "vip": VIP, "vip_mac": VIP_MAC, "port": 53, "ingress": P0,
                          "egress": P1, "policy": {"kind": "src-ip-bits", "bits": 1},
                          "backends": [{"name": n, "ip": i, "mac": m} for n, i, m in BE]}],
        }
        if "metrics" in config.to_data(config.load(self.write())).get("controller", {}):
            self.data["controller"]["metrics"] = {"host": "127.0.0.1", "port": free_port()}
        self.path = self.write()
        self.cfg = config.load(self.path)
        self.sock = self.cfg.path(self.cfg.eswitch.socket)

    def write(self, name="xf.yaml", **changes):
        data = json.loads(json.dumps(self.data))
        for k, v in changes.items():     # "a.b.c": value
            d = data
            *head, last = k.split(".")
            for h in head:
                d = d[h]
            d[last] = v
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            yaml.safe_dump(data, f)
        return path

    def spawn(self, ns, argv, log, env=None):
        e = subprocess_env()
        e.update(env or {})
        f = open(os.path.join(self.tmp, log), "ab")
        p = N.popen_in_ns(ns, argv, env=e, stdout=f, stderr=subprocess.STDOUT, cwd=self.tmp)
        f.close()
        self.procs.append(p)
        return p

    def log(self, name):
        with open(os.path.join(self.tmp, name), errors="replace") as f:
            return f.read()

    def eswitchd(self, log="eswitchd.log", env=None):
        return self.spawn(self.es, [sys.executable, "-m", "xenoflow_ovs.cli", "eswitchd", "-c", self.path],
                          log, env)

    def wait_eswitchd(self, proc, log="eswitchd.log"):
        def up():
            assert proc.poll() is None, self.log(log)
            try:
                c = EswitchClient(self.sock, timeout=2)
                try:
                    return c.hello()
                finally:
                    c.close()
            except EswitchError:
                return None
        return wait_for(up, 30, "eswitchd")

    def controller(self, cfg_path, log, env=None, ns=None):
        e = {"XENOFLOW_POLL_INTERVAL": "0.3", "XENOFLOW_STATE": os.path.join(self.tmp, log + ".json"),
             "XENOFLOW_CONFIG": cfg_path}
        e.update(env or {})
        if RUNTIME == "osken":
            argv = [sys.executable, "-m", "xenoflow_ovs.cli", "controller", "-c", cfg_path]
        else:
            port = config.load(cfg_path).openflow.port
            argv = [sys.executable, "-c", "import sys; from ryu.cmd.manager import main; "
                    "sys.argv[0] = 'ryu-manager'; main()", "--ofp-listen-host", "127.0.0.1",
                    "--ofp-tcp-listen-port", str(port), "xenoflow_ovs.app"]
        return self.spawn(ns or (self.ovs.netns if self.ovs else self.es), argv, log, e)

    def client(self):
        return EswitchClient(self.sock, timeout=5)

    def send(self, src, n):
        N.run_in_ns(self.cl, [sys.executable, "-c", SENDER, src, VIP, str(n)])

    def stop_all(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


@pytest.fixture
def rig(netns, short_tmp):
    r = Rig(netns, short_tmp)
    try:
        yield r
    finally:
        r.stop_all()


def entries(client):
    return sorted(json.dumps(e, sort_keys=True) for e in client.call("list")["entries"])


def api_status(sock):
    code, body = api.request("GET", "/status", unix_path=sock)
    assert code == 200, body
    return body


def test_second_eswitchd_is_refused_and_the_first_untouched(rig):
    first = rig.eswitchd()
    rig.wait_eswitchd(first)
    c = rig.client()
    c.apply(plan.adoption_changes([], [], plan.plan(rig.cfg)))
    before, inode = entries(c), os.stat(rig.sock).st_ino
    second = subprocess.run(N.ns_argv(rig.es, [sys.executable, "-m", "xenoflow_ovs.cli", "eswitchd", "-c",
                                              rig.path]), capture_output=True, text=True,
                            env=subprocess_env(), timeout=60)
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert second.returncode == 2 and len(lines) == 1, second.stderr
    assert "already running (pid %d)" % first.pid in lines[0] and "Traceback" not in second.stderr
    assert first.poll() is None and os.stat(rig.sock).st_ino == inode
    assert c.hello()["pid"] == first.pid and entries(c) == before
    # systemd's ExecReload sends SIGHUP: logged, not fatal, nothing changes
    first.send_signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP: nothing to reload" in rig.log("eswitchd.log"), 10, "the SIGHUP line")
    assert first.poll() is None and entries(c) == before
    c.close()
    first.send_signal(signal.SIGTERM)
    assert first.wait(20) == 0
    assert not os.path.exists(rig.sock)


def test_a_stale_controller_is_fenced_and_the_entries_stay_the_new_ones(rig):
    """The issue's "two controllers fight forever": a controller of an earlier lab (its own
    state dir, so its own lock) keeps running and reconnects to this eswitchd. The newer
    controller takes the eSwitch over; the stale one's writes are refused, it says so in its
    status, and the entries stay the newer one's."""
    es = rig.eswitchd()
    rig.wait_eswitchd(es)
    # the stale one: fips2 drained in its own mind (its config has only fips3 in service)
    stale_cfg = rig.write("stale.yaml", **{"dpu.state_dir": os.path.join(rig.tmp, "old-state"),
                                            "controller.api.socket": os.path.join(rig.tmp, "old-api.sock"),
                                            "controller.api.port": free_port(),
                                            "controller.openflow.port": free_port(),
                                            "controller.metrics.port": free_port()})
    data = yaml.safe_load(open(stale_cfg))
    data["services"][0]["backends"][0]["weight"] = 0
    with open(stale_cfg, "w") as f:
        yaml.safe_dump(data, f)
    stale = rig.controller(stale_cfg, "stale.log")
    c = rig.client()
    stale_plan = plan.plan(config.load(stale_cfg))
    wait_for(lambda: plan.adoption_changes(*c.installed(), stale_plan) == [], 30,
             "the stale controller's plan")
    new = rig.controller(rig.path, "new.log")
    new_plan = plan.plan(rig.cfg)
    wait_for(lambda: plan.adoption_changes(*c.installed(), new_plan) == [], 30, "the new controller's plan")
    assert c.hello()["session"]["owner"] == "controller pid %d" % new.pid

    def fenced():
        st = api_status(os.path.join(rig.tmp, "old-api.sock"))
        return [a for a in st["alarms"] if a["kind"] == "fenced"]
    alarm = wait_for(fenced, 20, "the stale controller's fenced alarm")
    assert "superseded" in alarm[0]["what"] or "older than" in alarm[0]["what"]
    # for several of the stale one's repair rounds (every 5 polls of 0.3 s): nothing moves back
    for _ in range(8):
        assert plan.adoption_changes(*c.installed(), new_plan) == []
        time.sleep(0.5)
    assert stale.poll() is None and new.poll() is None
    assert "refused a write" in rig.log("eswitchd.log") or "fenced" in rig.log("stale.log")
    assert api_status(os.path.join(rig.tmp, "api.sock"))["alarms"] == []
    c.close()


def test_the_same_entry_repaired_again_and_again_is_an_alarm(rig):
    es = rig.eswitchd()
    rig.wait_eswitchd(es)
    ctl = rig.controller(rig.path, "ctl.log")
    c = rig.client()
    target = plan.plan(rig.cfg)
    wait_for(lambda: plan.adoption_changes(*c.installed(), target) == [], 30, "the plan")
    victim = [e for e in target.entries if e.kind == "bucket"][0]
    api_sock = os.path.join(rig.tmp, "api.sock")
    assert api_status(api_sock)["alarms"] == []

    def undo_and_check():
        if plan.adoption_changes(*c.installed(), target) == []:
            c.apply([plan.Change("eswitch", "remove", victim)])     # a tool undoing it, unclaimed
        st = api_status(api_sock)
        return [a for a in st["alarms"] if a["kind"] == "repeated_repair"]
    alarms = wait_for(undo_and_check, 40, "a repeated_repair alarm")
    assert alarms[0]["count"] >= 3 and alarms[0]["what"].startswith("add "), alarms
    out = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "check", "--socket", api_sock],
                         capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    assert any(line.startswith("ALARM repeated_repair: ") for line in out.stdout.splitlines()), out.stdout
    st = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "status", "--socket", api_sock],
                        capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert "  ALARM repeated_repair: " in st.stdout
    assert ctl.poll() is None
    c.close()


# ---------------------------------------------------------------- under a notify supervisor

class Supervisor:
    """systemd's side of sd_notify: a unix datagram socket; each message with its arrival time
    and what the planes held at that moment (`probe`)."""

    def __init__(self, path, probe):
        self.path, self.probe = path, probe
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.messages = []

    def pump(self, until=None, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                if until is None:
                    return None
                continue
            seen = self.probe() if "READY=1" in msg.split("\n") else None
            self.messages.append((time.monotonic(), msg, seen))
            if until is not None and until in msg.split("\n"):
                return self.messages[-1]
        if until is not None:
            raise AssertionError("no %s from %s in %.0f s: %r" % (until, self.path, timeout, self.messages))
        return None

    def close(self):
        self.sock.close()


def test_ready_only_once_both_planes_are_programmed_and_sigterm_keeps_forwarding(netns, short_tmp, ovs):
    r = Rig(netns, short_tmp, ovs=ovs)
    sup_es = sup_ctl = None
    try:
        target = plan.plan(r.cfg)
        planned_flows = len(target.bridge_flows(BR))
        state = {}

        def probe():
            """What both planes hold right now."""
            c = r.client()
            try:
                pipes, ents = c.installed()
            finally:
                c.close()
            flows = ovs.ofctl("dump-flows", BR, check=False)
            ours = [line for line in flows.splitlines() if "cookie=" in line and plan.is_ours(
                int(line.split("cookie=")[1].split(",")[0], 16))]
            return {"eswitch_missing": len(plan.adoption_changes(pipes, ents, target)),
                    "ovs_flows": len(ours)}
        sup_es = Supervisor(os.path.join(short_tmp, "n-es"), probe)
        sup_ctl = Supervisor(os.path.join(short_tmp, "n-ctl"), probe)
        # the controller first: it waits for eswitchd (connect_timeout) and says nothing meanwhile
        ctl = r.controller(r.path, "ctl.log", env={"NOTIFY_SOCKET": sup_ctl.path})
        t_end = time.monotonic() + 2.0
        while time.monotonic() < t_end:
            sup_ctl.pump()
        assert sup_ctl.messages == [] and ctl.poll() is None, r.log("ctl.log")
        es = r.eswitchd(env={"NOTIFY_SOCKET": sup_es.path})
        t_es, msg, _ = sup_es.pump(until="READY=1", timeout=60)
        assert "MAINPID=%d" % es.pid in msg
        t_ctl, msg, seen = sup_ctl.pump(until="READY=1", timeout=90)
        assert t_ctl > t_es and "MAINPID=%d" % ctl.pid in msg
        # at READY=1 both planes already held the intent
        assert seen == {"eswitch_missing": 0, "ovs_flows": planned_flows}, (seen, r.log("ctl.log")[-3000:])
        assert "both planes programmed: ready" in r.log("ctl.log")
        state["ready"] = seen

        # SIGTERM the controller: STOPPING=1, exit 0, and the eSwitch keeps forwarding
        ctl.send_signal(signal.SIGTERM)
        sup_ctl.pump(until="STOPPING=1", timeout=30)
        assert ctl.wait(30) == 0, r.log("ctl.log")[-3000:]
        before = rx_packets(r.be, "b1")
        c = r.client()
        counted0 = sum(e["pkts"] for e in c.counters()["entries"] if e["entry"]["kind"] == "bucket")
        r.send("198.18.0.11", 20)
        r.send("198.18.0.12", 20)
        wait_for(lambda: rx_packets(r.be, "b1") - before >= 40, 10, "40 packets through the eSwitch")

        def counted():
            buckets = [e["pkts"] for e in c.counters()["entries"] if e["entry"]["kind"] == "bucket"]
            return sum(buckets) - counted0
        wait_for(lambda: counted() >= 40, 10, "bucket counters")
        assert counted() == 40
        c.close()
        assert es.poll() is None
        es.send_signal(signal.SIGTERM)
        sup_es.pump(until="STOPPING=1", timeout=30)
        assert es.wait(30) == 0
    finally:
        r.stop_all()
        ovs.vsctl("--if-exists", "del-br", BR, check=False)
        for port in (P0, P1):
            N.delete_link(port, ovs.netns)
        for s in (sup_es, sup_ctl):
            if s is not None:
                s.close()

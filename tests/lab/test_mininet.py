"""XenoFlow in Mininet: topologies/mininet/xenoflow_topo.py (the `mn --custom` file) and its
xenoflow.yaml, with a real Mininet, a real OVS (userspace datapath) and bind9 backends.

A private OVS runs in the root namespace (OVS_RUNDIR: Mininet's ovs-vsctl reaches it and no
other), the controller runs from this test env's Python on a copy of the yaml pointed at that
OVS and at free local ports, and Mininet runs under the system python3 (Debian's mininet) in
mininet_driver.py, which builds the net from the custom file, queries the VIP from every client
address and stops the net when told. Checked: every source is answered by the backend the plan's
bucket table names, bind9 answered exactly those queries, `xenoflow status --json` counts them
per backend on s1's flows; then the net stops, `mn -c` runs (isolated by the driver: it would
otherwise kill processes of the machine named like Mininet's and delete /tmp/*.log) and leaves
no Mininet link, no host's or bind9's process and no OVS bridge; the private OVS stops with no
tap left. Everything this test starts is ended by PID and removed by name, also on failure.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional

import netaddr
import pytest
import yaml

from xenoflow_ovs.intent import buckets, config
from xenoflow_ovs.lab.ovs_instance import OvsInstance
from xenoflow_ovs.lab.pyenv import subprocess_env

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.lab, pytest.mark.slow]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOPO = os.path.join(REPO, "topologies", "mininet", "xenoflow_topo.py")
YAML = os.path.join(REPO, "topologies", "mininet", "xenoflow.yaml")
DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mininet_driver.py")
SYSTEM_PYTHON = "/usr/bin/python3"            # Debian's mininet is a package of the system Python
COUNT = 4                                     # queries per source address
SWITCHES = ("s1", "s2", "s3")
# every link Mininet makes in the root namespace: the switches' ends (hosts' ends die with them)
LINKS = ["s1-eth1", "s1-eth2", "s2-eth1", "s2-eth2", "s2-eth3", "s3-eth1", "s3-eth2", "s3-eth3"]


def _alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _kill(pid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _alive(pid):
            return


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _root_links() -> List[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], stdout=subprocess.PIPE, universal_newlines=True,
                         check=True).stdout
    return [ln.split(":")[1].strip().split("@")[0] for ln in out.splitlines() if ":" in ln]


class Driver:
    """mininet_driver.py run, by PID; its XF-JSON lines through a reader thread."""

    def __init__(self, env: Dict[str, str], port: int, log_path: str) -> None:
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen([SYSTEM_PYTHON, DRIVER, "run", "--custom", TOPO, "--port", str(port),
                                      "--count", str(COUNT)], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, universal_newlines=True)
        self.lines: "queue.Queue[Optional[dict]]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("XF-JSON "):
                self.lines.put(json.loads(line[len("XF-JSON "):]))
        self.lines.put(None)

    def event(self, name: str, timeout: float) -> dict:
        try:
            ev = self.lines.get(timeout=timeout)
        except queue.Empty:
            ev = None
        assert ev is not None and ev["event"] == name, "driver: wanted %s, got %r (log %s)" % (
            name, ev, self.log.name)
        return ev

    def go(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def stop(self, grace: float = 0) -> Optional[int]:
        """Its exit code; after `grace` seconds it is killed (SIGTERM: the net stops first)."""
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            _kill(self.proc.pid)
        self.log.close()
        return self.proc.wait(5)


def _config(ovs: OvsInstance, workdir: str) -> str:
    """The topology's yaml, pointed at the private OVS, a state dir and free local ports."""
    with open(YAML) as f:
        data = yaml.safe_load(f)
    data["ovs"]["db"] = ovs.db
    data["dpu"]["state_dir"] = os.path.join(workdir, "state")
    data["controller"] = {"openflow": {"host": "127.0.0.1", "port": _free_port()},
                          "api": {"host": "127.0.0.1", "port": _free_port(), "socket": "api.sock"},
                          "metrics": {"host": "127.0.0.1", "port": _free_port()}}
    path = os.path.join(workdir, "xenoflow.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return path


def _status(cfg_path: str) -> dict:
    p = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "status", "--json", "-c", cfg_path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                       env=subprocess_env(), timeout=30)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _wait_status(cfg_path: str, pred, what: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            st = _status(cfg_path)
        except AssertionError:
            st = None
        if st is not None and pred(st):
            return st
        if time.monotonic() > deadline:
            raise AssertionError("%s: timed out; last status %s" % (what, json.dumps(st)[:2000]))
        time.sleep(0.3)


def _s1_ready(st: dict) -> bool:
    s1 = st["bridges"].get("s1") or {}
    return bool(s1.get("connected") and s1.get("in_sync") and st["verdict"] == "consistent")


def _packets(st: dict) -> Dict[str, int]:
    return {be: c["ovs_packets"] for be, c in st["services"]["dns"].items()}


def _preconditions() -> None:
    assert os.path.exists("/usr/bin/mn"), "Mininet is missing: apt-get install mininet"
    p = subprocess.run([SYSTEM_PYTHON, "-c", "import mininet.net"], stderr=subprocess.PIPE,
                       universal_newlines=True)
    assert p.returncode == 0, "the system python3 has no mininet: %s" % p.stderr
    present = set(_root_links())
    clash = sorted(present & set(LINKS + ["ovs-netdev"] + list(SWITCHES)))
    assert not clash, "another Mininet or userspace OVS uses the root namespace: %s" % clash


def test_mininet_topology_balances_counts_and_cleans_up():
    _preconditions()
    cfg_obj = config.load(YAML)
    table = buckets.table(cfg_obj.service("dns"))
    workdir = tempfile.mkdtemp(prefix="xf-mn-", dir="/var/tmp")   # not /tmp: mn -c gets its own
    ovs = OvsInstance(os.path.join(workdir, "ovs"))
    ctl = driver = None
    ready: dict = {}
    try:
        ovs.start()
        cfg_path = _config(ovs, workdir)
        port = config.load(cfg_path).openflow.port
        with open(os.path.join(workdir, "controller.log"), "ab") as log:
            env = dict(subprocess_env(), XENOFLOW_POLL_INTERVAL="0.5")
            ctl = subprocess.Popen([sys.executable, "-m", "xenoflow_ovs.cli", "controller", "-c", cfg_path],
                                   env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=workdir)
        t0 = time.monotonic()
        driver = Driver(ovs.env(), port, os.path.join(workdir, "mininet.log"))
        ready = driver.event("ready", 120)
        assert ready["ok"], "the VIP never answered; see %s" % workdir
        assert ready["ports"]["s1"] == ["s1-eth1", "s1-eth2"]
        assert {n for ports in ready["ports"].values() for n in ports} == set(LINKS)
        base = _wait_status(cfg_path, _s1_ready, "s1 connected, in sync, consistent")
        assert base["fallback_packets"] is None

        driver.go()
        q = driver.event("queries", 120)
        want = {be: 0 for be in table}
        sources = sorted(q["results"])
        assert len(sources) == 8 and len({netaddr.IPAddress(s).value & 1 for s in sources}) == 2
        for src in sources:
            be = table[netaddr.IPAddress(src).value & (len(table) - 1)]
            assert q["results"][src] == {be: COUNT}, (src, q["results"][src])
            want[be] += COUNT
        assert all(n > 0 for n in want.values()) and sum(want.values()) == 8 * COUNT
        assert q["answered"] == want                       # bind9 answered exactly these
        st = _wait_status(cfg_path, lambda s: {b: _packets(s)[b] - _packets(base)[b] for b in want} == want,
                          "per-backend packets on s1")
        time.sleep(1.2)                                    # two more polls: nothing more may come
        st = _status(cfg_path)
        assert {b: _packets(st)[b] - _packets(base)[b] for b in want} == want
        assert st["verdict"] == "consistent" and st["packet_ins"] == 0
        elapsed = time.monotonic() - t0

        driver.go()                                        # stop the net
        driver.event("stopped", 60)
        assert driver.stop(grace=30) == 0
        ctl.send_signal(signal.SIGTERM)
        assert ctl.wait(20) == 0
        clean = subprocess.run([SYSTEM_PYTHON, DRIVER, "clean"], env=ovs.env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
        assert clean.returncode == 0 and "Cleanup complete" in clean.stdout, clean.stdout
        left = sorted(set(_root_links()) & set(LINKS + list(SWITCHES)))
        assert not left, "links left after mn -c: %s" % left
        pids = list(ready["hosts"].values()) + list(ready["named"].values())
        assert pids and not [p for p in pids if _alive(p)], "host or bind9 processes left"
        assert not [d for d in ready["workdirs"].values() if os.path.exists(d)]
        assert ovs.bridges() == []
        ovs.stop()
        assert ovs.pid("ovsdb-server") is None and ovs.pid("ovs-vswitchd") is None
        assert "ovs-netdev" not in _root_links()
        print("mininet: %d queries from %d sources in %.1f s: %s; s1 counted %s" % (
            sum(want.values()), len(sources), elapsed, want,
            {b: _packets(st)[b] - _packets(base)[b] for b in want}))
    finally:
        if driver is not None:
            driver.stop(grace=0.1)
        for pid in list(ready.get("hosts", {}).values()) + list(ready.get("named", {}).values()):
            if pid and _alive(pid):
                _kill(pid)
        if ctl is not None and ctl.poll() is None:
            _kill(ctl.pid)
            ctl.wait(5)
        present = set(_root_links())
        for link in LINKS:
            if link in present:
                subprocess.run(["ip", "link", "del", link], stderr=subprocess.DEVNULL)
        ovs.stop()                                         # its bridges, daemons, taps: by name / PID
        for d in ready.get("workdirs", {}).values():
            shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)

"""A fleet on one machine, for tests and benchmarks: a Raft cluster of the store and DPUs
that follow it.

  store    N ovsdb-server members in `root`, Raft on 127.0.0.1 (ports from `base_port`),
           clients on unix sockets (reachable from every namespace); optionally a relay
           per DPU (`relays=True`), in the DPU's namespace: the DPU then reaches the store
           only through it, and stopping the relay (SIGSTOP) cuts that DPU off, as a
           network partition would
  DPU i    namespace <prefix>-d<i>: ports p0 and p1 (veths with both ends there) on a private OVS (userspace
           datapath), the controller (driver none: no eSwitch) with its API on a unix
           socket, its config's services coming from the store

Every process, namespace and file it makes is its own, removed by `stop()`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

import yaml

from ..fleet import cluster
from ..fleet.store import Store
from . import netns
from .ovs_instance import OvsInstance
from .pyenv import subprocess_env

SERVICE = {"name": "dns", "vip": "198.18.0.53", "vip_mac": "02:00:c6:12:00:35", "protocol": "udp",
           "port": 53, "ingress": "p0", "egress": "p1", "policy": {"kind": "maglev", "bits": 10}}


def backends(n: int) -> List[Dict[str, Any]]:
    return [{"name": "be%d" % i, "ip": "198.18.%d.%d" % (1 + i // 250, 2 + i % 250),
             "mac": "02:00:c6:12:%02x:%02x" % (1 + i // 250, 2 + i % 250), "weight": 1} for i in range(n)]


class StoreCluster:
    def __init__(self, root: str, members: int = 3, base_port: int = 16641):
        self.root = root
        self.members = [cluster.Member(os.path.join(root, "m%d.db" % i), os.path.join(root, "m%d" % i),
                                       "m%d" % i) for i in range(members)]
        self.raft = ["tcp:127.0.0.1:%d" % (base_port + i) for i in range(members)]
        self.sockets = [os.path.join(root, "m%d.sock" % i) for i in range(members)]

    @property
    def remotes(self) -> List[str]:
        return ["unix:" + s for s in self.sockets]

    def start(self, election_timer: Optional[int] = None) -> "StoreCluster":
        for i, m in enumerate(self.members):
            if i == 0:
                cluster.create(m.db, self.raft[0])
            else:
                cluster.join(m.db, self.raft[i], [self.raft[0]])
            self.serve(i)
        self.wait_formed()
        if election_timer:
            cluster.set_election_timer(self.leader(), election_timer)
        return self

    def serve(self, i: int) -> None:
        self.members[i].start(["punix:" + self.sockets[i]])

    def wait_formed(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.leader() is not None:
                    return
            except cluster.ClusterError:
                pass
            time.sleep(0.05)
        raise cluster.ClusterError("the cluster elected no leader within %.0f s" % timeout)

    def leader(self) -> Optional[cluster.Member]:
        for m in self.members:
            if m.pid() is None:
                continue
            try:
                if m.status().get("Role") == "leader":
                    return m
            except cluster.ClusterError:
                continue
        return None

    def store(self, timeout: float = 5.0) -> Store:
        return Store(self.remotes, timeout=timeout).connect()

    def stop(self) -> None:
        for m in self.members:
            try:
                m.stop()
            except cluster.ClusterError:
                pid = m.pid()
                if pid:
                    os.kill(pid, signal.SIGKILL)


class Relay:
    """An ovsdb-server relay of the store for one DPU (its only way to the store), inside the
    DPU's namespace: the DPU reaches it over TCP, whose inactivity probes notice a relay that
    stopped answering (unix sockets have none), and it reaches the members over their unix
    sockets."""

    PORT = 6640

    def __init__(self, root: str, name: str, upstream: List[str], ns: str):
        self.member = cluster.Member("relay:xenoflow:" + ",".join(upstream), root, name)
        self.ns = ns
        self.remote = "tcp:127.0.0.1:%d" % self.PORT

    def start(self) -> None:
        m = self.member
        os.makedirs(m.run_dir, exist_ok=True)
        env = dict(os.environ, OVS_RUNDIR=m.run_dir, OVS_LOGDIR=m.run_dir)
        netns.run_in_ns(self.ns, m.argv(["ptcp:%d:127.0.0.1" % self.PORT]), env=env, timeout=30)

    def cut(self) -> None:
        pid = self.member.pid()
        if pid:
            os.kill(pid, signal.SIGSTOP)

    def heal(self) -> None:
        pid = self.member.pid()
        if pid:
            os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        self.heal()
        try:
            self.member.stop()
        except cluster.ClusterError:
            pass


class Dpu:
    def __init__(self, bed: "FleetBed", i: int, remotes: List[str]):
        self.bed, self.i = bed, i
        self.name = "dpu%d" % i
        self.dir = os.path.join(bed.root, self.name)
        self.ns = "%s-d%d" % (bed.prefix, i)
        self.ovs = OvsInstance(os.path.join(self.dir, "ovs"), netns=self.ns)
        self.config = os.path.join(self.dir, "xf.yaml")
        self.api_socket = os.path.join(self.dir, "api.sock")
        self.log = os.path.join(self.dir, "controller.log")
        self.remotes = remotes
        self.proc: Optional[subprocess.Popen] = None

    def local_data(self) -> Dict[str, Any]:
        return {"dpu": {"name": self.name, "state_dir": os.path.join(self.dir, "state"),
                        "eswitch": {"driver": "none"}, "ports": {"p0": {"id": 0}, "p1": {"id": 1}}},
                "ovs": {"db": self.ovs.db, "bridges": {"br-%s" % self.name: {"ports": ["p0", "p1"]}}},
                "controller": {"openflow": {"host": "127.0.0.1", "port": 6653},
                               "api": {"host": "127.0.0.1", "port": 8080, "socket": self.api_socket},
                               "metrics": {"host": "127.0.0.1", "port": 9302}},
                "fleet": {"remotes": self.remotes, "connect_timeout": 5, "heartbeat": self.bed.heartbeat}}

    def setup(self) -> None:
        os.makedirs(self.dir, exist_ok=True)
        netns.create_ns(self.ns)
        self.bed.namespaces.append(self.ns)
        for port in ("p0", "p1"):     # a veth with both ends here: a port OVS can open
            netns.run_in_ns(self.ns, ["ip", "link", "add", port, "type", "veth", "peer", "name", port + "x"])
            for end in (port, port + "x"):
                netns.run_in_ns(self.ns, ["ip", "link", "set", end, "up"])
        self.ovs.start()
        with open(self.config, "w") as f:
            yaml.safe_dump(self.local_data(), f)

    def argv(self) -> List[str]:
        """`xenoflow controller` (os-ken), or ryu-manager where only Ryu 4.34 is installed."""
        try:
            import os_ken.base.app_manager  # noqa: F401
            return [sys.executable, "-m", "xenoflow_ovs.cli", "controller", "-c", self.config]
        except ImportError:
            return [sys.executable, "-c", "import sys; from ryu.cmd.manager import main; "
                    "sys.argv[0] = 'ryu-manager'; main()", "--ofp-listen-host", "127.0.0.1",
                    "--ofp-tcp-listen-port", "6653", "xenoflow_ovs.app"]

    def start(self, wait: bool = True) -> None:
        out = open(self.log, "a")
        env = dict(subprocess_env(), XENOFLOW_CONFIG=self.config, **self.bed.env)
        self.proc = netns.popen_in_ns(self.ns, self.argv(), env=env, stdout=out, stderr=out)
        out.close()
        if wait:
            self.wait_ready()

    def status(self) -> Optional[Dict[str, Any]]:
        p = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "status", "--socket", self.api_socket,
                            "-c", self.config, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, env=subprocess_env(), timeout=30)
        return json.loads(p.stdout) if p.stdout.strip() else None

    def wait_ready(self, timeout: float = 60.0) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError("%s's controller exited (%s): %s" % (self.name, self.proc.returncode,
                                                                         self.tail()))
            st = self.status() if os.path.exists(self.api_socket) else None
            if st and st.get("fleet", {}).get("state") == "ok" and all(
                    b.get("in_sync") for b in (st.get("bridges") or {}).values()) and st.get("bridges"):
                return st
            if time.monotonic() > deadline:
                raise RuntimeError("%s not ready within %.0f s: %s" % (self.name, timeout, self.tail()))
            time.sleep(0.2)

    def tail(self, n: int = 15) -> str:
        try:
            return "".join(open(self.log).readlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def teardown(self) -> None:
        self.stop()
        try:
            self.ovs.stop()
        except Exception:
            pass

    def flows(self) -> str:
        return self.ovs.ofctl("dump-flows", "br-%s" % self.name)

    def rss_kb(self) -> Optional[int]:
        if self.proc is None:
            return None
        try:
            for line in open("/proc/%d/status" % self.proc.pid):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None


class FleetBed:
    """The store's cluster and `n` DPUs; `relays`: each DPU reaches the store through its own relay."""

    def __init__(self, root: str, n: int, prefix: str = "xff", relays: bool = False, members: int = 3,
                 base_port: int = 16641, heartbeat: float = 1.0, env: Optional[Dict[str, str]] = None):
        self.root = os.path.abspath(root)
        self.prefix = prefix
        self.heartbeat = heartbeat
        self.env = dict(env or {})
        self.namespaces: List[str] = []
        self.cluster = StoreCluster(os.path.join(self.root, "store"), members, base_port)
        self.relays: Dict[int, Relay] = {}
        self.dpus: List[Dpu] = []
        for i in range(1, n + 1):
            remotes = self.cluster.remotes
            if relays:
                r = Relay(os.path.join(self.root, "store"), "relay%d" % i, self.cluster.remotes,
                          "%s-d%d" % (prefix, i))
                self.relays[i] = r
                remotes = [r.remote]
            self.dpus.append(Dpu(self, i, remotes))

    def import_file(self, services: List[Dict[str, Any]]) -> str:
        """A config file holding DPU 1's local part and these services (what `fleet import` reads)."""
        data = self.dpus[0].local_data()
        data.pop("fleet")
        data["services"] = services
        path = os.path.join(self.root, "services.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(data, f)
        return path

    def start(self, services: List[Dict[str, Any]], election_timer: Optional[int] = None,
              start_dpus: bool = True) -> "FleetBed":
        os.makedirs(self.root, exist_ok=True)
        self.cluster.start(election_timer)
        p = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "fleet", "import",
                            self.import_file(services), "--db", ",".join(self.cluster.remotes)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                           env=subprocess_env(), timeout=60)
        if p.returncode != 0:
            raise RuntimeError("fleet import failed: %s" % p.stderr)
        for d in self.dpus:
            d.setup()
            if d.i in self.relays:
                self.relays[d.i].start()
        if start_dpus:
            for d in self.dpus:
                d.start(wait=False)
            for d in self.dpus:
                d.wait_ready()
        return self

    def stop(self) -> None:
        for d in self.dpus:
            d.teardown()
        for r in self.relays.values():
            r.stop()
        self.cluster.stop()
        for ns in reversed(self.namespaces):
            try:
                netns.delete_ns(ns)
            except Exception:
                pass
        self.namespaces = []

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "FleetBed":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

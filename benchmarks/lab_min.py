"""The benchmarks' view of a lab, and a minimal lab of our own.

:class:`LabSpec` names what every contender and suite needs: the client,
load-generator, backend, switch and DPU namespaces, the DPU's wire veths, the
VIP and the backends. Two sources:

* :func:`minimal_spec` / :class:`MinLab`: our own small copy of the paper's
  wiring, for the contenders that need no XenoFlow controller (xdp, dnsdist,
  direct, ovs-netdev). Namespaces ``xb-*`` (never the lab's fixed names nor
  the tests' random prefixes), addresses in 198.19.0.0/24, interface names as
  in the paper lab (they live inside the namespaces)::

      xb-cli (eth0 .11-.14) --+                       +-- xb-be1 (eth0 .2, VIP on lo, bind9)
      xb-lg  (eth0 .64-.79) --+-- xb-tor (tor0) ------+-- xb-be2 (eth0 .3, VIP on lo, bind9)
                                 t-p0 |    | t-p1
                               dpu-p0 |    | dpu-p1    xb-dpu: the balancer under test

* :func:`paper_spec`: the paper lab of topologies/paper (brought up
  by ``xenoflow lab up``), read from its topology and config files.

Teardown removes exactly what was made: bind9 by PID, namespaces by exact
name (their veths go with them).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from pkgpath import ROOT  # noqa: E402  (before the package: where it comes from)

from xenoflow_ovs.lab import netns as nsh  # noqa: E402


@dataclass
class Backend:
    name: str
    ns: str
    ip: str
    mac: str
    dev: str = "eth0"


@dataclass
class LabSpec:
    kind: str                       # "minimal" | "paper"
    client_ns: str
    loadgen_ns: str
    tor_ns: str
    dpu_ns: str
    backends: List[Backend]
    client_srcs: List[str]          # probe sources (fips1)
    loadgen_srcs: List[str]         # load sources (fips4)
    client_mac: str
    loadgen_mac: str
    vip: str
    vip_mac: str
    port: int = 53
    prefix: int = 24
    in_dev: str = "dpu-p0"          # DPU wire ports (dpu namespace)
    out_dev: str = "dpu-p1"
    in_peer: str = "t-p0"           # their peers (tor namespace)
    out_peer: str = "t-p1"
    in_mac: str = "02:00:c6:13:00:02"
    bridge: str = "tor0"
    dnsdist_addr: str = ""          # where dnsdist listens (an address of the dpu namespace)
    workdir: str = ""
    extra: Dict = field(default_factory=dict)

    def srcs_of_parity(self, srcs: List[str], parity: int) -> List[str]:
        return [s for s in srcs if int(s.rsplit(".", 1)[1]) % 2 == parity]


NET = "198.19.0"


def minimal_spec(prefix: str = "xb", workdir: Optional[str] = None) -> LabSpec:
    """Namespaces <prefix>-dpu, -tor, -cli, -lg, -be1, -be2 (prefix starts with 'xb')."""
    if not prefix.startswith("xb") or len(prefix) > 8:
        raise ValueError("prefix must start with 'xb' (<= 8 chars)")
    n = lambda s: "%s-%s" % (prefix, s)  # noqa: E731
    return LabSpec(
        kind="minimal",
        client_ns=n("cli"), loadgen_ns=n("lg"), tor_ns=n("tor"), dpu_ns=n("dpu"),
        backends=[Backend("be1", n("be1"), NET + ".2", "02:00:c6:12:00:02"),
                  Backend("be2", n("be2"), NET + ".3", "02:00:c6:12:00:03")],
        client_srcs=[NET + ".%d" % i for i in range(11, 15)],
        loadgen_srcs=[NET + ".%d" % i for i in range(64, 80)],
        client_mac="02:00:c6:12:00:01", loadgen_mac="02:00:c6:12:00:04",
        vip=NET + ".53", vip_mac="02:00:c6:12:00:35",
        dnsdist_addr=NET + ".54",
        workdir=workdir or os.path.join(tempfile.gettempdir(), prefix + "-lab"))


class MinLab:
    """Create / destroy the minimal lab described by `spec` (kind minimal)."""

    def __init__(self, spec: Optional[LabSpec] = None, bind9: bool = True) -> None:
        self.spec = spec or minimal_spec()
        self.with_bind9 = bind9
        self.bind9 = []
        self.made: List[str] = []

    @property
    def namespaces(self) -> List[str]:
        s = self.spec
        return [s.dpu_ns, s.tor_ns, s.client_ns, s.loadgen_ns] + [b.ns for b in s.backends]

    def up(self) -> "MinLab":
        busy = [n for n in self.namespaces if nsh.ns_exists(n)]
        if busy:   # another run, or a crashed one: never take over someone's namespaces
            raise RuntimeError("namespaces %s exist: another benchmark run is using them, or an "
                               "earlier one crashed (then: python benchmarks/lab_min.py down "
                               "--prefix %s)" % (" ".join(busy), busy[0].rsplit("-", 1)[0]))
        try:
            self._up()
        except Exception:
            self.down()
            raise
        return self

    def _up(self) -> None:
        s = self.spec
        for n in self.namespaces:
            nsh.create_ns(n)
            self.made.append(n)
            nsh.set_sysctl(n, "net/ipv6/conf/all/disable_ipv6", 1)
            nsh.set_sysctl(n, "net/ipv6/conf/default/disable_ipv6", 1)
        nsh.set_sysctl(s.dpu_ns, "net/ipv4/conf/all/arp_ignore", 1)
        os.makedirs(s.workdir, exist_ok=True)
        t = s.tor_ns
        # DPU wire ports
        nsh.add_veth(s.in_dev, s.in_peer, ns=s.dpu_ns, peer_ns=t)
        nsh.add_veth(s.out_dev, s.out_peer, ns=s.dpu_ns, peer_ns=t)
        nsh.prepare_link(s.in_dev, ns=s.dpu_ns, mac=s.in_mac)
        nsh.prepare_link(s.out_dev, ns=s.dpu_ns, mac="02:00:c6:13:01:02")
        nsh.prepare_link(s.in_peer, ns=t, mac="02:00:c6:13:00:01")
        nsh.prepare_link(s.out_peer, ns=t, mac="02:00:c6:13:01:01")
        # hosts
        hosts = [("t-fips1", s.client_ns, s.client_mac, s.client_srcs),
                 ("t-fips4", s.loadgen_ns, s.loadgen_mac, s.loadgen_srcs)]
        hosts += [("t-" + b.name, b.ns, b.mac, [b.ip]) for b in s.backends]
        for i, (tname, ns, mac, addrs) in enumerate(hosts):
            nsh.add_veth("eth0", tname, ns=ns, peer_ns=t)
            nsh.prepare_link("eth0", ns=ns, mac=mac)
            for a in addrs:
                nsh.add_address("eth0", "%s/%d" % (a, s.prefix), ns=ns)
            nsh.prepare_link(tname, ns=t, mac="02:00:c6:13:1%d:01" % i)
        # tor: Linux bridge, learning off towards the DPU, static FDB
        br = s.bridge
        nsh.run_in_ns(t, ["ip", "link", "add", br, "type", "bridge"])
        nsh.run_in_ns(t, ["ip", "link", "set", br, "type", "bridge", "stp_state", "0",
                          "forward_delay", "0"])
        ports = [s.in_peer, s.out_peer] + [h[0] for h in hosts]
        for p in ports:
            nsh.run_in_ns(t, ["ip", "link", "set", p, "master", br])
        for p in (s.in_peer, s.out_peer):
            nsh.run_in_ns(t, ["bridge", "link", "set", "dev", p, "learning", "off"])
        nsh.set_link(br, ns=t, up=True)
        fdb = [(h[2], h[0]) for h in hosts] + [(s.vip_mac, s.in_peer), (s.in_mac, s.in_peer)]
        for mac, port in fdb:
            nsh.run_in_ns(t, ["bridge", "fdb", "replace", mac, "dev", port, "master", "static"])
        # backends: DSR (VIP on lo, arp_ignore/announce)
        for b in s.backends:
            nsh.set_arp_dsr(b.ns)
            nsh.add_lo_address(b.ns, s.vip + "/32")
        # clients: nobody answers ARP for the VIP in the kernel balancers: static entries
        for ns in (s.client_ns, s.loadgen_ns):
            nsh.run_in_ns(ns, ["ip", "neigh", "replace", s.vip, "lladdr", s.vip_mac,
                               "dev", "eth0", "nud", "permanent"])
        for b in s.backends:
            nsh.wait_oper_up("eth0", ns=b.ns)
        if self.with_bind9:
            from xenoflow_ovs.lab.bind9 import Bind9
            for b in s.backends:
                wd = os.path.join(s.workdir, "bind-" + b.name)
                bind = Bind9(b.ns, wd, b.name, s.vip, www_ip=NET + ".80")
                self.bind9.append(bind)
                bind.start()

    def down(self) -> None:
        """Stop our bind9 (by PID) and delete our namespaces (exact names)."""
        for b in self.bind9:
            try:
                b.stop()
            except Exception:
                pass
        self.bind9 = []
        for n in reversed(self.namespaces):
            nsh.delete_ns(n)
        self.made = []

    def __enter__(self) -> "MinLab":
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()


def paper_spec(workdir: Optional[str] = None) -> LabSpec:
    """The paper lab (topologies/paper), as the benchmarks see it."""
    import yaml
    topo = yaml.safe_load(open(os.path.join(ROOT, "topologies", "paper", "topology.yaml")))
    cfg = yaml.safe_load(open(os.path.join(ROOT, "topologies", "paper", "xenoflow.yaml")))
    svc = cfg["services"][0]
    bes = [Backend(b["name"], b["name"], b["ip"], b["mac"]) for b in svc["backends"]]
    macs = {link["a"]["netns"]: link["a"]["mac"] for link in topo["links"]}
    return LabSpec(
        kind="paper", client_ns="fips1", loadgen_ns="fips4", tor_ns="tor", dpu_ns="dpu",
        backends=bes, client_srcs=list(topo["clients"]["fips1"]),
        loadgen_srcs=list(topo["clients"]["fips4"]),
        client_mac=macs["fips1"], loadgen_mac=macs["fips4"],
        vip=svc["vip"], vip_mac=svc["vip_mac"], port=int(svc["port"]),
        in_mac=topo["dpu"]["ports"]["p0"]["wire"]["mac"],
        dnsdist_addr="198.18.0.54",
        workdir=workdir or os.path.join(tempfile.gettempdir(), "xb-paper"))


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="minimal benchmark lab (xb-* namespaces)")
    ap.add_argument("cmd", choices=["up", "down"])
    ap.add_argument("--prefix", default="xb")
    a = ap.parse_args()
    lab = MinLab(minimal_spec(a.prefix))
    pidfile = os.path.join(lab.spec.workdir, "bind9.pids")
    if a.cmd == "up":
        lab.up()
        with open(pidfile, "w") as f:
            f.write("".join("%d\n" % b.pid for b in lab.bind9 if b.pid))
        print("up:", " ".join(lab.namespaces), "(bind9 pids in %s)" % pidfile)
    else:
        import signal
        try:   # bind9 started by an earlier `up`: stop exactly those PIDs
            for line in open(pidfile):
                try:
                    os.kill(int(line), signal.SIGTERM)
                except (ProcessLookupError, ValueError):
                    pass
            os.unlink(pidfile)
        except FileNotFoundError:
            pass
        lab.down()

"""The lab builder: a topology file (topologies/<name>/topology.yaml) made real.

One builder for every topology: it reads the file (namespaces, veth pairs with
their MACs, addresses and per-interface sysctls, loopback addresses, sysctls,
Linux bridges with static FDB entries, the DPU's eSwitch port wiring, bind9
backends), creates it with pyroute2 (+ ``ethtool``/``sysctl``/``bridge`` inside
the namespaces), and destroys it again.

Addresses are IPv4 from 198.18.0.0/15 or IPv6 from 2001:db8::/32. IPv6 ones are
added with ``nodad`` on interfaces whose IPv6 the file turns on (the loader
refuses an IPv6 address where the sysctls leave IPv6 off).

Everything it makes is recorded in a state file under the run dir *before* it
is made (:class:`LabState`, owner-only permissions), so :meth:`Lab.down`
removes exactly that, also after a crash: processes by recorded PID (and start
time, so a reused PID is never signalled), OVS netdev taps by exact name inside
the dpu namespace (``ip tuntap del``: the netdev datapath's taps persist),
namespaces by exact name (which takes their veths with them). Nothing is ever
listed and deleted by pattern, and nothing of the lab is created in the root namespace.

Wiring of an eSwitch port X:
  * with an eSwitch (softdoca): ``dpu-X`` <-> wire peer (tor ``t-X`` or fips5),
    ``rep-X`` <-> ``X`` (the OVS port), all dpu ends in namespace ``dpu``;
  * with driver ``none`` (OVS alone balances) there is nobody between the wire
    and OVS, so the OVS port ``X`` itself is the wire end: ``X`` <-> wire peer.

The lab's namespace names are fixed by the topology, so only one lab can be up
at a time: :meth:`Lab.up` refuses (:class:`LabBusy`) when one of them exists
and this run dir's state does not own it.

Python 3.9 compatible; subprocesses take list args, never a shell.
"""
from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..intent import config as config_mod
from ..intent import yamlsrc
from ..intent.config import ConfigError
from ..intent.yamlsrc import Path, format_path
from . import netns as nsh

__all__ = ["TopologyError", "LabBusy", "End", "Veth", "EswitchPort", "LinuxBridge", "Topology",
           "ipv6_off", "sysctl_order",
           "DpuSpec", "RouterSpec", "StoreSpec", "StoreMember",
           "run_dirs_in_namespaces", "processes_in_namespaces",
           "load_topology", "topology_candidates", "PACKAGED_TOPOLOGIES",
           "LabState", "Lab", "proc_alive", "proc_start_time", "stop_pid"]


class TopologyError(ConfigError):
    """The topology file is wrong: every problem with its key path and line, as in the
    config's errors (``<file>:<line>: <key path>: <message>``)."""


class LabBusy(RuntimeError):
    """Another lab (or something else) holds one of this lab's fixed namespace names."""


# ---------------------------------------------------------------- the topology, as data


@dataclass(frozen=True)
class End:
    netns: str
    ifname: str
    mac: Optional[str] = None
    addresses: Tuple[str, ...] = ()            # IPv4 (198.18.0.0/15)
    addresses6: Tuple[str, ...] = ()           # IPv6 (2001:db8::/32), added with nodad
    sysctls: Tuple[Tuple[str, str], ...] = ()  # per interface: ("ipv6.accept_ra", "0"), in file order


@dataclass(frozen=True)
class Veth:
    a: End
    b: End
    role: str = "link"            # link | wire | rep | direct (wire straight to the OVS port)
    port: Optional[str] = None    # the eSwitch port, for wire/rep/direct


@dataclass(frozen=True)
class EswitchPort:
    name: str
    wire: End        # dpu-X, opened by softdoca
    wire_peer: End   # t-X in tor, or the host's interface in fips5
    rep: End         # rep-X, opened by softdoca
    rep_peer: End    # X, the OVS port


@dataclass(frozen=True)
class LinuxBridge:
    netns: str
    name: str
    mac: Optional[str]
    ports: Tuple[str, ...]
    learning_off: Tuple[str, ...]
    fdb: Tuple[Tuple[str, str], ...]   # (mac, port)
    addresses: Tuple[str, ...] = ()    # on the bridge itself (a management segment's hosts)


@dataclass(frozen=True)
class DnsBackend:
    netns: str
    name: str
    vip: str


@dataclass(frozen=True)
class DpuSpec:
    """One DPU of a fleet topology (`dpus:`): its namespace, its XenoFlow config, its
    eSwitch port wiring and the OVS taps made in its namespace."""
    name: str
    netns: str
    config_path: str
    eswitch_ports: Tuple[EswitchPort, ...]
    taps: Tuple[str, ...]


@dataclass(frozen=True)
class RouterSpec:
    """The router in front of a fleet's DPUs: FRR (BGP + BFD) in `netns`."""
    netns: str
    asn: int
    router_id: str
    pathspace: str


@dataclass(frozen=True)
class StoreMember:
    name: str
    address: str


@dataclass(frozen=True)
class StoreSpec:
    """The fleet's intent store: ovsdb-server Raft members in `netns`, clients on
    tcp:<address>:<client_port>, Raft on tcp:<address>:<raft_port>."""
    netns: str
    members: Tuple[StoreMember, ...]
    client_port: int = 6641
    raft_port: int = 6643


@dataclass(frozen=True)
class Topology:
    name: str
    path: str
    config_path: str
    namespaces: Tuple[str, ...]
    sysctls: Dict[str, Dict[str, str]]
    dpu_netns: str
    eswitch_ports: Tuple[EswitchPort, ...]
    taps: Tuple[str, ...]
    links: Tuple[Veth, ...]
    loopback: Dict[str, Tuple[str, ...]]
    bridges: Tuple[LinuxBridge, ...]
    dns: Tuple[DnsBackend, ...]
    clients: Dict[str, Tuple[str, ...]]
    host: Dict[str, Any] = field(default_factory=dict)
    clients6: Dict[str, Tuple[str, ...]] = field(default_factory=dict)   # IPv6 traffic sources
    lines: Dict[Path, int] = field(default_factory=dict, repr=False, compare=False)  # key path -> line
    # a fleet (`dpus:` instead of `dpu:`): its DPUs, router, store and services file
    dpus: Tuple[DpuSpec, ...] = ()
    router: Optional[RouterSpec] = None
    store: Optional[StoreSpec] = None
    services_path: Optional[str] = None
    routes: Dict[str, Tuple[Tuple[str, str], ...]] = field(default_factory=dict)   # ns -> (dst, via)
    dpu_key: Path = ("dpu",)        # where the DPU's ports are in the file (check_against's errors)

    @property
    def kind(self) -> str:
        """"fleet" (dpus:) or "dpu" (one DPU, as the paper lab)."""
        return "fleet" if self.dpus else "dpu"

    def all_taps(self) -> List[Tuple[str, str]]:
        """(namespace, tap) of every OVS netdev tap the lab's OVS instances make."""
        out = [(self.dpu_netns, t) for t in self.taps]
        for d in self.dpus:
            out += [(d.netns, t) for t in d.taps]
        return out

    def dpu_view(self, name: str) -> "Topology":
        """One DPU of a fleet as a one-DPU topology that makes no namespace, link or bridge
        of its own: what LabCtl runs a DPU's OVS, eswitchd and controller with."""
        import dataclasses
        d = next(x for x in self.dpus if x.name == name)
        return dataclasses.replace(
            self, name="%s-%s" % (self.name, d.name), config_path=d.config_path, namespaces=(),
            sysctls={}, dpu_netns=d.netns, eswitch_ports=d.eswitch_ports, taps=d.taps, links=(),
            loopback={}, bridges=(), dns=(), clients={}, clients6={}, host={}, routes={}, dpus=(),
            router=None, store=None, services_path=None, dpu_key=("dpus", d.name))

    def veths(self, eswitch: bool = True) -> List[Veth]:
        """Every veth pair of the lab, for the eSwitch wiring or the direct one (driver none)."""
        out = list(self.links)
        for p in self.eswitch_ports:
            if eswitch:
                out.append(Veth(p.wire, p.wire_peer, "wire", p.name))
                out.append(Veth(p.rep, p.rep_peer, "rep", p.name))
            else:
                out.append(Veth(p.rep_peer, p.wire_peer, "direct", p.name))
        return out

    def sysctls_of(self, ns: str) -> Dict[str, str]:
        out = dict(self.sysctls.get("*", {}))
        out.update(self.sysctls.get(ns, {}))
        return out

    def ends(self) -> List[End]:
        """Every veth end of either wiring, each once."""
        seen: Dict[Tuple[str, str], End] = {}
        for wiring in (True, False):
            for v in self.veths(wiring):
                for e in (v.a, v.b):
                    seen.setdefault((e.netns, e.ifname), e)
        return list(seen.values())

    def error(self, path: Path, msg: str) -> TopologyError:
        """A TopologyError about `path` in this file, with its line."""
        return TopologyError([(format_path(path), msg, yamlsrc.Located(None, self.lines).line(path))],
                             source=self.path)

    def check_against(self, cfg: Any) -> None:
        """Cross-check with the XenoFlow config (a config.Config): same eSwitch ports,
        wire/representor names as dpu.ports says, OVS ports named as the ports."""
        want = {p.name: p for p in cfg.ports}
        have = {p.name: p for p in self.eswitch_ports}
        if set(want) != set(have):
            raise self.error(self.dpu_key + ("ports",), "%s do not match the config's dpu.ports %s"
                             % (sorted(have), sorted(want)))
        for name, p in have.items():
            c = want[name]
            w = self.dpu_key + ("ports", name)
            if c.iface and c.iface != p.wire.ifname:
                raise self.error(w + ("wire", "ifname"), "%s, config says iface %s"
                                 % (p.wire.ifname, c.iface))
            if c.rep_iface and c.rep_iface != p.rep.ifname:
                raise self.error(w + ("rep", "ifname"), "%s, config says rep_iface %s"
                                 % (p.rep.ifname, c.rep_iface))
            if p.rep_peer.ifname != name:
                raise self.error(w + ("rep", "peer", "ifname"), "must be %s (the OVS port)" % name)


# ---------------------------------------------------------------- reading the file

TOP_KEYS = ("name", "config", "namespaces", "sysctls", "dpu", "links", "loopback", "bridges", "dns",
            "clients", "clients6", "host", "routes", "dpus", "router", "store", "services")
FLEET_KEYS = ("dpus", "router", "store", "services")     # a fleet's, instead of dpu: and config:
END_KEYS = ("netns", "ifname", "mac", "addresses", "sysctls")       # a veth end
DPU_END_KEYS = ("ifname", "mac", "addresses", "sysctls", "peer")   # wire/rep: in dpu.netns, with their peer
BRIDGE_KEYS = ("netns", "name", "mac", "ports", "learning_off", "fdb", "addresses")
LAB_NET = ipaddress.ip_network("198.18.0.0/15")
LAB_NET6 = ipaddress.ip_network("2001:db8::/32")
IF_SYSCTL_FAMILIES = ("ipv4", "ipv6")    # per-interface sysctls: net/<family>/conf/<ifname>/<name>


class _Reader(config_mod.Reader):
    """The config's reader (key paths, lines, every problem at once, unknown keys are
    errors) plus a topology's own values: namespaces, interface ends, lab addresses."""

    def __init__(self, located: yamlsrc.Located) -> None:
        super().__init__(located)
        self.namespaces: Tuple[str, ...] = ()
        self.ifnames: Dict[Tuple[str, str], Path] = {}   # (netns, ifname) -> where defined

    def dict(self, v: Any, path: Path) -> Dict[str, Any]:
        """A mapping with keys of the file's choosing (names of ports, namespaces)."""
        if v is None:
            return {}
        if not isinstance(v, dict):
            self.error(path, "must be a mapping, got %s" % config_mod.kind_of(v))
            return {}
        return v

    def netns(self, v: Any, path: Path) -> Optional[str]:
        ns = self.string(v, path)
        if ns is not None and ns not in self.namespaces:
            self.error(path, "namespace %r is not in namespaces" % ns)
            return None
        return ns

    def ifname(self, v: Any, path: Path) -> Optional[str]:
        name = self.string(v, path)
        try:
            return None if name is None else nsh.check_ifname(name)
        except ValueError as e:
            self.error(path, str(e))
            return None

    def lab_mac(self, v: Any, path: Path) -> Optional[str]:
        mac = self.mac(v, path)
        if mac is not None and not int(mac.split(":")[0], 16) & 2:
            self.error(path, "%s is not a locally administered MAC (02:...)" % mac)
            return None
        return mac

    def lab_address(self, v: Any, path: Path, prefix: bool = False,
                    versions: Tuple[int, ...] = (4,)) -> Optional[str]:
        """An address of the lab, with a prefix length if `prefix`: IPv4 from 198.18.0.0/15,
        IPv6 (when 6 is in `versions`) from 2001:db8::/32."""
        if not isinstance(v, str):
            self.error(path, "must be an address like %s, got %s"
                       % ("198.18.0.2/24" if prefix else "198.18.0.2", config_mod.kind_of(v)))
            return None
        try:
            ip = ipaddress.ip_interface(v).ip if prefix else ipaddress.ip_address(v)
        except ValueError as e:
            self.error(path, str(e))
            return None
        if ip.version == 6 and 6 in versions:
            if ip not in LAB_NET6:
                self.error(path, "%s is outside 2001:db8::/32 (the lab's only IPv6 addresses)" % v)
                return None
        elif ip.version != 4 or ip not in LAB_NET or 4 not in versions:
            self.error(path, "%s is outside 198.18.0.0/15 (the lab's only addresses)" % v
                       if 4 in versions else "%s is not an IPv6 address of 2001:db8::/32" % v)
            return None
        return v

    def lab_cidr(self, v: Any, path: Path) -> Optional[str]:
        return self.lab_address(v, path, prefix=True)

    def lab_cidr46(self, v: Any, path: Path) -> Optional[str]:
        """An interface address of either family (IPv6 needs its prefix length too)."""
        return self.lab_address(v, path, prefix=True, versions=(4, 6))

    def lab_address6(self, v: Any, path: Path) -> Optional[str]:
        return self.lab_address(v, path, versions=(6,))

    def if_sysctls(self, v: Any, path: Path) -> Tuple[Tuple[str, str], ...]:
        """Per-interface sysctls {ipv6.<name>: value}: net/ipv6/conf/<ifname>/<name>, set once
        the interface exists, before its addresses (disable_ipv6: 0 must come first)."""
        out = []
        for key, value in self.dict(v, path).items():
            family, _, name = str(key).partition(".")
            if family not in IF_SYSCTL_FAMILIES or not name or not all(c.isalnum() or c == "_" for c in name):
                self.error(path + (key,), "%r is not a per-interface sysctl (ipv4.<name> or ipv6.<name>)"
                           % key)
            elif value is None or isinstance(value, (dict, list)):
                self.error(path + (key,), "must be a value, got %s" % config_mod.kind_of(value))
            else:
                out.append((str(key), str(int(value) if isinstance(value, bool) else value)))
        return tuple(out)

    def route(self, v: Any, path: Path) -> Optional[Tuple[str, str]]:
        """{dst: default | a lab prefix, via: a lab address}."""
        m = self.mapping(v, path, ("dst", "via"), required=("dst", "via"))
        dst = m.get("dst")
        if dst is not None and dst != "default":
            dst = self.get(m, "dst", path, self.lab_cidr)
        via = self.get(m, "via", path, self.lab_address)
        return None if dst is None or via is None else (dst, via)

    def each(self, v: Any, path: Path, conv: Callable[[Any, Path], Any]) -> Tuple[Any, ...]:
        """A list converted item by item (the bad ones reported and left out)."""
        items = (conv(x, path + (i,)) for i, x in enumerate(self.seq(v, path)))
        return tuple(x for x in items if x is not None)

    def end(self, v: Any, path: Path, allowed: Tuple[str, ...] = END_KEYS,
            netns: Optional[str] = None) -> Optional[End]:
        """One end of a veth pair; `netns` is its namespace's default (or, when the end
        may not name one, its namespace). Each interface is defined once per namespace."""
        required = ("ifname",) + (("netns",) if netns is None else ())
        m = self.mapping(v, path, allowed, required)
        if not m:
            return None
        ns = self.get(m, "netns", path, self.netns, netns)
        ifname = self.get(m, "ifname", path, self.ifname)
        mac = self.get(m, "mac", path, self.lab_mac)
        addrs = self.each(m.get("addresses"), path + ("addresses",), self.lab_cidr46)
        kv = self.if_sysctls(m.get("sysctls"), path + ("sysctls",))
        if ns is None or ifname is None:
            return None
        first = self.ifnames.setdefault((ns, ifname), path)
        if first != path:
            self.error(path + ("ifname",), "interface %s/%s is already defined at %s"
                       % (ns, ifname, format_path(first)))
        return End(ns, ifname, mac, tuple(a for a in addrs if ":" not in a),
                   tuple(a for a in addrs if ":" in a), kv)


# A wheel carries the checkout's topologies/ here (setup.py copies them in at build
# time), so `xenoflow lab` works where no checkout is.
PACKAGED_TOPOLOGIES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "topologies")


def topology_candidates(name: str, roots: Sequence[str]) -> List[str]:
    """Where topology `name` may be, in order: <root>/topologies/<name>/topology.yaml for
    each root (a checkout, the current directory), then the copy shipped with the package."""
    bases = [os.path.join(r, "topologies") for r in roots] + [PACKAGED_TOPOLOGIES]
    return [os.path.join(b, name, "topology.yaml") for b in bases]


def load_topology(path: str) -> Topology:
    """Read and validate a topology file; TopologyError lists every problem with its
    key path and line."""
    path = os.path.abspath(path)
    return config_mod.load_yaml(path, lambda r, data: _topology(r, data, path), reader=_Reader,
                                error=TopologyError)


def _topology(r: _Reader, data: Any, path: str) -> Optional[Topology]:
    if not isinstance(data, dict):
        r.error((), "must be a mapping of %s, got %s" % (", ".join(TOP_KEYS), config_mod.kind_of(data)))
        return None
    fleet = "dpus" in data
    top = r.mapping(data, (), TOP_KEYS, required=("namespaces",) + (("dpus", "router", "store", "services")
                                                                   if fleet else ("dpu",)))
    r.namespaces = _namespaces(r, top.get("namespaces"), ("namespaces",))
    base = os.path.dirname(path)
    if fleet:
        for key in ("dpu", "config"):
            if key in top:
                r.error((key,), "a fleet topology (dpus:) names each DPU's config under dpus.<name>; "
                        "remove %s:" % key)
        dpu: Dict[str, Any] = {}
    else:
        for key in FLEET_KEYS:
            if key in top:
                r.error((key,), "only a fleet topology (dpus: instead of dpu:) has %s:" % key)
        dpu = r.mapping(top.get("dpu"), ("dpu",), ("netns", "ports", "taps"), required=("netns", "ports"))
    dpu_ns = r.get(dpu, "netns", ("dpu",), r.netns) if not fleet else None
    dpus = _dpus(r, top.get("dpus"), ("dpus",), base) if fleet else ()
    topo = Topology(
        name=r.get(top, "name", (), r.string, os.path.basename(base)), path=path,
        config_path="" if fleet else os.path.join(base, r.get(top, "config", (), r.string, "xenoflow.yaml")),
        namespaces=r.namespaces, sysctls=_sysctls(r, top.get("sysctls"), ("sysctls",)),
        dpu_netns=dpu_ns or "",
        eswitch_ports=(tuple(p for d in dpus for p in d.eswitch_ports) if fleet
                       else _eswitch_ports(r, dpu.get("ports"), ("dpu", "ports"), dpu_ns)),
        taps=r.each(dpu.get("taps"), ("dpu", "taps"), r.ifname),
        links=_links(r, top.get("links"), ("links",)),
        loopback=_per_netns(r, top.get("loopback"), ("loopback",), r.lab_cidr46),
        bridges=_bridges(r, top.get("bridges"), ("bridges",)), dns=_dns(r, top.get("dns"), ("dns",)),
        clients=_per_netns(r, top.get("clients"), ("clients",), r.lab_address),
        clients6=_per_netns(r, top.get("clients6"), ("clients6",), r.lab_address6),
        host=_host(r, top.get("host"), ("host",)), lines=r.located.lines,
        routes=_per_netns(r, top.get("routes"), ("routes",), r.route), dpus=dpus,
        router=_router(r, top.get("router"), ("router",)) if fleet else None,
        store=_store(r, top.get("store"), ("store",)) if fleet else None,
        services_path=(os.path.join(base, r.get(top, "services", (), r.string, "services.yaml"))
                       if fleet else None))
    _check_ipv6_on(r, topo)
    return topo


def _sysctl_value(kv: Dict[str, str], key: str) -> Optional[str]:
    """`key` (dotted) in a namespace's sysctls, written with dots or slashes."""
    for k, v in kv.items():
        if k.replace("/", ".") == key:
            return v
    return None


def ipv6_off(ns_sysctls: Dict[str, str], ifname: str, if_sysctls: Sequence[Tuple[str, str]] = ()) -> bool:
    """Whether IPv6 ends up off on `ifname` once the lab has set its sysctls: its own
    ipv6.disable_ipv6, else the namespace's conf.<ifname> (lo exists when they are applied),
    else what it inherits: lo from conf.all (a write to all reaches existing interfaces), a
    veth made later from conf.default (which a write to all sets as well)."""
    own = dict(if_sysctls).get("ipv6.disable_ipv6")
    if own is None:
        own = _sysctl_value(ns_sysctls, "net.ipv6.conf.%s.disable_ipv6" % ifname)
    for scope in ("all",) if ifname == "lo" else ("default", "all"):
        if own is None:
            own = _sysctl_value(ns_sysctls, "net.ipv6.conf.%s.disable_ipv6" % scope)
    return own not in (None, "0")


def _check_ipv6_on(r: _Reader, topo: Topology) -> None:
    """An IPv6 address where IPv6 is off would fail half-way through `lab up`: say where now."""
    for e in topo.ends():
        if e.addresses6 and ipv6_off(topo.sysctls_of(e.netns), e.ifname, e.sysctls):
            r.error(r.ifnames[(e.netns, e.ifname)] + ("addresses",),
                    "IPv6 is off on %s/%s (sysctls of %s): add sysctls: {ipv6.disable_ipv6: 0} to it"
                    % (e.netns, e.ifname, e.netns))
    for ns, addrs in topo.loopback.items():
        if any(":" in a for a in addrs) and ipv6_off(topo.sysctls_of(ns), "lo"):
            r.error(("loopback", ns), "IPv6 is off on lo in %s: set net.ipv6.conf.lo.disable_ipv6: 0 "
                    "in sysctls.%s" % (ns, ns))


def sysctl_order(kv: Dict[str, str]) -> List[Tuple[str, str]]:
    """A namespace's sysctls in the order they must be written: conf.all and conf.default
    first (a write to all reaches every interface), then those of one interface."""
    def generic(key: str) -> bool:
        parts = key.replace("/", ".").split(".")
        return not (len(parts) > 3 and parts[2] == "conf" and parts[3] not in ("all", "default"))
    return sorted(kv.items(), key=lambda item: (not generic(item[0]), item[0]))


def _dpus(r: _Reader, v: Any, path: Path, base: str) -> Tuple[DpuSpec, ...]:
    """`dpus:` {name: {netns, config, ports, taps}}: each DPU wired as `dpu:` is."""
    out = []
    seen_ns: Dict[str, str] = {}
    items = r.dict(v, path)
    if isinstance(v, dict) and not v:
        r.error(path, "a fleet needs at least one DPU")
    for name, dv in items.items():
        w = path + (name,)
        m = r.mapping(dv, w, ("netns", "config", "ports", "taps"), required=("netns", "config", "ports"))
        if not m:
            continue
        ns = r.get(m, "netns", w, r.netns)
        if ns is not None and ns in seen_ns:
            r.error(w + ("netns",), "namespace %s is already DPU %s's" % (ns, seen_ns[ns]))
        elif ns is not None:
            seen_ns[ns] = str(name)
        cfg = r.get(m, "config", w, r.string)
        ports = _eswitch_ports(r, m.get("ports"), w + ("ports",), ns)
        taps = r.each(m.get("taps"), w + ("taps",), r.ifname)
        if ns is not None and cfg is not None:
            out.append(DpuSpec(str(name), ns, os.path.join(base, cfg), ports, taps))
    return tuple(out)


def _router(r: _Reader, v: Any, path: Path) -> Optional[RouterSpec]:
    m = r.mapping(v, path, ("netns", "asn", "router_id", "pathspace"),
                  required=("netns", "asn", "router_id", "pathspace"))
    if not m:
        return None
    ns = r.get(m, "netns", path, r.netns)
    asn = r.get(m, "asn", path, r.integer(1, (1 << 32) - 1))
    rid = r.get(m, "router_id", path, r.lab_address)
    ps = r.get(m, "pathspace", path, r.string)
    if ps is not None and not all(c.isalnum() or c in "_.-" for c in ps):
        r.error(path + ("pathspace",), "%r is not an FRR pathspace name (letters, digits, _.-)" % ps)
        ps = None
    if None in (ns, asn, rid, ps):
        return None
    return RouterSpec(ns, asn, rid, ps)


def _store(r: _Reader, v: Any, path: Path) -> Optional[StoreSpec]:
    m = r.mapping(v, path, ("netns", "members", "client_port", "raft_port"), required=("netns", "members"))
    if not m:
        return None
    ns = r.get(m, "netns", path, r.netns)
    port = r.integer(1, 65535)
    client, raft = r.get(m, "client_port", path, port, 6641), r.get(m, "raft_port", path, port, 6643)
    if client is not None and client == raft:
        r.error(path + ("raft_port",), "%d is the client port too" % raft)
    members: List[StoreMember] = []
    for i, mv in enumerate(r.seq(m.get("members"), path + ("members",))):
        w = path + ("members", i)
        mm = r.mapping(mv, w, ("name", "address"), required=("name", "address"))
        name, addr = r.get(mm, "name", w, r.name), r.get(mm, "address", w, r.lab_address)
        if name is not None and any(x.name == name for x in members):
            r.error(w + ("name",), "member %s is listed twice" % name)
        elif name is not None and addr is not None:
            members.append(StoreMember(name, addr))
    if isinstance(m.get("members"), list) and not m["members"]:
        r.error(path + ("members",), "at least one member of the store's Raft cluster is required")
    if ns is None or client is None or raft is None:
        return None
    return StoreSpec(ns, tuple(members), client, raft)


def _namespaces(r: _Reader, v: Any, path: Path) -> Tuple[str, ...]:
    out: List[str] = []
    for i, n in enumerate(r.seq(v, path)):
        name = r.string(n, path + (i,))
        if name is None:
            continue
        if "/" in name or len(name) > 32:
            r.error(path + (i,), "bad namespace name %r (1..32 characters, no '/')" % name)
        elif name in out:
            r.error(path + (i,), "namespace %r is listed twice" % name)
        else:
            out.append(name)
    return tuple(out)


def _sysctls(r: _Reader, v: Any, path: Path) -> Dict[str, Dict[str, str]]:
    """{namespace or "*": {key: value}}."""
    out: Dict[str, Dict[str, str]] = {}
    for ns, kv in r.dict(v, path).items():
        if ns != "*":
            r.netns(ns, path + (ns,))
        out[ns] = {}
        for key, value in r.dict(kv, path + (ns,)).items():
            if value is None or isinstance(value, (dict, list)):
                r.error(path + (ns, key), "must be a value, got %s" % config_mod.kind_of(value))
            else:
                out[ns][key] = str(value)
    return out


def _per_netns(r: _Reader, v: Any, path: Path,
               conv: Callable[[Any, Path], Any]) -> Dict[str, Tuple[str, ...]]:
    """{namespace: (value, ...)} (loopback addresses, client source addresses)."""
    out = {}
    for ns, items in r.dict(v, path).items():
        r.netns(ns, path + (ns,))
        out[ns] = r.each(items, path + (ns,), conv)
    return out


def _eswitch_ports(r: _Reader, v: Any, path: Path, dpu_ns: Optional[str]) -> Tuple[EswitchPort, ...]:
    out = []
    for name, pd in r.dict(v, path).items():
        w = path + (name,)
        m = r.mapping(pd, w, ("wire", "rep"), required=("wire", "rep"))
        ends = []
        for side in ("wire", "rep"):
            d = m.get(side)
            if d is not None and not isinstance(d, dict):
                r.error(w + (side,), "must be a mapping, got %s" % config_mod.kind_of(d))
                d = None
            if isinstance(d, dict) and d.get("peer") is None:
                r.error(w + (side, "peer"), "missing required key")
            ends.append(r.end(d, w + (side,), DPU_END_KEYS, dpu_ns) if dpu_ns else None)
            # the wire's peer is on the wire side (tor, the host); the rep's is the OVS port
            peer = (d or {}).get("peer")
            ends.append(r.end(peer, w + (side, "peer"), END_KEYS, None if side == "wire" else dpu_ns))
        wire, wire_peer, rep, rep_peer = ends
        if rep_peer is not None and rep_peer.netns != dpu_ns:
            r.error(w + ("rep", "peer", "netns"), "the OVS port lives in %s" % dpu_ns)
        if None not in ends:
            out.append(EswitchPort(name, wire, wire_peer, rep, rep_peer))
    return tuple(out)


def _links(r: _Reader, v: Any, path: Path) -> Tuple[Veth, ...]:
    out = []
    for i, ld in enumerate(r.seq(v, path)):
        m = r.mapping(ld, path + (i,), ("a", "b"), required=("a", "b"))
        a, b = r.end(m.get("a"), path + (i, "a")), r.end(m.get("b"), path + (i, "b"))
        if a is not None and b is not None:
            out.append(Veth(a, b))
    return tuple(out)


def _bridges(r: _Reader, v: Any, path: Path) -> Tuple[LinuxBridge, ...]:
    out = []
    for i, bd in enumerate(r.seq(v, path)):
        w = path + (i,)
        m = r.mapping(bd, w, BRIDGE_KEYS, required=("netns", "name"))
        ports = r.each(m.get("ports"), w + ("ports",), r.ifname)

        def port(p: Any, where: Path) -> Optional[str]:
            name = r.ifname(p, where)
            if name is not None and name not in ports:
                r.error(where, "%s is not a port of the bridge" % name)
                return None
            return name

        def fdb(e: Any, where: Path) -> Optional[Tuple[str, str]]:
            fm = r.mapping(e, where, ("mac", "port"), required=("mac", "port"))
            mac, p = r.get(fm, "mac", where, r.mac), r.get(fm, "port", where, port)
            return None if mac is None or p is None else (mac, p)

        br = LinuxBridge(r.get(m, "netns", w, r.netns), r.get(m, "name", w, r.ifname),
                         r.get(m, "mac", w, r.lab_mac), ports,
                         r.each(m.get("learning_off"), w + ("learning_off",), port),
                         r.each(m.get("fdb"), w + ("fdb",), fdb),
                         r.each(m.get("addresses"), w + ("addresses",), r.lab_cidr))
        if br.netns is not None and br.name is not None:
            out.append(br)
    return tuple(out)


def _dns(r: _Reader, v: Any, path: Path) -> Tuple[DnsBackend, ...]:
    out = []
    for i, b in enumerate(r.seq(v, path)):
        w = path + (i,)
        m = r.mapping(b, w, ("netns", "name", "vip"), required=("netns", "name", "vip"))
        backend = DnsBackend(r.get(m, "netns", w, r.netns), r.get(m, "name", w, r.string),
                             r.get(m, "vip", w, r.lab_address))
        if None not in (backend.netns, backend.name, backend.vip):
            out.append(backend)
    return tuple(out)


def _host(r: _Reader, v: Any, path: Path) -> Dict[str, Any]:
    """The DPU's host traffic the demo sends: from `src` in `netns` to every target."""
    m = r.mapping(v, path, ("netns", "src", "targets"), required=("netns", "src"))
    if not m:
        return {}
    return {"netns": r.get(m, "netns", path, r.netns), "src": r.get(m, "src", path, r.lab_address),
            "targets": list(r.each(m.get("targets"), path + ("targets",), r.lab_address))}


# ---------------------------------------------------------------- processes by PID


def ns_inode(ns: str) -> Optional[int]:
    """The inode of a named network namespace (its identity while it lives)."""
    try:
        return os.stat(os.path.join("/var/run/netns", ns)).st_ino
    except OSError:
        return None


def processes_in_namespaces(namespaces: Sequence[str]) -> List[Tuple[int, List[str]]]:
    """(pid, argv) of every process whose network namespace is one of `namespaces`
    (read-only: /proc/PID/ns/net compared with the namespaces' inodes)."""
    inodes = {ns_inode(ns) for ns in namespaces} - {None}
    out = []
    if not inodes:
        return out
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.stat("/proc/%s/ns/net" % pid).st_ino not in inodes:
                continue
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        out.append((int(pid), argv))
    return out


def run_dirs_in_namespaces(namespaces: Sequence[str]) -> List[str]:
    """Run dirs of the labs whose processes live in `namespaces` (from the
    `-c <run dir>/xenoflow.yaml` of their command lines), to tell the user whose
    namespaces these are."""
    found = set()
    for _, argv in processes_in_namespaces(namespaces):
        for i, a in enumerate(argv[:-1]):
            if a == "-c" and argv[i + 1].endswith("xenoflow.yaml"):
                found.add(os.path.dirname(argv[i + 1]))
    return sorted(found)



def proc_start_time(pid: int) -> Optional[int]:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22),
    None when it does not exist or is a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rpartition(")")[2].split()
    except (OSError, ValueError):
        return None
    if not rest or rest[0] in ("Z", "X"):
        return None
    return int(rest[19])


def proc_alive(pid: Optional[int], start: Optional[int] = None) -> bool:
    """True while `pid` runs and (when `start` is given) is still the process we started."""
    if not pid:
        return False
    st = proc_start_time(pid)
    return st is not None and (start is None or st == start)


def stop_pid(pid: int, start: Optional[int] = None, timeout: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after `timeout`; only if the PID is still the recorded
    process. Returns True if it is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not proc_alive(pid, start):
            return True
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while proc_alive(pid, start) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
    _reap(pid)
    return not proc_alive(pid, start)


def _reap(pid: int) -> None:
    """Collect `pid` if it is our child (it is when up and down run in one process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    except OSError:
        pass


# ---------------------------------------------------------------- the state file


class LabState:
    """What a lab made, in ``<run dir>/state.json`` (0600, run dir 0700).

    Keys: topology, wiring (eswitch|direct), namespaces (created by us), taps
    ([netns, name]), processes ({name: {pid, start, argv, netns, log}}), extra."""

    FILE = "state.json"

    def __init__(self, run_dir: str) -> None:
        self.run_dir = os.path.abspath(run_dir)
        self.path = os.path.join(self.run_dir, self.FILE)
        self.data: Dict[str, Any] = {}
        self.load()

    def load(self) -> Dict[str, Any]:
        try:
            with open(self.path) as f:
                self.data = json.load(f)
        except (OSError, ValueError):
            self.data = {}
        self.data.setdefault("namespaces", [])
        self.data.setdefault("taps", [])
        self.data.setdefault("processes", {})
        self.data.setdefault("extra", {})
        return self.data

    @property
    def exists(self) -> bool:
        return os.path.exists(self.path)

    def save(self) -> None:
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        os.chmod(self.run_dir, 0o700)
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, self.path)

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    # -- records
    def add_namespace(self, ns: str) -> None:
        if ns not in self.data["namespaces"]:
            self.data["namespaces"].append(ns)
            self.save()

    def add_tap(self, ns: str, name: str) -> None:
        if [ns, name] not in self.data["taps"]:
            self.data["taps"].append([ns, name])
            self.save()

    def add_process(self, name: str, pid: int, argv: Sequence[str], netns: Optional[str],
                    log: Optional[str] = None) -> None:
        self.data["processes"][name] = {"pid": pid, "start": proc_start_time(pid),
                                        "argv": list(argv), "netns": netns, "log": log}
        self.save()

    def process(self, name: str) -> Optional[Dict[str, Any]]:
        return self.data["processes"].get(name)

    def process_alive(self, name: str) -> bool:
        p = self.process(name)
        return bool(p) and proc_alive(p["pid"], p.get("start"))

    def drop_process(self, name: str) -> None:
        if self.data["processes"].pop(name, None) is not None:
            self.save()


# ---------------------------------------------------------------- the builder


def _run(ns: Optional[str], argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess:
    return nsh.run_in_ns(ns, argv, check=check, timeout=30)


class Lab:
    """Builds and destroys one topology; `eswitch` picks the wiring (False: driver none)."""

    def __init__(self, topo: Topology, run_dir: str, eswitch: bool = True,
                 log: Any = None) -> None:
        self.topo = topo
        self.run_dir = os.path.abspath(run_dir)
        self.eswitch = eswitch
        self.state = LabState(self.run_dir)
        self.log = log or (lambda msg: None)

    @property
    def wiring(self) -> str:
        return "eswitch" if self.eswitch else "direct"

    # -- ownership
    def owns(self, ns: str) -> bool:
        """`ns` is recorded as made by this run dir and is still that namespace (its
        inode, recorded at creation, matches: a namespace of the same name made by
        somebody else after ours vanished is not ours)."""
        if ns not in self.state.data["namespaces"]:
            return False
        want = self.state.data.get("ns_inodes", {}).get(ns)
        return want is None or ns_inode(ns) in (None, want)

    def foreign_namespaces(self) -> List[str]:
        """The topology's namespaces that exist but this run dir did not create."""
        return [ns for ns in self.topo.namespaces if nsh.ns_exists(ns) and not self.owns(ns)]

    def check_free(self) -> None:
        foreign = self.foreign_namespaces()
        if foreign:
            owners = sorted(run_dirs_in_namespaces(foreign))
            raise LabBusy(
                "namespace(s) %s exist and are not this lab's (run dir %s). %s, or they were made "
                "by something else: this lab will not touch them." % (
                    ", ".join(foreign), self.run_dir,
                    "The lab of run dir %s is up (stop it with `xenoflow lab down --run-dir %s`)"
                    % (owners[0], owners[0]) if owners else
                    "Another lab is up (stop it with `xenoflow lab down --run-dir <its run dir>`)"))
        w = self.state.data.get("wiring")
        if w and w != self.wiring and any(nsh.ns_exists(ns) for ns in self.state.data["namespaces"]):
            raise LabBusy("the lab in %s is up with the %s wiring (eswitch %s); run `xenoflow lab "
                          "down` before switching the eSwitch driver"
                          % (self.run_dir, w, "none" if w == "direct" else "on"))

    # -- up
    def up(self) -> None:
        """Create what is missing (idempotent). Raises LabBusy before touching anything
        when the namespaces belong to someone else."""
        self.check_free()
        self.state.data["topology"] = self.topo.path
        self.state.data["wiring"] = self.wiring
        self.state.save()
        for ns in self.topo.namespaces:
            self.state.add_namespace(ns)       # recorded first: a crash still cleans it
            nsh.create_ns(ns, exist_ok=True)
            self.state.data.setdefault("ns_inodes", {})[ns] = ns_inode(ns)
            self.state.save()
            kv = sysctl_order(self.topo.sysctls_of(ns))
            if kv:
                _run(ns, ["sysctl", "-q", "-w"] + ["%s=%s" % (k, v) for k, v in kv])
        for ns, name in self.topo.all_taps():
            self.state.add_tap(ns, name)
        for v in self.topo.veths(self.eswitch):
            self._veth(v)
        for br in self.topo.bridges:
            self._bridge(br)
        for ns, addrs in self.topo.loopback.items():
            for a in addrs:
                nsh.add_lo_address(ns, a)
        for ns, routes in self.topo.routes.items():
            for dst, via in routes:
                _run(ns, ["ip", "route", "replace", dst, "via", via])

    def _veth(self, v: Veth) -> None:
        a_there = nsh.link_exists(v.a.ifname, v.a.netns)
        b_there = nsh.link_exists(v.b.ifname, v.b.netns)
        if not (a_there and b_there):
            # half a pair (or a stale name): remove what is there, by exact name, and redo it
            if a_there:
                nsh.delete_link(v.a.ifname, v.a.netns)
            if b_there:
                nsh.delete_link(v.b.ifname, v.b.netns)
            nsh.add_veth(v.a.ifname, v.b.ifname, ns=v.a.netns, peer_ns=v.b.netns)
        for e in (v.a, v.b):
            nsh.set_link(e.ifname, ns=e.netns, mac=e.mac, up=None)
            nsh.set_if_sysctls(e.netns, e.ifname, e.sysctls)    # before addresses: IPv6 may be off
            for a in e.addresses + e.addresses6:
                nsh.add_address(e.ifname, a, ns=e.netns)
            # TX checksum offload off on every end (else UDP checksums stay partial and UDP breaks)
            _run(e.netns, ["ethtool", "-K", e.ifname, "tx", "off"])
            nsh.set_link(e.ifname, ns=e.netns, up=True)

    def _bridge(self, br: LinuxBridge) -> None:
        from pyroute2 import NetNS

        with NetNS(br.netns) as ipr:
            if not ipr.link_lookup(ifname=br.name):
                ipr.link("add", ifname=br.name, kind="bridge")
            idx = ipr.link_lookup(ifname=br.name)[0]
            if br.mac:
                ipr.link("set", index=idx, address=br.mac)
            for port in br.ports:
                pidx = ipr.link_lookup(ifname=port)
                if not pidx:
                    raise self.topo.error(("bridges",), "bridge %s: no port %s in %s"
                                          % (br.name, port, br.netns))
                ipr.link("set", index=pidx[0], master=idx)
            ipr.link("set", index=idx, state="up")
        for a in br.addresses:
            nsh.add_address(br.name, a, ns=br.netns)
        for port in br.learning_off:
            _run(br.netns, ["ip", "link", "set", "dev", port, "type", "bridge_slave", "learning", "off"])
        for mac, port in br.fdb:
            _run(br.netns, ["bridge", "fdb", "replace", mac, "dev", port, "master", "static"])

    # -- processes recorded by PID
    def stop_process(self, name: str, timeout: float = 10.0) -> None:
        p = self.state.process(name)
        if p is None:
            return
        if not stop_pid(p["pid"], p.get("start"), timeout=timeout):
            raise RuntimeError("%s (pid %d) does not die" % (name, p["pid"]))
        self.state.drop_process(name)

    # -- down
    def delete_taps(self) -> List[str]:
        """``ip tuntap del`` every recorded tap still present (exact names, in its namespace)."""
        gone = []
        for ns, name in list(self.state.data["taps"]):
            if nsh.ns_exists(ns) and self.owns(ns) and nsh.link_exists(name, ns):
                _run(ns, ["ip", "tuntap", "del", "dev", name, "mode", "tap"], check=False)
                if nsh.link_exists(name, ns):
                    nsh.delete_link(name, ns)
                gone.append(name)
        return gone

    def down(self) -> None:
        """Remove everything recorded: processes (reverse start order), taps, namespaces.
        Idempotent; the state file goes last."""
        errors = []
        for name in reversed(list(self.state.data["processes"])):
            try:
                self.stop_process(name)
            except Exception as e:  # keep removing the rest
                errors.append("%s: %s" % (name, e))
        try:
            self.delete_taps()
        except Exception as e:
            errors.append("taps: %s" % e)
        for ns in reversed(list(self.state.data["namespaces"])):
            if nsh.ns_exists(ns) and not self.owns(ns):
                # same name, another namespace: not ours to delete any more
                self.state.data["namespaces"].remove(ns)
                self.state.save()
                continue
            try:
                nsh.delete_ns(ns)
            except Exception as e:
                errors.append("namespace %s: %s" % (ns, e))
            else:
                self.state.data["namespaces"].remove(ns)
                self.state.save()
        if errors:
            raise RuntimeError("lab down incomplete: " + "; ".join(errors))
        self.state.remove()

    # -- status
    def status(self) -> Dict[str, Any]:
        procs = {}
        for name, p in self.state.data["processes"].items():
            procs[name] = {"pid": p["pid"], "alive": proc_alive(p["pid"], p.get("start")),
                           "netns": p.get("netns"), "log": p.get("log")}
        return {
            "run_dir": self.run_dir,
            "state": self.state.exists,
            "wiring": self.state.data.get("wiring"),
            "namespaces": {ns: nsh.ns_exists(ns) for ns in self.topo.namespaces},
            "foreign_namespaces": self.foreign_namespaces(),
            "processes": procs,
        }

"""The intent: one YAML file describing a DPU, parsed into frozen, validated objects.

Every error names its key path and line; all errors of a file are reported at
once, and nothing is returned unless the whole file is valid (a bad file never
reaches a plane). The same parser serves `xenoflow check-config`, the
controller's start and its reloads.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, TypeVar

import netaddr

from . import eswitch_ports, yamlsrc
from .yamlsrc import Path, format_path

DRIVERS = ("softdoca", "doca", "none")
MODES = ("vnf", "switch")
TABLE_MISS = ("normal", "drop")
OF_ROLES = ("equal", "master", "slave")
OVS_TABLES = 3          # XenoFlow's OpenFlow tables: ovs.table, +1 (ND answers), +2 (service meters)
MAX_FIRST_TABLE = 254 - OVS_TABLES + 1     # OVS has tables 0..254 (255 is "all tables")
PROTOCOLS = {"udp": 17, "tcp": 6}
POLICIES = ("src-ip-bits", "src-port-bits", "maglev")
MAX_BITS = 16  # 2^16 buckets: an eSwitch pipe takes it; OVS still merges it into few rules
# Rate limits: OpenFlow meter bands carry 32-bit rates and bursts. The eSwitch's meter budgets
# (declared to DOCA at start) bound how many per-bucket meters all services may hold.
MAX_PPS = 0xFFFFFFFF
ESWITCH_ENTRY_METERS, ESWITCH_SHARED_METERS = 131072, 1024
LAB_DEFAULT_EAL = ("--no-huge", "-m", "256", "--no-pci", "-l", "0-1")


class ConfigError(Exception):
    """All problems of one config file: (key path, message, line)."""

    def __init__(self, problems: List[Tuple[str, str, int]], source: str = "<config>"):
        self.problems = problems
        self.source = source
        super().__init__("\n".join(self.lines()))

    def lines(self) -> List[str]:
        out = []
        for path, msg, line in self.problems:
            where = "%s:%d" % (self.source, line) if line else self.source
            out.append("%s: %s: %s" % (where, path, msg))
        return out


# ---------------------------------------------------------------- typed model


@dataclass(frozen=True)
class Port:
    name: str
    id: int
    iface: Optional[str] = None
    rep_iface: Optional[str] = None
    devargs: Optional[str] = None
    pci: Optional[str] = None    # doca: the PCI function (a representor: the function it represents)
    of: Optional[str] = None     # a representor: the name of its device port
    pair: Optional[str] = None   # vnf mode: the port it is paired with, fixed at start


@dataclass(frozen=True)
class Capacity:
    """Limits of the eSwitch the operator declares (dpu.eswitch.capacity); None: not declared.
    check-config warns where the intent needs more, and softdoca fails there as the
    hardware does (see intent/capacity.py)."""
    entries_per_pipe: Optional[int] = None
    pipes: Optional[int] = None      # per port (in switch mode: per switch manager)


@dataclass(frozen=True)
class Eswitch:
    driver: str = "softdoca"
    mode: str = "vnf"
    mirror_routes: bool = True
    socket: str = "run/eswitchd.sock"
    eal_args: Tuple[str, ...] = LAB_DEFAULT_EAL
    busy_poll: bool = False
    idle_max_us: Optional[int] = None   # softdoca: the idle sleep's ceiling (None: its default, 1 ms)
    multiport: bool = False      # the device ports share one e-switch (switch mode)
    connect_timeout: int = 30    # s the controller waits for eswitchd at start before giving up
    capacity: Capacity = Capacity()


@dataclass(frozen=True)
class InternalPort:
    name: str
    ip: netaddr.IPNetwork
    mac: Optional[str] = None
    ip6: Optional[netaddr.IPNetwork] = None   # for IPv6 health probes from the DPU


@dataclass(frozen=True)
class Bridge:
    name: str
    ports: Tuple[str, ...]
    internal: Tuple[InternalPort, ...] = ()


@dataclass(frozen=True)
class Route:
    src_port: str            # `from` in YAML
    dst_port: str            # `to`
    dst: netaddr.IPNetwork   # 0.0.0.0/0 when the route has no `dst`
    families: Tuple[int, ...] = (4,)   # no `dst`: (4, 6), all IP traffic; else the prefix's family

    @property
    def label(self) -> str:
        return "%s->%s %s" % (self.src_port, self.dst_port, self.dst)


@dataclass(frozen=True)
class Policy:
    kind: str = "src-ip-bits"
    bits: int = 1

    @property
    def buckets(self) -> int:
        return 1 << self.bits


@dataclass(frozen=True)
class Backend:
    name: str
    ip: Optional[netaddr.IPAddress]      # IPv4 (probes, the lab); at least one of ip and ip6
    mac: str
    weight: int = 1
    ip6: Optional[netaddr.IPAddress] = None

    @property
    def addresses(self) -> Tuple[netaddr.IPAddress, ...]:
        return tuple(a for a in (self.ip, self.ip6) if a is not None)


@dataclass(frozen=True)
class Health:
    """DNS probes per backend, sent from the DPU's management port (pf1sf0 in the paper lab)."""
    enabled: bool = False
    query: str = "who.example.lab"
    qtype: str = "TXT"
    expect: Optional[str] = None     # a substring of the answer; None: any NOERROR answer
    interval: float = 1.0
    timeout: float = 0.5
    rise: int = 2
    fall: int = 3
    source: Optional[str] = None     # source IPv4 (the management port's); None: the kernel picks
    protocols: Tuple[str, ...] = ("udp",)    # transports each probe round uses
    families: Tuple[int, ...] = ()           # 4 and/or 6; (): every family the backend has an address of
    source6: Optional[str] = None            # source IPv6; None: the kernel picks


@dataclass(frozen=True)
class Limits:
    """A service's DoS guard: token buckets (packets/s, burst in packets) in both planes.
    `pps` limits the whole service (all listeners, one shared meter); `per_bucket_pps` gives
    every bucket its own meter, so with 2^k buckets each 1/2^k slice of the source space is
    held to it. A burst left out is a tenth of a second's worth (at least one packet)."""
    pps: Optional[int] = None
    burst: Optional[int] = None
    per_bucket_pps: Optional[int] = None
    per_bucket_burst: Optional[int] = None

    @property
    def service(self) -> Optional[Tuple[int, int]]:
        """(rate, burst) of the service-wide meter; None: no service-wide limit."""
        return None if self.pps is None else (self.pps, self.burst or default_burst(self.pps))

    @property
    def bucket(self) -> Optional[Tuple[int, int]]:
        """(rate, burst) of every bucket's meter; None: no per-bucket limit."""
        if self.per_bucket_pps is None:
            return None
        return (self.per_bucket_pps, self.per_bucket_burst or default_burst(self.per_bucket_pps))

    @property
    def kind(self) -> str:
        """Which meters the planes need: "", "service", "bucket" or "bucket+service"."""
        return "+".join(k for k, v in (("bucket", self.bucket), ("service", self.service)) if v)


def default_burst(pps: int) -> int:
    return max(1, pps // 10)


@dataclass(frozen=True)
class Service:
    """One DNS service: an IPv4 VIP, an IPv6 VIP or both, over one or both transports.
    Every (family, transport) pair is a listener; all of them share one bucket table, so a
    source address gets the same backend over UDP and TCP (and a drain applies to all)."""
    name: str
    vip: Optional[netaddr.IPAddress]     # IPv4 VIP
    vip_mac: str
    protocols: Tuple[str, ...]
    port: int
    ingress: str
    egress: str
    policy: Policy
    backends: Tuple[Backend, ...]
    health: Health = Health()
    vip6: Optional[netaddr.IPAddress] = None
    limits: Limits = Limits()

    @property
    def families(self) -> Tuple[int, ...]:
        return tuple(f for f, v in ((4, self.vip), (6, self.vip6)) if v is not None)

    def vip_of(self, family: int) -> netaddr.IPAddress:
        v = self.vip if family == 4 else self.vip6
        if v is None:
            raise KeyError("service %s has no IPv%d VIP" % (self.name, family))
        return v

    @property
    def listeners(self) -> Tuple[Tuple[int, str], ...]:
        """(family, transport) pairs served, IPv4 first, in the order of `protocols`."""
        return tuple((f, p) for f in self.families for p in self.protocols)

    @property
    def protocol(self) -> str:
        """The first transport (probes and tools that pick one)."""
        return self.protocols[0]

    @property
    def ip_proto(self) -> int:
        return PROTOCOLS[self.protocol]

    def backend(self, name: str) -> Backend:
        for b in self.backends:
            if b.name == name:
                return b
        raise KeyError(name)


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    socket: Optional[str] = None
    token_file: Optional[str] = None


@dataclass(frozen=True)
class OpenflowRole:
    """The controller's OpenFlow 1.3 role on every bridge (OFPT_ROLE_REQUEST at connect).
    equal: no request (OpenFlow's default, full access beside other equals); master: full
    access, other controllers become slaves; slave: reads only. master and slave carry a
    generation id: the switch refuses a request older than the last it accepted."""
    role: str = "equal"
    generation_id: Optional[int] = None

    @property
    def writes(self) -> bool:
        return self.role != "slave"


@dataclass(frozen=True)
class BgpPeer:
    address: netaddr.IPAddress
    asn: int


@dataclass(frozen=True)
class Bgp:
    """This DPU's BGP speaker (FRR): it announces the service VIPs while the DPU forwards them
    consistently. Sessions run in-band from `port`, an internal port of the uplink bridge."""
    asn: int
    port: str                          # an internal port of ovs.bridges (its address is the speaker's)
    peers: Tuple[BgpPeer, ...]
    router_id: Optional[netaddr.IPAddress] = None   # default: the port's address
    pathspace: Optional[str] = None    # FRR's -N name (vtysh -N); default: the system's FRR
    keepalive: int = 1                 # s; hold = 3 x keepalive unless set
    hold: int = 3
    bfd_interval_ms: int = 300         # BFD rx/tx interval; detection = interval x multiplier
    bfd_multiplier: int = 3
    med: Optional[int] = None          # MED of the announcements (lower is preferred)
    stale_med: Optional[int] = None    # MED once stale for stale_after s (fail static, less preferred)
    stale_after: float = 30.0
    drain_quiet: float = 1.0           # s the VIP counters must stay flat after a planned withdraw
    drain_timeout: float = 10.0        # s at most to wait for that


@dataclass(frozen=True)
class Fleet:
    """Where the fleet's intent store is (fleet/): with it the services come from the store,
    and the file holds only what is this DPU's own (ports, bridges, eSwitch)."""
    remotes: Tuple[str, ...]
    connect_timeout: float = 10.0   # s to wait for the store at start before using the cached intent
    heartbeat: float = 1.0          # s between this DPU's health observations (the fleet's clock)
    bgp: Optional[Bgp] = None


# tcp or unix: the store's client sets up no TLS (keys, CA) yet, so ssl: would only fail later
STORE_REMOTE = re.compile(r"^tcp:(\[[0-9a-fA-F:.]+\]|[^:\[\]]+):\d{1,5}$|^unix:.+$")


@dataclass(frozen=True)
class Config:
    dpu_name: str
    eswitch: Eswitch
    ports: Tuple[Port, ...]
    ovs_db: str
    bridges: Tuple[Bridge, ...]
    patches: Tuple[Tuple[str, str], ...]
    table_miss: str
    routes: Tuple[Route, ...]
    openflow: Endpoint
    api: Endpoint
    services: Tuple[Service, ...]
    base_dir: str = field(default=".", compare=False)
    # where the operator's state (overlay) and the per-DPU instance locks live; None: the
    # daemon's default ($STATE_DIRECTORY under systemd, else /var/lib/xenoflow/<dpu name>)
    state_dir: Optional[str] = None
    metrics: Endpoint = Endpoint(host="127.0.0.1", port=9302)
    fleet: Optional[Fleet] = None
    ovs_table: int = 0              # XenoFlow's first OpenFlow table (its tables: OVS_TABLES from it)
    role: OpenflowRole = OpenflowRole()

    def bgp_speaker(self) -> Optional[Tuple[Bgp, InternalPort]]:
        """The BGP settings and the internal port the speaker talks from, when configured."""
        if self.fleet is None or self.fleet.bgp is None:
            return None
        for br in self.bridges:
            for ip in br.internal:
                if ip.name == self.fleet.bgp.port:
                    return self.fleet.bgp, ip
        return None

    @property
    def has_eswitch(self) -> bool:
        return self.eswitch.driver != "none"

    def port(self, name: str) -> Port:
        for p in self.ports:
            if p.name == name:
                return p
        raise KeyError(name)

    def bridge_of(self, port: str) -> str:
        for br in self.bridges:
            if port in br.ports or any(i.name == port for i in br.internal):
                return br.name
        raise KeyError(port)

    def bridge(self, name: str) -> Bridge:
        for br in self.bridges:
            if br.name == name:
                return br
        raise KeyError(name)

    def service(self, name: str) -> Service:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)

    def patch_port(self, bridge: str, peer: str) -> str:
        """The patch port on `bridge` that leads to `peer`: patch-<peer bridge>."""
        return "patch-" + peer

    def path(self, relative: str) -> str:
        """Resolve a path from the config (socket, run dir) against the config's directory."""
        if relative.startswith("unix:"):
            return "unix:" + self.path(relative[5:])
        return relative if os.path.isabs(relative) else os.path.normpath(
            os.path.join(self.base_dir, relative))


# ---------------------------------------------------------------- reader


class Reader:
    """Walks the plain data with a key path, collecting every problem. The lab's topology
    parser subclasses it, so both files report errors the same way."""

    def __init__(self, located: yamlsrc.Located):
        self.located = located
        self.problems: List[Tuple[str, str, int]] = []

    def error(self, path: Path, msg: str) -> None:
        self.problems.append((format_path(path), msg, self.located.line(path)))

    def mapping(self, value: Any, path: Path, allowed: Tuple[str, ...],
                required: Tuple[str, ...] = ()) -> Dict[str, Any]:
        if value is None:
            return {}  # absent: the parent's required-key check has said so if it matters
        if not isinstance(value, dict):
            self.error(path, "must be a mapping, got %s" % kind_of(value))
            return {}
        for key in value:
            if key not in allowed:
                self.error(path + (key,), "unknown key %r (allowed: %s)" % (key, ", ".join(allowed)))
        for key in required:
            if value.get(key) is None:
                self.error(path + (key,), "missing required key")
        return value

    def get(self, m: Dict[str, Any], key: str, path: Path, conv: Callable[[Any, Path], Any],
            default: Any = None) -> Any:
        if key not in m or m[key] is None:
            return default
        return conv(m[key], path + (key,))

    # -- scalar converters: return None after recording an error

    def string(self, v: Any, path: Path) -> Optional[str]:
        if not isinstance(v, str) or not v:
            self.error(path, "must be a non-empty string, got %s" % kind_of(v))
            return None
        return v

    def name(self, v: Any, path: Path) -> Optional[str]:
        s = self.string(v, path)
        if s is not None and (len(s) > 15 or not all(c.isalnum() or c in "-_." for c in s)):
            self.error(path, "%r is not a valid interface/object name (<= 15 chars of [A-Za-z0-9._-])" % s)
            return None
        return s

    def integer(self, lo: int, hi: int) -> Callable[[Any, Path], Optional[int]]:
        def conv(v: Any, path: Path) -> Optional[int]:
            if isinstance(v, bool) or not isinstance(v, int):
                self.error(path, "must be an integer, got %s" % kind_of(v))
                return None
            if not lo <= v <= hi:
                self.error(path, "must be between %d and %d, got %d" % (lo, hi, v))
                return None
            return v
        return conv

    def boolean(self, v: Any, path: Path) -> Optional[bool]:
        if not isinstance(v, bool):
            self.error(path, "must be true or false, got %s" % kind_of(v))
            return None
        return v

    def choice(self, options: Tuple[str, ...]) -> Callable[[Any, Path], Optional[str]]:
        def conv(v: Any, path: Path) -> Optional[str]:
            if v not in options:
                self.error(path, "must be one of %s, got %r" % (", ".join(options), v))
                return None
            return v
        return conv

    def ipv4(self, v: Any, path: Path) -> Optional[netaddr.IPAddress]:
        if not isinstance(v, str):
            self.error(path, "must be an IPv4 address string, got %s" % kind_of(v))
            return None
        try:
            addr = netaddr.IPAddress(v, version=4, flags=netaddr.INET_PTON)
        except (netaddr.AddrFormatError, ValueError):
            self.error(path, "%r is not an IPv4 address" % v)
            return None
        if addr.is_multicast() or addr == netaddr.IPAddress("255.255.255.255") or int(addr) == 0:
            self.error(path, "%s is not a unicast host address" % addr)
            return None
        return addr

    def ipv6(self, v: Any, path: Path) -> Optional[netaddr.IPAddress]:
        if not isinstance(v, str):
            self.error(path, "must be an IPv6 address string, got %s" % kind_of(v))
            return None
        try:
            addr = netaddr.IPAddress(v, version=6)
        except (netaddr.AddrFormatError, ValueError):
            self.error(path, "%r is not an IPv6 address" % v)
            return None
        if (addr.is_multicast() or int(addr) <= 1 or addr.is_link_local()
                or addr.is_ipv4_mapped() or addr.is_ipv4_compat()):
            self.error(path, "%s is not a global unicast IPv6 address" % addr)
            return None
        return addr

    def ipv6_iface(self, v: Any, path: Path) -> Optional[netaddr.IPNetwork]:
        """An interface's IPv6 address with its prefix length (2001:db8::250/64)."""
        if not isinstance(v, str) or "/" not in v:
            self.error(path, "must be an IPv6 address with prefix length like 2001:db8::250/64, got %r"
                       % (v,))
            return None
        addr, _, _ = v.partition("/")
        if self.ipv6(addr, path) is None:
            return None
        try:
            return netaddr.IPNetwork(v, version=6)
        except (netaddr.AddrFormatError, ValueError):
            self.error(path, "%r is not an IPv6 address with prefix length" % v)
            return None

    def ipv4_only(self, v: Any, path: Path) -> Optional[netaddr.IPAddress]:
        """An IPv4 address where an IPv6 one has its own key (`key6`): says so."""
        if isinstance(v, str) and ":" in v:
            self.error(path, "%r is an IPv6 address: give it as %s6" % (v, path[-1] if path else "vip"))
            return None
        return self.ipv4(v, path)

    def ipv4_net(self, v: Any, path: Path, host_bits_ok: bool = False) -> Optional[netaddr.IPNetwork]:
        if not isinstance(v, str) or "/" not in v:
            self.error(path, "must be an IPv4 prefix like 198.18.0.0/24, got %r" % (v,))
            return None
        try:
            net = netaddr.IPNetwork(v, version=4)
            netaddr.IPAddress(v.split("/")[0], version=4, flags=netaddr.INET_PTON)
        except (netaddr.AddrFormatError, ValueError):
            self.error(path, "%r is not an IPv4 prefix" % v)
            return None
        if not host_bits_ok and net.ip != net.network:
            self.error(path, "%s has host bits set (did you mean %s?)" % (v, net.cidr))
            return None
        return net

    def ip_net(self, v: Any, path: Path) -> Optional[netaddr.IPNetwork]:
        """An IPv4 or an IPv6 prefix."""
        if not isinstance(v, str) or ":" not in v:
            return self.ipv4_net(v, path)
        try:
            net = netaddr.IPNetwork(v, version=6)
        except (netaddr.AddrFormatError, ValueError):
            self.error(path, "%r is not an IPv6 prefix like 2001:db8::/32" % v)
            return None
        if "/" not in v:
            self.error(path, "must be a prefix like 2001:db8::/32, got %r" % v)
            return None
        if net.ip != net.network:
            self.error(path, "%s has host bits set (did you mean %s?)" % (v, net.cidr))
            return None
        return net

    def mac(self, v: Any, path: Path) -> Optional[str]:
        if not isinstance(v, str):
            self.error(path, "must be a quoted MAC address string like \"02:00:c6:12:00:02\", got %s"
                       % kind_of(v))
            return None
        try:
            mac = netaddr.EUI(v, version=48, dialect=netaddr.mac_unix_expanded)
        except (netaddr.AddrFormatError, ValueError, TypeError):
            self.error(path, "%r is not a MAC address" % v)
            return None
        if int(mac) >> 40 & 1:
            self.error(path, "%s is a multicast MAC; a unicast MAC is required" % v)
            return None
        if int(mac) == 0:
            self.error(path, "the all-zero MAC is not usable")
            return None
        return str(mac).lower()

    def seq(self, v: Any, path: Path) -> List[Any]:
        if v is None:
            return []
        if not isinstance(v, list):
            self.error(path, "must be a list, got %s" % kind_of(v))
            return []
        return v


def kind_of(v: Any) -> str:
    """How an error names what it found instead."""
    if v is None:
        return "nothing"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string %r" % (v,),
            list: "a list", dict: "a mapping"}.get(type(v), type(v).__name__)


# ---------------------------------------------------------------- parse


T = TypeVar("T")
Build = Callable[[Reader, Any], Optional[T]]


def load_yaml(path: str, build: Build[T], reader: Type[Reader] = Reader,
              error: Type[ConfigError] = ConfigError) -> T:
    """Read one of our YAML files and build it with `build(reader, data)`. Every problem
    (unreadable file, bad YAML, what the reader found) raises `error` at once, each with
    its key path and line. The config and the lab's topology files are read this way."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise error([("<file>", "cannot read: %s" % exc.strerror, 0)], source=path)
    return parse_yaml(text, path, build, reader, error)


def parse_yaml(text: str, source: str, build: Build[T], reader: Type[Reader] = Reader,
               error: Type[ConfigError] = ConfigError) -> T:
    try:
        located = yamlsrc.load(text)
    except yamlsrc.SourceError as exc:
        raise error(exc.problems, source=source)
    r = reader(located)
    out = build(r, located.data)
    if r.problems or out is None:
        raise error(r.problems or [("<top>", "the file is empty", 0)], source=source)
    return out


def load(path: str, fleet_services: bool = False) -> Config:
    """A config file. With `fleet:` its services come from the store, and a file that has
    both is refused, unless `fleet_services` (a file imported into the store)."""
    base_dir = os.path.dirname(os.path.abspath(path))
    return load_yaml(path, lambda r, data: _parse(r, data, base_dir, file=not fleet_services))


def parse(text: str, source: str = "<config>", base_dir: str = ".") -> Config:
    return parse_yaml(text, source, lambda r, data: _parse(r, data, base_dir))


def _parse(r: Reader, data: Any, base_dir: str, file: bool = False) -> Optional[Config]:
    if data is None:
        r.error((), "the file is empty")
        return None
    in_fleet = isinstance(data, dict) and data.get("fleet") is not None
    top = r.mapping(data, (), ("dpu", "ovs", "routes", "controller", "services", "fleet"),
                    required=("dpu", "ovs") if in_fleet else ("dpu", "ovs", "services"))
    fleet = _fleet(r, top.get("fleet"), ("fleet",)) if in_fleet else None
    if in_fleet and file and top.get("services") is not None:
        r.error(("services",), "with fleet: the services come from the store: remove them from "
                "this file (`xenoflow fleet import FILE` loads a file's services into the store)")
    dpu = r.mapping(top.get("dpu"), ("dpu",), ("name", "eswitch", "ports", "state_dir"),
                    required=("name", "ports"))
    dpu_name = r.get(dpu, "name", ("dpu",), r.name, "dpu")
    state_dir = r.get(dpu, "state_dir", ("dpu",), r.string)
    eswitch = _eswitch(r, dpu.get("eswitch"), ("dpu", "eswitch"))
    ports = _ports(r, dpu.get("ports"), ("dpu", "ports"), eswitch)
    port_names = {p.name for p in ports}

    ovs = r.mapping(top.get("ovs"), ("ovs",), ("db", "bridges", "patches", "table_miss", "table"),
                    required=("bridges",))
    ovs_db = r.get(ovs, "db", ("ovs",), r.string, "unix:run/ovs/db.sock")
    table_miss = r.get(ovs, "table_miss", ("ovs",), r.choice(TABLE_MISS), "normal")
    ovs_table = r.get(ovs, "table", ("ovs",), r.integer(0, MAX_FIRST_TABLE), 0)
    bridges = _bridges(r, ovs.get("bridges"), ("ovs", "bridges"), port_names)
    bridge_of = {}
    for br in bridges:
        for p in br.ports:
            bridge_of[p] = br.name
        for ip in br.internal:
            bridge_of[ip.name] = br.name
    patches = _patches(r, ovs.get("patches"), ("ovs", "patches"), {b.name for b in bridges})
    if fleet is not None and fleet.bgp is not None and fleet.bgp.port:
        internal = {i.name for b in bridges for i in b.internal}
        if fleet.bgp.port not in internal:
            r.error(("fleet", "bgp", "port"), "%s is not an internal port of ovs.bridges (%s): the speaker "
                    "talks in-band from an internal port of the uplink bridge"
                    % (fleet.bgp.port, ", ".join(sorted(internal)) or "none"))

    def connected(a: str, b: str) -> bool:
        ba, bb = bridge_of.get(a), bridge_of.get(b)
        return ba == bb or (ba, bb) in patches or (bb, ba) in patches

    routes = _routes(r, top.get("routes"), ("routes",), port_names, bridge_of, connected)
    ctl = r.mapping(top.get("controller"), ("controller",), ("openflow", "api", "metrics"))
    role = _role(r, ctl.get("openflow"), ("controller", "openflow"), eswitch.driver)
    openflow = _endpoint(r, ctl.get("openflow"), ("controller", "openflow"), 6653, api=False, also=ROLE_KEYS)
    api = _endpoint(r, ctl.get("api"), ("controller", "api"), 8080, api=True)
    metrics = _endpoint(r, ctl.get("metrics"), ("controller", "metrics"), 9302, api=False)
    if api.host is not None and not _loopback(api.host) and not api.token_file:
        r.error(("controller", "api", "host"), "%s is reachable from other hosts: the write API then needs "
                "controller.api.token_file (or listen on 127.0.0.1)" % api.host)
    if (metrics.host, metrics.port) == (api.host, api.port) or (metrics.host, metrics.port) == (
            openflow.host, openflow.port):
        r.error(("controller", "metrics", "port"), "%s:%d is already the %s listener" % (
            metrics.host, metrics.port, "API's" if metrics.port == api.port else "OpenFlow"))
    services = _services(r, top.get("services"), ("services",), port_names, bridge_of, connected) \
        if not (in_fleet and file) else ()
    if not r.problems and eswitch.driver != "none":
        # Only on an otherwise valid file: the forwards are indexed by service and route,
        # and a skipped bad item would shift the key paths these errors name.
        fwds = eswitch_ports.declared_pairs(ports) + eswitch_ports.needed_forwards(
            services, routes, eswitch.mirror_routes)
        for where, msg in eswitch_ports.problems(ports, fwds, eswitch.mode, eswitch.multiport):
            r.error(where, msg)

    if r.problems:
        return None
    return Config(dpu_name=dpu_name, eswitch=eswitch, ports=ports, ovs_db=ovs_db, bridges=bridges,
                  patches=patches, table_miss=table_miss, routes=routes, openflow=openflow,
                  api=api, services=services, base_dir=base_dir, state_dir=state_dir, metrics=metrics,
                  fleet=fleet, ovs_table=ovs_table, role=role)


ROLE_KEYS = ("role", "generation_id")   # controller.openflow's keys beside its endpoint's


def _role(r: Reader, v: Any, path: Path, driver: str) -> OpenflowRole:
    if not isinstance(v, dict):
        return OpenflowRole()
    role = r.get(v, "role", path, r.choice(OF_ROLES), "equal")
    gen = r.get(v, "generation_id", path, r.integer(0, (1 << 64) - 1))
    if role in ("master", "slave") and gen is None and "generation_id" not in v:
        r.error(path + ("generation_id",), "role %s needs a generation_id (0..2^64-1): the switch "
                "refuses a request older than the last it accepted, so a controller taking over "
                "gives a higher one" % role)
    if role == "equal" and gen is not None:
        r.error(path + ("generation_id",), "a generation_id only counts with role master or slave")
    if role == "slave" and driver != "none":
        r.error(path + ("role",), "a slave controller only reads OVS, so it cannot own the eSwitch "
                "(dpu.eswitch.driver %s): use role master or equal, or driver none" % driver)
    return OpenflowRole(role or "equal", gen)


def _fleet(r: Reader, v: Any, path: Path) -> Optional[Fleet]:
    m = r.mapping(v, path, ("remotes", "connect_timeout", "heartbeat", "bgp"), required=("remotes",))
    remotes = []
    for i, rem in enumerate(r.seq(m.get("remotes"), path + ("remotes",))):
        p = path + ("remotes", i)
        if r.string(rem, p) is None:
            continue
        if not STORE_REMOTE.match(rem):
            r.error(p, "%r is not a store remote (tcp:HOST:PORT or unix:PATH)" % rem)
        remotes.append(rem)
    if isinstance(m.get("remotes"), list) and not m["remotes"]:
        r.error(path + ("remotes",), "at least one remote of the store's cluster is required")
    d = Fleet(remotes=())
    return Fleet(remotes=tuple(remotes),
                 connect_timeout=r.get(m, "connect_timeout", path, _seconds(0, 3600, r), d.connect_timeout),
                 heartbeat=r.get(m, "heartbeat", path, _seconds(0.05, 60, r), d.heartbeat),
                 bgp=_bgp(r, m["bgp"], path + ("bgp",)) if m.get("bgp") is not None else None)


ASN_MAX = (1 << 32) - 1
BGP_KEYS = ("asn", "port", "peers", "router_id", "pathspace", "timers", "bfd", "med", "stale_med",
            "stale_after", "drain")


def _bgp(r: Reader, v: Any, path: Path) -> Optional[Bgp]:
    m = r.mapping(v, path, BGP_KEYS, required=("asn", "port", "peers"))
    if not m:
        return None
    peers: List[BgpPeer] = []
    for i, pv in enumerate(r.seq(m.get("peers"), path + ("peers",))):
        p = path + ("peers", i)
        pm = r.mapping(pv, p, ("address", "asn"), required=("address", "asn"))
        addr, asn = r.get(pm, "address", p, r.ipv4), r.get(pm, "asn", p, r.integer(1, ASN_MAX))
        if addr is not None and asn is not None:
            if any(x.address == addr for x in peers):
                r.error(p + ("address",), "peer %s is listed twice" % addr)
            peers.append(BgpPeer(addr, asn))
    if isinstance(m.get("peers"), list) and not m["peers"]:
        r.error(path + ("peers",), "at least one BGP peer (the router in front of this DPU) is required")
    tm = r.mapping(m.get("timers"), path + ("timers",), ("keepalive", "hold"))
    keepalive = r.get(tm, "keepalive", path + ("timers",), r.integer(1, 600), 1)
    hold = r.get(tm, "hold", path + ("timers",), r.integer(3, 1800), max(3, 3 * (keepalive or 1)))
    if keepalive and hold and hold < keepalive:
        r.error(path + ("timers", "hold"), "hold time %d s is shorter than the keepalive %d s"
                % (hold, keepalive))
    bm = r.mapping(m.get("bfd"), path + ("bfd",), ("interval_ms", "multiplier"))
    dm = r.mapping(m.get("drain"), path + ("drain",), ("quiet", "timeout"))
    d = Bgp(asn=0, port="", peers=())
    quiet = r.get(dm, "quiet", path + ("drain",), _seconds(0.1, 60, r), d.drain_quiet)
    timeout = r.get(dm, "timeout", path + ("drain",), _seconds(0.5, 600, r), d.drain_timeout)
    if quiet is not None and timeout is not None and timeout < quiet:
        r.error(path + ("drain", "timeout"), "%g s is shorter than drain.quiet (%g s)" % (timeout, quiet))
    pathspace = r.get(m, "pathspace", path, r.string)
    if pathspace is not None and not re.match(r"^[A-Za-z0-9_.-]{1,32}$", pathspace):
        r.error(path + ("pathspace",), "%r is not an FRR pathspace name (letters, digits, _.-)" % pathspace)
    return Bgp(asn=r.get(m, "asn", path, r.integer(1, ASN_MAX)) or 0,
               port=r.get(m, "port", path, r.name) or "", peers=tuple(peers),
               router_id=r.get(m, "router_id", path, r.ipv4), pathspace=pathspace,
               keepalive=keepalive or d.keepalive, hold=hold or d.hold,
               bfd_interval_ms=r.get(bm, "interval_ms", path + ("bfd",), r.integer(10, 60000),
                                     d.bfd_interval_ms),
               bfd_multiplier=r.get(bm, "multiplier", path + ("bfd",), r.integer(2, 255), d.bfd_multiplier),
               med=r.get(m, "med", path, r.integer(0, ASN_MAX)),
               stale_med=r.get(m, "stale_med", path, r.integer(0, ASN_MAX)),
               stale_after=r.get(m, "stale_after", path, _seconds(0, 86400, r), d.stale_after),
               drain_quiet=quiet or d.drain_quiet, drain_timeout=timeout or d.drain_timeout)


def _loopback(host: str) -> bool:
    try:
        return netaddr.IPAddress(host).is_loopback()
    except (netaddr.AddrFormatError, ValueError):
        return False


def _eswitch(r: Reader, v: Any, path: Path) -> Eswitch:
    m = r.mapping(v, path, ("driver", "mode", "mirror_routes", "socket", "eal_args", "busy_poll",
                            "idle_max_us", "multiport", "connect_timeout", "capacity"))
    eal = r.seq(m.get("eal_args"), path + ("eal_args",)) if "eal_args" in m else list(LAB_DEFAULT_EAL)
    for i, a in enumerate(eal):
        if not isinstance(a, str):
            r.error(path + ("eal_args", i), "EAL arguments must be strings (quote numbers), got %s"
                    % kind_of(a))
    d = Eswitch()
    return Eswitch(
        driver=r.get(m, "driver", path, r.choice(DRIVERS), d.driver),
        mode=r.get(m, "mode", path, r.choice(MODES), d.mode),
        mirror_routes=r.get(m, "mirror_routes", path, r.boolean, d.mirror_routes),
        socket=r.get(m, "socket", path, r.string, d.socket),
        eal_args=tuple(str(a) for a in eal),
        busy_poll=r.get(m, "busy_poll", path, r.boolean, d.busy_poll),
        idle_max_us=r.get(m, "idle_max_us", path, r.integer(1, 1000000), None),
        multiport=r.get(m, "multiport", path, r.boolean, d.multiport),
        connect_timeout=r.get(m, "connect_timeout", path, r.integer(0, 3600), d.connect_timeout),
        capacity=_capacity(r, m.get("capacity"), path + ("capacity",)),
    )


CAPACITY_MAX = 1 << 24  # DOCA's largest nr_entries; a larger declared limit means nothing


def _capacity(r: Reader, v: Any, path: Path) -> Capacity:
    """The declared eSwitch limits; absent or empty: none declared."""
    m = r.mapping(v, path, ("entries_per_pipe", "pipes"))
    return Capacity(entries_per_pipe=r.get(m, "entries_per_pipe", path, r.integer(1, CAPACITY_MAX)),
                    pipes=r.get(m, "pipes", path, r.integer(1, CAPACITY_MAX)))


def _ports(r: Reader, v: Any, path: Path, eswitch: Eswitch) -> Tuple[Port, ...]:
    m = _named_mapping(r, v, path, "port")
    out: List[Port] = []
    ids: Dict[int, str] = {}
    ifaces: Dict[str, str] = {}
    for name, spec in m.items():
        p = path + (name,)
        r.name(name, p)
        s = r.mapping(spec, p, ("id", "iface", "rep_iface", "devargs", "pci", "of", "pair"),
                      required=("id",))
        port = Port(name=name, id=r.get(s, "id", p, r.integer(0, 15)),
                    iface=r.get(s, "iface", p, r.name), rep_iface=r.get(s, "rep_iface", p, r.name),
                    devargs=r.get(s, "devargs", p, _devargs(r)), pci=r.get(s, "pci", p, _pci(r)),
                    of=r.get(s, "of", p, r.name), pair=r.get(s, "pair", p, r.name))
        if port.id is not None:
            if port.id in ids:
                r.error(p + ("id",), "port id %d is already used by port %r" % (port.id, ids[port.id]))
            ids[port.id] = name
        for key in ("iface", "rep_iface"):
            iface = getattr(port, key)
            if iface is not None:
                if iface in ifaces:
                    r.error(p + (key,), "interface %r is already used by %s" % (iface, ifaces[iface]))
                ifaces[iface] = "%s.%s" % (name, key)
        if eswitch.driver == "softdoca" and (port.iface is None or port.rep_iface is None):
            r.error(p, "softdoca needs both iface and rep_iface for every port")
        if eswitch.driver == "doca" and s.get("pci") is None:
            r.error(p, "doca needs pci for every port (the PCI address of the function; for a "
                    "representor, of the function it represents)")
        out.append(port)
    names = {p.name for p in out}
    for port in out:
        if port.pair is not None and (port.pair not in names or port.pair == port.name):
            r.error(path + (port.name, "pair"), "%r is not another port of dpu.ports (%s)"
                    % (port.pair, ", ".join(sorted(names - {port.name}))))
        elif port.pair is not None and eswitch.mode != "vnf":
            r.error(path + (port.name, "pair"), "ports pair in vnf mode only (dpu.eswitch.mode is %s)"
                    % eswitch.mode)
    _representors(r, path, out, eswitch)
    return tuple(out)


def _pci(r: Reader) -> Callable[[Any, Path], Optional[str]]:
    def conv(v: Any, path: Path) -> Optional[str]:
        s = r.string(v, path)
        if s is not None and not eswitch_ports.PCI_RE.match(s):
            r.error(path, "%r is not a PCI address like \"0000:03:00.0\" or \"03:00.0\"" % s)
            return None
        return s
    return conv


def _devargs(r: Reader) -> Callable[[Any, Path], Optional[str]]:
    def conv(v: Any, path: Path) -> Optional[str]:
        s = r.string(v, path)
        if s is not None and eswitch_ports.PCI_IN_TEXT_RE.search(s):
            # DOCA probes the device it opened by address; devargs naming one are refused
            r.error(path, "%r names a PCI address: give it in pci, and only the probe arguments "
                    "(such as dv_flow_en=2) here" % s)
            return None
        return s
    return conv


def _representors(r: Reader, path: Path, ports: List[Port], eswitch: Eswitch) -> None:
    """`of` names a device port; PCI addresses are unique among the devices, and among the
    representors of one device (a representor's address is its host-side function's)."""
    by_name = {p.name: p for p in ports}
    seen: Dict[Tuple[Optional[str], str], str] = {}
    for port in ports:
        p = path + (port.name,)
        if port.of is not None:
            dev = by_name.get(port.of)
            if dev is None:
                r.error(p + ("of",), "unknown port %r (not in dpu.ports)" % port.of)
            elif dev.name == port.name:
                r.error(p + ("of",), "a port cannot be its own representor")
            elif dev.of is not None:
                r.error(p + ("of",), "port %r is itself a representor (of %r): `of` must name a "
                        "device port" % (dev.name, dev.of))
            if eswitch.driver == "doca" and port.devargs is not None:
                r.error(p + ("devargs",), "a representor is probed with its device: give devargs "
                        "to dpu.ports.%s" % port.of)
        if port.pci is not None:
            key = (port.of, eswitch_ports.pci_key(port.pci))
            if key in seen:
                r.error(p + ("pci",), "PCI address %s is already used by port %r%s"
                        % (port.pci, seen[key], "" if port.of is None else
                           " (both represent functions of %r)" % port.of))
            seen[key] = port.name


def _named_mapping(r: Reader, v: Any, path: Path, what: str) -> Dict[str, Any]:
    if v is None:
        return {}  # reported as missing by the parent when required
    if not isinstance(v, dict) or not v:
        r.error(path, "must be a mapping of %s name to %s, with at least one entry" % (what, what))
        return {}
    return v


def _bridges(r: Reader, v: Any, path: Path, port_names: set) -> Tuple[Bridge, ...]:
    out: List[Bridge] = []
    owner: Dict[str, str] = {}
    for name, spec in _named_mapping(r, v, path, "bridge").items():
        p = path + (name,)
        r.name(name, p)
        s = r.mapping(spec, p, ("ports", "internal"), required=("ports",))
        ports = []
        for i, port in enumerate(r.seq(s.get("ports"), p + ("ports",))):
            pp = p + ("ports", i)
            if r.name(port, pp) is None:
                continue
            if port not in port_names:
                r.error(pp, "unknown port %r (not in dpu.ports)" % port)
            elif port in owner:
                r.error(pp, "port %r is already on bridge %r" % (port, owner[port]))
            owner[port] = name
            ports.append(port)
        internal = []
        im = _named_mapping(r, s.get("internal"), p + ("internal",), "internal port")
        for iname, ispec in im.items():
            ip_path = p + ("internal", iname)
            r.name(iname, ip_path)
            if iname in port_names or iname in owner:
                r.error(ip_path, "internal port %r clashes with another port" % iname)
            owner[iname] = name
            if isinstance(ispec, dict):
                sm = r.mapping(ispec, ip_path, ("ip", "ip6", "mac"), required=("ip",))
                ip = r.get(sm, "ip", ip_path, lambda x, pp: r.ipv4_net(x, pp, host_bits_ok=True))
                ip6 = r.get(sm, "ip6", ip_path, r.ipv6_iface)
                mac = r.get(sm, "mac", ip_path, r.mac)
            else:
                ip, ip6, mac = r.ipv4_net(ispec, ip_path, host_bits_ok=True), None, None
            internal.append(InternalPort(name=iname, ip=ip, mac=mac, ip6=ip6))
        out.append(Bridge(name=name, ports=tuple(ports), internal=tuple(internal)))
    return tuple(out)


def _patches(r: Reader, v: Any, path: Path, bridges: set) -> Tuple[Tuple[str, str], ...]:
    out = []
    for i, pair in enumerate(r.seq(v, path)):
        p = path + (i,)
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            r.error(p, "a patch is a pair of bridge names like [ovsbr1, ovsbr2]")
            continue
        a, b = pair
        for j, br in enumerate(pair):
            if br not in bridges:
                r.error(p + (j,), "unknown bridge %r" % br)
        if a == b:
            r.error(p, "a patch joins two different bridges")
        elif (a, b) in out or (b, a) in out:
            r.error(p, "duplicate patch between %r and %r" % (a, b))
        else:
            out.append((a, b))
    return tuple(out)


def _routes(r: Reader, v: Any, path: Path, port_names: set, bridge_of: dict,
            connected: Callable[[str, str], bool]) -> Tuple[Route, ...]:
    out: List[Route] = []
    seen: Dict[Tuple[str, str], int] = {}
    for i, spec in enumerate(r.seq(v, path)):
        p = path + (i,)
        s = r.mapping(spec, p, ("from", "to", "dst"), required=("from", "to"))
        src = r.get(s, "from", p, r.name)
        dst_port = r.get(s, "to", p, r.name)
        dst = r.get(s, "dst", p, r.ip_net, netaddr.IPNetwork("0.0.0.0/0"))
        families = (4, 6) if s.get("dst") is None else (dst.version,) if dst is not None else ()
        ok = True
        for side, port in (("from", src), ("to", dst_port)):
            if port is not None and port not in port_names:
                r.error(p + (side,), "unknown port %r (not in dpu.ports)" % port)
                ok = False
            elif port is not None and port not in bridge_of:
                r.error(p + (side,), "port %r is on no OVS bridge" % port)
                ok = False
        if src is None or dst_port is None or dst is None or not ok:
            continue
        if src == dst_port:
            r.error(p, "a route from a port back to itself")
            continue
        if not connected(src, dst_port):
            r.error(p, "ports %r and %r are on bridges with no patch between them (ovs.patches)"
                    % (src, dst_port))
            continue
        # a route without dst holds both families' /0
        keys = [(src, str(dst.cidr))] + ([(src, "::/0")] if families == (4, 6) else [])
        dup = [k for k in keys if k in seen]
        if dup:
            r.error(p, "route for %s from %r duplicates routes[%d]" % (dup[0][1], src, seen[dup[0]]))
            continue
        seen.update((k, i) for k in keys)
        out.append(Route(src_port=src, dst_port=dst_port, dst=dst.cidr, families=families))
    return tuple(out)


def _endpoint(r: Reader, v: Any, path: Path, default_port: int, api: bool,
              also: Tuple[str, ...] = ()) -> Endpoint:
    """`also`: keys of the same mapping that another reader takes (the OpenFlow role)."""
    allowed = ("host", "port", "socket", "token_file") if api else ("host", "port")
    m = r.mapping(v, path, tuple(allowed) + also)
    host = r.get(m, "host", path, r.string, "127.0.0.1")
    if host is not None:
        try:
            netaddr.IPAddress(host)
        except (netaddr.AddrFormatError, ValueError):
            r.error(path + ("host",), "%r is not an IP address" % host)
    return Endpoint(host=host, port=r.get(m, "port", path, r.integer(1, 65535), default_port),
                    socket=r.get(m, "socket", path, r.string) if api else None,
                    token_file=r.get(m, "token_file", path, r.string) if api else None)


def _services(r: Reader, v: Any, path: Path, port_names: set, bridge_of: dict,
              connected: Callable[[str, str], bool]) -> Tuple[Service, ...]:
    items = r.seq(v, path)
    if v is not None and isinstance(v, list) and not items:
        r.error(path, "at least one service is required")
    out: List[Service] = []
    names: Dict[str, int] = {}
    listeners: Dict[Tuple[str, str, int], int] = {}
    bucket_meters = 0
    for i, spec in enumerate(items):
        p = path + (i,)
        s = r.mapping(spec, p, ("name", "vip", "vip6", "vip_mac", "protocol", "protocols", "port", "ingress",
                                "egress", "policy", "backends", "health", "limits"),
                      required=("name", "vip_mac", "port", "ingress", "egress", "backends"))
        name = r.get(s, "name", p, r.name)
        vip = r.get(s, "vip", p, r.ipv4_only, None)
        vip6 = r.get(s, "vip6", p, r.ipv6, None)
        if isinstance(spec, dict) and spec.get("vip") is None and spec.get("vip6") is None:
            r.error(p, "a service needs a VIP: vip (IPv4), vip6 (IPv6) or both")
        vip_mac = r.get(s, "vip_mac", p, r.mac)
        protocols = _protocols(r, s, p)
        l4port = r.get(s, "port", p, r.integer(1, 65535))
        ports = _service_ports(r, s, p, port_names, bridge_of, connected)
        policy = _policy(r, s.get("policy"), p + ("policy",))
        backends = _backends(r, s.get("backends"), p + ("backends",))
        health = _health(r, s.get("health"), p + ("health",))
        limits = _limits(r, s.get("limits"), p + ("limits",))
        if name is not None:
            if name in names:
                r.error(p + ("name",), "duplicate service name %r (also services[%d])" % (name, names[name]))
            names[name] = i
        if l4port is not None and protocols:
            for addr in (a for a in (vip, vip6) if a is not None):
                for proto in protocols:
                    key = (str(addr), proto, l4port)
                    if key in listeners:
                        r.error(p, "%s %s/%d is already served by services[%d]" % (addr, proto, l4port,
                                                                                   listeners[key]))
                    listeners[key] = i
        if policy is not None and backends:
            _check_capacity(r, p, policy, backends)
        _check_health_addresses(r, p, health, backends)
        ingress, egress = ports["ingress"], ports["egress"]
        if (name is None or (vip is None and vip6 is None) or vip_mac is None or not protocols
                or l4port is None or ingress is None or egress is None or policy is None or not backends
                or limits is None):
            continue
        out.append(Service(name=name, vip=vip, vip6=vip6, vip_mac=vip_mac, protocols=protocols, port=l4port,
                           ingress=ingress, egress=egress, policy=policy,
                           backends=tuple(backends), health=health, limits=limits))
        if limits.bucket is not None:
            bucket_meters += policy.buckets * len(out[-1].families)
            if bucket_meters > ESWITCH_ENTRY_METERS:
                r.error(p + ("limits", "per_bucket_pps"),
                        "per-bucket limits need one meter per bucket and address family: %d in all with"
                        " this service, past the eSwitch's %d (lower policy.bits, or limit the service"
                        " as a whole with pps)" % (bucket_meters, ESWITCH_ENTRY_METERS))
    return tuple(out)


def _limits(r: Reader, v: Any, path: Path) -> Optional[Limits]:
    """`limits: {pps, burst, per_bucket_pps, per_bucket_burst}`; None: the mapping has errors."""
    if v is None:
        return Limits()
    m = r.mapping(v, path, ("pps", "burst", "per_bucket_pps", "per_bucket_burst"))
    keys = ("pps", "burst", "per_bucket_pps", "per_bucket_burst")
    rate = r.integer(1, MAX_PPS)
    vals = {k: r.get(m, k, path, rate, None) for k in keys}
    bad = any(k not in keys for k in m)
    for k in keys:
        if k in m and vals[k] is None:
            if m[k] is None:
                r.error(path + (k,), "must be a whole number of packets (at least 1), got nothing")
            bad = True
    for burst, pps in (("burst", "pps"), ("per_bucket_burst", "per_bucket_pps")):
        if burst in m and pps not in m:
            r.error(path + (burst,), "a burst needs its rate: set %s too" % pps)
            bad = True
    if isinstance(v, dict) and not v:
        r.error(path, "limits needs pps and/or per_bucket_pps (or leave limits out)")
        bad = True
    return None if bad else Limits(**vals)


def _protocols(r: Reader, s: Dict[str, Any], p: Path) -> Tuple[str, ...]:
    """`protocols: [udp, tcp]`, or the older single `protocol: udp` (an alias); default udp."""
    if "protocol" in s and "protocols" in s:
        r.error(p + ("protocol",), "give either protocol or protocols, not both (protocols: [udp, tcp])")
        return ()
    if "protocols" not in s:
        one = r.get(s, "protocol", p, r.choice(tuple(PROTOCOLS)), "udp")
        return (one,) if one is not None else ()
    # canonical order (udp, tcp): the fleet's store holds a set, and equal intents must compare equal
    return tuple(sorted(_choices(r, s, "protocols", p, tuple(PROTOCOLS), ()), key=list(PROTOCOLS).index))


def _check_health_addresses(r: Reader, p: Path, health: Health, backends: List[Backend]) -> None:
    """Probes over a family need every backend to have an address in it."""
    if not health.enabled:
        return
    for fam in health.families:
        for j, b in enumerate(backends):
            if (b.ip if fam == 4 else b.ip6) is None:
                r.error(p + ("backends", j), "health probes over IPv%d need %s here (health.families)"
                        % (fam, "ip" if fam == 4 else "ip6"))


def _service_ports(r: Reader, s: Dict[str, Any], p: Path, port_names: set, bridge_of: dict,
                   connected: Callable[[str, str], bool]) -> Dict[str, Optional[str]]:
    """A service's ingress and egress: known ports, on bridges, different, connected."""
    ports: Dict[str, Optional[str]] = {}
    for key in ("ingress", "egress"):
        port = r.get(s, key, p, r.name)
        if port is not None and port not in port_names:
            r.error(p + (key,), "unknown port %r (not in dpu.ports)" % port)
            port = None
        elif port is not None and port not in bridge_of:
            r.error(p + (key,), "port %r is on no OVS bridge" % port)
            port = None
        ports[key] = port
    if ports["ingress"] and ports["egress"]:
        if ports["ingress"] == ports["egress"]:
            r.error(p + ("egress",), "egress must differ from ingress")
        elif not connected(ports["ingress"], ports["egress"]):
            r.error(p + ("egress",), "ingress %r and egress %r are on bridges with no patch "
                    "between them (add the pair to ovs.patches)" % (ports["ingress"], ports["egress"]))
    return ports


def _check_capacity(r: Reader, p: Path, policy: Policy, backends: List[Backend]) -> None:
    """The bucket table must hold every backend with weight > 0, and one must exist."""
    active = [b for b in backends if b.weight > 0]
    if not active:
        r.error(p + ("backends",), "every backend has weight 0: nothing could serve")
    elif policy.kind != "maglev" and len(active) > policy.buckets:
        r.error(p + ("policy", "bits"), "%d bucket(s) cannot hold %d backends with weight > 0;"
                " raise bits to at least %d" % (policy.buckets, len(active),
                                                (len(active) - 1).bit_length()))
    if policy.kind == "maglev" and len(active) > policy.buckets:
        r.error(p + ("policy", "bits"), "a maglev table of %d buckets cannot hold %d backends"
                % (policy.buckets, len(active)))


def _seconds(lo: float, hi: float, r: "Reader") -> Callable[[Any, Path], Optional[float]]:
    def conv(v: Any, path: Path) -> Optional[float]:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            r.error(path, "must be a number of seconds between %g and %g, got %r" % (lo, hi, v))
            return None
        return float(v)
    return conv


def _health(r: Reader, v: Any, path: Path) -> Health:
    if v is None:
        return Health()
    m = r.mapping(v, path, ("enabled", "query", "qtype", "expect", "interval", "timeout", "rise",
                            "fall", "source", "source6", "protocols", "families"))
    d = Health()
    h = Health(enabled=r.get(m, "enabled", path, r.boolean, True),
               query=r.get(m, "query", path, r.string, d.query),
               qtype=r.get(m, "qtype", path, r.choice(("A", "AAAA", "TXT", "SOA", "NS")), d.qtype),
               expect=r.get(m, "expect", path, r.string, None),
               interval=r.get(m, "interval", path, _seconds(0.05, 3600, r), d.interval),
               timeout=r.get(m, "timeout", path, _seconds(0.01, 60, r), d.timeout),
               rise=r.get(m, "rise", path, r.integer(1, 100), d.rise),
               fall=r.get(m, "fall", path, r.integer(1, 100), d.fall),
               source=r.get(m, "source", path, r.ipv4_only, None),
               source6=r.get(m, "source6", path, r.ipv6, None),
               protocols=_choices(r, m, "protocols", path, tuple(PROTOCOLS), d.protocols),
               families=tuple(int(f[-1]) for f in _choices(r, m, "families", path, ("ipv4", "ipv6"), ())))
    if h.timeout is not None and h.interval is not None and h.timeout > h.interval:
        r.error(path + ("timeout",), "timeout %gs exceeds interval %gs: probes would overlap"
                % (h.timeout, h.interval))
    return h


def _choices(r: Reader, m: Dict[str, Any], key: str, path: Path, options: Tuple[str, ...],
             default: Tuple[str, ...]) -> Tuple[str, ...]:
    """A non-empty list of distinct options; the default when absent or bad (the error is kept)."""
    if key not in m or m[key] is None:
        return default
    items = m[key]
    if not isinstance(items, list) or not items:
        r.error(path + (key,), "must be a non-empty list of %s, got %r" % (", ".join(options), items))
        return default
    out: List[str] = []
    for j, item in enumerate(items):
        if item not in options:
            r.error(path + (key, j), "must be one of %s, got %r" % (", ".join(options), item))
        elif item in out:
            r.error(path + (key, j), "%s is listed twice" % item)
        else:
            out.append(item)
    return tuple(out) if len(out) == len(items) else default


def _policy(r: Reader, v: Any, path: Path) -> Optional[Policy]:
    m = r.mapping(v, path, ("kind", "bits"))
    kind = r.get(m, "kind", path, r.choice(POLICIES), "src-ip-bits")
    bits = r.get(m, "bits", path, r.integer(0, MAX_BITS), 1)
    if kind is None or bits is None:
        return None
    return Policy(kind=kind, bits=bits)


def _backends(r: Reader, v: Any, path: Path) -> List[Backend]:
    items = r.seq(v, path)
    if isinstance(v, list) and not items:
        r.error(path, "a service needs at least one backend")
    out: List[Backend] = []
    seen: Dict[str, Dict[str, int]] = {"name": {}, "ip": {}, "ip6": {}, "mac": {}}
    for i, spec in enumerate(items):
        p = path + (i,)
        s = r.mapping(spec, p, ("name", "ip", "ip6", "mac", "weight"), required=("name", "mac"))
        if isinstance(spec, dict) and spec.get("ip") is None and spec.get("ip6") is None:
            r.error(p, "a backend needs an address: ip (IPv4), ip6 (IPv6) or both")
        b = Backend(name=r.get(s, "name", p, r.name), ip=r.get(s, "ip", p, r.ipv4_only),
                    ip6=r.get(s, "ip6", p, r.ipv6),
                    mac=r.get(s, "mac", p, r.mac), weight=r.get(s, "weight", p, r.integer(0, 1000), 1))
        bad = not b.addresses
        for key in ("name", "ip", "ip6", "mac"):
            val = getattr(b, key)
            if val is None:
                bad = bad or key in ("name", "mac") or key in s
                continue
            if str(val) in seen[key]:
                r.error(p + (key,), "duplicate backend %s %s (also backends[%d])"
                        % (key, val, seen[key][str(val)]))
                bad = True
            seen[key][str(val)] = i
        if b.weight is None:
            bad = True
        if not bad:
            out.append(b)
    return out


# ---------------------------------------------------------------- back to data


def to_data(cfg: Config) -> Dict[str, Any]:
    """The config as plain YAML-shaped data. Runtime edits (API backend add, weight)
    are made on this and parsed again, so they pass the very same validation."""
    def health(h: Health) -> Dict[str, Any]:
        out = {k: getattr(h, k) for k in ("enabled", "query", "qtype", "interval", "timeout", "rise",
                                          "fall")}
        if h.expect is not None:
            out["expect"] = h.expect
        for k in ("source", "source6"):
            if getattr(h, k) is not None:
                out[k] = str(getattr(h, k))
        if h.protocols != Health().protocols:
            out["protocols"] = list(h.protocols)
        if h.families:
            out["families"] = ["ipv%d" % f for f in h.families]
        return out

    def port(p: Port) -> Dict[str, Any]:
        return {k: v for k, v in (("id", p.id), ("iface", p.iface), ("rep_iface", p.rep_iface),
                                  ("devargs", p.devargs), ("pci", p.pci), ("of", p.of), ("pair", p.pair))
                if v is not None}

    def internal(i: InternalPort) -> Any:
        if not i.mac and i.ip6 is None:
            return str(i.ip)
        out = {"ip": str(i.ip)}
        if i.ip6 is not None:
            out["ip6"] = str(i.ip6)
        if i.mac:
            out["mac"] = i.mac
        return out

    def endpoint(e: Endpoint, api: bool) -> Dict[str, Any]:
        out: Dict[str, Any] = {"host": e.host, "port": e.port}
        if api and e.socket:
            out["socket"] = e.socket
        if api and e.token_file:
            out["token_file"] = e.token_file
        return out

    e = cfg.eswitch
    capacity = {k: getattr(e.capacity, k) for k in ("entries_per_pipe", "pipes")
                if getattr(e.capacity, k) is not None}
    return {
        "dpu": dict({"name": cfg.dpu_name,
                     "eswitch": {"driver": e.driver, "mode": e.mode, "mirror_routes": e.mirror_routes,
                                 "socket": e.socket, "eal_args": list(e.eal_args), "busy_poll": e.busy_poll,
                                 **({"idle_max_us": e.idle_max_us} if e.idle_max_us else {}),
                                 "multiport": e.multiport, "connect_timeout": e.connect_timeout,
                                 **({"capacity": capacity} if capacity else {})},
                     "ports": {p.name: port(p) for p in cfg.ports}},
                    **({"state_dir": cfg.state_dir} if cfg.state_dir else {})),
        "ovs": {"db": cfg.ovs_db, "table_miss": cfg.table_miss, "patches": [list(p) for p in cfg.patches],
                **({"table": cfg.ovs_table} if cfg.ovs_table else {}),
                "bridges": {b.name: dict({"ports": list(b.ports)},
                                         **({"internal": {i.name: internal(i) for i in b.internal}}
                                            if b.internal else {}))
                            for b in cfg.bridges}},
        "routes": [dict({"from": r.src_port, "to": r.dst_port},
                        **({"dst": str(r.dst)} if r.families != (4, 6) else {})) for r in cfg.routes],
        "controller": {"openflow": dict(endpoint(cfg.openflow, False), **role_plain(cfg.role)),
                       "api": endpoint(cfg.api, True),
                       "metrics": endpoint(cfg.metrics, False)},
        **({"fleet": dict({"remotes": list(cfg.fleet.remotes), "connect_timeout": cfg.fleet.connect_timeout,
                           "heartbeat": cfg.fleet.heartbeat},
                          **({"bgp": bgp_plain(cfg.fleet.bgp)} if cfg.fleet.bgp else {}))}
           if cfg.fleet is not None else {}),
        "services": [service_plain(s, health(s.health)) for s in cfg.services],
    }


def role_plain(role: OpenflowRole) -> Dict[str, Any]:
    if role.role == "equal":
        return {}
    return {"role": role.role, "generation_id": role.generation_id}


def service_plain(s: Service, health: Dict[str, Any]) -> Dict[str, Any]:
    """A service as plain data: one transport as `protocol` (the older key, still what most
    files say), several as `protocols`; absent addresses are left out."""
    out: Dict[str, Any] = {"name": s.name}
    if s.vip is not None:
        out["vip"] = str(s.vip)
    if s.vip6 is not None:
        out["vip6"] = str(s.vip6)
    out["vip_mac"] = s.vip_mac
    if len(s.protocols) == 1:
        out["protocol"] = s.protocols[0]
    else:
        out["protocols"] = list(s.protocols)
    out.update({"port": s.port, "ingress": s.ingress, "egress": s.egress,
                "policy": {"kind": s.policy.kind, "bits": s.policy.bits},
                "backends": [backend_plain(b) for b in s.backends], "health": health})
    limits = {k: getattr(s.limits, k) for k in ("pps", "burst", "per_bucket_pps", "per_bucket_burst")
              if getattr(s.limits, k) is not None}
    if limits:
        out["limits"] = limits
    return out


def backend_plain(b: Backend) -> Dict[str, Any]:
    out: Dict[str, Any] = {"name": b.name}
    if b.ip is not None:
        out["ip"] = str(b.ip)
    if b.ip6 is not None:
        out["ip6"] = str(b.ip6)
    out.update({"mac": b.mac, "weight": b.weight})
    return out


def bgp_plain(b: Bgp) -> Dict[str, Any]:
    out: Dict[str, Any] = {
        "asn": b.asn, "port": b.port, "peers": [{"address": str(p.address), "asn": p.asn} for p in b.peers],
        "timers": {"keepalive": b.keepalive, "hold": b.hold},
        "bfd": {"interval_ms": b.bfd_interval_ms, "multiplier": b.bfd_multiplier},
        "stale_after": b.stale_after, "drain": {"quiet": b.drain_quiet, "timeout": b.drain_timeout}}
    for k in ("router_id", "pathspace", "med", "stale_med"):
        if getattr(b, k) is not None:
            out[k] = str(getattr(b, k)) if k == "router_id" else getattr(b, k)
    return out


def from_plain(data: Dict[str, Any], base_dir: str = ".", source: str = "<fleet>") -> Config:
    """Like from_data, for plain JSON-shaped data (dicts, lists, scalars) without a YAML
    round trip: no line numbers, ~5x faster. A fleet validates every edit this way against
    each DPU's facts, inside the store transaction."""
    r = Reader(yamlsrc.Located(data, {}))
    out = _parse(r, data, base_dir)
    if r.problems or out is None:
        raise ConfigError(r.problems or [("<top>", "the file is empty", 0)], source=source)
    return out


def from_data(data: Dict[str, Any], base_dir: str = ".", source: str = "<api>") -> Config:
    import yaml
    return parse(yaml.safe_dump(data, sort_keys=False), source=source, base_dir=base_dir)

"""Intent -> the two planes: OpenFlow rules per bridge and eSwitch pipes/entries.

Pure code. `plan(cfg)` renders one intent into both planes so that the same
traffic class goes to the same place in each; `diff(old, new)` returns the
ordered change set that moves from one plan to the next make-before-break.

Priorities (higher wins, in both planes):
  ARP_VIP    300       the VIP's ARP and the VIP6's Neighbor Solicitation (nd.py; its second
                       step in table nd.ND_TABLE), answered inside OVS, on the ingress port only
  PATCH_IN   250       frames arriving from a patch port, delivered to the egress port
  SERVICE    200 + m   balancing buckets; m = fixed bits of the bucket match, so
                       during an update a finer new rule wins over a coarser old one
  ROUTE      100 + len representor routes, longest prefix first
  ROUTE6      50 + len IPv6 representor routes (/0../128 stay below SERVICE; the families'
                       rules never overlap, so the bands may)
  GUARD       40       VIP / VIP-MAC frames no rule claims: dropped, miss_other
  PATCH_DROP  30       anything else from a patch port
  MGMT        20       ARP and management-port switching when table_miss is drop
  TABLE_MISS   0

Rate limits (a service's `limits`) are meters in both planes: a bucket's own meter (per-bucket
limits) and/or the service's shared one. In OVS a balancing flow carries the bucket's meter, or the
service's when that is the only one; with both it goes on to table METER_TABLE, where the service's
meter and the output are. In the eSwitch a meter only colours the packet: the bucket pipe forwards
to a drop stage that drops red packets (counting them per bucket) and passes the rest on, to the
port or to the service's meter pipe and its own drop stage (DOCA's meter chain).

Tables: the numbers above are relative to `ovs.table` (default 0), XenoFlow's first table: with
another app owning the tables before it, every rule and goto_table moves up by that much
(`at_first_table`), and the other app sends what XenoFlow should see to it with a goto_table.
"""

from __future__ import annotations

import ipaddress
import zlib
from array import array
from dataclasses import dataclass, replace
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from . import buckets, nd
from .config import PROTOCOLS, Config, Route, Service

ARP_VIP, PATCH_IN, SERVICE, ROUTE, ROUTE6, GUARD, PATCH_DROP, MGMT, TABLE_MISS = \
    300, 250, 200, 100, 50, 40, 30, 20, 0

METER_TABLE = 2        # OVS: the service-wide meter when a bucket's meter comes first
COLOR_RED = 2          # the glue's colour of a packet past its meter's rate (green 0, yellow 1)
# OpenFlow meter ids of ours: a service tag (13 bits), the family (1 bit), the meter's index
# (0: the service's, 1 + b: bucket b's). Ids below 1 << 18 are never ours: other controllers'.
METER_TAG_SHIFT, METER_TAGS = 18, (1 << 13) - 1

ETH_IP, ETH_ARP, ETH_IPV6 = 0x0800, 0x0806, 0x86DD
ETH_OF_FAMILY = {4: ETH_IP, 6: ETH_IPV6}
IPPROTO_ICMPV6, ND_SOLICIT, ND_ADVERT = 58, 135, 136
FULL128, FULL32, FULL16, FULL8 = (1 << 128) - 1, 0xFFFFFFFF, 0xFFFF, 0xFF

# Cookies: the top 16 bits say "ours" (ASCII "XF"), the next 8 the rule kind,
# the low 32 a hash of the owner (service, route, bridge). Ownership is a
# cookie/mask match, so foreign flows on the bridge are never touched.
COOKIE_BASE = 0x5846 << 48
COOKIE_MASK = 0xFFFF << 48
KINDS = ("service", "route", "arp", "patch_in", "guard", "patch_drop", "mgmt", "table_miss")
# Kinds whose IP packets (IPv4 and IPv6), seen by OVS while an eSwitch is configured, are fallback.
FALLBACK_KINDS = ("service", "route")
MISS_OTHER_KINDS = ("arp", "guard", "patch_drop", "mgmt", "table_miss")

# Canonical match field order (OXM prerequisites come first).
FIELD_ORDER = ("in_port", "vlan_vid", "eth_dst", "eth_type", "arp_op", "arp_tpa", "ip_proto",
               "ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst", "icmpv6_type", "ipv6_nd_target",
               "udp_src", "udp_dst", "tcp_src", "tcp_dst")

Match = Tuple[Tuple[str, Any], ...]   # (field, value) or (field, (value, mask))

# OXM vlan_vid 0 (OFPVID_NONE): no 802.1Q tag. The eSwitch's entries match the outer
# ethertype, so a tagged frame misses there; OpenFlow's eth_type looks past the tag.
# The classes both planes carry (services, routes) are therefore untagged in OVS too,
# or a tagged query would be balanced on the Arm and counted as fallback.
UNTAGGED = 0
Action = Tuple[Any, ...]


def cookie(kind: str, owner: str) -> int:
    return COOKIE_BASE | (KINDS.index(kind) + 1) << 32 | zlib.crc32(owner.encode())


def is_ours(c: int) -> bool:
    return c & COOKIE_MASK == COOKIE_BASE


def kind_of_cookie(c: int) -> Optional[str]:
    """The rule kind `cookie()` wrote into a cookie of ours; None for a foreign one."""
    if not is_ours(c):
        return None
    index = c >> 32 & 0xFF
    return KINDS[index - 1] if 0 < index <= len(KINDS) else None


def _match(**fields: Any) -> Match:
    return tuple((f, fields[f]) for f in FIELD_ORDER if fields.get(f) is not None)


@dataclass(frozen=True)
class Flow:
    bridge: str
    priority: int
    match: Match
    actions: Tuple[Action, ...]
    kind: str
    owner: str
    backend: Optional[str] = None
    table: int = 0

    @property
    def key(self) -> Tuple[str, int, int, Match]:
        return (self.bridge, self.table, self.priority, self.match)

    @property
    def cookie(self) -> int:
        return cookie(self.kind, self.owner)


@dataclass(frozen=True)
class Meter:
    """A token bucket (packets/s, burst in packets): an OpenFlow meter with one drop band on a
    bridge, or an eSwitch shared meter on a port (the service-wide limit; per-bucket meters
    in the eSwitch belong to their entries, `Entry.meter`)."""
    plane: str                  # ovs | eswitch
    where: str                  # bridge | port
    meter_id: int
    pps: int
    burst: int
    owner: str
    scope: str                  # service | bucket
    bucket: Optional[int] = None
    family: Optional[int] = None

    @property
    def key(self) -> Tuple[str, str, int]:
        return (self.plane, self.where, self.meter_id)


def meter_id(tag: int, family: int, index: int) -> int:
    return tag << METER_TAG_SHIFT | (1 << 17 if family == 6 else 0) | index


def is_our_meter(mid: int) -> bool:
    return mid >> METER_TAG_SHIFT != 0


def meter_tags(cfg: Config) -> Dict[str, int]:
    """A tag per service, from its name: stable across reloads unless two names collide (then
    the later name in sorted order takes the next free tag; ids then move make-before-break)."""
    taken: Dict[int, str] = {}
    out = {}
    for name in sorted(s.name for s in cfg.services):
        tag = zlib.crc32(name.encode()) % METER_TAGS + 1
        while tag in taken:
            tag = tag % METER_TAGS + 1
        taken[tag] = name
        out[name] = tag
    return out


@dataclass(frozen=True)
class Pipe:
    """A service's basic pipe, one per address family: one mask for all entries, action
    set-dst-MAC, fwd egress. An IPv6 pipe whose mask names no IPv6 field (the source-port
    policy) carries ("l3", 6) in its mask: the glue's union selector for the family.

    With limits, a service also has stage pipes: the bucket pipe meters (`meter` "entry": each
    entry its own meter; "shared": entries name a shared meter) and forwards to `fwd_pipe`,
    a drop stage (`drop`: its entries match red packets and drop them; the rest go on at
    `miss`); a match-all "shared" pipe holds the service's meter after the buckets' stage."""
    port: str
    name: str
    mask: Tuple[Tuple[str, int], ...]
    fwd_port: str
    nr_entries: int
    owner: str
    meter: str = ""
    fwd_pipe: Optional[str] = None
    drop: bool = False
    miss: Tuple[str, ...] = ()      # ("port", name) | ("pipe", name)

    @property
    def key(self) -> Tuple[str, str]:
        return (self.port, self.name)


@dataclass(frozen=True)
class Entry:
    """An eSwitch entry: in the port's root control pipe (`pipe == "root"`) with its
    own mask and priority, or a bucket of a service's basic pipe (values only)."""
    port: str
    pipe: str
    match: Tuple[Tuple[str, int, int], ...]   # (field, value, mask); mask is the pipe's for buckets
    kind: str                                 # dispatch | route | bucket | drop | meter
    owner: str
    fwd: Tuple[str, ...] = ()                 # ("pipe", name) | ("port", name) | ("drop",)
    priority: int = 0
    dst_mac: Optional[str] = None
    backend: Optional[str] = None
    bucket: Optional[int] = None
    meter: Optional[Tuple[int, int]] = None   # the entry's own meter: (packets/s, burst)
    shared_meter: Optional[int] = None        # the shared meter (its id) the entry's packets meet

    @property
    def key(self) -> Tuple[str, str, Tuple[Tuple[str, int, int], ...]]:
        return (self.port, self.pipe, self.match)

    @property
    def cookie(self) -> int:
        return cookie("route" if self.kind == "route" else "service", self.owner)


Listener = Tuple[int, str]    # (address family 4|6, transport udp|tcp)


class ServicePlan:
    """One service's part of a plan: its bucket table, the merged terms OVS holds for it
    (once per listener: family x transport), and its eSwitch pipes (one per family) and
    dispatch entries (one per listener). Every listener shares the one bucket table.

    The per-term flows and per-bucket entries are generated on demand, never stored: at
    2^16 buckets a service is ~100 000 rule objects (~100 MB of Python objects), and a
    controller holds the plan in force for its whole life. Terms are kept in arrays.
    Immutable: plans rendered from one another share the parts of unchanged services
    (`plan(..., reuse=)`), and `diff` skips a part both plans share."""

    __slots__ = ("svc", "exclude", "table", "macs", "shape", "ingress_br", "first_hop", "tag",
                 "_values", "_masks", "_names", "pipes", "dispatches", "_parts", "_src_is_port",
                 "stage_pipes", "stage_entries", "first_table")

    def __init__(self, cfg: Config, svc: Service, exclude: Tuple[str, ...], tag: int = 0):
        self.svc = svc
        self.first_table = cfg.ovs_table
        self.exclude = exclude
        self.tag = tag
        self.table = buckets.table(svc, exclude)
        self.macs = {b.name: b.mac for b in svc.backends}
        self.ingress_br = cfg.bridge_of(svc.ingress)
        self.first_hop = _towards(cfg, svc.ingress, svc.egress)[0]
        self._src_is_port = svc.policy.kind == "src-port-bits"
        self._parts = {lis: self._match_parts(lis) for lis in svc.listeners}
        # per-bucket meters need a rule per bucket: merged neighbours would share one meter
        terms = buckets.merge(self.table) if svc.limits.bucket is None else [
            (i, (1 << svc.policy.bits) - 1, name) for i, name in enumerate(self.table)]
        self._values = array("l", (t[0] for t in terms))
        self._masks = array("l", (t[1] for t in terms))
        self._names = tuple(t[2] for t in terms)
        self.pipes: Dict[int, Pipe] = {}
        self.stage_pipes: Tuple[Pipe, ...] = ()
        self.stage_entries: Tuple[Entry, ...] = ()
        self.dispatches: Tuple[Entry, ...] = ()
        if cfg.has_eswitch:
            self.pipes, self.dispatches = _service_pipes(svc, len(self.table))
            self.stage_pipes, self.stage_entries = _stage_pipes(svc, self.pipes, self.service_meter_id)
        # What fixes every rule's key: two parts of one shape hold the same flow keys per
        # term and the same entry keys per bucket, so they differ only in backends (and rates).
        self.shape = (svc.name, svc.vip, svc.vip6, svc.protocols, svc.port, svc.ingress, svc.egress,
                      svc.policy, self.ingress_br, self.first_hop, cfg.has_eswitch, svc.limits.kind, tag,
                      cfg.ovs_table)

    def reusable_for(self, cfg: Config, svc: Service, exclude: Tuple[str, ...], tag: int = 0) -> bool:
        return (self.svc == svc and self.exclude == exclude and self.ingress_br == cfg.bridge_of(svc.ingress)
                and self.first_hop == _towards(cfg, svc.ingress, svc.egress)[0]
                and bool(self.pipes) == cfg.has_eswitch and self.tag == tag
                and self.first_table == cfg.ovs_table)

    @property
    def service_meter_id(self) -> int:
        return meter_id(self.tag, 4, 0)

    def bucket_meter_id(self, family: int, bucket: int) -> int:
        return meter_id(self.tag, family, bucket + 1)

    def ovs_meters(self) -> Iterator[Meter]:
        """The OpenFlow meters the service's flows use, on its ingress bridge."""
        lim, name = self.svc.limits, self.svc.name
        if lim.service:
            yield Meter("ovs", self.ingress_br, self.service_meter_id, lim.service[0], lim.service[1], name,
                        "service")
        if lim.bucket:
            for family in self.svc.families:
                for i in range(len(self.table)):
                    yield Meter("ovs", self.ingress_br, self.bucket_meter_id(family, i), lim.bucket[0],
                                lim.bucket[1], name, "bucket", bucket=i, family=family)

    def es_meters(self) -> Iterator[Meter]:
        """The eSwitch's shared meter of a service-wide limit (per-bucket meters are entries')."""
        lim = self.svc.limits
        if self.pipes and lim.service:
            yield Meter("eswitch", self.svc.ingress, self.service_meter_id, lim.service[0], lim.service[1],
                        self.svc.name, "service")

    @property
    def identity(self) -> Tuple[Any, ...]:
        return (self.svc, self.exclude, self.shape)

    @property
    def listeners(self) -> Tuple[Listener, ...]:
        return self.svc.listeners

    def terms(self) -> Iterator[Tuple[int, int, str]]:
        return zip(self._values, self._masks, self._names)

    def term_flow(self, listener: Listener, value: int, mask: int, backend: str) -> Flow:
        match_any, head, src, tail = self._parts[listener]
        lim = self.svc.limits
        if not mask:
            match = match_any
        elif self._src_is_port:
            match = head + ((src, (value, mask)),) + tail
        elif listener[0] == 6:
            match = head + ((src, (int_to_ip6(value), int_to_ip6(mask))),) + tail
        else:
            match = head + ((src, (int_to_ip(value), int_to_ip(mask))),) + tail
        actions: Tuple[Action, ...] = (("set_field", "eth_dst", self.macs[backend]),)
        if lim.bucket:   # unmerged terms: the value is the bucket
            actions = (("meter", self.bucket_meter_id(listener[0], value)),) + actions
        elif lim.service:
            actions = (("meter", self.service_meter_id),) + actions
        chained = lim.bucket and lim.service
        actions += ((("goto_table", self.first_table + METER_TABLE),) if chained
                    else (("output", self.first_hop),))
        return Flow(self.ingress_br, SERVICE + bin(mask).count("1"), match, actions,
                    "service", self.svc.name, backend=backend, table=self.first_table)

    def meter_flows(self) -> Iterator[Flow]:
        """With both limits: table METER_TABLE's rule per listener, the service meter and the output."""
        if self.svc.limits.kind == "bucket+service":
            for lis in self.listeners:
                yield Flow(self.ingress_br, SERVICE, self._parts[lis][0],
                           (("meter", self.service_meter_id), ("output", self.first_hop)), "service",
                           self.svc.name, table=self.first_table + METER_TABLE)

    def _match_parts(self, listener: Listener) -> Tuple[Match, Match, str, Match]:
        """The match every term of a listener shares, split around the bucket field: a term
        only adds its (value, mask) there (one tuple to build per flow, not a canonical sort)."""
        svc = self.svc
        family, proto = listener
        fields: Dict[str, Any] = dict(in_port=svc.ingress, vlan_vid=UNTAGGED, eth_type=ETH_OF_FAMILY[family],
                                      ip_proto=PROTOCOLS[proto])
        fields["ipv4_dst" if family == 4 else "ipv6_dst"] = str(svc.vip_of(family))
        fields[proto + "_dst"] = svc.port
        match_any = _match(**fields)
        src = proto + "_src" if self._src_is_port else "ipv%d_src" % family
        fields[src] = (0, 0)
        full = _match(**fields)
        at = [f for f, _ in full].index(src)
        return match_any, full[:at], src, full[at + 1:]

    def flows(self) -> Iterator[Flow]:
        """The balancing flows, one per merged term and listener (OVS's copy of the table)."""
        for lis in self.listeners:
            for v, m, name in self.terms():
                yield self.term_flow(lis, v, m, name)
        yield from self.meter_flows()

    def bucket_entry(self, family: int, i: int, backend: str) -> Entry:
        pipe = self.pipes[family]
        field_, mask = pipe.mask[0]
        lim = self.svc.limits
        return Entry(port=self.svc.ingress, pipe=pipe.name, match=((field_, i, mask),),
                     kind="bucket", owner=self.svc.name, fwd=("port", self.svc.egress),
                     dst_mac=self.macs[backend], backend=backend, bucket=i, meter=lim.bucket,
                     shared_meter=self.service_meter_id if pipe.meter == "shared" else None)

    def entries(self) -> Iterator[Entry]:
        """Each pipe's bucket entries, the drop stages' entries, then the root entries that
        dispatch to them."""
        for family in self.pipes:
            for i, name in enumerate(self.table):
                yield self.bucket_entry(family, i, name)
        yield from self.stage_entries
        yield from self.dispatches

    def flow_count(self) -> int:
        both = self.svc.limits.kind == "bucket+service"
        return len(self._names) * len(self.listeners) + (len(self.listeners) if both else 0)

    def entry_count(self) -> int:
        return ((len(self.table) * len(self.pipes) + len(self.stage_entries) + len(self.dispatches))
                if self.pipes else 0)


class Plan:
    """Both planes' rules for one intent. The per-bucket rules of services live in
    `services` (generated on demand); `flows`, `entries` and `bridge_flows` build them all
    on every call, which costs O(buckets): hot paths use the counts, `cookies()` and the
    iterators instead."""

    __slots__ = ("flat_flows", "flat_pipes", "flat_entries", "_tables", "services")

    def __init__(self, flows: Sequence[Flow] = (), pipes: Sequence[Pipe] = (),
                 entries: Sequence[Entry] = (), tables: Sequence[Tuple[str, buckets.Table]] = (),
                 services: Sequence[ServicePlan] = ()):
        self.flat_flows = tuple(flows)       # bridge base rules, ARP answers, patch rules, routes
        self.flat_pipes = tuple(pipes)
        self.flat_entries = tuple(entries)   # routes' root entries
        self._tables = tuple(tables)
        self.services = tuple(services)

    def __eq__(self, other: object) -> bool:
        """Equal plans program the planes alike: a part is fixed by its service, the backends
        it leaves out and its shape (which carries what it takes from the rest of the config)."""
        if not isinstance(other, Plan):
            return NotImplemented
        return ((self.flat_flows, self.flat_pipes, self.flat_entries, self._tables)
                == (other.flat_flows, other.flat_pipes, other.flat_entries, other._tables)
                and [s.identity for s in self.services] == [s.identity for s in other.services])

    __hash__ = None  # type: ignore[assignment]  # mutable-looking value: compared, never a key

    @property
    def flows(self) -> Tuple[Flow, ...]:
        return tuple(self.iter_flows())

    @property
    def pipes(self) -> Tuple[Pipe, ...]:
        """Every pipe, each after the pipes it forwards to (the order to create them in)."""
        return (tuple(p for s in self.services for p in s.stage_pipes + tuple(s.pipes.values()))
                + self.flat_pipes)

    def meters(self, bridge: Optional[str] = None) -> Iterator[Meter]:
        """The OpenFlow meters (on `bridge`, or all)."""
        for s in self.services:
            if bridge is None or s.ingress_br == bridge:
                yield from s.ovs_meters()

    def es_meters(self, port: Optional[str] = None) -> Iterator[Meter]:
        """The eSwitch's shared meters (on `port`, or all)."""
        for s in self.services:
            if port is None or s.svc.ingress == port:
                yield from s.es_meters()

    @property
    def entries(self) -> Tuple[Entry, ...]:
        return tuple(self.iter_entries())

    @property
    def tables(self) -> Tuple[Tuple[str, buckets.Table], ...]:
        return tuple((s.svc.name, s.table) for s in self.services) + self._tables

    def table(self, service: str) -> buckets.Table:
        return dict(self.tables)[service]

    def bridge_flows(self, bridge: str) -> List[Flow]:
        return list(self.iter_flows(bridge))

    def iter_flows(self, bridge: Optional[str] = None) -> Iterator[Flow]:
        for f in self.flat_flows:
            if bridge is None or f.bridge == bridge:
                yield f
        for s in self.services:
            if bridge is None or s.ingress_br == bridge:
                yield from s.flows()

    def iter_entries(self, port: Optional[str] = None) -> Iterator[Entry]:
        for s in self.services:
            if port is None or s.svc.ingress == port:
                yield from s.entries()
        for e in self.flat_entries:
            if port is None or e.port == port:
                yield e

    def flow_count(self, bridge: Optional[str] = None) -> int:
        return (sum(1 for f in self.flat_flows if bridge is None or f.bridge == bridge)
                + sum(s.flow_count() for s in self.services if bridge is None or s.ingress_br == bridge))

    def entry_count(self, port: Optional[str] = None) -> int:
        return (sum(1 for e in self.flat_entries if port is None or e.port == port)
                + sum(s.entry_count() for s in self.services if port is None or s.svc.ingress == port))

    def cookies(self) -> Iterator[Tuple[int, str, str]]:
        """(cookie, kind, owner) of every rule, once each: O(services + flat rules)."""
        seen = set()
        for f in self.flat_flows:
            if f.cookie not in seen:
                seen.add(f.cookie)
                yield f.cookie, f.kind, f.owner
        for s in self.services:
            c = cookie("service", s.svc.name)
            if c not in seen:
                seen.add(c)
                yield c, "service", s.svc.name


# ---------------------------------------------------------------- planning


def plan(cfg: Config, exclude: Optional[Mapping[str, Iterable[str]]] = None,
         reuse: Optional[Plan] = None) -> Plan:
    """Render the intent. `exclude` maps service -> backends taken out (drain, health).
    `reuse`: a plan rendered before (the one in force); the parts of services whose
    rendering would not change are taken from it as they are, so one backend's drain
    re-renders one service, not every table."""
    exclude = exclude or {}
    tags = meter_tags(cfg)
    before = {s.svc.name: s for s in reuse.services} if reuse is not None else {}
    flows: List[Flow] = []
    parts: List[ServicePlan] = []
    entries: List[Entry] = []
    for br in cfg.bridges:
        flows.extend(_bridge_base_flows(cfg, br.name))
    for svc in cfg.services:
        excl = tuple(sorted(exclude.get(svc.name, ())))
        old = before.get(svc.name)
        tag = tags[svc.name]
        parts.append(old if old is not None and old.reusable_for(cfg, svc, excl, tag)
                     else ServicePlan(cfg, svc, excl, tag))
        flows.extend(_service_flows(cfg, svc))
    for route in cfg.routes:
        flows.extend(_route_flows(cfg, route))
        if cfg.has_eswitch and cfg.eswitch.mirror_routes:
            entries.extend(_route_entries(route))
    return Plan(flows=_dedup(at_first_table(flows, cfg.ovs_table)), entries=entries, services=parts)


def at_first_table(flows: Sequence[Flow], first: int) -> List[Flow]:
    """The rules written for tables 0.. moved to XenoFlow's tables first.. (ovs.table), where
    another app owns the tables before them; goto_table follows."""
    if not first:
        return list(flows)
    return [replace(f, table=f.table + first,
                    actions=tuple(("goto_table", a[1] + first) if a[0] == "goto_table" else a
                                  for a in f.actions))
            for f in flows]


def _dedup(flows: Sequence[Flow]) -> List[Flow]:
    seen: Dict[Any, Flow] = {}
    for f in flows:
        if f.key in seen and seen[f.key].actions != f.actions:
            from .render import to_ofctl  # render imports this module
            raise ValueError("two rules claim the same match with different actions: %s / %s"
                             % (to_ofctl(seen[f.key]), to_ofctl(f)))
        seen.setdefault(f.key, f)
    return list(seen.values())


def _bridge_base_flows(cfg: Config, bridge: str) -> List[Flow]:
    out = []
    miss = ("normal",) if cfg.table_miss == "normal" else ()
    out.append(Flow(bridge, TABLE_MISS, (), (miss,) if miss else (), "table_miss", bridge))
    for a, b in cfg.patches:
        if bridge in (a, b):
            peer = b if bridge == a else a
            out.append(Flow(bridge, PATCH_DROP, _match(in_port=cfg.patch_port(bridge, peer)), (),
                            "patch_drop", bridge))
    if cfg.table_miss == "drop":
        # Without NORMAL as the table miss, ARP (and IPv6's Neighbor Discovery) and the
        # management port still need a switch.
        out.append(Flow(bridge, MGMT, _match(eth_type=ETH_ARP), (("normal",),), "mgmt", bridge))
        for nd_type in (ND_SOLICIT, ND_ADVERT) if _uses_ipv6(cfg) else ():
            out.append(Flow(bridge, MGMT,
                            _match(eth_type=ETH_IPV6, ip_proto=IPPROTO_ICMPV6, icmpv6_type=nd_type),
                            (("normal",),), "mgmt", bridge))
        for ip in cfg.bridge(bridge).internal:
            out.append(Flow(bridge, MGMT, _match(in_port=ip.name), (("normal",),), "mgmt", bridge))
            out.append(Flow(bridge, MGMT, _match(eth_type=ETH_IP, ipv4_dst=str(ip.ip.ip)),
                            (("normal",),), "mgmt", bridge))
            if ip.ip6 is not None:
                out.append(Flow(bridge, MGMT, _match(eth_type=ETH_IPV6, ipv6_dst=str(ip.ip6.ip)),
                                (("normal",),), "mgmt", bridge))
    # Guards: the VIPs' traffic that no rule claims is dropped on every bridge.
    for svc in cfg.services:
        if svc.vip is not None:
            vip = str(svc.vip)
            out.append(Flow(bridge, GUARD, _match(eth_type=ETH_ARP, arp_tpa=vip), (), "guard", svc.name))
            out.append(Flow(bridge, GUARD, _match(eth_type=ETH_IP, ipv4_dst=vip), (), "guard", svc.name))
        if svc.vip6 is not None:
            out.append(Flow(bridge, GUARD, _match(**nd.guard_fields(str(svc.vip6))), (), "guard", svc.name))
            out.append(Flow(bridge, GUARD, _match(eth_type=ETH_IPV6, ipv6_dst=str(svc.vip6)), (), "guard",
                            svc.name))
        out.append(Flow(bridge, GUARD, _match(eth_dst=svc.vip_mac), (), "guard", svc.name))
    return out


def _uses_ipv6(cfg: Config) -> bool:
    """IPv6 VIPs or backend addresses: the management side then needs Neighbor Discovery."""
    return any(s.vip6 is not None or any(b.ip6 is not None for b in s.backends) for s in cfg.services)


def _arp_responder(svc: Service) -> Tuple[Action, ...]:
    vip, mac = str(svc.vip_of(4)), svc.vip_mac
    return (("move", "eth_src", "eth_dst"), ("set_field", "eth_src", mac),
            ("set_field", "arp_op", 2), ("move", "arp_sha", "arp_tha"),
            ("set_field", "arp_sha", mac), ("move", "arp_spa", "arp_tpa"),
            ("set_field", "arp_spa", vip), ("output", "IN_PORT"))


def _towards(cfg: Config, src_port: str, dst_port: str) -> Tuple[str, Optional[str]]:
    """Where a rule on src_port's bridge outputs to reach dst_port: the port itself, or
    the patch port to dst_port's bridge (then also returns that peer bridge)."""
    a, b = cfg.bridge_of(src_port), cfg.bridge_of(dst_port)
    if a == b:
        return dst_port, None
    return cfg.patch_port(a, b), b


def _service_flows(cfg: Config, svc: Service) -> List[Flow]:
    """A service's rules besides its balancing terms (ServicePlan): the VIP's ARP answer
    and, across a patch, delivery to the egress port. Backends shared by services give
    the same patch rule, deduplicated with the bridge rules."""
    ingress_br = cfg.bridge_of(svc.ingress)
    out = []
    if svc.vip is not None:
        out.append(Flow(ingress_br, ARP_VIP, _match(in_port=svc.ingress, eth_type=ETH_ARP, arp_op=1,
                                                    arp_tpa=str(svc.vip)),
                        _arp_responder(svc), "arp", svc.name))
    if svc.vip6 is not None:
        # Neighbor Solicitation for the VIP6, answered inside OVS like ARP (same rule kind:
        # it is the VIP's address resolution, whichever family)
        for rule in nd.responder_rules(str(svc.vip6), svc.vip_mac):
            out.append(Flow(ingress_br, ARP_VIP + rule.above, _match(in_port=svc.ingress, **rule.fields),
                            rule.actions, "arp", svc.name, table=rule.table))
    egress_br = _towards(cfg, svc.ingress, svc.egress)[1]
    if egress_br is not None:
        patch_in = cfg.patch_port(egress_br, ingress_br)
        for be in svc.backends:
            out.append(Flow(egress_br, PATCH_IN, _match(in_port=patch_in, eth_dst=be.mac),
                            (("output", svc.egress),), "patch_in", svc.name, backend=be.name))
    return out


def _route_flows(cfg: Config, route: Route) -> List[Flow]:
    first_hop, peer_br = _towards(cfg, route.src_port, route.dst_port)
    out = []
    for family in route.families:
        prio = route_priority(route, family)
        dst = _prefix(route, family)
        dst_field = "ipv4_dst" if family == 4 else "ipv6_dst"
        out.append(Flow(cfg.bridge_of(route.src_port), prio,
                        _match(in_port=route.src_port, vlan_vid=UNTAGGED, eth_type=ETH_OF_FAMILY[family],
                               **{dst_field: dst}),
                        (("output", first_hop),), "route", route.label))
        if peer_br is not None:
            patch_in = cfg.patch_port(peer_br, cfg.bridge_of(route.src_port))
            out.append(Flow(peer_br, prio, _match(in_port=patch_in, eth_type=ETH_OF_FAMILY[family],
                                                  **{dst_field: dst}),
                            (("output", route.dst_port),), "patch_in", route.label))
    return out


def _prefix(route: Route, family: int) -> Any:
    """The route's destination in a flow match; None: the whole family (no dst field)."""
    if route.dst.prefixlen == 0 or route.dst.version != family:
        return None
    if route.dst.prefixlen == (32 if family == 4 else 128):
        return str(route.dst.ip)
    return (str(route.dst.network), str(route.dst.netmask))


def route_priority(route: Route, family: int) -> int:
    length = route.dst.prefixlen if route.dst.version == family else 0
    return (ROUTE if family == 4 else ROUTE6) + length


def int_to_ip(n: int) -> str:
    """An IPv4 address (or mask) held as an integer, in dotted form."""
    return "%d.%d.%d.%d" % (n >> 24 & 255, n >> 16 & 255, n >> 8 & 255, n & 255)


def int_to_ip6(n: int) -> str:
    """An IPv6 address (or mask) held as an integer, in its compressed form."""
    return str(ipaddress.IPv6Address(n))


def _src_field(svc: Service, family: int) -> str:
    return "l4_src" if svc.policy.kind == "src-port-bits" else "ipv%d_src" % family


def pipe_name(svc: Service, family: int = 4) -> str:
    # The name carries the pipe's shape: a change of mask, egress or meters makes a new
    # pipe, which the root entry is switched to in place (make-before-break).
    field_ = _src_field(svc, family)
    name = "%s.%s%d.%s" % (svc.name, field_, svc.policy.bits, svc.egress)
    name = name + ".ip6" if family == 6 and field_ == "l4_src" else name
    return name + _METERED.get(svc.limits.kind, "")


_METERED = {"bucket": ".mb", "service": ".ms", "bucket+service": ".mbs"}
_COLOR_MASK = ("meter_color", 0xFF)


def _service_pipes(svc: Service, size: int) -> Tuple[Dict[int, Pipe], Tuple[Entry, ...]]:
    """A basic pipe per family and a root entry per listener (family x transport)."""
    pipes: Dict[int, Pipe] = {}
    kind = svc.limits.kind
    for family in svc.families:
        field_ = _src_field(svc, family)
        mask: Tuple[Tuple[str, int], ...] = ((field_, (1 << svc.policy.bits) - 1),)
        if family == 6 and field_ == "l4_src":
            mask += (("l3", 6),)
        name = pipe_name(svc, family)
        pipes[family] = Pipe(port=svc.ingress, name=name, mask=mask, fwd_port=svc.egress, nr_entries=size,
                             owner=svc.name, meter={"": "", "service": "shared"}.get(kind, "entry"),
                             fwd_pipe=name + ".red" if kind else None)
    dispatches = []
    for family, proto in svc.listeners:
        vip = svc.vip_of(family)
        dst = ("ipv4_dst", int(vip), FULL32) if family == 4 else ("ipv6_dst", int(vip), FULL128)
        dispatches.append(Entry(port=svc.ingress, pipe="root",
                                match=(("eth_type", ETH_OF_FAMILY[family], FULL16),
                                       ("ip_proto", PROTOCOLS[proto], FULL8), dst,
                                       ("l4_dst", svc.port, FULL16)),
                                kind="dispatch", owner=svc.name, fwd=("pipe", pipes[family].name),
                                priority=SERVICE))
    return pipes, tuple(dispatches)


def _stage_pipes(svc: Service, pipes: Dict[int, Pipe], service_meter: int
                 ) -> Tuple[Tuple[Pipe, ...], Tuple[Entry, ...]]:
    """A metered service's drop stages (and service meter pipe) behind each bucket pipe, each
    pipe after the pipes it forwards to. The first drop stage matches the bucket too when
    buckets have meters, so its entries count each bucket's drops."""
    kind = svc.limits.kind
    out: List[Pipe] = []
    entries: List[Entry] = []
    if not kind:
        return (), ()
    red = (("meter_color", COLOR_RED, 0xFF),)
    for family, bp in pipes.items():
        to_port = ("port", svc.egress)
        first_miss = to_port
        if kind == "bucket+service":
            svc_pipe, svc_red = bp.name + ".svc", bp.name + ".svc.red"
            out.append(Pipe(port=svc.ingress, name=svc_red, mask=(_COLOR_MASK,), fwd_port=svc.egress,
                            nr_entries=1, owner=svc.name, drop=True, miss=to_port))
            out.append(Pipe(port=svc.ingress, name=svc_pipe, mask=(), fwd_port=svc.egress, nr_entries=1,
                            owner=svc.name, meter="shared", fwd_pipe=svc_red))
            entries.append(Entry(port=svc.ingress, pipe=svc_red, match=red, kind="drop", owner=svc.name,
                                 fwd=("drop",)))
            entries.append(Entry(port=svc.ingress, pipe=svc_pipe, match=(), kind="meter", owner=svc.name,
                                 fwd=("pipe", svc_red), shared_meter=service_meter))
            first_miss = ("pipe", svc_pipe)
        field_, bits = bp.mask[0]
        per_bucket = kind != "service"
        mask = ((field_, bits), _COLOR_MASK) + bp.mask[1:] if per_bucket else (_COLOR_MASK,)
        out.append(Pipe(port=svc.ingress, name=bp.fwd_pipe or "", mask=mask, fwd_port=svc.egress,
                        nr_entries=bp.nr_entries if per_bucket else 1, owner=svc.name, drop=True,
                        miss=first_miss))
        if per_bucket:
            entries.extend(Entry(port=svc.ingress, pipe=bp.fwd_pipe or "", match=((field_, i, bits),) + red,
                                 kind="drop", owner=svc.name, fwd=("drop",), bucket=i)
                           for i in range(bp.nr_entries))
        else:
            entries.append(Entry(port=svc.ingress, pipe=bp.fwd_pipe or "", match=red, kind="drop",
                                 owner=svc.name, fwd=("drop",)))
    return tuple(out), tuple(entries)


def _route_entries(route: Route) -> List[Entry]:
    out = []
    for family in route.families:
        match = [("eth_type", ETH_OF_FAMILY[family], FULL16)]
        if route.dst.prefixlen and route.dst.version == family:
            match.append(("ipv%d_dst" % family, int(route.dst.network), int(route.dst.netmask)))
        out.append(Entry(port=route.src_port, pipe="root", match=tuple(match), kind="route",
                         owner=route.label, fwd=("port", route.dst_port),
                         priority=route_priority(route, family)))
    return out


# ---------------------------------------------------------------- diff


@dataclass(frozen=True)
class Change:
    plane: str      # ovs | eswitch
    op: str         # ovs: add, modify, delete, add_meter, modify_meter, delete_meter;
                    # eswitch: add_meter, add_pipe, add, update, update_meter, remove, remove_pipe,
                    # remove_meter
    item: Any       # Flow | Entry | Pipe | Meter (the new one for add/modify/update)
    old: Any = None


def diff(old: Plan, new: Plan) -> List[Change]:
    """The minimal ordered change set from `old` to `new`, make-before-break:

    1. OVS meters added, then OVS adds and modifies (the slow path can carry everything
       new first), then meters' new rates;
    2. eSwitch shared meters, pipes (each after the pipes it forwards to), then bucket
       entries, then the root entries that lead to them;
    3. eSwitch in-place updates (a bucket's backend or rate, a root entry's target pipe,
       a shared meter's rate), after OVS's copy has moved, so no gap opens;
    4. eSwitch removals, root entries before the buckets behind them, then pipes (each
       before the pipes it forwards to), then shared meters: a packet that misses
       meanwhile falls to OVS, which still has its rule;
    5. OVS deletes last, then the meters no flow uses any more.

    A service part both plans share is skipped; one whose shape is unchanged (only its
    backends moved) is compared term by term and bucket by bucket, without building
    the rules that stay; any other part is compared rule by rule.
    """
    old_parts = {s.svc.name: s for s in old.services}
    new_parts = {s.svc.name: s for s in new.services}
    same_shape = {n for n, p in new_parts.items() if n in old_parts and old_parts[n].shape == p.shape}
    rest_old = Plan(old.flat_flows, old.flat_pipes, old.flat_entries,
                    services=[p for n, p in old_parts.items() if n not in same_shape])
    rest_new = Plan(new.flat_flows, new.flat_pipes, new.flat_entries,
                    services=[p for n, p in new_parts.items() if n not in same_shape])
    ovs_add, ovs_mod, ovs_del, es_update = _diff_rules(rest_old, rest_new)
    es = _diff_eswitch(rest_old, rest_new)
    for name in same_shape:
        a, b = old_parts[name], new_parts[name]
        if a is not b:
            _diff_same_shape(a, b, ovs_add, ovs_mod, ovs_del, es_update)
    m = _diff_meters(old_parts, new_parts)
    return (m["ovs_add"] + ovs_add + ovs_mod + m["ovs_mod"] + m["es_add"] + es["add_pipe"] + es["add"]
            + es_update + m["es_mod"] + es["remove"] + es["remove_pipe"] + m["es_del"] + ovs_del
            + m["ovs_del"])


def _same_meters(a: ServicePlan, b: ServicePlan) -> bool:
    return a is b or (a.svc.limits == b.svc.limits and a.tag == b.tag and a.svc.families == b.svc.families
                      and a.ingress_br == b.ingress_br and len(a.table) == len(b.table)
                      and bool(a.pipes) == bool(b.pipes) and a.svc.ingress == b.svc.ingress)


def _diff_meters(old_parts: Mapping[str, ServicePlan], new_parts: Mapping[str, ServicePlan]
                 ) -> Dict[str, List[Change]]:
    """Meters added, re-rated and deleted, per plane; services whose meters cannot differ
    are skipped (a per-bucket service holds one meter per bucket)."""
    olds: Dict[Any, Meter] = {}
    news: Dict[Any, Meter] = {}
    for name in set(old_parts) | set(new_parts):
        a, b = old_parts.get(name), new_parts.get(name)
        if a is not None and b is not None and _same_meters(a, b):
            continue
        for part, into in ((a, olds), (b, news)):
            if part is not None:
                into.update((m.key, m) for m in part.ovs_meters())
                into.update((m.key, m) for m in part.es_meters())
    out: Dict[str, List[Change]] = {k: [] for k in ("ovs_add", "ovs_mod", "ovs_del", "es_add", "es_mod",
                                                    "es_del")}
    ops = {"ovs": ("add_meter", "modify_meter", "delete_meter"),
           "eswitch": ("add_meter", "update_meter", "remove_meter")}
    for key, m in sorted(news.items()):
        pre = "ovs_" if m.plane == "ovs" else "es_"
        if key not in olds:
            out[pre + "add"].append(Change(m.plane, ops[m.plane][0], m))
        elif olds[key] != m:
            out[pre + "mod"].append(Change(m.plane, ops[m.plane][1], m, olds[key]))
    for key, m in sorted(olds.items()):
        if key not in news:
            pre = "ovs_" if m.plane == "ovs" else "es_"
            out[pre + "del"].append(Change(m.plane, ops[m.plane][2], m))
    return out


def _diff_rules(old: Plan, new: Plan) -> Tuple[List[Change], List[Change], List[Change], List[Change]]:
    """OVS adds, modifies and deletes, and eSwitch in-place updates, rule by rule."""
    adds, mods, dels = [], [], []
    old_flows = {f.key: f for f in old.iter_flows()}
    new_flows = {f.key: f for f in new.iter_flows()}
    for key, f in new_flows.items():
        if key not in old_flows:
            adds.append(Change("ovs", "add", f))
        elif old_flows[key].actions != f.actions or old_flows[key].cookie != f.cookie:
            mods.append(Change("ovs", "modify", f, old_flows[key]))
    dels = [Change("ovs", "delete", f) for k, f in old_flows.items() if k not in new_flows]
    old_ents = {e.key: e for e in old.iter_entries()}
    updates = [Change("eswitch", "update", e, old_ents[e.key]) for e in new.iter_entries()
               if e.key in old_ents and old_ents[e.key] != e]
    return adds, mods, dels, updates


def _diff_eswitch(old: Plan, new: Plan) -> Dict[str, List[Change]]:
    """eSwitch pipes and entries added and removed, in make-before-break order."""
    out: Dict[str, List[Change]] = {}
    old_pipes = {p.key: p for p in old.pipes}
    new_pipes = {p.key: p for p in new.pipes}
    out["add_pipe"] = []
    for pkey, p in new_pipes.items():
        if pkey not in old_pipes:
            out["add_pipe"].append(Change("eswitch", "add_pipe", p))
        elif old_pipes[pkey] != p:
            raise ValueError("pipe %s changed shape but kept its name" % (pkey,))
    old_keys = {e.key for e in old.iter_entries()}
    new_keys = {e.key for e in new.iter_entries()}
    added = [e for e in new.iter_entries() if e.key not in old_keys]
    removed = [e for e in old.iter_entries() if e.key not in new_keys]
    out["add"] = [Change("eswitch", "add", e) for e in sorted(added, key=_leaf_first)]
    out["remove"] = [Change("eswitch", "remove", e)
                     for e in sorted(removed, key=_leaf_first, reverse=True)]
    # a pipe goes before the pipes it forwards to: `pipes` lists them the other way round
    out["remove_pipe"] = [Change("eswitch", "remove_pipe", p) for k, p in reversed(list(old_pipes.items()))
                          if k not in new_pipes]
    return out


def _diff_same_shape(a: ServicePlan, b: ServicePlan, adds: List[Change], mods: List[Change],
                     dels: List[Change], updates: List[Change]) -> None:
    """Two parts of one service and shape: the same term (value, mask) is the same flow
    key, the same bucket the same entry key; only the backend (its MAC) may differ."""
    old_terms = {(v, m): n for v, m, n in a.terms()}
    new_terms = {(v, m): n for v, m, n in b.terms()}
    for lis in b.listeners:
        for vm, n in new_terms.items():
            was = old_terms.get(vm)
            if was is None:
                adds.append(Change("ovs", "add", b.term_flow(lis, vm[0], vm[1], n)))
            elif a.macs[was] != b.macs[n]:
                mods.append(Change("ovs", "modify", b.term_flow(lis, vm[0], vm[1], n),
                                   a.term_flow(lis, vm[0], vm[1], was)))
        for vm, was in old_terms.items():
            if vm not in new_terms:
                dels.append(Change("ovs", "delete", a.term_flow(lis, vm[0], vm[1], was)))
    rerated = a.svc.limits.bucket != b.svc.limits.bucket
    for family in b.pipes:
        for i, (was, n) in enumerate(zip(a.table, b.table)):
            if rerated or was != n or a.macs[was] != b.macs[n]:
                updates.append(Change("eswitch", "update", b.bucket_entry(family, i, n),
                                      a.bucket_entry(family, i, was)))


def _leaf_first(e: Entry) -> int:
    return 0 if e.pipe != "root" else 1


def adoption_changes(installed_pipes: Sequence[Pipe], installed_entries: Sequence[Entry],
                     desired: Plan, installed_meters: Sequence[Meter] = ()) -> List[Change]:
    """What to change so the eSwitch holds exactly `desired`'s part, given what is installed
    (a restarted controller adopts matching entries and shared meters: no flush, no
    duplicates). Meters go first and last, around the entries that use them."""
    have = Plan(flows=(), pipes=tuple(installed_pipes), entries=tuple(installed_entries))
    want = Plan(flows=(), pipes=desired.pipes, entries=desired.entries)
    olds = {m.key: m for m in installed_meters}
    news = {m.key: m for m in desired.es_meters()}
    first = [Change("eswitch", "add_meter", m) for k, m in sorted(news.items()) if k not in olds]
    first += [Change("eswitch", "update_meter", m, olds[k]) for k, m in sorted(news.items())
              if k in olds and olds[k] != m]
    last = [Change("eswitch", "remove_meter", m) for k, m in sorted(olds.items()) if k not in news]
    return first + [c for c in diff(have, want) if c.plane == "eswitch"] + last


def moved_buckets(old: Plan, new: Plan) -> int:
    """Buckets whose backend changes from `old` to `new`, over all services: both planes
    are rendered from the same bucket tables, so a bucket that moves in either plane moves
    here. A service only one of the plans has moves nothing (it is new, or gone)."""
    before = dict(old.tables)
    return sum(buckets.moved(before[name], tbl) for name, tbl in new.tables if name in before)

"""Intent -> the two planes: OpenFlow rules per bridge and eSwitch pipes/entries.

Pure code. `plan(cfg)` renders one intent into both planes so that the same
traffic class goes to the same place in each; `diff(old, new)` returns the
ordered change set that moves from one plan to the next make-before-break.

Priorities (higher wins, in both planes):
  ARP_VIP    300       the VIP's ARP, answered inside OVS, on the ingress port only
  PATCH_IN   250       frames arriving from a patch port, delivered to the egress port
  SERVICE    200 + m   balancing buckets; m = fixed bits of the bucket match, so
                       during an update a finer new rule wins over a coarser old one
  ROUTE      100 + len representor routes, longest prefix first
  GUARD       40       VIP / VIP-MAC frames no rule claims: dropped, miss_other
  PATCH_DROP  30       anything else from a patch port
  MGMT        20       ARP and management-port switching when table_miss is drop
  TABLE_MISS   0
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from . import buckets
from .config import Config, Route, Service

ARP_VIP, PATCH_IN, SERVICE, ROUTE, GUARD, PATCH_DROP, MGMT, TABLE_MISS = 300, 250, 200, 100, 40, 30, 20, 0

ETH_IP, ETH_ARP = 0x0800, 0x0806
FULL32, FULL16, FULL8 = 0xFFFFFFFF, 0xFFFF, 0xFF

# Cookies: the top 16 bits say "ours" (ASCII "XF"), the next 8 the rule kind,
# the low 32 a hash of the owner (service, route, bridge). Ownership is a
# cookie/mask match, so foreign flows on the bridge are never touched.
COOKIE_BASE = 0x5846 << 48
COOKIE_MASK = 0xFFFF << 48
KINDS = ("service", "route", "arp", "patch_in", "guard", "patch_drop", "mgmt", "table_miss")
# Kinds whose IPv4 packets, seen by OVS while an eSwitch is configured, are fallback.
FALLBACK_KINDS = ("service", "route")
MISS_OTHER_KINDS = ("arp", "guard", "patch_drop", "mgmt", "table_miss")

# Canonical match field order (OXM prerequisites come first).
FIELD_ORDER = ("in_port", "vlan_vid", "eth_dst", "eth_type", "arp_op", "arp_tpa", "ip_proto",
               "ipv4_src", "ipv4_dst", "udp_src", "udp_dst", "tcp_src", "tcp_dst")

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
    buckets: Tuple[int, ...] = ()
    table: int = 0

    @property
    def key(self) -> Tuple[str, int, int, Match]:
        return (self.bridge, self.table, self.priority, self.match)

    @property
    def cookie(self) -> int:
        return cookie(self.kind, self.owner)


@dataclass(frozen=True)
class Pipe:
    """A service's basic pipe: one mask for all entries, action set-dst-MAC, fwd egress."""
    port: str
    name: str
    mask: Tuple[Tuple[str, int], ...]
    fwd_port: str
    nr_entries: int
    owner: str

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
    kind: str                                 # dispatch | route | bucket
    owner: str
    fwd: Tuple[str, ...] = ()                 # ("pipe", name) | ("port", name) | ("drop",)
    priority: int = 0
    dst_mac: Optional[str] = None
    backend: Optional[str] = None
    bucket: Optional[int] = None

    @property
    def key(self) -> Tuple[str, str, Tuple[Tuple[str, int, int], ...]]:
        return (self.port, self.pipe, self.match)

    @property
    def cookie(self) -> int:
        return cookie("service" if self.kind in ("dispatch", "bucket") else "route", self.owner)


@dataclass(frozen=True)
class Plan:
    flows: Tuple[Flow, ...]
    pipes: Tuple[Pipe, ...]
    entries: Tuple[Entry, ...]
    tables: Tuple[Tuple[str, buckets.Table], ...] = field(default=())

    def table(self, service: str) -> buckets.Table:
        return dict(self.tables)[service]

    def bridge_flows(self, bridge: str) -> List[Flow]:
        return [f for f in self.flows if f.bridge == bridge]


# ---------------------------------------------------------------- planning


def plan(cfg: Config, exclude: Optional[Mapping[str, Iterable[str]]] = None) -> Plan:
    """Render the intent. `exclude` maps service -> backends taken out (drain, health)."""
    exclude = exclude or {}
    flows: List[Flow] = []
    pipes: List[Pipe] = []
    entries: List[Entry] = []
    tables = []
    for br in cfg.bridges:
        flows.extend(_bridge_base_flows(cfg, br.name))
    for svc in cfg.services:
        tbl = buckets.table(svc, tuple(exclude.get(svc.name, ())))
        tables.append((svc.name, tbl))
        flows.extend(_service_flows(cfg, svc, tbl))
        if cfg.has_eswitch:
            pipe, ents = _service_entries(svc, tbl)
            pipes.append(pipe)
            entries.extend(ents)
    for route in cfg.routes:
        flows.extend(_route_flows(cfg, route))
        if cfg.has_eswitch and cfg.eswitch.mirror_routes:
            entries.append(_route_entry(route))
    return Plan(flows=tuple(_dedup(flows)), pipes=tuple(pipes), entries=tuple(entries),
                tables=tuple(tables))


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
        # Without NORMAL as the table miss, ARP and the management port still need a switch.
        out.append(Flow(bridge, MGMT, _match(eth_type=ETH_ARP), (("normal",),), "mgmt", bridge))
        for ip in cfg.bridge(bridge).internal:
            out.append(Flow(bridge, MGMT, _match(in_port=ip.name), (("normal",),), "mgmt", bridge))
            out.append(Flow(bridge, MGMT, _match(eth_type=ETH_IP, ipv4_dst=str(ip.ip.ip)),
                            (("normal",),), "mgmt", bridge))
    # Guards: the VIPs' traffic that no rule claims is dropped on every bridge.
    for svc in cfg.services:
        vip = str(svc.vip)
        out.append(Flow(bridge, GUARD, _match(eth_type=ETH_ARP, arp_tpa=vip), (), "guard", svc.name))
        out.append(Flow(bridge, GUARD, _match(eth_type=ETH_IP, ipv4_dst=vip), (), "guard", svc.name))
        out.append(Flow(bridge, GUARD, _match(eth_dst=svc.vip_mac), (), "guard", svc.name))
    return out


def _arp_responder(svc: Service) -> Tuple[Action, ...]:
    vip, mac = str(svc.vip), svc.vip_mac
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


def _service_flows(cfg: Config, svc: Service, tbl: buckets.Table) -> List[Flow]:
    ingress_br = cfg.bridge_of(svc.ingress)
    out = [Flow(ingress_br, ARP_VIP, _match(in_port=svc.ingress, eth_type=ETH_ARP, arp_op=1,
                                            arp_tpa=str(svc.vip)),
                _arp_responder(svc), "arp", svc.name)]
    first_hop, egress_br = _towards(cfg, svc.ingress, svc.egress)
    l4 = svc.protocol
    for value, mask, backend in buckets.merge(tbl):
        be = svc.backend(backend)
        fields: Dict[str, Any] = dict(in_port=svc.ingress, vlan_vid=UNTAGGED, eth_type=ETH_IP,
                                      ip_proto=svc.ip_proto, ipv4_dst=str(svc.vip))
        fields[l4 + "_dst"] = svc.port
        if mask:
            if svc.policy.kind == "src-port-bits":
                fields[l4 + "_src"] = (value, mask)
            else:
                fields["ipv4_src"] = (int_to_ip(value), int_to_ip(mask))
        members = tuple(i for i in range(len(tbl)) if i & mask == value)
        out.append(Flow(ingress_br, SERVICE + bin(mask).count("1"), _match(**fields),
                        (("set_field", "eth_dst", be.mac), ("output", first_hop)),
                        "service", svc.name, backend=backend, buckets=members))
    if egress_br is not None:
        patch_in = cfg.patch_port(egress_br, ingress_br)
        for be in svc.backends:
            out.append(Flow(egress_br, PATCH_IN, _match(in_port=patch_in, eth_dst=be.mac),
                            (("output", svc.egress),), "patch_in", svc.name, backend=be.name))
    return out


def _route_flows(cfg: Config, route: Route) -> List[Flow]:
    first_hop, peer_br = _towards(cfg, route.src_port, route.dst_port)
    dst = None if route.dst.prefixlen == 0 else _prefix(route)
    prio = ROUTE + route.dst.prefixlen
    out = [Flow(cfg.bridge_of(route.src_port), prio,
                _match(in_port=route.src_port, vlan_vid=UNTAGGED, eth_type=ETH_IP, ipv4_dst=dst),
                (("output", first_hop),), "route", route.label)]
    if peer_br is not None:
        patch_in = cfg.patch_port(peer_br, cfg.bridge_of(route.src_port))
        out.append(Flow(peer_br, prio, _match(in_port=patch_in, eth_type=ETH_IP, ipv4_dst=dst),
                        (("output", route.dst_port),), "patch_in", route.label))
    return out


def _prefix(route: Route) -> Any:
    if route.dst.prefixlen == 32:
        return str(route.dst.ip)
    return (str(route.dst.network), str(route.dst.netmask))


def int_to_ip(n: int) -> str:
    """An IPv4 address (or mask) held as an integer, in dotted form."""
    return "%d.%d.%d.%d" % (n >> 24 & 255, n >> 16 & 255, n >> 8 & 255, n & 255)


def pipe_name(svc: Service) -> str:
    # The name carries the pipe's shape: a change of mask or egress makes a new
    # pipe, which the root entry is switched to in place (make-before-break).
    field_ = "l4_src" if svc.policy.kind == "src-port-bits" else "ipv4_src"
    return "%s.%s%d.%s" % (svc.name, field_, svc.policy.bits, svc.egress)


def _service_entries(svc: Service, tbl: buckets.Table) -> Tuple[Pipe, List[Entry]]:
    field_ = "l4_src" if svc.policy.kind == "src-port-bits" else "ipv4_src"
    mask = (1 << svc.policy.bits) - 1
    pipe = Pipe(port=svc.ingress, name=pipe_name(svc), mask=((field_, mask),),
                fwd_port=svc.egress, nr_entries=len(tbl), owner=svc.name)
    entries = [Entry(port=svc.ingress, pipe=pipe.name, match=((field_, i, mask),), kind="bucket",
                     owner=svc.name, fwd=("port", svc.egress), dst_mac=svc.backend(name).mac,
                     backend=name, bucket=i)
               for i, name in enumerate(tbl)]
    dispatch = Entry(port=svc.ingress, pipe="root",
                     match=(("eth_type", ETH_IP, FULL16), ("ip_proto", svc.ip_proto, FULL8),
                            ("ipv4_dst", int(svc.vip), FULL32), ("l4_dst", svc.port, FULL16)),
                     kind="dispatch", owner=svc.name, fwd=("pipe", pipe.name), priority=SERVICE)
    return pipe, entries + [dispatch]


def _route_entry(route: Route) -> Entry:
    match = [("eth_type", ETH_IP, FULL16)]
    if route.dst.prefixlen:
        match.append(("ipv4_dst", int(route.dst.network), int(route.dst.netmask)))
    return Entry(port=route.src_port, pipe="root", match=tuple(match), kind="route",
                 owner=route.label, fwd=("port", route.dst_port),
                 priority=ROUTE + route.dst.prefixlen)


# ---------------------------------------------------------------- diff


@dataclass(frozen=True)
class Change:
    plane: str      # ovs | eswitch
    op: str         # ovs: add, modify, delete; eswitch: add_pipe, add, update, remove, remove_pipe
    item: Any       # Flow | Entry | Pipe (the new one for add/modify/update)
    old: Any = None


def diff(old: Plan, new: Plan) -> List[Change]:
    """The minimal ordered change set from `old` to `new`, make-before-break:

    1. OVS adds and modifies (the slow path can carry everything new first);
    2. eSwitch pipes, then bucket entries, then the root entries that lead to them;
    3. eSwitch in-place updates (a bucket's backend, a root entry's target pipe),
       after OVS's copy has moved, so no gap opens;
    4. eSwitch removals, root entries before the buckets behind them, then pipes:
       a packet that misses meanwhile falls to OVS, which still has its rule;
    5. OVS deletes last.
    """
    out: List[Change] = []
    old_flows = {f.key: f for f in old.flows}
    new_flows = {f.key: f for f in new.flows}
    for key, f in new_flows.items():
        if key not in old_flows:
            out.append(Change("ovs", "add", f))
        elif old_flows[key].actions != f.actions or old_flows[key].cookie != f.cookie:
            out.append(Change("ovs", "modify", f, old_flows[key]))

    old_pipes = {p.key: p for p in old.pipes}
    new_pipes = {p.key: p for p in new.pipes}
    for pkey, p in new_pipes.items():
        if pkey not in old_pipes:
            out.append(Change("eswitch", "add_pipe", p))
        elif old_pipes[pkey] != p:
            raise ValueError("pipe %s changed shape but kept its name" % (pkey,))
    old_ents = {e.key: e for e in old.entries}
    new_ents = {e.key: e for e in new.entries}
    added = [e for k, e in new_ents.items() if k not in old_ents]
    out += [Change("eswitch", "add", e) for e in sorted(added, key=_leaf_first)]
    for ekey, e in new_ents.items():
        if ekey in old_ents and old_ents[ekey] != e:
            out.append(Change("eswitch", "update", e, old_ents[ekey]))
    removed = [e for k, e in old_ents.items() if k not in new_ents]
    out += [Change("eswitch", "remove", e) for e in sorted(removed, key=_leaf_first, reverse=True)]
    out += [Change("eswitch", "remove_pipe", p) for k, p in old_pipes.items() if k not in new_pipes]

    out += [Change("ovs", "delete", f) for k, f in old_flows.items() if k not in new_flows]
    return out


def _leaf_first(e: Entry) -> int:
    return 0 if e.pipe != "root" else 1


def adoption_changes(installed_pipes: Sequence[Pipe], installed_entries: Sequence[Entry],
                     desired: Plan) -> List[Change]:
    """What to change so the eSwitch holds exactly `desired`'s part, given what is installed
    (a restarted controller adopts matching entries: no flush, no duplicates)."""
    have = Plan(flows=(), pipes=tuple(installed_pipes), entries=tuple(installed_entries))
    want = Plan(flows=(), pipes=desired.pipes, entries=desired.entries)
    return [c for c in diff(have, want) if c.plane == "eswitch"]


def moved_buckets(old: Plan, new: Plan) -> int:
    """Buckets whose backend changes from `old` to `new`, over all services: both planes
    are rendered from the same bucket tables, so a bucket that moves in either plane moves
    here. A service only one of the plans has moves nothing (it is new, or gone)."""
    before = dict(old.tables)
    return sum(buckets.moved(before[name], tbl) for name, tbl in new.tables if name in before)

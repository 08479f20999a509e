"""Packet fate in both planes: where does this packet leave, with which destination MAC?

A small model of an OpenFlow 1.3 table (priority order, masked matches, the
actions the plan uses, patch ports into the peer bridge) and of the eSwitch
(root control pipe by priority, then the service's basic pipe, miss to the
port's representor). `xenoflow check` asks both the same question for every
bucket and route, over what is actually installed; tests ask it of the plan.

Two ways to pick the rule a packet hits, with the same answers: a scan of every
flow or entry (`ovs_fate`, `eswitch_fate`: the reference, plain to read) and an
index built once over the installed rules (`OvsIndex`, `EswitchIndex`), whose
lookups cost about the number of distinct match shapes, not the number of rules:
the check asks once per bucket, and 2^16 buckets times 2^16 flows is out of reach.
"""

from __future__ import annotations

import ipaddress
import operator
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, Hashable, List, Optional, Sequence, Tuple

import netaddr

from .plan import ETH_ARP, ETH_IP, ETH_IPV6, Entry, Flow, Pipe

Rates = Dict[Any, Tuple[int, int]]      # OVS: (bridge, meter id) -> rate; eSwitch: (port, id) -> rate


@dataclass(frozen=True)
class Packet:
    in_port: str
    eth_dst: str = "ff:ff:ff:ff:ff:ff"
    eth_type: int = ETH_IP
    ip_proto: int = 17
    ipv4_src: str = "198.18.0.100"
    ipv4_dst: str = "198.18.0.53"
    l4_src: int = 40000
    l4_dst: int = 53
    arp_op: int = 0
    arp_tpa: str = ""
    vlan: Optional[int] = None          # an 802.1Q VLAN id, None when untagged
    ipv6_src: str = ""                  # with eth_type ETH_IPV6 (the ipv4 fields then unused)
    ipv6_dst: str = ""
    icmpv6_type: int = 0
    ipv6_nd_target: str = ""
    meter_color: int = 0                # green: the fate of traffic within its limits


def ipv6_packet(in_port: str, src: str, dst: str, **kw: Any) -> Packet:
    """An IPv6 packet: the IPv4 fields empty, so no IPv4 rule can match it."""
    return Packet(in_port=in_port, eth_type=ETH_IPV6, ipv4_src="", ipv4_dst="", ipv6_src=src,
                  ipv6_dst=dst, **kw)


def neighbor_solicitation(in_port: str, src: str, target: str) -> Packet:
    """A Neighbor Solicitation for `target` (to its solicited-node group), as a client sends
    it to resolve the VIP6; `src` "::" is a duplicate address detection's."""
    low = _ip6_to_int(target) & 0xFFFFFF
    group = "ff02::1:ff%02x:%04x" % (low >> 16, low & 0xFFFF)
    return ipv6_packet(in_port, src, group, ip_proto=58, icmpv6_type=135, ipv6_nd_target=target,
                       l4_src=0, l4_dst=0)


@dataclass(frozen=True)
class Fate:
    port: Optional[str]                 # where it leaves (None: dropped or NORMAL)
    eth_dst: str
    verdict: str                        # output | drop | normal | miss (eSwitch: to representor)
    path: Tuple[str, ...] = field(default=())   # bridges / pipes traversed, for messages
    # the limits (packets/s, burst) the packet's class met on its way, in order; (0, 0): a
    # meter the plane names but does not hold
    meters: Tuple[Tuple[int, int], ...] = ()

    def where(self) -> str:
        if self.verdict == "output":
            return "%s (dst %s)" % (self.port, self.eth_dst)
        return self.verdict


def _ip_to_int(v: Any) -> int:
    if isinstance(v, int):
        return v
    # A plain dotted quad without netaddr (a lookup per bucket and plane adds up); anything
    # else (leading zeros, other forms), netaddr decides and names the problem, as before.
    parts = v.split(".") if isinstance(v, str) else ()
    if len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and (p == "0" or p[0] != "0")
                               for p in parts):
        a, b, c, d = (int(p) for p in parts)
        if a < 256 and b < 256 and c < 256 and d < 256:
            return a << 24 | b << 16 | c << 8 | d
    return int(netaddr.IPAddress(v))


def _ip6_to_int(v: Any) -> int:
    if isinstance(v, int):
        return v
    return int(ipaddress.IPv6Address(v))


IP6_FIELDS = ("ipv6_src", "ipv6_dst", "ipv6_nd_target")
L3_TYPES = (ETH_IP, ETH_IPV6)


def _masked(want: Any, have: int, conv: Any = int) -> bool:
    if isinstance(want, tuple):
        value, mask = conv(want[0]), conv(want[1])
        return have & mask == value & mask
    return have == conv(want)


def _field(pkt: Packet, name: str) -> Any:
    if name in ("udp_src", "tcp_src"):
        return pkt.l4_src
    if name in ("udp_dst", "tcp_dst"):
        return pkt.l4_dst
    return getattr(pkt, name)


def flow_matches(f: Flow, pkt: Packet) -> bool:
    for name, want in f.match:
        if name in ("ipv4_src", "ipv4_dst", "arp_tpa"):
            have = getattr(pkt, name)
            if not have or not _masked(want, _ip_to_int(have), _ip_to_int):
                return False
        elif name in IP6_FIELDS:
            have = getattr(pkt, name)
            if not have or not _masked(want, _ip6_to_int(have), _ip6_to_int):
                return False
        elif name == "vlan_vid":
            if want == 0 and pkt.vlan is not None or want != 0 and pkt.vlan != want & 0xFFF:
                return False
        elif name == "eth_dst":
            if str(want).lower() != pkt.eth_dst.lower():
                return False
        elif name in ("in_port", "eth_type", "ip_proto", "arp_op", "icmpv6_type"):
            if _field(pkt, name) != want:
                return False
        elif name.endswith(("_src", "_dst")):
            proto = 17 if name.startswith("udp") else 6
            if pkt.ip_proto != proto or not _masked(want, _field(pkt, name)):
                return False
        else:
            raise ValueError("fate model cannot match field %r" % name)
    return True


Pick = Callable[[str, Packet, int], Optional[Flow]]


def _scan_flows(flows: Dict[str, Sequence[Flow]]) -> Pick:
    def pick(bridge: str, pkt: Packet, table: int = 0) -> Optional[Flow]:
        candidates = sorted((f for f in flows.get(bridge, ()) if f.table == table and flow_matches(f, pkt)),
                            key=lambda f: -f.priority)
        return candidates[0] if candidates else None
    return pick


_SETTABLE = frozenset(Packet.__dataclass_fields__)   # set_field on what the model carries


def _follow(pick: Pick, bridge_of: Any, pkt: Packet, max_hops: int, rates: Optional[Rates] = None,
            first_table: int = 0) -> Fate:
    path: List[str] = []
    met: List[Tuple[int, int]] = []
    rates = rates or {}
    bridge = bridge_of(pkt.in_port)
    for _ in range(max_hops):
        path.append(bridge)
        table: Optional[int] = first_table     # where another app's goto_table sends packets
        out: Optional[str] = None
        while table is not None:
            f = pick(bridge, pkt, table)
            if f is None:
                return Fate(None, pkt.eth_dst, "drop", tuple(path))  # OpenFlow 1.3 table miss
            table = None
            for action in f.actions:
                if action[0] == "set_field" and action[1] in _SETTABLE:
                    pkt = replace(pkt, **{action[1]: action[2]})
                elif action[0] == "output":
                    out = pkt.in_port if action[1] == "IN_PORT" else action[1]
                elif action[0] == "normal":
                    return Fate(None, pkt.eth_dst, "normal", tuple(path))
                elif action[0] == "goto_table":
                    table = action[1]
                elif action[0] == "meter":
                    met.append(rates.get((bridge, action[1]), (0, 0)))
        if out is None:
            return Fate(None, pkt.eth_dst, "drop", tuple(path))
        if out.startswith("patch-"):
            peer = out[len("patch-"):]
            pkt = replace(pkt, in_port="patch-" + bridge)
            bridge = peer
            continue
        return Fate(out, pkt.eth_dst, "output", tuple(path), tuple(met))
    return Fate(None, pkt.eth_dst, "drop", tuple(path) + ("loop",))


def ovs_fate(flows: Dict[str, Sequence[Flow]], bridge_of: Any, pkt: Packet, max_hops: int = 4,
             rates: Optional[Rates] = None, first_table: int = 0) -> Fate:
    """Follow a packet through the bridges' flows (highest priority first), from XenoFlow's
    first table on every bridge."""
    return _follow(_scan_flows(flows), bridge_of, pkt, max_hops, rates, first_table)


_ES_FIELDS = {"eth_type": "eth_type", "ip_proto": "ip_proto", "ipv4_src": "ipv4_src",
              "ipv4_dst": "ipv4_dst", "ipv6_src": "ipv6_src", "ipv6_dst": "ipv6_dst",
              "l4_src": "l4_src", "l4_dst": "l4_dst", "meter_color": "meter_color"}


def _entry_matches(e: Entry, pkt: Packet) -> bool:
    for name, value, mask in e.match:
        have = getattr(pkt, _ES_FIELDS[name])
        if name == "eth_type" and pkt.vlan is not None:
            have = 0x8100   # the eSwitch matches the outer ethertype
        if name.startswith("ipv4"):
            if not have:
                return False
            have = _ip_to_int(have)
        elif name.startswith("ipv6"):
            if not have:
                return False
            have = _ip6_to_int(have)
        if name.startswith("l4") and pkt.eth_type not in L3_TYPES:
            return False
        if have & mask != value & mask:
            return False
    return True


def _es_follow(root: Callable[[Packet], Optional[Entry]],
               basic: Callable[[str, Packet], Optional[Entry]], pkt: Packet,
               pipes: Optional[Dict[Tuple[str, str], Pipe]] = None, rates: Optional[Rates] = None) -> Fate:
    e = root(pkt)
    if e is None:
        return Fate(None, pkt.eth_dst, "miss", ("root",))
    if e.fwd[0] == "port":
        return Fate(e.fwd[1], pkt.eth_dst, "output", ("root",))
    if e.fwd[0] == "drop":
        return Fate(None, pkt.eth_dst, "drop", ("root",))
    pipe = e.fwd[1]
    b = basic(pipe, pkt)
    if b is None:
        return Fate(None, pkt.eth_dst, "miss", ("root", pipe))
    mac = b.dst_mac or pkt.eth_dst
    p = (pipes or {}).get((pkt.in_port, pipe))
    if p is None or not (p.meter or p.fwd_pipe):
        return Fate(b.fwd[1], mac, "output", ("root", pipe), _met(b, pkt.in_port, rates))
    return _es_stages(basic, replace(pkt, eth_dst=mac), p, b, pipes or {}, rates or {})


def _met(e: Entry, port: str, rates: Optional[Rates]) -> Tuple[Tuple[int, int], ...]:
    """The meters an entry applies: its own, or the shared one it names."""
    if e.meter is not None:
        return (tuple(e.meter),)   # type: ignore[return-value]
    if e.shared_meter is not None:
        return ((rates or {}).get((port, e.shared_meter), (0, 0)),)
    return ()


def _es_stages(basic: Callable[[str, Packet], Optional[Entry]], pkt: Packet, p: Pipe, b: Entry,
               pipes: Dict[Tuple[str, str], Pipe], rates: Rates) -> Fate:
    """A metered pipe's chain, for a packet within its limits (green): drop stages let it
    pass to their miss target, a meter pipe's entry meters it and forwards on."""
    path = ["root", p.name]
    met = list(_met(b, pkt.in_port, rates))
    target: Tuple[str, ...] = ("pipe", p.fwd_pipe) if p.fwd_pipe else ("port", p.fwd_port)
    for _ in range(8):
        if target[0] == "port":
            return Fate(target[1], pkt.eth_dst, "output", tuple(path), tuple(met))
        stage = pipes.get((pkt.in_port, target[1]))
        path.append(target[1])
        if stage is None:
            return Fate(None, pkt.eth_dst, "miss", tuple(path), tuple(met))
        e = basic(stage.name, pkt)
        if stage.drop:
            if e is not None:
                return Fate(None, pkt.eth_dst, "drop", tuple(path), tuple(met))
            target = stage.miss or ("miss",)
            if target[0] == "miss":
                return Fate(None, pkt.eth_dst, "miss", tuple(path), tuple(met))
            continue
        if e is None:
            return Fate(None, pkt.eth_dst, "miss", tuple(path), tuple(met))
        met.extend(_met(e, pkt.in_port, rates))
        target = ("pipe", stage.fwd_pipe) if stage.fwd_pipe else ("port", stage.fwd_port)
    return Fate(None, pkt.eth_dst, "drop", tuple(path) + ("loop",), tuple(met))


def eswitch_fate(entries: Sequence[Entry], pkt: Packet, pipes: Sequence[Pipe] = (),
                 rates: Optional[Rates] = None) -> Fate:
    """The eSwitch: the ingress port's root pipe, then a basic pipe (and its drop stages)."""
    def root(pkt: Packet) -> Optional[Entry]:
        roots = sorted((e for e in entries if e.port == pkt.in_port and e.pipe == "root"
                        and _entry_matches(e, pkt)), key=lambda e: -e.priority)
        return roots[0] if roots else None

    def basic(pipe: str, pkt: Packet) -> Optional[Entry]:
        hits = [b for b in entries if b.port == pkt.in_port and b.pipe == pipe
                and _entry_matches(b, pkt)]
        return hits[0] if hits else None
    return _es_follow(root, basic, pkt, {p.key: p for p in pipes}, rates)


def arp_request(in_port: str, target: str) -> Packet:
    return Packet(in_port=in_port, eth_type=ETH_ARP, ip_proto=0, ipv4_src="", ipv4_dst="",
                  arp_op=1, arp_tpa=target)


# ---------------------------------------------------------------- the index

# What a rule tests of a packet: a field read one way (`Elem`, a string: its hash is
# kept, and it is looked up once per group visited) and a mask (None: compared
# whole). The packet's value of each Elem is read once per lookup (`_Fields`).
Elem = str
Part = Tuple[Elem, Optional[int], Hashable]     # elem, mask, the rule's masked value
_NO = object()      # the packet cannot match any rule testing this field


class _Space:
    """Tuple-space search over the rules of one table: rules grouped by the shape of
    their match (which fields, under which masks); each group a dict from the
    values to the best-ranked rule (lowest rank wins). Groups are visited best rank
    first, stopping once no group left can beat the rule found.

    A shape's whole-field part (in_port, VIP, ports...) is shared by many groups
    that differ in one masked field (the bucket's): the packet's whole values are
    looked up once per lookup and shape, as a small id (or none: then no group of
    that shape can match), and each group is keyed by (id, masked values). Rules the
    index cannot express (`slow`) are tested one by one on every lookup, as by the
    scan."""

    def __init__(self) -> None:
        self._raw: Dict[Tuple[Tuple[Elem, ...], Tuple[Tuple[Elem, int], ...]],
                        Dict[Tuple[Any, Any], Tuple[int, Any]]] = {}
        self._wholes: List[Tuple[Tuple[Elem, ...], Dict[Any, int]]] = []
        self._order: List[Tuple[int, int, Tuple[Tuple[Elem, int], ...], Dict[Any, Tuple[int, Any]]]] = []
        self.slow: List[Tuple[int, Any]] = []

    def add(self, parts: Sequence[Part], rank: int, rule: Any) -> None:
        whole = sorted((p for p in parts if p[1] is None), key=lambda p: p[0])
        masked = sorted((p for p in parts if p[1] is not None), key=lambda p: (p[0], p[1]))
        shape = (tuple(e for e, _, _ in whole), tuple((e, int(m or 0)) for e, m, _ in masked))
        values = (tuple(v for _, _, v in whole), _mkey(tuple(v for _, _, v in masked)))
        group = self._raw.setdefault(shape, {})
        held = group.get(values)
        if held is None or rank < held[0]:
            group[values] = (rank, rule)

    def freeze(self) -> "_Space":
        ids: Dict[Tuple[Elem, ...], int] = {}
        order = []
        for (whole, masked), raw in self._raw.items():
            if whole not in ids:
                ids[whole] = len(self._wholes)
                self._wholes.append((whole, {}))
            w = ids[whole]
            known = self._wholes[w][1]
            group = {(known.setdefault(wv, len(known)), mv): held for (wv, mv), held in raw.items()}
            order.append((min(r for r, _ in raw.values()), w, masked, group))
        self._order = sorted(order, key=lambda t: t[0])
        self._raw = {}
        return self

    def best(self, fields: "_Fields", matches: Callable[[Any], bool]) -> Any:
        found: Optional[Tuple[int, Any]] = None
        for rank, rule in self.slow:
            if matches(rule) and (found is None or rank < found[0]):
                found = (rank, rule)
        wids: List[Any] = [None] * len(self._wholes)
        for top, w, masked, group in self._order:
            if found is not None and top > found[0]:
                break
            wid = wids[w]
            if wid is None:
                elems, known = self._wholes[w]
                wid = wids[w] = known.get(_values(elems, fields), _NO)
            if wid is _NO:
                continue
            if len(masked) == 1:        # the usual shape: one masked field (the bucket's)
                elem, mask = masked[0]
                v = fields[elem]
                if v is _NO:
                    continue
                hit = group.get((wid, v & mask))
            else:
                mk = _masked_values(masked, fields)
                if mk is _NO:
                    continue
                hit = group.get((wid, mk))
            if hit is not None and (found is None or hit[0] < found[0]):
                found = hit
        return None if found is None else found[1]


def _mkey(values: Tuple[Any, ...]) -> Any:
    """A group's masked values as keyed: the value alone when there is one."""
    return values[0] if len(values) == 1 else values


def _values(elems: Tuple[Elem, ...], fields: "_Fields") -> Any:
    """The packet's values for fields compared whole; _NO when one cannot match."""
    out = []
    for elem in elems:
        v = fields[elem]
        if v is _NO:
            return _NO
        out.append(v)
    return tuple(out)


def _masked_values(parts: Tuple[Tuple[Elem, int], ...], fields: "_Fields") -> Any:
    out = []
    for elem, mask in parts:
        v = fields[elem]
        if v is _NO:
            return _NO
        out.append(v & mask)
    return tuple(out)


class _Fields(dict):  # type: ignore[type-arg]
    """A packet's field values, each read once (then a plain dict lookup)."""

    def __init__(self, pkt: Packet, readers: Dict[Elem, Callable[[Packet], Any]]) -> None:
        super().__init__()
        self._pkt, self._readers = pkt, readers

    def __missing__(self, elem: Elem) -> Any:
        v = self[elem] = self._readers[elem](self._pkt)
        return v


def _rank(priority: int, i: int) -> int:
    """Highest priority first, then the first listed (the scans' stable sort)."""
    return -priority * (1 << 32) + i


def _flow_part(name: str, want: Any) -> Part:
    """What a flow's (field, want) tests, with flow_matches' semantics: the packet
    field, the mask and the masked value; ValueError/TypeError when not indexable."""
    if name in ("ipv4_src", "ipv4_dst", "arp_tpa"):
        if isinstance(want, tuple):
            mask = _ip_to_int(want[1])
            return "ip " + name, mask, _ip_to_int(want[0]) & mask
        return "ip " + name, None, _ip_to_int(want)
    if name in IP6_FIELDS:
        if isinstance(want, tuple):
            mask = _ip6_to_int(want[1])
            return "ip6 " + name, mask, _ip6_to_int(want[0]) & mask
        return "ip6 " + name, None, _ip6_to_int(want)
    if name == "vlan_vid":
        if type(want) is not int:
            raise TypeError("vlan_vid %r" % (want,))
        return "vlan", None, None if want == 0 else want & 0xFFF
    if name == "eth_dst":
        return "eth_dst", None, str(want).lower()
    if name in ("in_port", "eth_type", "ip_proto", "arp_op", "icmpv6_type"):
        hash(want)
        return "eq " + name, None, want
    if name.startswith(("udp_", "tcp_")) and name.endswith(("_src", "_dst")):
        proto = 17 if name.startswith("udp") else 6
        where = "l4_src" if name.endswith("_src") else "l4_dst"
        if isinstance(want, tuple):
            mask = int(want[1])
            return "l4 %s %d" % (where, proto), mask, int(want[0]) & mask
        return "l4 %s %d" % (where, proto), None, int(want)
    raise ValueError("not indexed: %r" % name)


def _flow_reader(elem: Elem) -> Callable[[Packet], Any]:
    """How a packet's value of `elem` is read, as flow_matches reads it."""
    kind, _, arg = elem.partition(" ")
    if kind in ("ip", "ip6"):
        conv = _ip_to_int if kind == "ip" else _ip6_to_int

        def ip(pkt: Packet) -> Any:
            have = getattr(pkt, arg)
            return conv(have) if have else _NO
        return ip
    if kind == "eq":
        return operator.attrgetter(arg)
    if kind == "l4":
        where, proto = arg.split()
        get, want = operator.attrgetter(where), int(proto)
        return lambda pkt: get(pkt) if pkt.ip_proto == want else _NO
    if kind == "vlan":
        return operator.attrgetter("vlan")
    return lambda pkt: pkt.eth_dst.lower()


class OvsIndex:
    """The bridges' flows indexed once; `fate` answers as `ovs_fate` does over them."""

    def __init__(self, flows: Dict[str, Sequence[Flow]], bridge_of: Any,
                 rates: Optional[Rates] = None, first_table: int = 0) -> None:
        self._bridge_of = bridge_of
        self._rates = rates
        self._first_table = first_table
        self._bridges: Dict[str, str] = {}     # config lookups are linear: ask once per port
        self._spaces: Dict[Tuple[str, int], _Space] = {}
        self._readers: Dict[Elem, Callable[[Packet], Any]] = {}
        for bridge, fs in flows.items():
            for i, f in enumerate(fs):
                space = self._spaces.setdefault((bridge, f.table), _Space())
                rank = _rank(f.priority, i)
                try:
                    parts = [_flow_part(name, want) for name, want in f.match]
                except (ValueError, TypeError, LookupError, netaddr.AddrFormatError):
                    space.slow.append((rank, f))
                    continue
                space.add(parts, rank, f)
                for elem, _, _ in parts:
                    if elem not in self._readers:
                        self._readers[elem] = _flow_reader(elem)
        for space in self._spaces.values():
            space.freeze()

    def bridge_of(self, port: str) -> str:
        got = self._bridges.get(port)
        if got is None:
            got = self._bridges[port] = self._bridge_of(port)
        return got

    def pick(self, bridge: str, pkt: Packet, table: int = 0) -> Optional[Flow]:
        space = self._spaces.get((bridge, table))
        if space is None:
            return None
        return space.best(_Fields(pkt, self._readers), lambda f: flow_matches(f, pkt))

    def fate(self, pkt: Packet, max_hops: int = 4) -> Fate:
        return _follow(self.pick, self.bridge_of, pkt, max_hops, self._rates, self._first_table)


def _entry_reader(name: Elem) -> Callable[[Packet], Any]:
    """How a packet's value of field `name` is read, as _entry_matches reads it."""
    def read(pkt: Packet) -> Any:
        if name.startswith("l4") and pkt.eth_type not in L3_TYPES:
            return _NO
        have = getattr(pkt, _ES_FIELDS[name])
        if name == "eth_type" and pkt.vlan is not None:
            return 0x8100   # the eSwitch matches the outer ethertype
        if name.startswith("ipv4"):
            # a packet without the address (ARP, IPv6) cannot match
            return _ip_to_int(have) if have != "" else _NO
        if name.startswith("ipv6"):
            return _ip6_to_int(have) if have != "" else _NO
        return have
    return read


_ENTRY_READERS = {name: _entry_reader(name) for name in _ES_FIELDS}


class EswitchIndex:
    """The installed entries indexed once: per port the root pipe (priority, then the
    order listed), per (port, pipe) the pipe's entries (the first listed that matches:
    a basic pipe has one mask, so one dict). `fate` answers as `eswitch_fate`."""

    def __init__(self, entries: Sequence[Entry], pipes: Sequence[Pipe] = (),
                 rates: Optional[Rates] = None) -> None:
        self._pipes_by_key = {p.key: p for p in pipes}
        self._rates = rates
        self._roots: Dict[str, _Space] = {}
        self._pipes: Dict[Tuple[str, str], _Space] = {}
        for i, e in enumerate(entries):
            spaces: List[Tuple[_Space, int]] = [(self._pipes.setdefault((e.port, e.pipe), _Space()), i)]
            if e.pipe == "root":
                spaces.append((self._roots.setdefault(e.port, _Space()), _rank(e.priority, i)))
            try:
                if any(name not in _ES_FIELDS for name, _, _ in e.match):
                    raise ValueError("not indexed")
                parts = [(name, mask, value & mask) for name, value, mask in e.match]
                hash(tuple(parts))
            except (ValueError, TypeError):
                for space, rank in spaces:
                    space.slow.append((rank, e))
                continue
            for space, rank in spaces:
                space.add(parts, rank, e)
        for space in list(self._roots.values()) + list(self._pipes.values()):
            space.freeze()

    def _root(self, pkt: Packet) -> Optional[Entry]:
        space = self._roots.get(pkt.in_port)
        if space is None:
            return None
        return space.best(_Fields(pkt, _ENTRY_READERS), lambda e: _entry_matches(e, pkt))

    def _basic(self, pipe: str, pkt: Packet) -> Optional[Entry]:
        space = self._pipes.get((pkt.in_port, pipe))
        if space is None:
            return None
        return space.best(_Fields(pkt, _ENTRY_READERS), lambda e: _entry_matches(e, pkt))

    def fate(self, pkt: Packet) -> Fate:
        return _es_follow(self._root, self._basic, pkt, self._pipes_by_key, self._rates)

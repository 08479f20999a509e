"""Plans as text: OpenFlow rules in ovs-ofctl syntax and eSwitch entries in one line each.

What `xenoflow plan`, `GET /plan`, the consistency report and the controller's logs
print; pure, like the rest of intent/.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Sequence

from .plan import ETH_ARP, ETH_IP, UNTAGGED, Action, Entry, Flow, Match, Pipe, int_to_ip

ETH_IPV6 = 0x86DD

_OFCTL_FIELD = {"in_port": "in_port", "eth_dst": "dl_dst", "arp_op": "arp_op", "arp_tpa": "arp_tpa",
                "ipv4_src": "nw_src", "ipv4_dst": "nw_dst", "udp_src": "tp_src", "udp_dst": "tp_dst",
                "tcp_src": "tp_src", "tcp_dst": "tp_dst", "ipv6_src": "ipv6_src", "ipv6_dst": "ipv6_dst",
                "icmpv6_type": "icmp_type", "icmpv6_code": "icmp_code", "ipv6_nd_target": "nd_target"}
_PROTO_NAME = {17: "udp", 6: "tcp", 1: "icmp"}
_PROTO6_NAME = {17: "udp6", 6: "tcp6", 58: "icmp6"}
# ovs-ofctl's names of the fields a set_field writes, where they differ from the plan's (OXM)
_SET_FIELD = {"ipv6_nd_target": "nd_target", "ipv6_nd_sll": "nd_sll", "ipv6_nd_tll": "nd_tll"}


def _fmt_value(v: Any) -> str:
    if isinstance(v, tuple):
        val, mask = v
        if isinstance(val, int):
            return "0x%x/0x%x" % (val, mask)
        return "%s/%s" % (val, mask)
    return str(v)


def ofctl_match(match: Match) -> str:
    fields = dict(match)
    parts = []
    eth_type = fields.get("eth_type")
    proto = fields.get("ip_proto")
    if eth_type == ETH_IP and proto in _PROTO_NAME:
        parts.append(_PROTO_NAME[proto])
    elif eth_type == ETH_IP:
        parts.append("ip")
        if proto is not None:
            parts.append("nw_proto=%d" % proto)
    elif eth_type == ETH_IPV6 and proto in _PROTO6_NAME:
        parts.append(_PROTO6_NAME[proto])
    elif eth_type == ETH_IPV6:
        parts.append("ipv6")
        if proto is not None:
            parts.append("nw_proto=%d" % proto)
    elif eth_type == ETH_ARP:
        parts.append("arp")
    elif eth_type is not None:
        parts.append("dl_type=0x%04x" % eth_type)
    for f, v in match:
        if f in ("eth_type", "ip_proto"):
            continue
        if f == "vlan_vid" and v == UNTAGGED:
            parts.append("vlan_tci=0x0000/0x1fff")   # how OVS writes "no 802.1Q header"
            continue
        parts.append("%s=%s" % (_OFCTL_FIELD[f], _fmt_value(v)))
    return ",".join(parts)


_NXM = {"eth_src": "NXM_OF_ETH_SRC[]", "eth_dst": "NXM_OF_ETH_DST[]", "arp_sha": "NXM_NX_ARP_SHA[]",
        "arp_tha": "NXM_NX_ARP_THA[]", "arp_spa": "NXM_OF_ARP_SPA[]", "arp_tpa": "NXM_OF_ARP_TPA[]",
        "ipv6_src": "NXM_NX_IPV6_SRC[]", "ipv6_dst": "NXM_NX_IPV6_DST[]"}


def ofctl_actions(actions: Sequence[Action]) -> str:
    if not actions:
        return "drop"
    out = []
    for a in actions:
        if a[0] == "output":
            out.append("IN_PORT" if a[1] == "IN_PORT" else "output:%s" % a[1])
        elif a[0] == "set_field":
            out.append("set_field:%s->%s" % (a[2], _SET_FIELD.get(a[1], a[1])))
        elif a[0] == "move":
            out.append("move:%s->%s" % (_NXM[a[1]], _NXM[a[2]]))
        elif a[0] == "normal":
            out.append("NORMAL")
        elif a[0] == "goto_table":
            out.append("goto_table:%d" % a[1])
        elif a[0] == "meter":
            out.append("meter:%d" % a[1])
        else:
            raise ValueError("unknown action %r" % (a,))
    return ",".join(out)


def to_ofctl(f: Flow) -> str:
    m = ofctl_match(f.match)
    return "cookie=%#x,table=%d,priority=%d%s actions=%s" % (
        f.cookie, f.table, f.priority, "," + m if m else "", ofctl_actions(f.actions))


def meter_to_ofctl(m: Any) -> str:
    """An OpenFlow meter as `ovs-ofctl -O OpenFlow13 add-meter` takes it: packets/s, one drop band."""
    return "meter=%d,pktps,burst,stats,bands=type=drop,rate=%d,burst_size=%d" % (
        m.meter_id, m.pps, m.burst)


def _ip6(n: int) -> str:
    """An IPv6 address (or mask) held as an integer, compressed."""
    return ipaddress.IPv6Address(n).compressed


def describe_entry(e: Entry) -> str:
    def fmt(fld: str, v: int, m: int) -> str:
        if fld.startswith("ipv4"):
            return "%s=%s/%s" % (fld, int_to_ip(v), int_to_ip(m))
        if fld.startswith("ipv6"):
            return "%s=%s/%s" % (fld, _ip6(v), _ip6(m))
        return "%s=%#x/%#x" % (fld, v, m)
    match = ",".join(fmt(*t) for t in e.match)
    if e.pipe == "root":
        fwd = "%s:%s" % (e.fwd[0], e.fwd[1]) if len(e.fwd) > 1 else e.fwd[0]
        return "port=%s pipe=root priority=%d %s -> fwd %s  (%s %s)" % (
            e.port, e.priority, match, fwd, e.kind, e.owner)
    if e.kind == "drop":
        return "port=%s pipe=%s bucket=%s %s -> drop  (rate-limited, %s)" % (
            e.port, e.pipe, e.bucket, match, e.owner)
    meter = ""
    if e.meter is not None:
        meter = ", meter %d pps burst %d" % tuple(e.meter)
    elif e.shared_meter is not None:
        meter = ", shared meter %d" % e.shared_meter
    if e.kind == "meter":
        return "port=%s pipe=%s (every packet)%s  (%s)" % (e.port, e.pipe, meter, e.owner)
    return "port=%s pipe=%s bucket=%s %s -> set dst_mac=%s%s, fwd port:%s  (backend %s)" % (
        e.port, e.pipe, e.bucket, match, e.dst_mac, meter, e.fwd[1], e.backend)


def describe_pipe(p: Pipe) -> str:
    mask = ",".join("%s/%#x" % m for m in p.mask) or "none (every packet)"
    if p.drop:
        then = "drop matches, the rest to %s:%s" % p.miss
    else:
        then = "fwd pipe:%s" % p.fwd_pipe if p.fwd_pipe else "fwd port:%s" % p.fwd_port
    meter = {"entry": ", a meter per entry", "shared": ", entries meter with a shared meter"}.get(p.meter, "")
    return "pipe %s on port %s: basic, mask %s, %s%s, nr_entries %d" % (
        p.name, p.port, mask, then, meter, p.nr_entries)

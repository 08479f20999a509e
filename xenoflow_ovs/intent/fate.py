"""Packet fate in both planes: where does this packet leave, with which destination MAC?

A small model of an OpenFlow 1.3 table (priority order, masked matches, the
actions the plan uses, patch ports into the peer bridge) and of the eSwitch
(root control pipe by priority, then the service's basic pipe, miss to the
port's representor). `xenoflow check` asks both the same question for every
bucket and route, over what is actually installed; tests ask it of the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import netaddr

from .plan import ETH_ARP, ETH_IP, Entry, Flow


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


@dataclass(frozen=True)
class Fate:
    port: Optional[str]                 # where it leaves (None: dropped or NORMAL)
    eth_dst: str
    verdict: str                        # output | drop | normal | miss (eSwitch: to representor)
    path: Tuple[str, ...] = field(default=())   # bridges / pipes traversed, for messages

    def where(self) -> str:
        if self.verdict == "output":
            return "%s (dst %s)" % (self.port, self.eth_dst)
        return self.verdict


def _ip_to_int(v: Any) -> int:
    return int(netaddr.IPAddress(v)) if not isinstance(v, int) else v


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
        elif name == "vlan_vid":
            if want == 0 and pkt.vlan is not None or want != 0 and pkt.vlan != want & 0xFFF:
                return False
        elif name == "eth_dst":
            if str(want).lower() != pkt.eth_dst.lower():
                return False
        elif name in ("in_port", "eth_type", "ip_proto", "arp_op"):
            if _field(pkt, name) != want:
                return False
        elif name.endswith(("_src", "_dst")):
            proto = 17 if name.startswith("udp") else 6
            if pkt.ip_proto != proto or not _masked(want, _field(pkt, name)):
                return False
        else:
            raise ValueError("fate model cannot match field %r" % name)
    return True


def ovs_fate(flows: Dict[str, Sequence[Flow]], bridge_of: Any, pkt: Packet, max_hops: int = 4) -> Fate:
    """Follow a packet through the bridges' flows (highest priority first)."""
    path: List[str] = []
    bridge = bridge_of(pkt.in_port)
    for _ in range(max_hops):
        path.append(bridge)
        candidates = sorted((f for f in flows.get(bridge, ()) if flow_matches(f, pkt)),
                            key=lambda f: -f.priority)
        if not candidates:
            return Fate(None, pkt.eth_dst, "drop", tuple(path))  # OpenFlow 1.3 table miss
        f = candidates[0]
        out: Optional[str] = None
        for action in f.actions:
            if action[0] == "set_field" and action[1] == "eth_dst":
                pkt = replace(pkt, eth_dst=action[2])
            elif action[0] == "output":
                out = pkt.in_port if action[1] == "IN_PORT" else action[1]
            elif action[0] == "normal":
                return Fate(None, pkt.eth_dst, "normal", tuple(path))
        if out is None:
            return Fate(None, pkt.eth_dst, "drop", tuple(path))
        if out.startswith("patch-"):
            peer = out[len("patch-"):]
            pkt = replace(pkt, in_port="patch-" + bridge)
            bridge = peer
            continue
        return Fate(out, pkt.eth_dst, "output", tuple(path))
    return Fate(None, pkt.eth_dst, "drop", tuple(path) + ("loop",))


_ES_FIELDS = {"eth_type": "eth_type", "ip_proto": "ip_proto", "ipv4_src": "ipv4_src",
              "ipv4_dst": "ipv4_dst", "l4_src": "l4_src", "l4_dst": "l4_dst"}


def _entry_matches(e: Entry, pkt: Packet) -> bool:
    for name, value, mask in e.match:
        have = getattr(pkt, _ES_FIELDS[name])
        if name == "eth_type" and pkt.vlan is not None:
            have = 0x8100   # the eSwitch matches the outer ethertype
        if name.startswith("ipv4"):
            have = _ip_to_int(have)
        if name.startswith("l4") and pkt.eth_type != ETH_IP:
            return False
        if have & mask != value & mask:
            return False
    return True


def eswitch_fate(entries: Sequence[Entry], pkt: Packet) -> Fate:
    """The eSwitch: the ingress port's root pipe, then at most one basic pipe."""
    roots = sorted((e for e in entries if e.port == pkt.in_port and e.pipe == "root"
                    and _entry_matches(e, pkt)), key=lambda e: -e.priority)
    if not roots:
        return Fate(None, pkt.eth_dst, "miss", ("root",))
    e = roots[0]
    if e.fwd[0] == "port":
        return Fate(e.fwd[1], pkt.eth_dst, "output", ("root",))
    if e.fwd[0] == "drop":
        return Fate(None, pkt.eth_dst, "drop", ("root",))
    pipe = e.fwd[1]
    hits = [b for b in entries if b.port == pkt.in_port and b.pipe == pipe and _entry_matches(b, pkt)]
    if not hits:
        return Fate(None, pkt.eth_dst, "miss", ("root", pipe))
    b = hits[0]
    return Fate(b.fwd[1], b.dst_mac or pkt.eth_dst, "output", ("root", pipe))


def arp_request(in_port: str, target: str) -> Packet:
    return Packet(in_port=in_port, eth_type=ETH_ARP, ip_proto=0, ipv4_src="", ipv4_dst="",
                  arp_op=1, arp_tpa=target)

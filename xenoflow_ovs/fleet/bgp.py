"""FRR configuration for a DPU's BGP speaker and for the lab's router, and the parsing of
what FRR reports back. Pure: no I/O (fleet/frr.py runs the daemons and vtysh).

The speaker's files hold the sessions only, never a `network`: the controller announces
the service VIPs at run time (`network_commands`), and bgpd keeps them until told
otherwise, so a controller restart withdraws nothing. A bgpd restart re-reads its file
and so forgets them: the controller must compare `parse_networks` with what it wants.

Each daemon gets a file of its own: a daemon reading another's lines logs "No such
command" for each of them.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import netaddr

# the outbound route-map of every speaker session: where the MED is set
ROUTE_MAP_OUT = "XF-OUT"
# the inbound one: the speaker only announces. Routes it learned would be put in the DPU's
# own kernel by zebra and could change how the Arm itself routes.
ROUTE_MAP_IN = "XF-IN"
BFD_PROFILE = "xf"
ROUTE_MAP_SEQ = 10

_ASN_MAX = 4294967295


class BgpError(Exception):
    """FRR refused something, or reported something that cannot be read."""


def _asn(asn: int) -> int:
    if isinstance(asn, bool) or not isinstance(asn, int) or not 1 <= asn <= _ASN_MAX:
        raise BgpError("bad AS number %r" % (asn,))
    return asn


def _ip(address: Any) -> str:
    """The host address of an IPAddress, an IPNetwork ('198.18.11.2/24') or a string."""
    try:
        if isinstance(address, netaddr.IPNetwork):
            return str(address.ip)
        if isinstance(address, str) and "/" in address:
            return str(netaddr.IPNetwork(address).ip)
        return str(netaddr.IPAddress(str(address)))
    except (netaddr.AddrFormatError, ValueError, TypeError) as e:
        raise BgpError("bad address %r: %s" % (address, e))


def _prefix(prefix: Any) -> str:
    """'198.18.0.53' or '198.18.0.53/32' -> '198.18.0.53/32' (the network's own address)."""
    try:
        net = netaddr.IPNetwork(str(prefix))
    except (netaddr.AddrFormatError, ValueError) as e:
        raise BgpError("bad prefix %r: %s" % (prefix, e))
    if net.version != 4:
        raise BgpError("only IPv4 prefixes are announced: %r" % (prefix,))
    return str(net.cidr)


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BgpError("%s must be a positive integer, not %r" % (name, value))
    return value


def _hostname(hostname: str) -> str:
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$", hostname or ""):
        raise BgpError("bad hostname %r" % (hostname,))
    return hostname


def _file(lines: Iterable[str]) -> str:
    return "\n".join(list(lines) + ["end", ""])


def _zebra(hostname: str) -> str:
    # FRR 8.4's kernel nexthop groups do not restore ECMP after a link flap: plain routes do
    return _file(["hostname " + hostname, "!",
                  "no zebra nexthop kernel enable", "!"])


def _bfdd(hostname: str, interval_ms: int, multiplier: int) -> str:
    _positive("bfd interval", interval_ms)
    _positive("bfd multiplier", multiplier)
    return _file(["hostname " + hostname, "!", "bfd",
                  " profile " + BFD_PROFILE,
                  "  receive-interval %d" % interval_ms,
                  "  transmit-interval %d" % interval_ms,
                  "  detect-multiplier %d" % multiplier,
                  " exit", "exit", "!"])


def _neighbor(address: str, asn: int, source: Optional[str]) -> List[str]:
    """A session's lines under `router bgp`: BFD with our profile, and no waiting (connect
    retries every second, updates leave at once) so a VIP moves within seconds."""
    n = " neighbor %s " % address
    lines = [n + "remote-as %d" % _asn(asn)]
    if source:
        lines.append(n + "update-source " + source)
    return lines + [n + "timers connect 1", n + "advertisement-interval 0",
                    n + "bfd", n + "bfd profile " + BFD_PROFILE]


def _timers(keepalive: int, hold: int) -> str:
    _positive("keepalive", keepalive)
    if isinstance(hold, bool) or not isinstance(hold, int) or hold < 3 or hold < keepalive:
        raise BgpError("hold must be >= 3 and >= keepalive, not %r" % (hold,))
    return " timers bgp %d %d" % (keepalive, hold)


def _route_map_out(med: Optional[int]) -> List[str]:
    lines = ["route-map %s permit %d" % (ROUTE_MAP_OUT, ROUTE_MAP_SEQ)]
    if med is not None:
        lines.append(" set metric %d" % _med(med))
    return lines + ["exit", "!"]


def _med(med: int) -> int:
    if isinstance(med, bool) or not isinstance(med, int) or not 0 <= med <= 4294967295:
        raise BgpError("bad MED %r" % (med,))
    return med


def speaker_files(bgp: Any, address: Any, hostname: str) -> Dict[str, str]:
    """zebra.conf, bfdd.conf and bgpd.conf of a DPU's speaker. `bgp` is a config.Bgp,
    `address` the speaker's own address (the internal port's IPNetwork, or an IPAddress)."""
    source = _ip(address)
    router_id = _ip(bgp.router_id) if bgp.router_id is not None else source
    if not bgp.peers:
        raise BgpError("a speaker needs at least one peer")
    peers = [(_ip(p.address), _asn(p.asn)) for p in bgp.peers]
    lines = ["hostname " + _hostname(hostname), "!",
             "router bgp %d" % _asn(bgp.asn), " bgp router-id " + router_id,
             " no bgp ebgp-requires-policy",
             # the VIP is not a route on the DPU's Arm: announce it all the same
             " no bgp network import-check",
             _timers(bgp.keepalive, bgp.hold)]
    for addr, asn in peers:
        lines += _neighbor(addr, asn, source)
    lines.append(" address-family ipv4 unicast")
    for addr, _ in peers:
        lines += ["  neighbor %s activate" % addr,
                  "  neighbor %s route-map %s in" % (addr, ROUTE_MAP_IN),
                  "  neighbor %s route-map %s out" % (addr, ROUTE_MAP_OUT)]
    lines += [" exit-address-family", "exit", "!",
              "route-map %s deny %d" % (ROUTE_MAP_IN, ROUTE_MAP_SEQ), "exit", "!"]
    lines += _route_map_out(bgp.med)
    return {"zebra.conf": _zebra(hostname),
            "bfdd.conf": _bfdd(hostname, bgp.bfd_interval_ms, bgp.bfd_multiplier),
            "bgpd.conf": _file(lines)}


def router_files(asn: int, router_id: str, neighbors: Sequence[Tuple[str, int]],
                 bfd_interval_ms: int = 300, bfd_multiplier: int = 3, keepalive: int = 1,
                 hold: int = 3, maximum_paths: int = 8, hostname: str = "rtr") -> Dict[str, str]:
    """The lab router: a session with BFD to every speaker, ECMP over up to `maximum_paths`
    of them. Speakers of different AS numbers still share a VIP (as-path multipath-relax)."""
    lines = ["hostname " + _hostname(hostname), "!",
             "router bgp %d" % _asn(asn), " bgp router-id " + _ip(router_id),
             " no bgp ebgp-requires-policy",
             " bgp bestpath as-path multipath-relax",
             _timers(keepalive, hold)]
    peers = [(_ip(a), _asn(n)) for a, n in neighbors]
    for addr, n in peers:
        lines += _neighbor(addr, n, None)
    lines += [" address-family ipv4 unicast",
              "  maximum-paths %d" % _positive("maximum_paths", maximum_paths)]
    lines += ["  neighbor %s activate" % addr for addr, _ in peers]
    lines += [" exit-address-family", "exit", "!"]
    return {"zebra.conf": _zebra(hostname),
            "bfdd.conf": _bfdd(hostname, bfd_interval_ms, bfd_multiplier),
            "bgpd.conf": _file(lines)}


def network_commands(asn: int, prefix: Any, announce: bool) -> List[str]:
    """vtysh configure-mode lines that add (or remove) one announced prefix."""
    line = "network " + _prefix(prefix)
    return ["router bgp %d" % _asn(asn), "address-family ipv4 unicast",
            line if announce else "no " + line]


def med_commands(asn: int, med: Optional[int]) -> List[str]:
    """vtysh configure-mode lines that set (None: clear) the MED of every announcement. The
    route-map is the same for every session of the speaker `asn`; a soft clear outbound
    sends the announcements again with it."""
    _asn(asn)
    head = "route-map %s permit %d" % (ROUTE_MAP_OUT, ROUTE_MAP_SEQ)
    return [head, "no set metric" if med is None else "set metric %d" % _med(med)]


def _load(text: str, what: str, empty: Any) -> Any:
    try:
        return json.loads(text) if text.strip() else empty
    except ValueError as e:
        raise BgpError("%s is not JSON: %s" % (what, e))


def _bfd_states(bfd_json: str) -> Dict[str, str]:
    """peer address -> BFD status ('up', 'down', 'init', ...). A peer can show twice (a
    session per local address): an 'up' one wins."""
    peers = _load(bfd_json, "show bfd peers json", [])
    if not isinstance(peers, list):
        raise BgpError("show bfd peers json: expected a list")
    out: Dict[str, str] = {}
    for p in peers:
        addr, status = p.get("peer"), p.get("status")
        if addr and status and out.get(addr) != "up":
            out[addr] = str(status)
    return out


def _int_or_none(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_peers(summary_json: str, bfd_json: str) -> Dict[str, Dict[str, Any]]:
    """{peer: {"bgp": state, "bfd": status or None, "uptime": str or None,
    "prefixes_sent": int or None}} from `show bgp ipv4 unicast summary json` and
    `show bfd peers json`. The summary is {} while bgpd has no instance."""
    summary = _load(summary_json, "show bgp summary json", {})
    if not isinstance(summary, dict):
        raise BgpError("show bgp summary json: expected an object")
    # `show bgp summary json` (no AFI) nests the same object under "ipv4Unicast"
    summary = summary.get("ipv4Unicast", summary)
    bfd = _bfd_states(bfd_json)
    out: Dict[str, Dict[str, Any]] = {}
    for addr, p in (summary.get("peers") or {}).items():
        established = p.get("state") == "Established"
        out[addr] = {"bgp": p.get("state"), "bfd": bfd.get(addr),
                     "uptime": p.get("peerUptime") if established else None,
                     "prefixes_sent": _int_or_none(p.get("pfxSnt"))}
    return out


def parse_networks(running_config: str, asn: int) -> Set[str]:
    """The prefixes configured as `network` (IPv4 unicast) under `router bgp <asn>` (the
    default VRF) in `show running-config` text."""
    head = "router bgp %d" % _asn(asn)
    out: Set[str] = set()
    inside, family = False, "ipv4 unicast"
    for raw in running_config.splitlines():
        line = raw.strip()
        if not raw.startswith(" "):   # a top-level line opens or closes a block
            inside, family = raw.rstrip() == head, "ipv4 unicast"
            continue
        if not inside:
            continue
        if line.startswith("address-family "):
            family = line[len("address-family "):]
        elif line == "exit-address-family":
            family = "ipv4 unicast"
        elif family == "ipv4 unicast" and line.startswith("network "):
            out.add(_prefix(line.split()[1]))
    return out

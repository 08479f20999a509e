"""DNS messages and Ethernet / IPv4 / UDP frames for the lab, the tests and the benchmarks.

DNS goes through dnspython, 1.16 in the Ryu env and 2.x elsewhere: only what both versions
have is used (``dns.message.make_query`` then setting ``.id``, ``make_response``,
``to_wire``, ``from_wire``, ``.answer``, ``.rcode()``, TXT rdata ``.strings``)::

    wire = dns_query("who.example.lab", "TXT", qid=7)     # bytes for a socket
    qid, txt = dns_answer(reply_bytes)                     # (7, "fips2") or (7, "rcode 5")

Frames are plain ``struct``: the builders (:func:`ethernet`, :func:`ipv4`, :func:`udp`,
:func:`udp_frame`, :func:`arp_request`, ...) always produce well-formed headers with the IPv4
header checksum filled in; :func:`parse_frame` reads back what the tests look at and never
raises. Frames that are wrong on purpose (a bad version nibble or IHL, a total length past
the end, a VLAN tag, a cut-off frame) come only from the ``malformed_*`` / ``vlan_tagged`` /
``truncated`` functions at the end, so a test that sends one says so by name.

IPv6: :func:`ipv6` (a 40-byte header), the extension headers :func:`ext_options` (hop-by-hop,
destination options, routing), :func:`ext_ah` and :func:`ext_fragment`, and :func:`udp6` /
:func:`udp6_frame` / :func:`tcp6_frame` with the checksum IPv6 requires. :func:`ipv6` also
writes a wrong version or payload length when asked (``version=``, ``plen=``).

MAC addresses are strings (any form netaddr reads) or 6 bytes; IPv4 addresses are
dotted-quad strings, IPv6 ones any form ``ipaddress`` reads. Standard library, netaddr and
dnspython only: safe to import in a child process inside a namespace and on Python 3.9.
"""
from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple, Optional, Tuple, Union

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import netaddr

__all__ = [
    "ETH_P_IP", "ETH_P_ARP", "ETH_P_8021Q", "ETH_P_IPV6", "IPPROTO_TCP", "IPPROTO_UDP", "BROADCAST",
    "make_query", "dns_query", "dns_response", "dns_message", "dns_id", "answer_txt", "dns_answer",
    "mac_bytes", "mac_str", "ip_bytes", "checksum",
    "ethernet", "ipv4", "udp", "tcp_syn", "arp_request", "udp_frame", "tcp_frame", "arp_frame",
    "IPPROTO_HOPOPTS", "IPPROTO_ROUTING", "IPPROTO_FRAGMENT", "IPPROTO_ESP", "IPPROTO_AH",
    "IPPROTO_DSTOPTS",
    "ipv6", "ext_options", "ext_ah", "ext_fragment", "udp6", "tcp6_syn", "udp6_frame", "tcp6_frame",
    "ParsedFrame", "parse_frame",
    "malformed_ipv4", "vlan_tagged", "truncated",
]

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100
ETH_P_IPV6 = 0x86DD
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT = 0, 43, 44
IPPROTO_ESP, IPPROTO_AH, IPPROTO_DSTOPTS = 50, 51, 60
BROADCAST = b"\xff" * 6

Mac = Union[str, bytes]

_ETH = struct.Struct("!6s6sH")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")
_TCP = struct.Struct("!HHIIBBHHH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")


# ================================================================ DNS (dnspython)


def make_query(name: str, qtype: Union[str, int] = "A", qid: Optional[int] = None) -> dns.message.Message:
    """A recursion-desired query for `name` `qtype` IN, no EDNS; a random ID unless `qid`."""
    q = dns.message.make_query(name, qtype)
    if qid is not None:
        q.id = qid & 0xFFFF      # make_query(id=) is 2.x only
    return q


def dns_query(name: str, qtype: Union[str, int] = "A", qid: Optional[int] = None) -> bytes:
    """:func:`make_query` in wire format."""
    return make_query(name, qtype, qid).to_wire()


def dns_response(query: bytes, txt: Optional[str] = None, rcode: int = dns.rcode.NOERROR,
                 ttl: int = 0) -> bytes:
    """The answer to the wire-format `query`: one TXT record `txt` for its question (none
    when `txt` is None), with `rcode`."""
    q = dns.message.from_wire(query)
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    if txt is not None:
        name = q.question[0].name
        r.answer.append(dns.rrset.from_text(name, ttl, dns.rdataclass.IN, dns.rdatatype.TXT,
                                            '"%s"' % txt.replace("\\", "\\\\").replace('"', '\\"')))
    return r.to_wire()


def dns_message(wire: bytes) -> dns.message.Message:
    """Parse a DNS message; raises dns.exception.DNSException (or ValueError) when malformed."""
    return dns.message.from_wire(wire)


def dns_id(wire: bytes) -> Optional[int]:
    """The ID field of a DNS message (its first two bytes), None when it is shorter."""
    return struct.unpack_from("!H", wire)[0] if len(wire) >= 2 else None


def answer_txt(msg: dns.message.Message) -> Optional[str]:
    """The first TXT record of the answer section (its strings joined), or None."""
    for rrset in msg.answer:
        if rrset.rdtype == dns.rdatatype.TXT:
            for rd in rrset:
                return b"".join(rd.strings).decode("utf-8", "replace")
    return None


def dns_answer(wire: bytes) -> Tuple[int, str]:
    """(id, the first TXT) of a wire-format response, or (id, 'rcode N') without a TXT.
    Raises like :func:`dns_message` on a malformed message."""
    msg = dns_message(wire)
    txt = answer_txt(msg)
    return msg.id, txt if txt is not None else "rcode %d" % msg.rcode()


# ================================================================ addresses, checksum


def mac_bytes(mac: Mac) -> bytes:
    """6 bytes of a 48-bit MAC ('02:00:c6:12:00:02', '02-00-...', or already 6 bytes);
    ValueError otherwise."""
    if isinstance(mac, (bytes, bytearray)):
        if len(mac) != 6:
            raise ValueError("bad MAC %r" % (mac,))
        return bytes(mac)
    if not isinstance(mac, str) or not netaddr.valid_mac(mac):   # (EUI() alone takes "1" as a number)
        raise ValueError("bad MAC %r" % (mac,))
    return netaddr.EUI(mac, version=48).packed


def mac_str(b: bytes) -> str:
    """'02:00:c6:12:00:02' for 6 bytes."""
    return ":".join("%02x" % x for x in b)


def ip_bytes(ip: str) -> bytes:
    """4 bytes of a dotted-quad IPv4 address; ValueError otherwise."""
    return ipaddress.IPv4Address(ip).packed


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of `data`: 0 over a header that carries a right one."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


# ================================================================ well-formed builders


def ethernet(dst: Mac, src: Mac, ethertype: int, payload: bytes) -> bytes:
    return _ETH.pack(mac_bytes(dst), mac_bytes(src), ethertype) + payload


def _ipv4_header(version: int, ihl: int, total_length: int, ident: int, frag: int, ttl: int, proto: int,
                 src: str, dst: str) -> bytes:
    h = _IPV4.pack((version << 4) | ihl, 0, total_length, ident, frag, ttl, proto, 0, ip_bytes(src),
                   ip_bytes(dst))
    return h[:10] + struct.pack("!H", checksum(h)) + h[12:]


def ipv4(src: str, dst: str, proto: int, payload: bytes, ident: int = 1, frag: int = 0,
         ttl: int = 64) -> bytes:
    """A 20-byte IPv4 header (checksum filled in) + payload. `frag` is the flags and fragment
    offset field as on the wire (e.g. 100: offset 800 bytes, a non-first fragment)."""
    return _ipv4_header(4, 5, 20 + len(payload), ident, frag, ttl, proto, src, dst) + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP header + payload, checksum 0 (none: allowed over IPv4)."""
    return _UDP.pack(sport, dport, 8 + len(payload), 0) + payload


def tcp_syn(sport: int, dport: int) -> bytes:
    """A 20-byte TCP SYN header (window 1024, checksum 0)."""
    return _TCP.pack(sport, dport, 0, 0, 0x50, 0x02, 1024, 0, 0)


def arp_request(sender_mac: Mac, sender_ip: str, target_ip: str) -> bytes:
    """The ARP body (Ethernet/IPv4, op 1) asking who has `target_ip`."""
    return _ARP.pack(1, ETH_P_IP, 6, 4, 1, mac_bytes(sender_mac), ip_bytes(sender_ip), b"\0" * 6,
                     ip_bytes(target_ip))


def udp_frame(dst_mac: Mac, src_mac: Mac, src: str, dst: str, sport: int, dport: int,
              payload: bytes) -> bytes:
    return ethernet(dst_mac, src_mac, ETH_P_IP, ipv4(src, dst, IPPROTO_UDP, udp(sport, dport, payload)))


def tcp_frame(dst_mac: Mac, src_mac: Mac, src: str, dst: str, sport: int, dport: int) -> bytes:
    return ethernet(dst_mac, src_mac, ETH_P_IP, ipv4(src, dst, IPPROTO_TCP, tcp_syn(sport, dport)))


def arp_frame(src_mac: Mac, sender_ip: str, target_ip: str, dst_mac: Mac = BROADCAST) -> bytes:
    """An ARP request frame, broadcast unless `dst_mac`."""
    return ethernet(dst_mac, src_mac, ETH_P_ARP, arp_request(src_mac, sender_ip, target_ip))


# ================================================================ IPv6


def ipv6(src: str, dst: str, nh: int, payload: bytes, plen: Optional[int] = None, version: int = 6,
         hop_limit: int = 64) -> bytes:
    """A 40-byte IPv6 header + payload. ``nh``: the first next header (an extension header's
    or the transport's); ``plen`` and ``version`` write a lie on purpose."""
    head = struct.pack("!IHBB", version << 28, len(payload) if plen is None else plen, nh, hop_limit)
    return head + ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed + payload


def ext_options(nh: int, units: int = 0) -> bytes:
    """A hop-by-hop, destination options or routing header of (units + 1) * 8 bytes (padding)."""
    return bytes([nh, units]) + b"\0" * (6 + 8 * units)


def ext_ah(nh: int) -> bytes:
    """An authentication header of 16 bytes (its length field counts 4-byte words, minus 2)."""
    return bytes([nh, 2]) + b"\0" * 14


def ext_fragment(nh: int, offset: int, more: bool, ident: int = 1) -> bytes:
    """A fragment header; `offset` in 8-byte units (non-zero: a non-first fragment)."""
    return struct.pack("!BBHI", nh, 0, (offset << 3) | int(more), ident)


def _l4_checksum6(src: str, dst: str, proto: int, segment: bytes) -> int:
    pseudo = (ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
              + struct.pack("!IxxxB", len(segment), proto))
    return checksum(pseudo + segment) or 0xFFFF


def udp6(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP header + payload with the checksum IPv6 requires (RFC 8200: zero is invalid)."""
    seg = _UDP.pack(sport, dport, 8 + len(payload), 0) + payload
    return seg[:6] + struct.pack("!H", _l4_checksum6(src, dst, IPPROTO_UDP, seg)) + seg[8:]


def tcp6_syn(src: str, dst: str, sport: int, dport: int) -> bytes:
    seg = tcp_syn(sport, dport)
    return seg[:16] + struct.pack("!H", _l4_checksum6(src, dst, IPPROTO_TCP, seg)) + seg[18:]


def udp6_frame(dst_mac: Mac, src_mac: Mac, src: str, dst: str, sport: int, dport: int,
               payload: bytes) -> bytes:
    return ethernet(dst_mac, src_mac, ETH_P_IPV6,
                    ipv6(src, dst, IPPROTO_UDP, udp6(src, dst, sport, dport, payload)))


def tcp6_frame(dst_mac: Mac, src_mac: Mac, src: str, dst: str, sport: int, dport: int) -> bytes:
    return ethernet(dst_mac, src_mac, ETH_P_IPV6,
                    ipv6(src, dst, IPPROTO_TCP, tcp6_syn(src, dst, sport, dport)))


# ================================================================ parsing


class ParsedFrame(NamedTuple):
    """What :func:`parse_frame` found; fields past the point where parsing stopped are None
    and `error` says why it stopped (None: the frame is whole as far as it was read)."""
    eth_dst: Optional[str] = None
    eth_src: Optional[str] = None
    ethertype: Optional[int] = None       # after one 802.1Q tag, if any
    vlan: Optional[int] = None            # the tag's VLAN id
    ip_src: Optional[str] = None
    ip_dst: Optional[str] = None
    ip_proto: Optional[int] = None
    ip_checksum_ok: Optional[bool] = None
    frag: Optional[int] = None            # flags + fragment offset field
    l4_src: Optional[int] = None
    l4_dst: Optional[int] = None
    payload: Optional[bytes] = None       # UDP data, or the IP payload for other protocols
    arp_op: Optional[int] = None
    arp_spa: Optional[str] = None
    arp_tpa: Optional[str] = None
    error: Optional[str] = None


def _ip_str(b: bytes) -> str:
    return str(ipaddress.IPv4Address(b))


def _parse_arp(f: bytes, off: int, out: dict) -> ParsedFrame:
    if len(f) < off + _ARP.size:
        return ParsedFrame(error="truncated ARP", **out)
    _ht, _pt, _hl, _pl, op, _sha, spa, _tha, tpa = _ARP.unpack_from(f, off)
    return ParsedFrame(arp_op=op, arp_spa=_ip_str(spa), arp_tpa=_ip_str(tpa), **out)


def _parse_ipv4(f: bytes, off: int, out: dict) -> ParsedFrame:
    if len(f) < off + 20:
        return ParsedFrame(error="truncated IPv4 header", **out)
    vihl, _tos, tot, _id, frag, _ttl, proto, _ck, src, dst = _IPV4.unpack_from(f, off)
    if vihl >> 4 != 4:
        return ParsedFrame(error="IPv4 version %d" % (vihl >> 4), **out)
    ihl = (vihl & 0x0F) * 4
    if ihl < 20 or len(f) < off + ihl:
        return ParsedFrame(error="bad IPv4 IHL %d" % (ihl // 4), **out)
    out.update(ip_src=_ip_str(src), ip_dst=_ip_str(dst), ip_proto=proto, frag=frag,
               ip_checksum_ok=checksum(f[off:off + ihl]) == 0)
    if tot < ihl or off + tot > len(f):
        return ParsedFrame(error="bad IPv4 total length %d" % tot, **out)
    l4 = f[off + ihl:off + tot]          # without Ethernet padding
    if frag & 0x1FFF or proto != IPPROTO_UDP:
        return ParsedFrame(payload=l4, **out)
    if len(l4) < 8:
        return ParsedFrame(error="truncated UDP header", **out)
    sport, dport, ulen, _ck = _UDP.unpack_from(l4)
    out.update(l4_src=sport, l4_dst=dport)
    if ulen < 8 or ulen > len(l4):
        return ParsedFrame(error="bad UDP length %d" % ulen, **out)
    return ParsedFrame(payload=l4[8:ulen], **out)


def parse_frame(f: bytes) -> ParsedFrame:
    """Ethernet (with at most one 802.1Q tag), then ARP or IPv4 (then UDP ports and data,
    or TCP/other payload). Never raises."""
    if len(f) < _ETH.size:
        return ParsedFrame(error="truncated Ethernet header")
    dst, src, etype = _ETH.unpack_from(f)
    off = _ETH.size
    out = dict(eth_dst=mac_str(dst), eth_src=mac_str(src), ethertype=etype)
    if etype == ETH_P_8021Q:
        if len(f) < off + 4:
            return ParsedFrame(error="truncated 802.1Q tag", **out)
        tci, etype = struct.unpack_from("!HH", f, off)
        out.update(vlan=tci & 0x0FFF, ethertype=etype)
        off += 4
    if etype == ETH_P_ARP:
        return _parse_arp(f, off, out)
    if etype == ETH_P_IP:
        return _parse_ipv4(f, off, out)
    return ParsedFrame(payload=f[off:], **out)


# ================================================================ malformed on purpose


def malformed_ipv4(src: str, dst: str, proto: int, payload: bytes, version: int = 4, ihl: int = 5,
                   total_length: Optional[int] = None, ident: int = 1, frag: int = 0) -> bytes:
    """An IPv4 packet whose header lies: a `version` nibble other than 4, an `ihl` other than
    5 (the header stays 20 bytes long), or a `total_length` that does not match. The checksum
    is right for the header as written, so only the lie is wrong."""
    tot = 20 + len(payload) if total_length is None else total_length
    return _ipv4_header(version, ihl, tot, ident, frag, 64, proto, src, dst) + payload


def vlan_tagged(dst: Mac, src: Mac, vid: int, ethertype: int, payload: bytes) -> bytes:
    """An Ethernet frame with one 802.1Q tag (priority 0) in front of `ethertype`."""
    return _ETH.pack(mac_bytes(dst), mac_bytes(src), ETH_P_8021Q) + struct.pack(
        "!HH", vid & 0x0FFF, ethertype) + payload


def truncated(frame: bytes, length: int) -> bytes:
    """The first `length` bytes of `frame` (a runt, a header cut short)."""
    if length > len(frame):
        raise ValueError("cannot truncate %d bytes to %d" % (len(frame), length))
    return frame[:length]

"""xenoflow_ovs.lab.frames: DNS messages through dnspython (1.16 and 2.x), frames built with
struct and read back by another parser (the framework's packet library), the IPv4 checksum
checked by hand, and the malformed frames malformed exactly where their names say."""

import importlib
import os
import random
import struct
import subprocess
import sys

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdatatype
import dns.rrset
import pytest

from xenoflow_ovs.lab import frames as fr

CLIENT_MAC, VIP_MAC = "02:00:c6:12:00:10", "02:00:c6:12:00:35"
SRC, VIP = "198.18.0.11", "198.18.0.53"


def _packet_lib():
    """The OpenFlow framework's packet parser (os-ken or Ryu): an independent reader."""
    for pkg in ("os_ken", "ryu"):
        try:
            return importlib.import_module(pkg + ".lib.packet.packet")
        except ImportError:
            continue
    pytest.skip("neither os-ken nor Ryu is installed")


def _protocols(frame):
    pkt = _packet_lib().Packet(frame)
    return {type(p).__name__: p for p in pkt.protocols if not isinstance(p, bytes)}, pkt.protocols[-1]


def _ones_complement_sum(data):
    """Summed by hand, word by word with end-around carry: 0xffff over a header whose checksum is right."""
    total = 0
    for i in range(0, len(data), 2):
        total += data[i] << 8 | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


# ---------------------------------------------------------------- DNS


def test_query_is_the_classic_wire_format_and_parses_back():
    wire = fr.dns_query("who.example.lab", "TXT", qid=0x4242)
    # header: id, RD, one question, no EDNS (no additional record); then the name's labels
    assert wire == (b"\x42\x42\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                    b"\x03who\x07example\x03lab\x00\x00\x10\x00\x01")
    assert fr.dns_query("who.example.lab", 16, qid=0x4242) == wire
    q = dns.message.from_wire(wire)
    assert q.id == 0x4242 and q.flags & dns.flags.RD and not q.flags & dns.flags.QR
    assert q.question[0].name == dns.name.from_text("who.example.lab")
    assert q.question[0].rdtype == dns.rdatatype.TXT and q.edns < 0
    assert fr.dns_id(wire) == 0x4242 and fr.dns_id(b"\x01") is None


def test_query_ids_wrap_and_default_to_random():
    assert fr.dns_id(fr.dns_query("xf.lab", "A", qid=0x10005)) == 5
    ids = {fr.dns_id(fr.dns_query("xf.lab")) for _ in range(20)}
    assert len(ids) > 1


def test_answer_round_trip_txt_and_rcode():
    q = fr.dns_query("who.example.lab", "TXT", qid=77)
    r = fr.dns_response(q, txt="fips2")
    assert fr.dns_answer(r) == (77, "fips2")
    msg = dns.message.from_wire(r)                      # dnspython reads what we wrote
    assert msg.flags & dns.flags.QR and msg.id == 77
    assert [tuple(rd.strings) for rd in msg.answer[0]] == [(b"fips2",)]   # 1.16: a list, 2.x: a tuple
    assert fr.dns_answer(fr.dns_response(q, rcode=5)) == (77, "rcode 5")
    assert fr.dns_answer(fr.dns_response(q, txt='a "quoted" one')) == (77, 'a "quoted" one')


def test_answer_txt_joins_strings_and_ignores_other_types():
    q = dns.message.from_wire(fr.dns_query("who.example.lab", "TXT", qid=1))
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("who.example.lab.", 0, "IN", "A", "198.18.0.80"))
    r.answer.append(dns.rrset.from_text("who.example.lab.", 0, "IN", "TXT", '"fi" "ps3"'))
    assert fr.answer_txt(dns.message.from_wire(r.to_wire())) == "fips3"


@pytest.mark.parametrize("wire", [b"", b"\x00\x01\x81", fr.dns_query("xf.lab", qid=3)[:15],
                                  b"\x00\x01\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\xff"])
def test_malformed_answers_raise_dns_errors(wire):
    with pytest.raises((dns.exception.DNSException, ValueError)):
        fr.dns_answer(wire)


# ---------------------------------------------------------------- addresses, checksum


def test_mac_bytes_forms_and_errors():
    want = bytes.fromhex("0200c6120035")
    for form in (VIP_MAC, "02-00-C6-12-00-35", "0200c6120035", want):
        assert fr.mac_bytes(form) == want
    assert fr.mac_str(want) == VIP_MAC
    for bad in ("02:00:c6:12:00", "zz:00:00:00:00:00", "1", "", "02:00:00:00:00:00:00:01", b"\x02"):
        with pytest.raises(ValueError):
            fr.mac_bytes(bad)
    assert fr.ip_bytes(VIP) == bytes([198, 18, 0, 53])
    with pytest.raises(ValueError):
        fr.ip_bytes("198.18.0.300")


def test_checksum_known_values():
    # RFC 1071 section 3's example, and a textbook IPv4 header (its checksum field zeroed)
    assert fr.checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    hdr = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert fr.checksum(hdr) == 0xB861
    assert fr.checksum(hdr[:10] + b"\xb8\x61" + hdr[12:]) == 0
    assert fr.checksum(b"\x01") == 0xFEFF   # odd length: padded with a zero byte


# ---------------------------------------------------------------- well-formed frames


def test_udp_frame_read_back_by_the_packet_library():
    query = fr.dns_query("who.example.lab", "TXT", qid=9)
    f = fr.udp_frame(VIP_MAC, CLIENT_MAC, SRC, VIP, 5353, 53, query)
    assert len(f) == 14 + 20 + 8 + len(query)
    assert f[:14] == bytes.fromhex("0200c6120035" "0200c6120010" "0800")
    assert _ones_complement_sum(f[14:34]) == 0xFFFF
    protos, payload = _protocols(f)
    eth, ip, udp = protos["ethernet"], protos["ipv4"], protos["udp"]
    assert (eth.dst, eth.src, eth.ethertype) == (VIP_MAC, CLIENT_MAC, 0x0800)
    assert (ip.version, ip.header_length, ip.total_length, ip.ttl, ip.proto, ip.src, ip.dst) == (
        4, 5, 20 + 8 + len(query), 64, 17, SRC, VIP)
    assert (udp.src_port, udp.dst_port, udp.total_length) == (5353, 53, 8 + len(query))
    assert payload == query and dns.message.from_wire(payload).id == 9
    p = fr.parse_frame(f)
    assert p == fr.ParsedFrame(eth_dst=VIP_MAC, eth_src=CLIENT_MAC, ethertype=0x0800, ip_src=SRC,
                               ip_dst=VIP, ip_proto=17, ip_checksum_ok=True, frag=0, l4_src=5353,
                               l4_dst=53, payload=query)
    assert (p.eth_src, p.ip_dst) == (CLIENT_MAC, VIP)     # the fields a balancer rewrites or matches


def test_tcp_and_arp_frames_read_back():
    protos, _ = _protocols(fr.tcp_frame(VIP_MAC, CLIENT_MAC, SRC, VIP, 40000, 53))
    tcp = protos["tcp"]
    assert (tcp.src_port, tcp.dst_port, tcp.bits, tcp.window_size) == (40000, 53, 0x02, 1024)
    assert protos["ipv4"].proto == 6
    f = fr.arp_frame(CLIENT_MAC, SRC, "198.18.0.99")
    assert len(f) == 42 and f[:6] == b"\xff" * 6
    protos, _ = _protocols(f)
    arp = protos["arp"]
    assert (arp.opcode, arp.src_mac, arp.src_ip, arp.dst_mac, arp.dst_ip) == (
        1, CLIENT_MAC, SRC, "00:00:00:00:00:00", "198.18.0.99")
    p = fr.parse_frame(f)
    assert (p.ethertype, p.arp_op, p.arp_spa, p.arp_tpa, p.error) == (0x0806, 1, SRC, "198.18.0.99", None)


def test_parse_trims_ethernet_padding_and_reads_fragments():
    f = fr.udp_frame(VIP_MAC, CLIENT_MAC, SRC, VIP, 1, 53, b"ab")
    padded = f + b"\0" * (60 - len(f))
    assert fr.parse_frame(padded).payload == b"ab"
    frag = fr.ethernet(VIP_MAC, CLIENT_MAC, fr.ETH_P_IP, fr.ipv4(SRC, VIP, 17, b"\0" * 16, frag=100))
    p = fr.parse_frame(frag)
    assert p.frag == 100 and p.l4_dst is None and p.payload == b"\0" * 16 and p.ip_checksum_ok


# ---------------------------------------------------------------- malformed on purpose


def _query_packet(**lie):
    return fr.malformed_ipv4(SRC, VIP, 17, fr.udp(5353, 53, fr.dns_query("xf.lab", qid=1)), **lie)


def test_malformed_ipv4_lies_only_where_asked():
    honest = fr.ipv4(SRC, VIP, 17, fr.udp(5353, 53, fr.dns_query("xf.lab", qid=1)))
    assert _query_packet() == honest
    v6 = _query_packet(version=6)
    assert v6[0] == 0x65 and v6[1:10] == honest[1:10] and v6[12:] == honest[12:]
    ihl4 = _query_packet(ihl=4)
    assert ihl4[0] == 0x44 and len(ihl4) == len(honest)
    long_ = _query_packet(total_length=1500)
    assert struct.unpack("!H", long_[2:4])[0] == 1500
    for pkt in (v6, ihl4, long_):   # the checksum matches the header as written
        assert _ones_complement_sum(pkt[:20]) == 0xFFFF

    def parse(pkt):
        return fr.parse_frame(fr.ethernet(VIP_MAC, CLIENT_MAC, fr.ETH_P_IP, pkt))

    assert parse(v6).error == "IPv4 version 6" and parse(v6).ip_src is None
    assert parse(ihl4).error == "bad IPv4 IHL 4"
    assert parse(long_).error == "bad IPv4 total length 1500" and parse(long_).ip_src == SRC


def test_vlan_tag_and_truncation():
    inner = fr.ipv4(SRC, VIP, 17, fr.udp(5353, 53, b"x"))
    f = fr.vlan_tagged(VIP_MAC, CLIENT_MAC, 5, fr.ETH_P_IP, inner)
    assert f[12:18] == b"\x81\x00\x00\x05\x08\x00" and f[18:] == inner
    protos, _ = _protocols(f)
    assert protos["vlan"].vid == 5 and protos["ipv4"].dst == VIP
    p = fr.parse_frame(f)
    assert (p.vlan, p.ethertype, p.l4_dst, p.payload) == (5, 0x0800, 53, b"x")

    whole = fr.udp_frame(VIP_MAC, CLIENT_MAC, SRC, VIP, 5353, 53, b"hello")
    assert fr.truncated(whole, 16) == whole[:16]
    with pytest.raises(ValueError):
        fr.truncated(whole, len(whole) + 1)
    assert fr.parse_frame(fr.truncated(whole, 3)).error == "truncated Ethernet header"
    assert fr.parse_frame(fr.truncated(whole, 16)).error == "truncated IPv4 header"
    assert fr.parse_frame(fr.truncated(whole, 36)).error == "bad IPv4 total length 33"
    udp_cut = fr.ethernet(VIP_MAC, CLIENT_MAC, fr.ETH_P_IP, fr.ipv4(SRC, VIP, 17, b"\x14\xe9"))
    assert fr.parse_frame(udp_cut).error == "truncated UDP header"


def test_parse_frame_never_raises():
    rnd = random.Random(7)
    whole = fr.vlan_tagged(VIP_MAC, CLIENT_MAC, 7, fr.ETH_P_IP,
                           fr.ipv4(SRC, VIP, 17, fr.udp(1, 53, b"q" * 20)))
    samples = [whole[:n] for n in range(len(whole) + 1)]
    samples += [bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(80))) for _ in range(300)]
    samples += [fr.ethernet(VIP_MAC, CLIENT_MAC, rnd.choice((0x0800, 0x0806, 0x8100)),
                            bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(60)))) for _ in range(300)]
    for s in samples:
        assert isinstance(fr.parse_frame(s), fr.ParsedFrame)


def test_module_imports_no_openflow_framework():
    code = ("import sys, xenoflow_ovs.lab.frames; "
            "sys.exit(any(m.split('.')[0] in ('os_ken', 'ryu', 'eventlet') for m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], cwd=os.path.dirname(os.path.abspath(__file__)),
                       check=False)
    assert p.returncode == 0

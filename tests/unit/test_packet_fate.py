"""Packet fate in an OpenFlow table model filled from the plan, and from the very
FlowMods the controller sends (through the wire): where does a packet leave, with
which destination MAC? The paper's config first."""

import os

import pytest

from xenoflow_ovs.controller import ofrules, ovsdb
from xenoflow_ovs.intent import buckets, config, plan
from xenoflow_ovs.intent.plan import Change

compat = pytest.importorskip("xenoflow_ovs.controller.compat")
import oftable  # noqa: E402
from oftable import packet  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(ROOT, "topologies", "paper", "xenoflow.yaml")
OFP, PARSER = compat.ofproto_v1_3, compat.ofproto_v1_3_parser
CLIENT_MAC = "02:00:c6:12:00:07"
VIP, VIP_MAC = "198.18.0.53", "02:00:c6:12:00:35"
MACS = {"fips2": "02:00:c6:12:00:02", "fips3": "02:00:c6:12:00:03", "fips6": "02:00:c6:12:00:06"}


@pytest.fixture(scope="module")
def rules():
    return ofrules.Rules(OFP, PARSER)


def paper(**edit):
    data = config.to_data(config.load(PAPER))
    if "bits" in edit:
        data["services"][0]["policy"]["bits"] = edit["bits"]
    if "fips6" in edit:
        data["services"][0]["backends"].append({"name": "fips6", "ip": "198.18.0.6",
                                                "mac": MACS["fips6"], "weight": edit["fips6"]})
    return config.from_data(data, base_dir=os.path.dirname(PAPER))


def query(src, dst=VIP, eth_dst=VIP_MAC, sport=40000, dport=53):
    return packet(eth_src=CLIENT_MAC, eth_dst=eth_dst, eth_type=0x800, ip_proto=17,
                  ipv4_src=src, ipv4_dst=dst, udp_src=sport, udp_dst=dport)


def net_from_messages(rules, cfg):
    """A network whose tables were filled only by the serialized FlowMods."""
    net = oftable.Network()
    for spec in ovsdb.desired(cfg):
        ports = {i.name: i.ofport_request for i in spec.ifaces}
        dp = oftable.FakeDatapath(1, spec.name, ports, OFP, PARSER)
        for m in rules.batch([Change("ovs", "add", f) for f in plan.plan(cfg).bridge_flows(spec.name)],
                             ports):
            m.datapath = dp
            dp.send_msg(m)
        net.add_bridge(spec.name, dp.table, ports)
    for a, b in cfg.patches:
        net.patch(a, cfg.patch_port(a, b), b, cfg.patch_port(b, a))
    return net


@pytest.fixture(params=["plan", "messages"])
def net(request, rules):
    cfg = paper()
    if request.param == "plan":
        return oftable.network_from_plan(cfg, plan.plan(cfg).flows, rules)
    return net_from_messages(rules, cfg)


def test_udp_from_an_odd_source_leaves_on_p1_with_fips3s_mac(net):
    f = net.fate("ovsbr1", query("198.18.0.7"), in_port="p0")
    assert (f.bridge, f.port, f.eth_dst) == ("ovsbr2", "p1", MACS["fips3"])
    assert [b for b, _ in f.hops] == ["ovsbr1", "ovsbr2"]
    assert f.packet["ipv4_dst"] == ofrules.canon_field("ipv4_dst", VIP)[1]   # DSR: no NAT


def test_udp_from_an_even_source_goes_to_fips2(net):
    f = net.fate("ovsbr1", query("198.18.0.8"), in_port="p0")
    assert (f.port, f.eth_dst) == ("p1", MACS["fips2"])


def test_other_traffic_to_the_vip_is_dropped_and_unclaimed_traffic_switched(net):
    assert net.fate("ovsbr1", query("198.18.0.7", dport=54), in_port="p0").port == "DROP"
    assert net.fate("ovsbr1", query("198.18.0.7"), in_port="pf0hpf").port == "DROP"
    other = query("198.18.0.7", dst="198.18.0.9", eth_dst="02:00:c6:12:00:09")
    assert net.fate("ovsbr1", other, in_port="p0").port == "NORMAL"


def test_the_vips_arp_is_answered_on_the_ingress_port_only(net):
    req = packet(eth_src=CLIENT_MAC, eth_dst="ff:ff:ff:ff:ff:ff", eth_type=0x806, arp_op=1,
                 arp_sha=CLIENT_MAC, arp_spa="198.18.0.7", arp_tha="00:00:00:00:00:00",
                 arp_tpa=VIP)
    f = net.fate("ovsbr1", req, in_port="p0")
    assert (f.bridge, f.port, f.eth_dst) == ("ovsbr1", "p0", CLIENT_MAC)
    got = f.packet
    assert got["arp_op"] == 2 and got["eth_src"] == ofrules.canon_field("eth_src", VIP_MAC)[1]
    assert got["arp_spa"] == ofrules.canon_field("arp_spa", VIP)[1]
    assert got["arp_tpa"] == ofrules.canon_field("arp_tpa", "198.18.0.7")[1]
    assert got["arp_tha"] == ofrules.canon_field("arp_tha", CLIENT_MAC)[1]
    assert net.fate("ovsbr2", req, in_port="p1").port == "DROP"        # guard
    assert net.fate("ovsbr1", req, in_port="pf0hpf").port == "DROP"


def test_host_routes_and_patch_hygiene(net):
    up = packet(eth_src="02:00:c6:12:00:05", eth_dst="02:00:c6:12:00:aa", eth_type=0x800,
                ip_proto=17, ipv4_src="198.18.0.5", ipv4_dst="198.18.0.2", udp_src=1, udp_dst=2)
    assert net.fate("ovsbr2", up, in_port="pf1hpf").port == "p1"
    down = dict(up, ipv4_src=up["ipv4_dst"], ipv4_dst=up["ipv4_src"])
    assert net.fate("ovsbr2", down, in_port="p1").port == "pf1hpf"
    stray = packet(eth_dst="02:00:c6:12:00:99", eth_type=0x800, ipv4_dst="198.18.0.9")
    assert net.fate("ovsbr2", stray, in_port="patch-ovsbr1").port == "DROP"


@pytest.mark.parametrize("bits,weight", [(3, 1), (4, 2)])
def test_every_bucket_reaches_its_planned_backend(rules, bits, weight):
    cfg = paper(bits=bits, fips6=weight)
    tbl = buckets.table(cfg.service("dns"))
    for net in (oftable.network_from_plan(cfg, plan.plan(cfg).flows, rules),
                net_from_messages(rules, cfg)):
        for b, backend in enumerate(tbl):
            src = "198.18.7.%d" % (0x40 | b)    # low `bits` bits = the bucket
            f = net.fate("ovsbr1", query(src), in_port="p0")
            assert (f.port, f.eth_dst) == ("p1", MACS[backend]), (b, src)

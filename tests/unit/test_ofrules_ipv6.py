"""ofrules and render with IPv6: plan flows -> OF 1.3 messages -> as a switch reports them
(the framework's parse and the raw TLVs) -> the same canonical form, for every IPv6 field
and the VIP6's Neighbor Discovery responder (intent/nd.py).

Runs under both runtimes (os-ken 4 / Ryu 4.34): the parser comes from compat."""

import binascii

import pytest

from xenoflow_ovs.controller import ofrules
from xenoflow_ovs.intent import nd, render
from xenoflow_ovs.intent.plan import Change, Entry, Flow

compat = pytest.importorskip("xenoflow_ovs.controller.compat")
import oftable  # noqa: E402  (tests/unit, beside this file)

OFP, PARSER = compat.ofproto_v1_3, compat.ofproto_v1_3_parser
VIP6, VIP_MAC, BACKEND_MAC = "2001:db8::53", "02:00:c6:12:00:35", "02:00:c6:12:00:02"
PORTS = {"p0": 1, "pf0hpf": 2, "patch-ovsbr2": 7}


def m(**fields):
    order = ("in_port", "vlan_vid", "eth_dst", "eth_type", "arp_op", "arp_tpa", "ip_proto",
             "ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst", "icmpv6_type", "ipv6_nd_target",
             "udp_src", "udp_dst", "tcp_src", "tcp_dst")
    return tuple((f, fields[f]) for f in order if f in fields)


def bucket(proto, src, prio=201):
    l4 = {17: "udp_dst", 6: "tcp_dst"}[proto]
    return Flow("ovsbr1", prio, m(in_port="p0", vlan_vid=0, eth_type=0x86DD, ip_proto=proto,
                                  ipv6_src=src, ipv6_dst=VIP6, **{l4: 53}),
                (("set_field", "eth_dst", BACKEND_MAC), ("output", "patch-ovsbr2")),
                "service", "dns6", backend="fips2")


def nd_flows():
    return [Flow("ovsbr1", 300 + r.above, m(in_port="p0", **r.fields), r.actions, "arp", "dns6",
                 table=r.table) for r in nd.responder_rules(VIP6, VIP_MAC)]


FLOWS = [
    bucket(17, ("::1", "::1")),
    bucket(6, ("::5", "::f"), prio=204),
    bucket(17, "2001:db8::7", prio=200),                       # unmasked: never planned, handled
    Flow("ovsbr1", 148, m(in_port="pf0hpf", vlan_vid=0, eth_type=0x86DD,
                          ipv6_dst=("2001:db8:1::", "ffff:ffff:ffff::")),
         (("output", "p0"),), "route", "pf0hpf->p0"),
    Flow("ovsbr1", 40, m(eth_type=0x86DD, ipv6_dst=VIP6), (), "guard", "dns6"),
    Flow("ovsbr1", 40, m(**nd.guard_fields(VIP6)), (), "guard", "dns6"),
    Flow("ovsbr1", 200, m(in_port="p0", vlan_vid=0, eth_type=0x86DD, ip_proto=17,
                          ipv6_src=("::1", "::1"), ipv6_dst=VIP6, udp_src=(2, 3), udp_dst=53),
         (("set_field", "eth_dst", BACKEND_MAC), ("output", "patch-ovsbr2")), "service", "dns6"),
] + nd_flows()


@pytest.fixture(scope="module")
def rules():
    return ofrules.Rules(OFP, PARSER)


def wire(msg):
    """Serialize like a datapath would and parse back: what a switch receives."""
    dp = oftable.FakeDatapath(1, "br", {}, OFP, PARSER)
    msg.datapath = dp
    dp.set_xid(msg)
    msg.serialize()
    return dp._parse(msg)


def framework_bytes(msg):
    msg.datapath = ofrules._Stub(OFP, PARSER)
    msg.set_xid(0)
    msg.serialize()
    return bytes(msg.buf)


@pytest.mark.parametrize("flow", FLOWS, ids=[render.to_ofctl(f)[:90] for f in FLOWS])
def test_ipv6_flow_survives_the_wire_and_comes_back_as_the_plan_flow(rules, flow):
    back = wire(rules.add(flow, PORTS))
    key, acts = rules.desired(flow, PORTS)
    assert ofrules.canon_match(back.match) == key[2]
    assert ofrules.canon_actions(back.instructions, OFP) == acts
    stat = PARSER.OFPFlowStats(flow.table, 5, 0, flow.priority, 0, 0, 0, flow.cookie, 3, 300,
                               back.match, back.instructions)
    inst = rules.installed(flow.bridge, stat)
    again = ofrules.to_plan_flow(inst, {no: n for n, no in PORTS.items()})
    assert again.key == flow.key and again.actions == flow.actions and again.kind == flow.kind


@pytest.mark.parametrize("op", ["add", "modify", "delete"])
def test_the_send_path_bytes_are_the_framework_s(rules, op):
    for f in FLOWS:
        assert rules.encode(op, f, PORTS) == framework_bytes(rules.message(op, f, PORTS)), f


def test_ipv6_buckets_take_the_fast_encoder(rules):
    """No framework object is built for an IPv6 bucket (2^16 of them per service)."""
    f = FLOWS[1]
    key = rules.key(f, PORTS)
    assert ofrules._encode_oxm(key[2]) is not None
    assert ofrules._encode_actions(f.actions, rules, PORTS) is not None


def stats_blob(rules, flows):
    import struct
    out = []
    for i, f in enumerate(flows):
        body = rules.encode("add", f, PORTS)[48:]
        out.append(struct.pack("!HBxIIHHHH4xQQQ", 48 + len(body), f.table, 7, 500, f.priority,
                               0, 0, 1, f.cookie, 3 + i, 60) + body)
    return b"".join(out)


def framework_stats_cls():
    cls = PARSER.OFPFlowStatsReply.cls_stats_body_cls
    return ofrules.RawFlowStats.framework if cls is ofrules.RawFlowStats else cls


def read_both(rules, blob):
    framework = framework_stats_cls()
    ofrules.RawFlowStats.framework = framework
    raw, slow, off = [], [], 0
    while off < len(blob):
        r = ofrules.RawFlowStats.parser(blob, off)
        raw.append(rules.installed("ovsbr1", r))
        slow.append(rules.installed("ovsbr1", framework.parser(blob, off)))
        off += r.length
    return raw, slow


def test_raw_stats_equal_the_framework_parse_and_reconcile_sees_no_drift(rules):
    raw, slow = read_both(rules, stats_blob(rules, FLOWS))
    assert [(i.key, i.canon_actions) for i in raw] == [(i.key, i.canon_actions) for i in slow]
    assert [i.key for i in raw] == [rules.key(f, PORTS) for f in FLOWS]
    for a, b in zip(raw, slow):
        assert a.text == b.text
        assert rules.encode("delete", a, {}) == rules.encode("delete", b, {})
    rec = ofrules.reconcile(rules, FLOWS, raw, PORTS)
    assert rec.changes == [] and rec.ours == len(FLOWS)
    # ... and a changed target address is drift
    moved = [Flow(f.bridge, f.priority, f.match, (("set_field", "ipv6_nd_tll", BACKEND_MAC),
                                                  ("output", "IN_PORT")), f.kind, f.owner, table=f.table)
             if f.table == nd.ND_TABLE else f for f in FLOWS]
    assert [c.op for c in ofrules.reconcile(rules, moved, raw, PORTS).changes] == ["modify"]


# The ND responder and a bucket-like flow as Open vSwitch 3.1 reported them (flow stats
# entries, cookie 0, in_port 1), added with ovs-ofctl from the ovs-ofctl text of
# nd.responder_rules: OVS spells the moves in the Nicira class and the ND extension
# fields in the Ericsson class.
OVS_DAD = ("00780000000000b526ebfd40012d000000000000000000000000000000000000000000000000000000000000"
           "0000000000010044800000040000000180000a0286dd80003410000000000000000000000000000000008000"
           "14013a80003a018780003e1020010db800000000000000000000005300000000")
OVS_NS = ("00f80000000000b5259c4bc0012c000000000000000000000000000000000000000000000000000100000000"
          "0000005600010030800000040000000180000a0286dd800014013a80003a018780003e1020010db800000000"
          "00000000000000530004009000000000ffff0018000023200006003000000000000004060000020600190010"
          "800008060200c61200350000ffff001800002320000600800000000000012610000128100019001880003410"
          "20010db80000000000000000000000530019001080003a018800000000000000001900101000020460000000"
          "00000000001900101000040102000000000000000001000801000000")
OVS_NA = ("00880100000000b5244c9a40012c000000000000000000000000000000000000000000000000000100000000"
          "0000005600010030800000040000000180000a0286dd800014013a80003a018880003e1020010db800000000"
          "0000000000000053000400280000000000190010800042060200c6120035000000000010fffffff800000000"
          "00000000")
OVS_MASKED = ("009000000000000007270e0000fa000000000000000000000000000000000000000000000000000000000000"
              "000000000001005d80000a0286dd800035200000000000000000000000000000000500000000000000000000"
              "00000000000f8000372020010db8000100000000000000000000ffffffffffff000000000000000000008000"
              "140111800020020035000000")


def test_what_ovs_reports_for_the_responder_is_the_planned_flow(rules):
    ports = {"p0": 1}
    for hexed, flow in zip((OVS_DAD, OVS_NS, OVS_NA), nd_flows()):
        raw, slow = read_both(rules, binascii.unhexlify(hexed))
        for inst in raw + slow:
            assert (inst.key, inst.canon_actions) == rules.desired(flow, ports)


def test_an_ovs_masked_ipv6_match_reads_as_the_plan_spells_it(rules):
    raw, slow = read_both(rules, binascii.unhexlify(OVS_MASKED))
    want = (("eth_type", 0x86DD, None), ("ip_proto", 17, None),
            ("ipv6_dst", 0x20010db8000100000000000000000000, 0xffffffffffff00000000000000000000),
            ("ipv6_src", 5, 0xf), ("udp_dst", 53, None))
    assert raw[0].canon_match == slow[0].canon_match == want
    flow = ofrules.to_plan_flow(raw[0], {})
    assert dict(flow.match)["ipv6_src"] == ("::5", "::f")
    assert dict(flow.match)["ipv6_dst"] == ("2001:db8:1::", "ffff:ffff:ffff::")


def test_ipv6_values_in_any_spelling_and_full_masks_are_no_mask():
    c = ofrules.canon_field
    assert c("ipv6_src", ("::5", "::f")) == ("ipv6_src", 5, 15)
    assert c("ipv6_src", ("0:0:0::0005", "0000::000F")) == ("ipv6_src", 5, 15)
    assert c("ipv6_dst", (VIP6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")) == c("ipv6_dst", VIP6)
    assert c("ipv6_dst", VIP6) == ("ipv6_dst", 0x20010db8000000000000000000000053, None)
    assert c("ipv6_nd_target", bytes.fromhex("20010db8000000000000000000000053"))[1] == c("ipv6_dst", VIP6)[1]
    # 17 characters and colons, as a MAC: still an IPv6 address
    assert c("ipv6_src", "2001:db8:1:2::5:6")[1] == 0x20010db8000100020000000000050006
    assert c("ipv6_src", ("::", "::")) is None
    assert c("ipv6_nd_tll", "02:00:C6:12:00:35") == ("ipv6_nd_tll", 0x0200c6120035, None)
    assert c("field_524289", "YAAAAA==") == ("nd_reserved", 0x60000000, None)
    assert c("nd_options_type", 2) == c("field_524290", "Ag==")


def test_the_nd_extension_fields_are_sent_as_ovs_encodes_them(rules):
    """OVS's own bytes for set_field:0x60000000->nd_reserved and set_field:2->nd_options_type."""
    ns = nd_flows()[1]
    body = framework_bytes(rules.add(ns, PORTS))
    assert bytes.fromhex("00190010100002046000000000000000") in body
    assert bytes.fromhex("00190010100004010200000000000000") in body
    assert body.endswith(bytes.fromhex("0001000801000000"))      # goto_table:1, last


def test_a_fake_switch_answers_the_solicitation_as_planned(rules):
    """The responder's rules in the OF table model: an NS for the VIP6 goes back out of
    its port; a DAD NS and an NS on another port are dropped."""
    t = oftable.Table.from_flows(FLOWS, rules, PORTS)
    ns = oftable.packet(in_port=1, eth_type=0x86DD, ip_proto=58, icmpv6_type=135,
                        ipv6_src="2001:db8::7", ipv6_nd_target=VIP6)
    top = max((e for e in t.entries.values() if e.table == 0 and e.matches(ns)), key=lambda e: e.priority)
    assert top.actions[-1] == ("goto_table", nd.ND_TABLE)
    dad = dict(ns, ipv6_src=0)
    top = max((e for e in t.entries.values() if e.table == 0 and e.matches(dad)), key=lambda e: e.priority)
    assert top.actions == () and top.priority == 301
    other = dict(ns, in_port=2)
    top = max((e for e in t.entries.values() if e.table == 0 and e.matches(other)), key=lambda e: e.priority)
    assert top.actions == () and top.priority == 40


def test_ofctl_text_of_ipv6_flows():
    assert render.ofctl_match(FLOWS[0].match) == (
        "udp6,in_port=p0,vlan_tci=0x0000/0x1fff,ipv6_src=::1/::1,ipv6_dst=2001:db8::53,tp_dst=53")
    assert render.ofctl_match(FLOWS[1].match).startswith("tcp6,")
    assert render.ofctl_match(FLOWS[3].match) == (
        "ipv6,in_port=pf0hpf,vlan_tci=0x0000/0x1fff,ipv6_dst=2001:db8:1::/ffff:ffff:ffff::")
    dad, ns, na = nd_flows()
    assert render.to_ofctl(dad).endswith(
        "priority=301,icmp6,in_port=p0,ipv6_src=::,icmp_type=135,nd_target=2001:db8::53 actions=drop")
    assert render.ofctl_actions(ns.actions) == (
        "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:02:00:c6:12:00:35->eth_src,"
        "move:NXM_NX_IPV6_SRC[]->NXM_NX_IPV6_DST[],set_field:2001:db8::53->ipv6_src,"
        "set_field:136->icmpv6_type,set_field:1610612736->nd_reserved,set_field:2->nd_options_type,"
        "goto_table:1")
    assert render.to_ofctl(na).endswith(
        "table=1,priority=300,icmp6,in_port=p0,icmp_type=136,nd_target=2001:db8::53 "
        "actions=set_field:02:00:c6:12:00:35->nd_tll,IN_PORT")


def test_describe_entry_prints_ipv6_addresses_and_masks():
    e = Entry(port="p0", pipe="dns6.ipv6_src1.p1", kind="bucket", owner="dns6",
              match=(("ipv6_src", 1, 1),), fwd=("port", "p1"), dst_mac=BACKEND_MAC, backend="fips2", bucket=1)
    assert "ipv6_src=::1/::1 " in render.describe_entry(e)
    root = Entry(port="p0", pipe="root", kind="dispatch", owner="dns6", fwd=("pipe", "x"), priority=200,
                 match=(("eth_type", 0x86DD, 0xFFFF),
                        ("ipv6_dst", 0x20010db8000000000000000000000053, (1 << 128) - 1)))
    assert "ipv6_dst=2001:db8::53/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" in render.describe_entry(root)


def test_batch_of_ipv6_changes_builds_messages(rules):
    msgs = rules.wire([Change("ovs", "add", f) for f in FLOWS], PORTS)
    assert len(msgs) == len(FLOWS) + 1      # and a barrier

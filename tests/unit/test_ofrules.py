"""ofrules: plan flows -> OF 1.3 messages -> back, normalisation, reconcile, the send path.

Runs under both runtimes (os-ken 4 / Ryu 4.34): the parser comes from compat."""

import os

import pytest

from xenoflow_ovs.controller import ofrules, ovsdb
from xenoflow_ovs.intent import config, plan
from xenoflow_ovs.intent.plan import COOKIE_BASE, COOKIE_MASK, Change

compat = pytest.importorskip("xenoflow_ovs.controller.compat")
import oftable  # noqa: E402  (tests/unit, beside this file)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(ROOT, "topologies", "paper", "xenoflow.yaml")
OFP, PARSER = compat.ofproto_v1_3, compat.ofproto_v1_3_parser


def variant(driver="softdoca", bits=1, extra_backends=0, table_miss="normal"):
    data = config.to_data(config.load(PAPER))
    data["dpu"]["eswitch"]["driver"] = driver
    data["ovs"]["table_miss"] = table_miss
    svc = data["services"][0]
    svc["policy"]["bits"] = bits
    for i in range(extra_backends):
        svc["backends"].append({"name": "fips%d" % (6 + i), "ip": "198.18.0.%d" % (6 + i),
                                "mac": "02:00:c6:12:00:%02x" % (6 + i), "weight": 1})
    return config.from_data(data, base_dir=os.path.dirname(PAPER))


def ports_of(cfg):
    return {s.name: {i.name: i.ofport_request for i in s.ifaces} for s in ovsdb.desired(cfg)}


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


CONFIGS = [variant(), variant("none", bits=3, extra_backends=1), variant(table_miss="drop"),
           variant("none", bits=4, extra_backends=2)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["paper", "none-3bits", "drop-miss", "none-4bits"])
def test_every_flow_survives_the_wire_and_comes_back_as_the_plan_flow(rules, cfg):
    ports = ports_of(cfg)
    flows = plan.plan(cfg).flows
    assert flows
    for f in flows:
        p = ports[f.bridge]
        back = wire(rules.add(f, p))
        assert back.command == OFP.OFPFC_ADD and back.cookie == f.cookie
        assert back.priority == f.priority and back.table_id == f.table
        assert back.flags & OFP.OFPFF_SEND_FLOW_REM
        key, acts = rules.desired(f, p)
        assert ofrules.canon_match(back.match) == key[2]
        assert ofrules.canon_actions(back.instructions, OFP) == acts
        # ... and read as the switch reports it, it is the plan's flow again
        stat = PARSER.OFPFlowStats(f.table, 5, 0, f.priority, 0, 0, 0, f.cookie, 3, 300,
                                   back.match, back.instructions)
        inst = rules.installed(f.bridge, stat)
        names = {no: n for n, no in p.items()}
        again = ofrules.to_plan_flow(inst, names)
        assert again.key == f.key and again.actions == f.actions and again.kind == f.kind


def test_the_arp_responder_uses_nicira_moves_with_field_widths(rules):
    cfg = variant()
    arp = [f for f in plan.plan(cfg).flows if f.kind == "arp"][0]
    acts = wire(rules.add(arp, ports_of(cfg)["ovsbr1"])).instructions[0].actions
    moves = [a for a in acts if type(a).__name__ == "NXActionRegMove"]
    assert [(m.src_field, m.dst_field, m.n_bits) for m in moves] == [
        ("eth_src", "eth_dst", 48), ("arp_sha", "arp_tha", 48), ("arp_spa", "arp_tpa", 32)]
    assert acts[-1].port == OFP.OFPP_IN_PORT


def test_drop_is_no_instruction_and_normal_is_the_reserved_port(rules):
    cfg = variant()
    p = ports_of(cfg)["ovsbr1"]
    flows = plan.plan(cfg).bridge_flows("ovsbr1")
    drop = [f for f in flows if f.kind == "guard"][0]
    miss = [f for f in flows if f.kind == "table_miss"][0]
    assert wire(rules.add(drop, p)).instructions == []
    out = wire(rules.add(miss, p)).instructions[0].actions
    assert [a.port for a in out] == [OFP.OFPP_NORMAL]


def test_normalisation_ignores_spelling_order_full_and_zero_masks():
    a = PARSER.OFPMatch(in_port=1, eth_type=0x800, ipv4_src=("0.0.0.1", "0.0.0.1"),
                        ipv4_dst=("198.18.0.53", "255.255.255.255"), eth_dst="02:00:C6:12:00:02")
    b = PARSER.OFPMatch(eth_dst="02:00:c6:12:00:02", ipv4_dst="198.18.0.53", eth_type=0x800,
                        ipv4_src=("0.0.0.1", "0.0.0.1"), in_port=1, udp_src=(0, 0))
    assert ofrules.canon_match(a) == ofrules.canon_match(b)
    assert ofrules.canon_field("ipv4_src", ("198.18.0.7", "0.0.0.1")) == ("ipv4_src", 1, 1)
    assert ofrules.canon_field("eth_src_nxm", "02:00:00:00:00:01")[0] == "eth_src"
    assert ofrules.field_name("arp_sha_nxm") == "arp_sha"
    move = PARSER.NXActionRegMove(src_field="eth_src_nxm", dst_field="eth_dst", n_bits=48)
    inst = [PARSER.OFPInstructionActions(OFP.OFPIT_APPLY_ACTIONS, [move])]
    assert ofrules.canon_actions(inst, OFP) == (("move", "eth_src", "eth_dst", 48, 0, 0),)


def test_unresolved_port_raises(rules):
    cfg = variant()
    f = [f for f in plan.plan(cfg).flows if f.kind == "service"][0]
    with pytest.raises(ofrules.UnresolvedPort) as exc:
        rules.add(f, {"p0": 1})
    assert exc.value.args[0] == "patch-ovsbr2"


# ---------------------------------------------------------------- reconcile


def dump_of(rules, flows, ports, bridge):
    """What a switch holding exactly `flows` reports."""
    t = oftable.Table.from_flows(flows, rules, ports)
    return oftable.installed_from(t, bridge, rules, PARSER)


def foreign(rules, bridge, cookie, priority, **match):
    stat = PARSER.OFPFlowStats(0, 9, 0, priority, 0, 0, 0, cookie, 0, 0, PARSER.OFPMatch(**match), [])
    return rules.installed(bridge, stat)


def test_reconcile_in_sync_is_empty(rules):
    cfg = variant()
    p = ports_of(cfg)["ovsbr1"]
    want = plan.plan(cfg).bridge_flows("ovsbr1")
    r = ofrules.reconcile(rules, want, dump_of(rules, want, p, "ovsbr1"), p)
    assert r.changes == [] and r.conflicts == [] and r.ours == len(want)


def test_reconcile_missing_changed_stale_and_foreign(rules):
    cfg = variant()
    p = ports_of(cfg)["ovsbr1"]
    want = plan.plan(cfg).bridge_flows("ovsbr1")
    svc = [f for f in want if f.kind == "service"]
    missing, changed = svc[0], svc[1]
    bad = plan.Flow(changed.bridge, changed.priority, changed.match,
                    (("set_field", "eth_dst", "02:00:c6:12:00:99"), ("output", "p0")),
                    changed.kind, changed.owner)
    stale = plan.Flow("ovsbr1", 150, (("in_port", "pf0hpf"), ("eth_type", 0x800)),
                      (("output", "p0"),), "route", "old route")
    have = [f for f in want if f is not missing and f is not changed] + [bad, stale]
    dump = dump_of(rules, have, p, "ovsbr1")
    dump.append(foreign(rules, "ovsbr1", 0x1234, 7, eth_type=0x800, ipv4_dst="198.18.0.99"))
    r = ofrules.reconcile(rules, want, dump, p)
    ops = {(c.op, getattr(c.item, "priority", None)) for c in r.changes}
    assert ops == {("add", missing.priority), ("modify", changed.priority), ("delete", 150)}
    assert r.foreign == 1 and not r.conflicts
    assert [c.item for c in r.changes if c.op == "add"] == [missing]
    mod = [c for c in r.changes if c.op == "modify"][0]
    assert mod.item == changed and mod.old.cookie == changed.cookie
    # same cookie: a modify that keeps counters; the stale one goes by strict delete
    msgs = rules.batch(r.changes, p)
    kinds = [(m.command if hasattr(m, "command") else "barrier") for m in msgs]
    assert kinds == [OFP.OFPFC_ADD, OFP.OFPFC_MODIFY_STRICT, OFP.OFPFC_DELETE_STRICT, "barrier"]
    mod_msg, del_msg = msgs[1], msgs[2]
    assert (mod_msg.cookie, mod_msg.cookie_mask) == (changed.cookie, ofrules.ALL_ONES64)
    assert (del_msg.cookie, del_msg.cookie_mask) == (COOKIE_BASE, COOKIE_MASK)
    assert del_msg.priority == 150
    assert all(type(m).__name__ != "OFPFlowMod" or plan.is_ours(m.cookie) for m in msgs)


def test_reconcile_never_touches_a_foreign_flow_even_in_our_place(rules):
    cfg = variant()
    p = ports_of(cfg)["ovsbr1"]
    want = plan.plan(cfg).bridge_flows("ovsbr1")
    miss = [f for f in want if f.kind == "table_miss"][0]
    dump = dump_of(rules, [f for f in want if f is not miss], p, "ovsbr1")
    squatter = foreign(rules, "ovsbr1", 0xABCD, 0)   # priority 0, empty match: our table miss
    dump.append(squatter)
    r = ofrules.reconcile(rules, want, dump, p)
    assert r.changes == []
    assert r.conflicts == [(miss, squatter)]


def test_reconcile_other_cookie_of_ours_is_replaced_by_add(rules):
    cfg = variant()
    p = ports_of(cfg)["ovsbr2"]
    want = plan.plan(cfg).bridge_flows("ovsbr2")
    route = [f for f in want if f.kind == "route"][0]
    relabeled = plan.Flow(route.bridge, route.priority, route.match, route.actions, "route",
                          "someone else")
    dump = dump_of(rules, [f for f in want if f is not route] + [relabeled], p, "ovsbr2")
    r = ofrules.reconcile(rules, want, dump, p)
    assert [(c.op, c.item) for c in r.changes] == [("modify", route)]
    msgs = rules.batch(r.changes, p)
    assert msgs[0].command == OFP.OFPFC_ADD and msgs[0].cookie == route.cookie


def test_reconcile_deletes_nothing_while_a_port_is_missing(rules):
    cfg = variant()
    p = dict(ports_of(cfg)["ovsbr1"])
    want = plan.plan(cfg).bridge_flows("ovsbr1")
    stale = plan.Flow("ovsbr1", 150, (("in_port", "p0"), ("eth_type", 0x800)), (), "route", "x")
    dump = dump_of(rules, [f for f in want if f.kind == "guard"] + [stale], p, "ovsbr1")
    del p["patch-ovsbr2"]
    r = ofrules.reconcile(rules, want, dump, p)
    assert r.unresolved and all(c.op == "add" for c in r.changes)
    assert {port for _, port in r.unresolved} == {"patch-ovsbr2"}


# ---------------------------------------------------------------- the send path


def test_batch_orders_installs_before_deletes_dedups_and_ends_with_a_barrier(rules):
    cfg = variant()
    p = ports_of(cfg)["ovsbr1"]
    flows = plan.plan(cfg).bridge_flows("ovsbr1")
    a, b, c = flows[0], flows[1], flows[2]
    changes = [Change("ovs", "delete", c), Change("ovs", "add", a), Change("ovs", "add", a),
               Change("ovs", "delete", c), Change("ovs", "modify", b, b),
               Change("ovs", "delete", a), Change("eswitch", "add", object())]
    msgs = rules.batch(changes, p)
    assert [m.command for m in msgs[:-1]] == [OFP.OFPFC_ADD, OFP.OFPFC_MODIFY_STRICT,
                                             OFP.OFPFC_DELETE_STRICT]
    assert msgs[2].priority == c.priority      # a's delete dropped: a is (re)installed here
    assert isinstance(msgs[-1], PARSER.OFPBarrierRequest)
    assert rules.batch([], p) == []


def test_phases_follow_diff_order_across_planes():
    old, new = plan.plan(variant()), plan.plan(variant(bits=2, extra_backends=1))
    ph = ofrules.phases(plan.diff(old, new))
    assert [p for p, _ in ph] == ["ovs", "eswitch", "ovs"]
    assert all(c.op != "delete" for c in ph[0][1]) and all(c.op == "delete" for c in ph[2][1])
    by = ofrules.split_by_bridge(ph[0][1])
    assert set(by) <= {"ovsbr1", "ovsbr2"} and all(c.item.bridge == b for b, cs in by.items()
                                                   for c in cs)


def test_sent_messages_build_exactly_the_planned_tables_and_a_reload_converges(rules):
    """The messages, fed to a fake switch through the wire, make the plan's table;
    then the diff to a new config makes the new plan's table, with no foreign loss."""
    cfg, cfg2 = variant(), variant(bits=2, extra_backends=1)
    for bridge in ("ovsbr1", "ovsbr2"):
        p = ports_of(cfg)[bridge]
        dp = oftable.FakeDatapath(1, bridge, p, OFP, PARSER)
        dp.table.entries[("x",)] = oftable.Entry(0, 5, (("eth_type", 0x88cc, None),), (), 0x77)
        old, new = plan.plan(cfg), plan.plan(cfg2)
        for m in rules.batch([Change("ovs", "add", f) for f in old.bridge_flows(bridge)], p):
            m.datapath = dp
            dp.send_msg(m)
        want = oftable.Table.from_flows(old.bridge_flows(bridge), rules, p)
        got = {k: (e.cookie, e.actions) for k, e in dp.table.entries.items() if k != ("x",)}
        assert got == {k: (e.cookie, e.actions) for k, e in want.entries.items()}
        for m in rules.batch([c for c in plan.diff(old, new) if c.plane == "ovs"
                              and c.item.bridge == bridge], p):
            m.datapath = dp
            dp.send_msg(m)
        want = oftable.Table.from_flows(new.bridge_flows(bridge), rules, p)
        got = {k: (e.cookie, e.actions) for k, e in dp.table.entries.items() if k != ("x",)}
        assert got == {k: (e.cookie, e.actions) for k, e in want.entries.items()}
        assert ("x",) in dp.table.entries


# ---------------------------------------------------------------- flow stats read from bytes


def stats_bytes(rules, flows, ports, packets=0):
    """The ofp_flow_stats a switch would report for these flows (from the very bytes we
    send: same match and instructions), one after the other."""
    import struct
    out = []
    for i, f in enumerate(flows):
        fm = rules.encode("add", f, ports)
        mlen = struct.unpack_from("!H", fm, 50)[0]
        body = fm[48:]
        head = struct.pack("!HBxIIHHHH4xQQQ", 48 + len(body), f.table, 7, 500, f.priority, 0, 0,
                           1, f.cookie, packets + i, 60 * (packets + i))
        out.append(head + body)
        assert mlen >= 4
    return b"".join(out)


@pytest.mark.parametrize("cfg", CONFIGS, ids=["paper", "none-3bits", "drop-miss", "none-4bits"])
def test_flow_stats_read_from_bytes_equal_the_framework_parse(rules, cfg):
    """RawFlowStats (what the app's flow stats replies carry) normalise exactly as the
    framework's parsed OFPFlowStats do, the ARP responder's Nicira moves included (read
    by the framework), and a flow read that way is deleted with the same bytes."""
    ports = ports_of(cfg)
    for bridge, flows in ((b, plan.plan(cfg).bridge_flows(b)) for b in ports):
        blob = stats_bytes(rules, flows, ports[bridge], packets=3)
        framework = PARSER.OFPFlowStatsReply.cls_stats_body_cls
        if framework is ofrules.RawFlowStats:
            framework = ofrules.RawFlowStats.framework
        raw, slow, off = [], [], 0
        while off < len(blob):
            ofrules.RawFlowStats.framework = framework
            r = ofrules.RawFlowStats.parser(blob, off)
            raw.append(rules.installed(bridge, r))
            slow.append(rules.installed(bridge, framework.parser(blob, off)))
            off += r.length
        assert len(raw) == len(flows) and raw == [
            ofrules.Installed(i.bridge, i.table, i.priority, i.cookie, None, i.canon_match,
                              i.canon_actions, i.packets, i.bytes, i.duration) for i in slow]
        for a, b in zip(raw, slow):
            assert a.text == b.text and a.packets >= 3
            assert rules.encode("delete", a, {}) == rules.encode("delete", b, {})
            m = rules.delete(a, {})
            m.datapath = ofrules._Stub(OFP, PARSER)
            m.set_xid(0)
            m.serialize()
            assert bytes(m.buf) == rules.encode("delete", b, {})
        assert ofrules.reconcile(rules, flows, raw, ports[bridge]).changes == []

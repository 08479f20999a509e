"""plan(): the paper's rules and entries; diff(): minimal, ordered make-before-break."""

import os

import pytest
import yaml
from config_samples import paper_v4_data

from xenoflow_ovs.cli import main as cli_main
from xenoflow_ovs.intent import config, plan, render

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(ROOT, "topologies", "paper", "xenoflow.yaml")


def paper_data():
    """The paper's config, its service IPv4/UDP as the paper ran it (tests derive services from
    it); the dual-stack service as configured: config.load(PAPER)."""
    return paper_v4_data()


def cfg_of(data):
    return config.parse(yaml.safe_dump(data, sort_keys=False))


def ofctl_lines(p, bridge):
    return {render.to_ofctl(f).split(",", 1)[1] for f in p.bridge_flows(bridge)}


def test_paper_plan_has_the_two_entries_and_the_route():
    """The paper's service, dual stack over UDP and TCP: one bucket table, an eSwitch pipe per
    family (the low bit of the IPv4 or IPv6 source) with the same backend per bucket, a
    dispatch entry per listener, OVS's copy per listener, the VIP6's Neighbor Solicitation
    answered in OVS, and the paper's route for both families."""
    p = plan.plan(config.load(PAPER))
    buckets_ = [e for e in p.entries if e.kind == "bucket"]
    assert [(e.match, e.dst_mac, e.fwd) for e in buckets_] == [
        ((("ipv4_src", 0, 1),), "02:00:c6:12:00:02", ("port", "p1")),
        ((("ipv4_src", 1, 1),), "02:00:c6:12:00:03", ("port", "p1")),
        ((("ipv6_src", 0, 1),), "02:00:c6:12:00:02", ("port", "p1")),
        ((("ipv6_src", 1, 1),), "02:00:c6:12:00:03", ("port", "p1")),
    ]
    assert [(x.mask, x.nr_entries, x.port) for x in p.pipes] == [
        ((("ipv4_src", 1),), 2, "p0"), ((("ipv6_src", 1),), 2, "p0")]
    fields = [(dict((f, v) for f, v, _ in e.match), e.fwd[1]) for e in p.entries if e.kind == "dispatch"]
    dispatch = {(m["eth_type"], m["ip_proto"], target) for m, target in fields}
    assert dispatch == {(0x0800, 17, "dns.ipv4_src1.p1"), (0x0800, 6, "dns.ipv4_src1.p1"),
                        (0x86DD, 17, "dns.ipv6_src1.p1"), (0x86DD, 6, "dns.ipv6_src1.p1")}
    br1 = ofctl_lines(p, "ovsbr1")
    assert ("table=0,priority=201,udp,in_port=p0,vlan_tci=0x0000/0x1fff,nw_src=0.0.0.0/0.0.0.1,"
            "nw_dst=198.18.0.53,tp_dst=53 "
            "actions=set_field:02:00:c6:12:00:02->eth_dst,output:patch-ovsbr2") in br1
    assert ("table=0,priority=201,tcp6,in_port=p0,vlan_tci=0x0000/0x1fff,ipv6_src=::1/::1,"
            "ipv6_dst=2001:db8::53,tp_dst=53 "
            "actions=set_field:02:00:c6:12:00:03->eth_dst,output:patch-ovsbr2") in br1
    assert any(line.startswith("table=1,") and "nd_target=2001:db8::53" in line for line in br1), br1
    br2 = ofctl_lines(p, "ovsbr2")
    # The paper's rule, for untagged frames (the class the eSwitch's route entry carries).
    assert "table=0,priority=100,ip,in_port=pf1hpf,vlan_tci=0x0000/0x1fff actions=output:p1" in br2
    assert "table=0,priority=50,ipv6,in_port=pf1hpf,vlan_tci=0x0000/0x1fff actions=output:p1" in br2
    routes = [e for e in p.entries if e.kind == "route"]
    assert sorted((e.port, e.match[0][1], e.fwd) for e in routes) == [
        ("p1", 0x0800, ("port", "pf1hpf")), ("pf1hpf", 0x0800, ("port", "p1")),
        ("pf1hpf", 0x86DD, ("port", "p1"))]


def test_every_flow_is_ours_and_keys_are_unique():
    p = plan.plan(config.load(PAPER))
    assert all(plan.is_ours(f.cookie) for f in p.flows)
    assert len({f.key for f in p.flows}) == len(p.flows)
    assert not plan.is_ours(0) and not plan.is_ours(0x1234)


def test_driver_none_and_unmirrored_routes():
    data = paper_data()
    data["dpu"]["eswitch"]["mirror_routes"] = False
    p = plan.plan(cfg_of(data))
    assert not [e for e in p.entries if e.kind == "route"]
    assert [f for f in p.flows if f.kind == "route"]  # OVS still routes: the paper's trap, visible
    data["dpu"]["eswitch"] = {"driver": "none"}
    p = plan.plan(cfg_of(data))
    assert not p.entries and not p.pipes


def test_table_miss_drop_adds_arp_and_management_rules():
    data = paper_data()
    data["ovs"]["table_miss"] = "drop"
    br2 = ofctl_lines(plan.plan(cfg_of(data)), "ovsbr2")
    assert "table=0,priority=0 actions=drop" in br2
    assert "table=0,priority=20,arp actions=NORMAL" in br2
    assert "table=0,priority=20,in_port=pf1sf0 actions=NORMAL" in br2


def test_same_bridge_service_outputs_directly_without_patch_rules():
    data = paper_data()
    data["services"][0]["egress"] = "pf0hpf"
    p = plan.plan(cfg_of(data))
    svc = [f for f in p.flows if f.kind == "service"]
    assert all(f.actions[-1] == ("output", "pf0hpf") for f in svc)
    assert not [f for f in p.flows if f.kind == "patch_in"]


def test_src_port_bits_matches_source_port_in_both_planes():
    data = paper_data()
    data["services"][0]["policy"] = {"kind": "src-port-bits", "bits": 2}
    p = plan.plan(cfg_of(data))
    assert any("tp_src=0x1/0x1" in render.to_ofctl(f) for f in p.flows if f.kind == "service")
    assert {e.match[0][0] for e in p.entries if e.kind == "bucket"} == {"l4_src"}


def test_plan_cli_prints_both_planes(capsys):
    assert cli_main(["plan", PAPER]) == 0
    out = capsys.readouterr().out
    assert "ip,in_port=pf1hpf,vlan_tci=0x0000/0x1fff actions=output:p1" in out
    assert "ipv4_src=0.0.0.1/0.0.0.1 -> set dst_mac=02:00:c6:12:00:03" in out


def ops(changes):
    return [(c.plane, c.op) for c in changes]


def test_diff_of_identical_plans_is_empty():
    p = plan.plan(config.load(PAPER))
    assert plan.diff(p, p) == []


def test_backend_add_moves_only_needed_buckets_and_orders_make_before_break():
    data = paper_data()
    data["services"][0]["policy"]["bits"] = 2
    old_cfg = cfg_of(data)
    data["services"][0]["backends"].append(
        {"name": "fips6", "ip": "198.18.0.6", "mac": "02:00:c6:12:00:06", "weight": 1})
    new_cfg = cfg_of(data)
    old, new = plan.plan(old_cfg), plan.plan(new_cfg)
    changes = plan.diff(old, new)
    updates = [c for c in changes if c.plane == "eswitch" and c.op == "update"]
    moved = sum(1 for a, b in zip(old.table("dns"), new.table("dns")) if a != b)
    assert len(updates) == moved >= 1
    assert all(c.item.kind == "bucket" for c in updates)
    # No eSwitch entry is removed or re-added for a backend add: buckets are updated in place.
    assert not [c for c in changes if c.plane == "eswitch" and c.op in ("add", "remove")]
    order = ops(changes)
    first_es = min(i for i, o in enumerate(order) if o[0] == "eswitch")
    assert all(o == ("ovs", "delete") for o in order[first_es:] if o[0] == "ovs")
    assert all(o[1] in ("add", "modify") for o in order[:first_es])


def test_new_service_pipe_and_buckets_before_dispatch_removal_in_reverse():
    data = paper_data()
    base = cfg_of(data)
    data["services"][0]["policy"]["bits"] = 3   # a new pipe shape
    changes = plan.diff(plan.plan(base), plan.plan(cfg_of(data)))
    es = [(c.op, getattr(c.item, "kind", "pipe")) for c in changes if c.plane == "eswitch"]
    assert es[0] == ("add_pipe", "pipe")
    adds = [k for op, k in es if op == "add"]
    assert adds and all(k == "bucket" for k in adds)
    # The root entry is switched to the new pipe in place, then old buckets, then the old pipe go.
    assert ("update", "dispatch") in es
    assert es.index(("update", "dispatch")) < es.index(("remove", "bucket"))
    assert es[-1] == ("remove_pipe", "pipe")


def test_removing_a_service_removes_dispatch_before_buckets_and_ovs_last():
    data = paper_data()
    two = dict(data["services"][0], name="dns2", vip="198.18.0.54", vip_mac="02:00:c6:12:00:36")
    data["services"].append(two)
    with_two = plan.plan(cfg_of(data))
    data["services"].pop()
    changes = plan.diff(with_two, plan.plan(cfg_of(data)))
    es = [c.item.kind for c in changes if c.plane == "eswitch" and c.op == "remove"]
    assert es[0] == "dispatch" and set(es[1:]) == {"bucket"}
    assert ops(changes)[-1] == ("ovs", "delete")
    assert not [c for c in changes if c.op in ("add", "update")]


def test_exclude_takes_a_backend_out_of_both_planes():
    p = plan.plan(config.load(PAPER), exclude={"dns": ["fips3"]})
    assert set(p.table("dns")) == {"fips2"}
    assert {e.backend for e in p.entries if e.kind == "bucket"} == {"fips2"}
    assert {f.backend for f in p.flows if f.kind == "service"} == {"fips2"}


# ---------------------------------------------------------------- plans at scale

def _flat(p):
    """The same plan with every rule materialised: diff() then compares rule by rule."""
    return plan.Plan(p.flows, p.pipes, p.entries)


def _canon(changes):
    """Changes as comparable rows, in order of their make-before-break phase."""
    phase = {("ovs", "add"): 0, ("ovs", "modify"): 0, ("eswitch", "add_pipe"): 1,
             ("eswitch", "add"): 2, ("eswitch", "update"): 3, ("eswitch", "remove"): 4,
             ("eswitch", "remove_pipe"): 5, ("ovs", "delete"): 6}
    out = [(phase[(c.plane, c.op)], c.plane, c.op, repr(c.item), repr(c.old)) for c in changes]
    assert [r[0] for r in out] == sorted(r[0] for r in out), "phases out of order"
    return sorted(out)


def _many(policy="maglev", bits=6, backends=5, services=3):
    data = paper_data()
    proto = data["services"][0]
    data["services"] = []
    for s in range(services):
        svc = dict(proto, name="s%d" % s, vip="198.18.1.%d" % (s + 1), vip_mac="02:01:00:00:00:%02x" % s,
                   policy={"kind": policy, "bits": bits})
        svc["backends"] = [{"name": "b%d" % i, "ip": "198.18.2.%d" % (i + 1),
                            "mac": "02:00:c6:12:02:%02x" % i, "weight": 1 + i % 2}
                           for i in range(backends)]
        data["services"].append(svc)
    return data


def test_reuse_shares_the_parts_of_unchanged_services_only():
    cfg = cfg_of(_many())
    p = plan.plan(cfg)
    q = plan.plan(cfg, exclude={"s1": ["b2"]}, reuse=p)
    assert q.services[0] is p.services[0] and q.services[2] is p.services[2]
    assert q.services[1] is not p.services[1]
    # a reused plan renders exactly what a fresh one does
    fresh = plan.plan(cfg, exclude={"s1": ["b2"]})
    assert (q.flows, q.pipes, q.entries, q.tables) == (fresh.flows, fresh.pipes, fresh.entries, fresh.tables)
    assert q.flow_count() == len(q.flows) and q.entry_count() == len(q.entries)
    assert q.flow_count("ovsbr1") == len(q.bridge_flows("ovsbr1"))
    assert q.entry_count("p0") == len([e for e in q.entries if e.port == "p0"])
    assert {(c, k, o) for c, k, o in q.cookies()} == {(f.cookie, f.kind, f.owner) for f in q.flows}


@pytest.mark.parametrize("policy", ["maglev", "src-ip-bits", "src-port-bits"])
def test_diff_by_parts_equals_diff_rule_by_rule(policy):
    """The shortcuts (shared parts skipped, same-shape parts compared term by term) give
    the change set a rule-by-rule comparison gives, in the same phases."""
    data = _many(policy)
    cfg = cfg_of(data)
    p = plan.plan(cfg)
    steps = [dict(exclude={"s1": ["b2"]}), dict(exclude={"s1": ["b2", "b0"], "s2": ["b4"]}), dict()]
    changed = _many(policy)
    changed["services"][0]["port"] = 5353                  # new shapes: new flows ...
    changed["services"][0]["policy"]["bits"] = 7           # ... and a new pipe
    changed["services"][2]["backends"][1]["mac"] = "02:00:c6:12:03:01"   # a backend's MAC moves
    del changed["services"][1]
    old = p
    for kw, c in [(s, cfg) for s in steps] + [(dict(), cfg_of(changed)), (dict(), cfg)]:
        new = plan.plan(c, reuse=old, **kw)
        fast = plan.diff(old, new)
        slow = plan.diff(_flat(old), _flat(new))
        assert fast and _canon(fast) == _canon(slow)
        old = new


def test_ipv6_only_and_source_port_services_get_a_pipe_per_family():
    """An IPv6-only service: no IPv4 rule, pipe or ARP answer at all. The source-port policy:
    each family's pipe masks the port, the IPv6 one says its family (("l3", 6): the glue's
    union selector), and both carry the same backend per bucket."""
    data = paper_data()
    svc = data["services"][0]
    svc.pop("vip")
    svc.update(vip6="2001:db8::53", protocols=["udp"], policy={"kind": "src-port-bits", "bits": 2})
    svc.pop("protocol")
    for i, b in enumerate(svc["backends"]):
        b.pop("ip")
        b["ip6"] = "2001:db8::%d" % (i + 2)
    p = plan.plan(cfg_of(data))
    assert [(x.name, x.mask) for x in p.pipes] == [("dns.l4_src2.p1.ip6", (("l4_src", 3), ("l3", 6)))]
    assert not [f for f in p.flows if f.owner == "dns" and (
        ("eth_type", plan.ETH_IP) in f.match or any(k in ("arp_tpa", "ipv4_dst") for k, _ in f.match))]
    svc_flows = [f for f in p.flows if f.kind == "service"]
    assert {dict(f.match)["eth_type"] for f in svc_flows} == {plan.ETH_IPV6}
    # merged terms: masks within the policy's two bits
    assert all(dict(f.match)["udp_src"][1] & ~3 == 0 for f in svc_flows if dict(f.match).get("udp_src"))
    data["services"][0]["vip"] = "198.18.0.53"
    both = plan.plan(cfg_of(data))
    tables = {x.name: [(e.bucket, e.backend) for e in both.entries if e.pipe == x.name] for x in both.pipes}
    assert list(tables) == ["dns.l4_src2.p1", "dns.l4_src2.p1.ip6"]
    assert tables["dns.l4_src2.p1"] == tables["dns.l4_src2.p1.ip6"] and len(tables["dns.l4_src2.p1"]) == 4

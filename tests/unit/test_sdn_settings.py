"""XenoFlow among other SDN apps: its first OpenFlow table (`ovs.table`) and its OpenFlow
role (`controller.openflow.role`), from the config through the plan, the fate model and
OVSDB's desired state."""
from __future__ import annotations

import pytest
from config_samples import errors_of, paper_data, parse  # noqa: E402  (tests/unit, beside this file)

from xenoflow_ovs.controller import ovsdb
from xenoflow_ovs.intent import config, consistency, fate, plan


def with_limits(data):
    """Both limits: the service's rules use all three of XenoFlow's tables."""
    data["services"][0]["limits"] = {"pps": 5000, "per_bucket_pps": 400}
    return data


def none_driver(data):
    data["dpu"]["eswitch"] = {"driver": "none"}
    return data


@pytest.mark.parametrize("mutate, path, words", [
    (lambda d: d["ovs"].update(table=253), "ovs.table", "between 0 and 252"),
    (lambda d: d["ovs"].update(table="ten"), "ovs.table", "integer"),
    (lambda d: d["controller"]["openflow"].update(role="leader"), "controller.openflow.role", "one of"),
    (lambda d: d["controller"]["openflow"].update(role="master"), "controller.openflow.generation_id",
     "needs a generation_id"),
    (lambda d: d["controller"]["openflow"].update(generation_id=3), "controller.openflow.generation_id",
     "only counts with role master or slave"),
    (lambda d: d["controller"]["openflow"].update(role="master", generation_id=-1),
     "controller.openflow.generation_id", "between"),
    (lambda d: d["controller"]["openflow"].update(role="slave", generation_id=1), "controller.openflow.role",
     "cannot own the eSwitch"),
    (lambda d: d["controller"]["openflow"].update(roles="master"), "controller.openflow.roles",
     "unknown key"),
])
def test_bad_table_or_role_names_the_key(mutate, path, words):
    data = paper_data()
    mutate(data)
    problems = errors_of(data)
    assert any(p == path and words in msg for p, msg, _ in problems), problems


def test_table_and_role_parse_and_round_trip():
    data = none_driver(paper_data())
    data["ovs"]["table"] = 10
    data["controller"]["openflow"].update(role="slave", generation_id=2 ** 64 - 1)
    cfg = parse(data)
    assert cfg.ovs_table == 10
    assert cfg.role == config.OpenflowRole("slave", 2 ** 64 - 1) and not cfg.role.writes
    back = config.to_data(cfg)
    assert back["ovs"]["table"] == 10
    assert back["controller"]["openflow"]["role"] == "slave"
    assert parse(back) == cfg
    plain = parse(paper_data())
    assert plain.ovs_table == 0 and plain.role == config.OpenflowRole() and plain.role.writes
    assert "table" not in config.to_data(plain)["ovs"]
    assert "role" not in config.to_data(plain)["controller"]["openflow"]


def test_every_rule_and_goto_moves_to_the_first_table():
    base = with_limits(paper_data())
    moved = with_limits(paper_data())
    moved["ovs"]["table"] = 40
    a, b = plan.plan(parse(base)), plan.plan(parse(moved))
    fa, fb = a.flows, b.flows
    assert len(fa) == len(fb) and {f.table for f in fa} == {0, 1, 2}
    assert {f.table for f in fb} == {40, 41, 42}
    for x, y in zip(fa, fb):
        assert y.table == x.table + 40 and (y.priority, y.match, y.cookie) == (x.priority, x.match, x.cookie)
        same = [a_ for a_ in x.actions if a_[0] != "goto_table"]
        assert [a_ for a_ in y.actions if a_[0] != "goto_table"] == same
        assert [g[1] for g in y.actions if g[0] == "goto_table"] == [
            g[1] + 40 for g in x.actions if g[0] == "goto_table"]
    assert any(g[0] == "goto_table" for f in fb for g in f.actions)
    # a reload that moves the table re-renders the service's part, and the diff moves every flow
    again = plan.plan(parse(moved), reuse=a)
    assert again.flows == fb
    ops = {ch.op for ch in plan.diff(a, again) if ch.plane == "ovs"}
    assert {"add", "delete"} <= ops


def test_the_check_follows_packets_from_the_first_table():
    data = none_driver(with_limits(paper_data()))
    data["ovs"]["table"] = 7
    cfg = parse(data)
    flows = by_bridge(plan.plan(cfg))
    svc = cfg.services[0]
    pkt = fate.Packet(in_port="p0", eth_dst=svc.vip_mac, ipv4_src="198.18.0.7", ipv4_dst=str(svc.vip))
    got = fate.ovs_fate(flows, cfg.bridge_of, pkt, first_table=7)
    assert (got.verdict, got.port) == ("output", "p1") and len(got.meters) == 2
    assert fate.ovs_fate(flows, cfg.bridge_of, pkt).verdict == "drop"   # table 0 holds nothing of ours

    data = none_driver(paper_data())
    data["ovs"]["table"] = 7
    cfg = parse(data)
    p = plan.plan(cfg)
    report = consistency.check(cfg, p, by_bridge(p), counters={})
    assert report["consistent"], report["drift"]
    rows = report["buckets"]
    assert rows and all(row["ok"] and row["ovs"] == row["expected"] for row in rows), rows


def by_bridge(p):
    out = {}
    for f in p.flows:
        out.setdefault(f.bridge, []).append(f)
    return out


def test_a_slave_writes_nothing_to_ovsdb():
    data = none_driver(paper_data())
    assert ovsdb.desired(parse(data))
    data["controller"]["openflow"].update(role="slave", generation_id=1)
    assert ovsdb.desired(parse(data)) == []
    data["controller"]["openflow"].update(role="master")
    assert [b.name for b in ovsdb.desired(parse(data))] == ["ovsbr1", "ovsbr2"]

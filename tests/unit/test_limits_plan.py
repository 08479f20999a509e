"""Rate limits in the intent and in both planes' plans: config validation, meters, the
eSwitch's drop stages, unmerged per-bucket rules, and make-before-break diffs."""
from __future__ import annotations

import copy
import dataclasses

import pytest
from config_samples import errors_of, paper_data, paper_v4_data, parse

from xenoflow_ovs.intent import plan as plan_mod
from xenoflow_ovs.intent.config import Limits


def _with_limits(limits, data=None, bits=4):
    data = copy.deepcopy(data or paper_v4_data())
    svc = data["services"][0]
    svc["policy"] = {"kind": "src-ip-bits", "bits": bits}
    if limits is not None:
        svc["limits"] = limits
    return data


def _plan(limits, data=None, bits=4):
    cfg = parse(_with_limits(limits, data, bits))
    return cfg, plan_mod.plan(cfg)


# ---------------------------------------------------------------- config


def test_limits_parse_with_default_bursts():
    cfg = parse(_with_limits({"pps": 50000, "per_bucket_pps": 2000}))
    lim = cfg.services[0].limits
    assert lim == Limits(pps=50000, per_bucket_pps=2000)
    assert lim.service == (50000, 5000) and lim.bucket == (2000, 200) and lim.kind == "bucket+service"
    assert Limits(pps=5).service == (5, 1), "a burst is at least one packet"


@pytest.mark.parametrize("limits,path,words", [
    ({"pps": 0}, "limits.pps", "between 1 and"),
    ({"pps": 100, "burst": 0}, "limits.burst", "between 1 and"),
    ({"pps": 1.5}, "limits.pps", "integer"),
    ({"pps": None}, "limits.pps", "got nothing"),
    ({"burst": 10}, "limits.burst", "needs its rate"),
    ({"per_bucket_burst": 10}, "limits.per_bucket_burst", "needs its rate"),
    ({"ppps": 10}, "limits.ppps", "unknown key"),
    ({}, "limits", "needs pps and/or per_bucket_pps"),
    ([1], "limits", "mapping"),
    ({"pps": 1 << 32}, "limits.pps", "between 1 and"),
])
def test_bad_limits_name_the_key(limits, path, words):
    problems = errors_of(_with_limits(limits))
    assert any(p.endswith(path) and words in msg for p, msg, _ in problems), problems


def test_per_bucket_meters_past_the_eswitch_budget_are_refused():
    data = _with_limits({"per_bucket_pps": 10}, data=paper_data(), bits=16)   # two families: 2 x 65536
    second = copy.deepcopy(data["services"][0])
    second.update(name="dns2", vip="198.18.0.54", vip6="2001:db8::54", vip_mac="02:00:c6:12:00:54")
    data["services"].append(second)
    problems = errors_of(data)
    assert any(p.endswith("services[1].limits.per_bucket_pps") and "131072" in msg for p, msg, _ in problems)


def test_limits_round_trip_through_plain_data():
    from xenoflow_ovs.intent import config
    cfg = parse(_with_limits({"pps": 900, "per_bucket_pps": 60, "per_bucket_burst": 7}))
    again = parse(config.to_data(cfg))
    assert again.services[0].limits == cfg.services[0].limits


# ---------------------------------------------------------------- OVS plane


def test_no_limits_changes_nothing():
    cfg, p = _plan(None)
    assert not list(p.meters()) and not list(p.es_meters())
    assert all(a[0] != "meter" for f in p.flows for a in f.actions)
    assert all(not pp.meter and not pp.drop for pp in p.pipes)


def test_service_limit_one_shared_meter_on_merged_rules():
    cfg, p = _plan({"pps": 1000, "burst": 50})
    meters = list(p.meters())
    assert [(m.pps, m.burst, m.scope) for m in meters] == [(1000, 50, "service")]
    svc_flows = [f for f in p.flows if f.kind == "service"]
    assert svc_flows and all(f.actions[0] == ("meter", meters[0].meter_id) for f in svc_flows)
    assert all(f.actions[-1][0] == "output" for f in svc_flows)
    assert plan_mod.is_our_meter(meters[0].meter_id)
    # two backends over 16 buckets still merge: a shared meter does not need a rule per bucket
    assert len(svc_flows) < 16


def test_per_bucket_limit_one_rule_and_meter_per_bucket():
    cfg, p = _plan({"per_bucket_pps": 100})
    svc = [f for f in p.flows if f.kind == "service"]
    assert len(svc) == 16, "per-bucket meters need unmerged rules"
    ids = {f.actions[0][1] for f in svc}
    meters = {m.meter_id: m for m in p.meters()}
    assert ids == set(meters) and len(ids) == 16
    assert {(m.scope, m.pps, m.burst) for m in meters.values()} == {("bucket", 100, 10)}
    # the rule of bucket b carries bucket b's meter: the low bits of the source are b
    for f in svc:
        value = int(plan_mod.ipaddress.IPv4Address(dict(f.match)["ipv4_src"][0]))
        assert meters[f.actions[0][1]].bucket == value & 15


def test_both_limits_chain_through_the_meter_table():
    cfg, p = _plan({"pps": 1000, "per_bucket_pps": 100})
    terms = [f for f in p.flows if f.kind == "service" and f.table == 0]
    tail = [f for f in p.flows if f.kind == "service" and f.table == plan_mod.METER_TABLE]
    svc_meter = [m for m in p.meters() if m.scope == "service"][0]
    assert len(terms) == 16 and all(f.actions[-1] == ("goto_table", plan_mod.METER_TABLE) for f in terms)
    assert len(tail) == 1 and tail[0].actions[0] == ("meter", svc_meter.meter_id)
    _, plain = _plan(None)
    out = [f.actions[-1] for f in plain.flows if f.kind == "service"][0]
    assert out[0] == "output" and tail[0].actions[1] == out, "the tail outputs where plain rules do"
    assert p.flow_count() == len(p.flows)


# ---------------------------------------------------------------- eSwitch plane


def _pipes(p):
    return {pp.name: pp for pp in p.pipes}


def test_service_limit_eswitch_shared_meter_then_drop_stage():
    cfg, p = _plan({"pps": 1000})
    pipes = _pipes(p)
    bucket = [pp for pp in pipes.values() if pp.meter]
    assert len(bucket) == 1 and bucket[0].meter == "shared"
    red = pipes[bucket[0].fwd_pipe]
    assert red.drop and red.miss == ("port", "p1") and red.mask == (("meter_color", 0xFF),)
    es = list(p.es_meters())
    assert [(m.pps, m.burst) for m in es] == [(1000, 100)]
    entries = [e for e in p.entries if e.pipe == bucket[0].name]
    assert entries and all(e.shared_meter == es[0].meter_id and e.meter is None for e in entries)
    # created in order: a pipe after the pipes it forwards to
    order = [pp.name for pp in p.pipes]
    assert order.index(red.name) < order.index(bucket[0].name)
    assert p.entry_count() == len(p.entries)


def test_both_limits_eswitch_meter_chain():
    cfg, p = _plan({"pps": 1000, "per_bucket_pps": 100})
    pipes = _pipes(p)
    bp = [pp for pp in pipes.values() if pp.meter == "entry"][0]
    red = pipes[bp.fwd_pipe]
    assert red.drop and red.mask[0] == ("ipv4_src", 15) and ("meter_color", 0xFF) in red.mask
    svc_pipe = pipes[red.miss[1]]
    assert red.miss[0] == "pipe" and svc_pipe.meter == "shared" and svc_pipe.mask == ()
    svc_red = pipes[svc_pipe.fwd_pipe]
    assert svc_red.drop and svc_red.miss == ("port", "p1")
    drops = [e for e in p.entries if e.kind == "drop" and e.pipe == red.name]
    assert sorted(e.bucket for e in drops) == list(range(16))
    assert all(dict((f, v) for f, v, _ in e.match)["meter_color"] == plan_mod.COLOR_RED for e in drops)
    buckets_ = [e for e in p.entries if e.kind == "bucket"]
    assert all(e.meter == (100, 10) and e.shared_meter is None for e in buckets_)
    order = [pp.name for pp in p.pipes]
    at = [order.index(pp.name) for pp in (svc_red, svc_pipe, red, bp)]
    assert at == sorted(at)


def test_ovs_only_config_has_no_eswitch_meters():
    data = _with_limits({"pps": 1000, "per_bucket_pps": 100})
    data["dpu"]["eswitch"]["driver"] = "none"
    p = plan_mod.plan(parse(data))
    assert not list(p.es_meters()) and not p.pipes and len(list(p.meters())) == 17


# ---------------------------------------------------------------- diffs


def _ops(changes):
    return [(c.plane, c.op) for c in changes]


def test_adding_limits_makes_before_it_breaks():
    _, p0 = _plan(None)
    _, p1 = _plan({"pps": 1000, "per_bucket_pps": 100})
    ch = plan_mod.diff(p0, p1)
    ops = _ops(ch)
    first_flow = next(i for i, o in enumerate(ops) if o == ("ovs", "add"))
    assert ops.index(("ovs", "add_meter")) < first_flow
    # new pipes before entries into them, the root moved last among adds, old pipes removed after
    at = [ops.index(("eswitch", op)) for op in ("add_pipe", "add", "update")]
    assert at == sorted(at)
    assert ops.index(("eswitch", "update")) < ops.index(("eswitch", "remove_pipe"))
    added_pipes = [c.item.name for c in ch if c.op == "add_pipe"]
    assert added_pipes.index([n for n in added_pipes if n.endswith(".svc.red")][0]) == 0
    assert ("ovs", "delete_meter") not in ops
    # and back: the meters go after the flows that used them
    back = _ops(plan_mod.diff(p1, p0))
    assert back.index(("ovs", "delete")) < back.index(("ovs", "delete_meter"))
    removed = [c.item.name for c in plan_mod.diff(p1, p0) if c.op == "remove_pipe"]
    assert removed[0].endswith(".mbs") and removed[-1].endswith(".svc.red")


def test_a_new_rate_changes_meters_in_place():
    _, p0 = _plan({"pps": 1000, "per_bucket_pps": 100})
    _, p1 = _plan({"pps": 2000, "per_bucket_pps": 150})
    ch = plan_mod.diff(p0, p1)
    ops = {o for o in _ops(ch)}
    assert ops == {("ovs", "modify_meter"), ("eswitch", "update_meter"), ("eswitch", "update")}
    updates = [c for c in ch if c.op == "update"]
    assert len(updates) == 16 and all(c.item.meter == (150, 15) and c.old.meter == (100, 10) for c in updates)
    assert len([c for c in ch if c.op == "modify_meter"]) == 17


def test_a_drain_with_limits_moves_only_that_backend():
    cfg, p0 = _plan({"per_bucket_pps": 100})
    drained = cfg.services[0].backends[0].name
    p1 = plan_mod.plan(cfg, exclude={cfg.services[0].name: [drained]}, reuse=p0)
    ch = plan_mod.diff(p0, p1)
    assert {o for o in _ops(ch)} == {("ovs", "modify"), ("eswitch", "update")}
    assert all(c.item.actions[0] == c.old.actions[0] for c in ch if c.plane == "ovs"), "meters stay"


def test_meter_ids_stable_and_apart_per_service():
    data = _with_limits({"pps": 1000})
    second = copy.deepcopy(data["services"][0])
    second.update(name="dns2", vip="198.18.0.54", vip_mac="02:00:c6:12:00:54")
    data["services"].append(second)
    p = plan_mod.plan(parse(data))
    ids = [m.meter_id for m in p.meters()]
    assert len(set(ids)) == 2
    _, alone = _plan({"pps": 1000})
    assert list(alone.meters())[0].meter_id in ids, "a service's meter id does not depend on the others"


# ---------------------------------------------------------------- consistency: meters in both planes


def _planes(p):
    flows = {}
    for f in p.flows:
        flows.setdefault(f.bridge, []).append(f)
    return flows, list(p.pipes), list(p.entries)


def _installed_ovs_meters(p):
    out = {}
    for m in p.meters():
        out.setdefault(m.where, {})[m.meter_id] = (m.pps, m.burst)
    return out


def test_the_plan_as_installed_is_consistent_with_its_limits():
    from xenoflow_ovs.intent import consistency
    cfg, p = _plan({"pps": 1000, "per_bucket_pps": 100})
    flows, pipes, entries = _planes(p)
    rep = consistency.check(cfg, p, flows, pipes, entries, ovs_meters=_installed_ovs_meters(p),
                            es_meters=list(p.es_meters()))
    assert rep["verdict"] == "consistent", rep["drift"] or rep["buckets"][:2]
    assert rep["buckets"][0]["limits"] == "100 pps burst 10, 1000 pps burst 100"
    row = rep["buckets"][0]
    assert row["eswitch_limits"] == row["ovs_limits"] == row["limits"]


def test_a_limit_in_one_plane_only_is_drift_and_inconsistent():
    from xenoflow_ovs.intent import consistency
    cfg, p = _plan({"per_bucket_pps": 100})
    _, plain = _plan(None)
    flows, _, _ = _planes(plain)                   # OVS without meters
    _, pipes, entries = _planes(p)                 # the eSwitch with them
    rep = consistency.check(cfg, p, flows, pipes, entries, ovs_meters={}, es_meters=[])
    assert rep["verdict"] == "drift"
    assert any(d["plane"] == "ovs" and d["what"] == "missing" and "meter" in d["expected"]
               for d in rep["drift"])
    full = consistency.check(cfg, p, flows, pipes, entries)
    assert full["services"][0]["mismatched"] == 16
    row = full["buckets"][0]
    assert row["ovs_limits"] == "none" and row["eswitch_limits"] == "100 pps burst 10" and not row["ok"]


def test_a_meter_at_another_rate_is_drift():
    from xenoflow_ovs.intent import consistency
    cfg, p = _plan({"pps": 1000})
    flows, pipes, entries = _planes(p)
    meters = _installed_ovs_meters(p)
    br = next(iter(meters))
    mid = next(iter(meters[br]))
    meters[br][mid] = (999, 100)
    es = [plan_mod.Meter("eswitch", m.where, m.meter_id, 1000, 7, m.owner, m.scope) for m in p.es_meters()]
    rep = consistency.check(cfg, p, flows, pipes, entries, ovs_meters=meters, es_meters=es)
    what = {(d["plane"], d["what"]) for d in rep["drift"]}
    assert what == {("ovs", "changed"), ("eswitch", "changed")}
    # read back, the wrong rates also make the buckets disagree with the intent
    rep = consistency.check(cfg, p, flows, pipes, entries, ovs_meters=meters)
    assert rep["services"][0]["mismatched"] == 16


def test_fate_of_a_green_packet_walks_the_eswitch_chain():
    from xenoflow_ovs.intent import fate
    cfg, p = _plan({"pps": 1000, "per_bucket_pps": 100})
    _, pipes, entries = _planes(p)
    rates = {(m.where, m.meter_id): (m.pps, m.burst) for m in p.es_meters()}
    pkt = fate.Packet(in_port="p0", ipv4_src="198.18.0.3")
    f = fate.eswitch_fate(entries, pkt, pipes, rates)
    assert f.verdict == "output" and f.meters == ((100, 10), (1000, 100))
    assert f.path[-1].endswith(".svc.red")
    # without the service stage's pipe the chain is broken: a miss, as the hardware's would be
    broken = [pp for pp in pipes if not pp.name.endswith(".svc")]
    assert fate.eswitch_fate(entries, pkt, broken, rates).verdict == "miss"
    # a red packet is dropped by the bucket's drop stage
    red = fate.eswitch_fate(entries, dataclasses.replace(pkt, meter_color=plan_mod.COLOR_RED), pipes, rates)
    assert red.verdict == "drop"


# ---------------------------------------------------------------- eswitchd's wire


def test_metered_changes_travel_to_eswitchd_and_back_whole():
    from xenoflow_ovs.eswitch import wire
    _, p0 = _plan(None)
    _, p1 = _plan({"pps": 1000, "per_bucket_pps": 100})
    changes = [c for c in plan_mod.diff(p0, p1) + plan_mod.diff(p1, p0) if c.plane == "eswitch"]
    assert {c.op for c in changes} >= {"add_meter", "remove_meter", "add_pipe", "add"}
    for runs in (True, False):
        back = wire.changes_from_wire(wire.changes_to_wire(changes, runs=runs))
        assert [(c.op, c.item) for c in back] == [(c.op, c.item) for c in changes]
    # runs carry a bucket's meter once for the whole run
    compact = wire.changes_to_wire(changes, runs=True)
    assert any(d.get("run", {}).get("meter") == [100, 10] for d in compact)


def test_capacity_counts_the_drop_stages_as_pipes():
    from xenoflow_ovs.intent import capacity
    plain, _ = _plan(None, data=paper_data())
    both, p = _plan({"pps": 1000, "per_bucket_pps": 100}, data=paper_data())
    a, b = capacity.needs(plain)["p0"], capacity.needs(both)["p0"]
    assert b.pipes - a.pipes == 6 == len([pp for pp in p.pipes if pp.drop or pp.meter == "shared"])
    assert b.action_entries == a.action_entries, "drop and meter entries rewrite nothing"

"""Rate-limited packets: OVS meter drops and the eSwitch's drop stages counted per plane, scope
and bucket, only growing; never fallback, never a backend's; in status and /metrics."""
from __future__ import annotations

import collections
import copy

from config_samples import paper_data, paper_v4_data, parse
from prometheus_client.parser import text_string_to_metric_families

from xenoflow_ovs.api.metrics import METRIC_BUCKETS, Metrics
from xenoflow_ovs.controller import counters as counters_mod
from xenoflow_ovs.controller import ofrules, status
from xenoflow_ovs.controller.counters import Attribution, Counters, Drops, MeteredTotals
from xenoflow_ovs.eswitch import wire
from xenoflow_ovs.intent import plan as plan_mod


def _cfg(limits, bits=4, data=None):
    data = copy.deepcopy(data or paper_v4_data())
    svc = data["services"][0]
    svc["policy"] = {"kind": "src-ip-bits", "bits": bits}
    if limits is not None:
        svc["limits"] = limits
    return parse(data)


def _drop_entries(p):
    return [e for e in p.entries if e.kind == "drop"]


# ---------------------------------------------------------------- Drops


def test_drops_are_sums_of_deltas_and_a_reset_counts_from_zero():
    d = Drops()
    key = (("scope", "ovs", "dns", "bucket"),)
    d.poll("a", [(1, key, 10)])
    d.poll("a", [(1, key, 25)])
    d.poll("a", [(1, key, 4)])                  # the meter was re-created
    assert d.view()["dns"]["scopes"]["ovs"]["bucket"] == 29


def test_an_empty_reading_forgets_nothing_so_nothing_counts_twice():
    d = Drops()
    key = (("scope", "ovs", "dns", "service"),)
    d.poll(("ovs", "ovsbr1"), [(7, key, 100)])
    d.poll(("ovs", "ovsbr1"), [])               # a reconnected bridge, meters not read yet
    d.poll(("ovs", "ovsbr1"), [(7, key, 110)])
    assert d.view()["dns"]["scopes"]["ovs"]["service"] == 110


# ---------------------------------------------------------------- OVS meters


def test_meter_drops_map_to_service_scope_and_bucket_rows_over_both_families():
    cfg = _cfg({"pps": 1000, "per_bucket_pps": 100}, data=paper_data())
    p = plan_mod.plan(cfg)
    meters = list(p.meters())
    svc_meter = next(m for m in meters if m.scope == "service")
    b3 = [m for m in meters if m.scope == "bucket" and m.bucket == 3]
    assert {m.family for m in b3} == {4, 6}
    names = counters_mod.MeterNames().learn(cfg)
    foreign = 5                                   # below 1 << 18: another controller's meter
    reading = {svc_meter.meter_id: 40, b3[0].meter_id: 7, b3[1].meter_id: 5, foreign: 99}
    d = Drops()
    d.poll(("ovs", "ovsbr1"), counters_mod.meter_drop_samples(reading, names))
    v = d.view()
    assert set(v) == {"dns"}
    assert v["dns"]["scopes"]["ovs"] == {"service": 40, "bucket": 12}
    assert v["dns"]["buckets"] == {3: {"ovs": 12}}


def test_the_meter_table_rule_is_neither_a_backend_nor_fallback():
    cfg = _cfg({"pps": 1000, "per_bucket_pps": 100})
    p = plan_mod.plan(cfg)
    rules = ofrules.Rules.default()
    flows = [f for f in p.flows if f.kind == "service"]
    table2 = [f for f in flows if f.table == plan_mod.METER_TABLE]
    bucket = next(f for f in flows if f.table == 0 and f.backend)
    assert table2
    attr = Attribution()
    attr.learn(p.cookies(), {("dns", b.name): b.mac for b in cfg.services[0].backends})

    def attributed(f):
        ports = collections.defaultdict(lambda: 2)
        return attr(f.cookie, ofrules.canon_actions(rules.instructions(f, ports), rules.ofp))
    assert attributed(bucket) == ("service", "dns", bucket.backend)
    assert attributed(table2[0]) == (counters_mod.METER_KIND, "dns", None)
    c = Counters()
    c.poll("ovsbr1", [(("ovsbr1", 0, 1, ("b",)), attributed(bucket), 10, 1000),
                      (("ovsbr1", 2, 1, ("m",)), attributed(table2[0]), 10, 1000)])
    v = c.view(has_eswitch=True)
    assert v["fallback"] == 10, "the packets the meter table saw again count once"
    assert set(v["services"]["dns"]) == {bucket.backend}


# ---------------------------------------------------------------- eSwitch drop stages


def _entry_counts(p, n_of):
    return [{"entry": wire.entry_to_wire(e), "pkts": n_of(e), "bytes": 100 * n_of(e)} for e in p.entries]


def test_eswitch_drop_entries_count_as_limited_never_for_a_backend():
    cfg = _cfg({"per_bucket_pps": 100})
    p = plan_mod.plan(cfg)
    assert len(_drop_entries(p)) == 16

    def n_of(e):
        if e.kind == "drop":
            return 30 if e.bucket == 5 else 0
        return 50 if e.kind == "bucket" and e.bucket == 5 else 0
    d = Drops()
    t = MeteredTotals(d)
    t.update({"entries": _entry_counts(p, n_of), "ports": {}})    # an eswitchd without totals
    backend5 = p.entries[5].backend if p.entries[5].bucket == 5 else None
    served = {k: v for k, v in t.backends.items() if v[0]}
    assert served == {("dns", backend5): [50, 5000]}, "the drop entry is nobody's traffic"
    v = d.view()["dns"]
    assert v["scopes"]["eswitch"] == {"bucket": 30} and v["buckets"] == {5: {"eswitch": 30}}


def test_eswitchd_totals_give_the_sums_and_a_new_boot_counts_from_zero():
    def reply(boot, bucket, service):
        return {"table": {"boot": boot, "version": 1}, "ports": {},
                "totals": [{"kind": "bucket", "owner": "dns", "backend": "fips2", "pkts": 9, "bytes": 900},
                           {"kind": "drop", "owner": "dns", "backend": "bucket", "pkts": bucket, "bytes": 0},
                           {"kind": "drop", "owner": "dns", "backend": "service", "pkts": service,
                            "bytes": 0}]}
    d = Drops()
    t = MeteredTotals(d)
    t.update(reply("b1", 100, 7))
    t.update(reply("b1", 150, 7))
    t.update(reply("b2", 20, 1))                # eswitchd restarted: its totals from zero
    assert d.view()["dns"]["scopes"]["eswitch"] == {"bucket": 170, "service": 8}
    assert t.backends == {("dns", "fips2"): [18, 1800]}


def test_entries_beside_totals_add_bucket_rows_not_sums():
    cfg = _cfg({"per_bucket_pps": 100})
    p = plan_mod.plan(cfg)
    counters = {"table": {"boot": "b"}, "ports": {},
                "totals": [{"kind": "drop", "owner": "dns", "backend": "bucket", "pkts": 12, "bytes": 0}],
                "entries": _entry_counts(p, lambda e: 12 if e.kind == "drop" and e.bucket == 2 else 0)}
    d = Drops()
    d.poll("eswitch", counters_mod.eswitch_drop_samples(counters))
    v = d.view()["dns"]
    assert v["scopes"]["eswitch"] == {"bucket": 12} and v["buckets"][2] == {"eswitch": 12}


# ---------------------------------------------------------------- status and metrics


def test_status_lists_limits_drops_per_plane_and_the_top_buckets_capped():
    cfg = _cfg({"per_bucket_pps": 200, "per_bucket_burst": 20})
    d = Drops()
    d.poll("eswitch", [(b, (("scope", "eswitch", "dns", "bucket"), ("bucket", "eswitch", "dns", b)), 10 + b)
                       for b in range(16)])
    view = status.limits_view(cfg, d.view(), rows=4)
    lim = view["dns"]
    assert (lim["pps"], lim["per_bucket_pps"], lim["per_bucket_burst"]) == (None, 200, 20)
    assert lim["limited_packets"] == {"eswitch": {"service": 0, "bucket": sum(range(10, 26))},
                                      "ovs": {"service": 0, "bucket": 0}}
    assert [r["bucket"] for r in lim["buckets"]] == [15, 14, 13, 12]
    assert lim["buckets"][0] == {"bucket": 15, "eswitch": 25, "ovs": 0}
    assert lim["buckets_left_out"] == 12 and lim["bucket_count"] == 16


def test_status_without_eswitch_has_no_eswitch_plane_and_lists_unlimited_services_not():
    data = paper_v4_data()
    data["dpu"]["eswitch"] = {"driver": "none"}
    cfg = _cfg({"pps": 500}, data=data)
    assert not cfg.has_eswitch
    lim = status.limits_view(cfg, {})
    assert lim["dns"]["limited_packets"] == {"ovs": {"service": 0, "bucket": 0}, "eswitch": None}
    assert status.limits_view(_cfg(None), {}) == {}


def test_status_keeps_a_removed_limit_only_while_it_had_dropped_something():
    unlimited = _cfg(None)
    d = Drops()
    d.poll("eswitch", [(0, (("scope", "eswitch", "dns", "bucket"), ("bucket", "eswitch", "dns", 0)), 0)])
    assert "dns" in d.view()
    assert status.limits_view(unlimited, d.view()) == {}, "nothing dropped: no row to show"
    d.poll("eswitch", [(0, (("scope", "eswitch", "dns", "bucket"), ("bucket", "eswitch", "dns", 0)), 9)])
    lim = status.limits_view(unlimited, d.view())["dns"]
    assert lim["per_bucket_pps"] is None and lim["limited_packets"]["eswitch"]["bucket"] == 9


def _scrape(m):
    out = {}
    for fam in text_string_to_metric_families(m.exposition().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_expose_limited_packets_and_bucket_series_only_for_few_buckets():
    def state(count):
        return {"limits": {"dns": {"pps": 1000, "per_bucket_pps": 100, "bucket_count": count,
                                   "limited_packets": {"eswitch": {"service": 3, "bucket": 40},
                                                       "ovs": {"service": 0, "bucket": 0}},
                                   "buckets": [{"bucket": 5, "eswitch": 40, "ovs": 0}]}}}
    lab = lambda **kw: tuple(sorted(dict(dpu="bf3", service="dns", **kw).items()))  # noqa: E731
    got = _scrape(Metrics("bf3", lambda: state(16)))
    assert got[("xenoflow_limited_packets_total", lab(plane="eswitch", scope="bucket"))] == 40
    assert got[("xenoflow_limited_packets_total", lab(plane="eswitch", scope="service"))] == 3
    assert got[("xenoflow_limited_bucket_packets_total", lab(plane="eswitch", bucket="5"))] == 40
    assert got[("xenoflow_limit_pps", lab(scope="bucket"))] == 100
    many = _scrape(Metrics("bf3", lambda: state(METRIC_BUCKETS * 2)))
    assert ("xenoflow_limited_bucket_packets_total", lab(plane="eswitch", bucket="5")) not in many
    assert many[("xenoflow_limited_packets_total", lab(plane="eswitch", scope="bucket"))] == 40

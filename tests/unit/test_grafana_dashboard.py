"""The Grafana dashboard (dashboards/grafana/xenoflow.json) queries only series XenoFlow
exports: every metric a PromQL expression names, and every label it matches, groups or
shows, exists in a real exposition of xenoflow_ovs.api.metrics.Metrics over a status with
every part (eSwitch, limits, health, drains, alarms, fleet and BGP)."""

import json
import os
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from xenoflow_ovs.api.metrics import Metrics

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD = os.path.join(ROOT, "dashboards", "grafana", "xenoflow.json")

FULL_STATUS = {
    "dpu": "dpu1", "runtime": "osken", "verdict": "consistent",
    "eswitch": {"driver": "softdoca", "connected": True, "miss_packets": {"p0": 2, "p1": 40}},
    "bridges": {"ovsbr1": {"connected": True}},
    "services": {"dns": {
        "fips2": {"eswitch_packets": 40, "eswitch_bytes": 3280, "ovs_packets": 0, "ovs_bytes": 0,
                  "drained": False, "healthy": True, "in_service": True},
        "fips3": {"eswitch_packets": 0, "eswitch_bytes": 0, "ovs_packets": 0, "ovs_bytes": 0,
                  "drained": True, "healthy": True, "in_service": False}}},
    "fallback_packets": 0, "miss_other_packets": 3, "packet_ins": 0,
    "limits": {"dns": {"pps": 5000, "burst": None, "per_bucket_pps": 200, "per_bucket_burst": None,
                       "bucket_count": 16,
                       "limited_packets": {"eswitch": {"service": 0, "bucket": 90},
                                           "ovs": {"service": 0, "bucket": 0}},
                       "buckets": [{"bucket": 2, "eswitch": 90, "ovs": 0}], "buckets_left_out": 0}},
    "health": {"dns/fips2": {"up": True, "last": "ok", "ok": True, "seconds": 0.003},
               "dns/fips3": {"up": False, "last": "timeout", "ok": False, "seconds": 0.5}},
    "alarms": [{"kind": "repeated_repair", "what": "dns/bucket 3", "count": 7, "since": 1.0}],
    "overlay": {"path": "/var/lib/xenoflow/overlay.json", "edits": 1, "dropped": ["fips9"]},
    "fleet": {"dpu": "dpu1", "applied_version": 7, "store_version": 7,
              "bgp": {"announced": ["198.18.0.53/32"], "vips": ["198.18.0.53/32", "198.18.0.54/32"],
                      "peers": {"198.18.1.1": {"bgp": "Established", "bfd": "up"}}}},
}


def exported():
    """{sample name: its label names} of a real exposition over FULL_STATUS."""
    m = Metrics("dpu1", lambda: FULL_STATUS)
    m.reconciled("ovs", "repair")
    m.reloaded(True)
    m.installed(0.001)
    out = {}
    for fam in text_string_to_metric_families(m.exposition().decode()):
        for s in fam.samples:
            out.setdefault(s.name, set()).update(s.labels)
    return out


SERIES = exported()


def dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def panels(dash=None):
    out = []
    for p in (dash or dashboard())["panels"]:
        out.append(p)
        out.extend(p.get("panels") or [])          # a collapsed row holds its panels
    return out


def queries():
    """(panel title, target) of every query panel."""
    return [(p["title"], t) for p in panels() if p["type"] != "row" for t in p.get("targets") or []]


METRIC = re.compile(r"\bxenoflow_[a-z0-9_]+")
MATCHERS = re.compile(r"\b(xenoflow_[a-z0-9_]+)\s*\{([^}]*)\}")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
LEGEND = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


def names(text):
    return [n.strip() for n in text.split(",") if n.strip()]


def test_the_json_is_a_grafana_9_dashboard_with_a_prometheus_source_and_a_dpu_variable():
    dash = dashboard()
    assert dash["schemaVersion"] >= 36 and dash["uid"] and dash["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    dpu = variables["dpu"]
    assert dpu["type"] == "query" and dpu["datasource"]["uid"] == "${DS_PROMETHEUS}"
    assert dpu["query"]["query"] == dpu["definition"] == "label_values(xenoflow_build_info, dpu)"
    assert "dpu" in SERIES["xenoflow_build_info"]
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids))


def test_every_panel_has_a_query_on_the_dashboards_source_and_dpus():
    for p in panels():
        if p["type"] == "row":                      # layout only
            assert not p.get("targets"), p["title"]
            continue
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
        assert p.get("targets"), "panel %r has no query" % p["title"]
        for t in p["targets"]:
            assert t["expr"].strip() and t["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
            for metric, matchers in MATCHERS.findall(t["expr"]):
                assert 'dpu=~"$dpu"' in matchers, "%s: %s not filtered by $dpu" % (p["title"], metric)
            assert METRIC.search(t["expr"]), p["title"]


def test_every_metric_a_query_names_is_exported():
    missing = sorted({"%s (panel %r)" % (name, title) for title, t in queries()
                      for name in METRIC.findall(t["expr"]) if name not in SERIES})
    assert not missing, "not in the exposition: " + ", ".join(missing)


def test_every_label_a_query_uses_is_on_its_series():
    wrong = []
    for title, t in queries():
        expr = t["expr"]
        used = set(METRIC.findall(expr))
        for metric, matchers in MATCHERS.findall(expr):
            for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers):
                if label not in SERIES.get(metric, ()):
                    wrong.append("%s: %s has no label %s" % (title, metric, label))
        grouped = [label for g in GROUPING.findall(expr) for label in names(g)]
        for label in grouped + LEGEND.findall(t.get("legendFormat", "")):
            for metric in used:
                if label not in SERIES.get(metric, ()):
                    wrong.append("%s: %s has no label %s" % (title, metric, label))
        outer = re.findall(r"\bby\s*\(([^)]*)\)", expr)     # the first `by` is the outermost
        for label in LEGEND.findall(t.get("legendFormat", "")):
            if outer and label not in names(outer[0]):
                wrong.append("%s: legend %s is aggregated away" % (title, label))
    assert not wrong, "\n".join(wrong)


def test_the_dashboards_subjects_are_all_there():
    used = {name for _, t in queries() for name in METRIC.findall(t["expr"])}
    for name in ("xenoflow_backend_packets_total", "xenoflow_backend_bytes_total",
                 "xenoflow_fallback_packets_total", "xenoflow_miss_other_packets_total",
                 "xenoflow_consistent", "xenoflow_limit_pps", "xenoflow_limited_packets_total",
                 "xenoflow_backend_up", "xenoflow_health_up", "xenoflow_fleet_announced",
                 "xenoflow_bgp_peer_up", "xenoflow_bridge_connected", "xenoflow_alarm"):
        assert name in used, name
    counters = [n for _, t in queries() for n in re.findall(r"\b(xenoflow_[a-z0-9_]+_total)\b", t["expr"])]
    for _, t in queries():      # counters are read as rates, never as raw totals
        for name in re.findall(r"\b(xenoflow_[a-z0-9_]+_total)\b", t["expr"]):
            assert re.search(r"rate\(%s\{" % name, t["expr"]), t["expr"]
    assert counters


@pytest.mark.parametrize("plane", ["eswitch", "ovs"])
def test_both_planes_are_drawn_for_packets_and_bytes(plane):
    for metric in ("xenoflow_backend_packets_total", "xenoflow_backend_bytes_total"):
        assert any(metric in t["expr"] and 'plane="%s"' % plane in t["expr"] for _, t in queries()), metric


def test_fallback_turns_red_above_zero():
    (p,) = [p for p in panels() if "xenoflow_fallback_packets_total" in json.dumps(p.get("targets"))]
    steps = p["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[0]["value"] is None and steps[0]["color"] == "green"
    red = [s for s in steps if s["color"] == "red"]
    assert len(red) == 1 and 0 < red[0]["value"] < 1e-6

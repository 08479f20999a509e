"""Metrics: every series exposed with dpu/service/backend labels, values taken from state."""

from prometheus_client.parser import text_string_to_metric_families

from xenoflow_ovs.api.metrics import Metrics


def scrape(m):
    out = {}
    for fam in text_string_to_metric_families(m.exposition().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_state_counters_and_events_are_exposed():
    state = {"services": {"dns": {"fips2": {"ovs_packets": 0, "eswitch_packets": 40, "eswitch_bytes": 4000},
                                  "fips3": {"ovs_packets": 2, "eswitch_packets": 38, "in_service": False}}},
             "fallback_packets": 2, "miss_other_packets": 5, "packet_ins": 0, "verdict": "fallback"}
    m = Metrics("bf3", lambda: state)
    m.reconciled("ovs", "repair", 2)
    m.reloaded(True)
    m.reloaded(False)
    m.installed(0.002)
    got = scrape(m)
    lab = lambda **kw: tuple(sorted(dict(dpu="bf3", **kw).items()))  # noqa: E731
    assert got[("xenoflow_backend_packets_total", lab(service="dns", backend="fips2", plane="eswitch"))] == 40
    assert got[("xenoflow_backend_bytes_total", lab(service="dns", backend="fips2", plane="eswitch"))] == 4000
    assert got[("xenoflow_backend_packets_total", lab(service="dns", backend="fips3", plane="ovs"))] == 2
    assert got[("xenoflow_backend_up", lab(service="dns", backend="fips3"))] == 0
    assert got[("xenoflow_fallback_packets_total", lab(plane="ovs"))] == 2
    assert got[("xenoflow_miss_other_packets_total", lab())] == 5
    assert got[("xenoflow_consistent", lab())] == 0
    assert got[("xenoflow_reconcile_actions_total", lab(plane="ovs", kind="repair"))] == 2
    assert got[("xenoflow_config_reloads_total", lab(result="bad"))] == 1
    assert got[("xenoflow_entry_install_seconds_count", lab())] == 1
    state["services"]["dns"]["fips2"]["eswitch_packets"] = 41
    assert scrape(m)[("xenoflow_backend_packets_total",
                      lab(service="dns", backend="fips2", plane="eswitch"))] == 41


def test_no_eswitch_means_no_fallback_sample():
    m = Metrics("bf3", lambda: {"services": {}, "fallback_packets": None, "verdict": "consistent"})
    got = scrape(m)
    assert not [k for k in got if k[0] == "xenoflow_fallback_packets_total"]
    assert got[("xenoflow_consistent", (("dpu", "bf3"),))] == 1

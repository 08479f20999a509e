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


def test_planes_health_alarms_overlay_and_build_info():
    from xenoflow_ovs import __version__
    state = {"runtime": "osken", "verdict": "drift",
             "bridges": {"ovsbr1": {"connected": True}, "ovsbr2": {"connected": False}},
             "eswitch": {"driver": "softdoca", "connected": True,
                         "miss_packets": {"p0": 2, "p1": 40, "pf0hpf": None}},
             "health": {"dns/fips2": {"up": True, "last": "ok", "ok": True, "seconds": 0.004},
                        "dns/fips3": {"up": False, "last": "timeout after 0.5s", "ok": False,
                                      "seconds": 0.5},
                        "dns/fips4": {"up": True, "last": None}},
             "alarms": [{"kind": "repeated_repair", "what": "dns/bucket 3", "count": 7, "since": 1.0}],
             "overlay": {"path": "/var/lib/xenoflow/bf3/overlay.json", "edits": 3, "dropped": ["fips9"]}}
    got = scrape(Metrics("bf3", lambda: state))
    lab = lambda **kw: tuple(sorted(dict(dpu="bf3", **kw).items()))  # noqa: E731
    assert got[("xenoflow_bridge_connected", lab(bridge="ovsbr1"))] == 1
    assert got[("xenoflow_bridge_connected", lab(bridge="ovsbr2"))] == 0
    assert got[("xenoflow_eswitch_connected", lab())] == 1
    assert got[("xenoflow_eswitch_miss_packets_total", lab(port="p1"))] == 40
    assert ("xenoflow_eswitch_miss_packets_total", lab(port="pf0hpf")) not in got
    assert got[("xenoflow_health_up", lab(service="dns", backend="fips3"))] == 0
    assert got[("xenoflow_health_probe_ok", lab(service="dns", backend="fips3"))] == 0
    assert got[("xenoflow_health_probe_seconds", lab(service="dns", backend="fips2"))] == 0.004
    assert ("xenoflow_health_probe_ok", lab(service="dns", backend="fips4")) not in got
    assert got[("xenoflow_alarm", lab(kind="repeated_repair", what="dns/bucket 3"))] == 7
    assert got[("xenoflow_overlay_edits", lab())] == 3
    assert got[("xenoflow_overlay_dropped", lab())] == 1
    assert got[("xenoflow_build_info", lab(version=__version__, runtime="osken"))] == 1
    # without an eSwitch, alarms or overlay: no samples, not zeros that would look measured
    got = scrape(Metrics("bf3", lambda: {"eswitch": {"driver": "none", "connected": False}}))
    names = {k[0] for k in got}
    assert not names & {"xenoflow_eswitch_connected", "xenoflow_alarm", "xenoflow_overlay_edits"}


def test_a_fleet_dpu_exposes_its_announcements_and_peers():
    state = {"services": {}, "verdict": "consistent",
             "fleet": {"bgp": {"announced": ["198.18.0.53/32"], "vips": ["198.18.0.53/32", "198.18.0.54/32"],
                               "peers": {"198.18.11.1": {"bgp": "Established", "bfd": "up"},
                                         "198.18.11.5": {"bgp": "Active", "bfd": None}}}}}
    got = scrape(Metrics("dpu1", lambda: state))
    lab = lambda **kw: tuple(sorted(dict(dpu="dpu1", **kw).items()))  # noqa: E731
    assert got[("xenoflow_fleet_announced", lab(vip="198.18.0.53/32"))] == 1
    assert got[("xenoflow_fleet_announced", lab(vip="198.18.0.54/32"))] == 0
    assert got[("xenoflow_bgp_peer_up", lab(peer="198.18.11.1", protocol="bgp"))] == 1
    assert got[("xenoflow_bgp_peer_up", lab(peer="198.18.11.1", protocol="bfd"))] == 1
    assert got[("xenoflow_bgp_peer_up", lab(peer="198.18.11.5", protocol="bgp"))] == 0
    assert got[("xenoflow_bgp_peer_up", lab(peer="198.18.11.5", protocol="bfd"))] == 0
    del state["fleet"]
    assert not [k for k in scrape(Metrics("dpu1", lambda: state)) if k[0].startswith("xenoflow_bgp")]

"""The consistency check: both planes compared bucket by bucket and route by route."""

import os

import yaml

from xenoflow_ovs.intent import config, consistency, fate, plan

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(ROOT, "topologies", "paper", "xenoflow.yaml")


def setup():
    cfg = config.load(PAPER)
    p = plan.plan(cfg)
    flows = {}
    for f in p.flows:
        flows.setdefault(f.bridge, []).append(f)
    return cfg, p, flows


def test_packet_fate_follows_the_paper_in_both_planes():
    cfg, p, flows = setup()
    for src, mac in (("198.18.0.7", "02:00:c6:12:00:03"), ("198.18.0.8", "02:00:c6:12:00:02")):
        pkt = fate.Packet(in_port="p0", ipv4_src=src)
        for got in (fate.ovs_fate(flows, cfg.bridge_of, pkt), fate.eswitch_fate(p.entries, pkt)):
            assert (got.verdict, got.port, got.eth_dst) == ("output", "p1", mac)
    # Another UDP port to the VIP: the eSwitch misses, OVS drops it (miss_other).
    other = fate.Packet(in_port="p0", l4_dst=54)
    assert fate.eswitch_fate(p.entries, other).verdict == "miss"
    assert fate.ovs_fate(flows, cfg.bridge_of, other).verdict == "drop"
    # The VIP's ARP is answered on the ingress port only.
    assert fate.ovs_fate(flows, cfg.bridge_of, fate.arp_request("p0", "198.18.0.53")).port == "p0"
    assert fate.ovs_fate(flows, cfg.bridge_of, fate.arp_request("p1", "198.18.0.53")).verdict == "drop"
    # A VLAN-tagged query: the eSwitch misses it (outer ethertype) and OVS does not balance it
    # either: it is nobody's class in both planes, never fallback.
    tagged = fate.Packet(in_port="p0", ipv4_src="198.18.0.7", vlan=5)
    assert fate.eswitch_fate(p.entries, tagged).verdict == "miss"
    assert fate.ovs_fate(flows, cfg.bridge_of, tagged).verdict == "drop"
    # Host traffic from fips5 goes straight to the wire in both planes.
    host = fate.Packet(in_port="pf1hpf", ipv4_src="198.18.0.5", ipv4_dst="198.18.0.2", l4_dst=9)
    assert fate.ovs_fate(flows, cfg.bridge_of, host).port == "p1"
    assert fate.eswitch_fate(p.entries, host).port == "p1"


def test_consistent_when_installed_equals_plan():
    cfg, p, flows = setup()
    rep = consistency.check(cfg, p, flows, p.pipes, p.entries, {"fallback": 0, "miss_other": 2})
    assert rep["verdict"] == "consistent" and rep["consistent"]
    assert len(rep["buckets"]) == 2 and all(b["ok"] for b in rep["buckets"])
    assert len(rep["routes"]) == 2 and all(r["ok"] for r in rep["routes"])


def test_drift_in_both_planes_is_reported_with_expected_and_found():
    cfg, p, flows = setup()
    flows["ovsbr1"] = [f for f in flows["ovsbr1"] if not (f.kind == "service" and f.backend == "fips3")]
    entries = [e for e in p.entries if e.bucket != 0]
    rep = consistency.check(cfg, p, flows, p.pipes, entries, {"fallback": 0})
    assert rep["verdict"] == "drift"
    planes = {(d["plane"], d["what"]) for d in rep["drift"]}
    assert planes == {("ovs", "missing"), ("eswitch", "missing")}
    assert [b["ok"] for b in rep["buckets"]] == [False, False]
    assert "MISMATCH" in consistency.format_report(rep)


def test_changed_entry_and_foreign_backend_are_drift():
    cfg, p, flows = setup()
    entries = [e if e.bucket != 1 else plan.Entry(**{**e.__dict__, "dst_mac": "02:00:c6:12:00:02"})
               for e in p.entries]
    rep = consistency.check(cfg, p, flows, p.pipes, entries, {"fallback": 0})
    assert [d["what"] for d in rep["drift"]] == ["changed"]
    assert rep["buckets"][1]["ok"] is False


def test_fallback_counts_make_the_verdict_and_unmirrored_routes_say_why():
    cfg, p, flows = setup()
    rep = consistency.check(cfg, p, flows, p.pipes, p.entries, {"fallback": 5})
    assert rep["verdict"] == "fallback"
    data = yaml.safe_load(open(PAPER))
    data["dpu"]["eswitch"]["mirror_routes"] = False
    cfg2 = config.parse(yaml.safe_dump(data))
    p2 = plan.plan(cfg2)
    rep = consistency.check(cfg2, p2, flows, p2.pipes, p2.entries, {"fallback": 0})
    assert rep["verdict"] == "consistent"
    assert all("fallback by design" in r["note"] and r["eswitch"] == "miss" for r in rep["routes"])


def test_driver_none_reports_fallback_not_applicable():
    data = yaml.safe_load(open(PAPER))
    data["dpu"]["eswitch"] = {"driver": "none"}
    cfg = config.parse(yaml.safe_dump(data))
    p = plan.plan(cfg)
    flows = {}
    for f in p.flows:
        flows.setdefault(f.bridge, []).append(f)
    rep = consistency.check(cfg, p, flows, counters={"fallback": 7})
    assert rep["fallback_packets"] is None and rep["verdict"] == "consistent"
    assert "eswitch" not in rep["buckets"][0]
    assert consistency.check(cfg, p, None)["verdict"] == "drift"

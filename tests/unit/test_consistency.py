"""The consistency check: both planes compared bucket by bucket and route by route."""

import dataclasses
import os

import netaddr
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
    # the route without dst is judged once per family
    assert [(r["route"], r.get("family")) for r in rep["routes"]] == [
        ("pf1hpf->p1 0.0.0.0/0", "ipv4"), ("pf1hpf->p1 0.0.0.0/0", "ipv6"),
        ("p1->pf1hpf 198.18.0.5/32", None)]
    assert all(r["ok"] for r in rep["routes"])


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
    # bucket 1's entry in each family's pipe
    assert [(d["what"], d["expected"].split()[1]) for d in rep["drift"]] == [
        ("changed", "pipe=dns.ipv4_src1.p1"), ("changed", "pipe=dns.ipv6_src1.p1")]
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


def maglev(nsvc, bits, nbe=8):
    """Services balanced by maglev over `nbe` backends each, on the paper's DPU."""
    data = config.to_data(config.load(PAPER))
    data["services"] = [
        {"name": "s%d" % s, "vip": "198.18.1.%d" % (s + 1), "vip_mac": "02:01:00:00:00:%02x" % s,
         "protocol": "udp", "port": 53, "ingress": "p0", "egress": "p1",
         "policy": {"kind": "maglev", "bits": bits},
         "backends": [{"name": "b%d_%d" % (s, i), "ip": "198.19.%d.%d" % (s, i + 1),
                       "mac": "02:00:%02x:00:00:%02x" % (s, i), "weight": 1} for i in range(nbe)]}
        for s in range(nsvc)]
    cfg = config.from_data(data, base_dir=os.path.dirname(PAPER))
    p = plan.plan(cfg)
    flows = {}
    for f in p.flows:
        flows.setdefault(f.bridge, []).append(f)
    return cfg, p, flows, list(p.entries)


def wrong_mac(entries, service, bucket):
    """The eSwitch sends one bucket to another MAC than the plan's."""
    return [plan.Entry(**{**e.__dict__, "dst_mac": "02:00:ee:ee:ee:ee"})
            if (e.owner, e.bucket) == (service, bucket) else e for e in entries]


def test_small_reports_list_every_bucket_and_a_summary_per_service():
    cfg, p, flows = setup()
    rep = consistency.check(cfg, p, flows, p.pipes, p.entries, {"fallback": 0})
    assert rep["services"] == [{"service": "dns", "buckets": 2, "ok": 2, "mismatched": 0}]
    assert rep["bucket_rows"] == "all" and rep["buckets_left_out"] == 0
    text = consistency.format_report(rep)
    assert "service dns: 2 buckets, 2 ok, 0 mismatched" in text and "listing only" not in text


def test_at_the_limit_every_bucket_is_listed_and_a_mismatch_counted():
    cfg, p, flows, entries = maglev(1, 12)
    assert consistency.LIST_ALL == 4096
    rep = consistency.check(cfg, p, flows, p.pipes, wrong_mac(entries, "s0", 1234), {"fallback": 0})
    assert rep["verdict"] == "drift" and [d["what"] for d in rep["drift"]] == ["changed"]
    assert rep["services"] == [{"service": "s0", "buckets": 4096, "ok": 4095, "mismatched": 1}]
    assert rep["bucket_rows"] == "all" and len(rep["buckets"]) == 4096
    assert [b["bucket"] for b in rep["buckets"] if not b["ok"]] == [1234]
    assert rep["buckets"][1234]["eswitch"] == "p1 (dst 02:00:ee:ee:ee:ee)"


def test_above_the_limit_only_mismatched_buckets_are_listed():
    cfg, p, flows, entries = maglev(2, 12)
    clean = consistency.check(cfg, p, flows, p.pipes, entries, {"fallback": 0})
    assert clean["verdict"] == "consistent" and clean["buckets"] == []
    assert [(s["buckets"], s["ok"]) for s in clean["services"]] == [(4096, 4096), (4096, 4096)]
    assert clean["bucket_rows"] == "mismatched" and clean["buckets_left_out"] == 0

    # OVS sends one bucket of s1 elsewhere: a flow differs (drift) and the planes disagree
    tbl = dict(p.tables)["s1"]
    victim = next(f for f in flows["ovsbr1"] if f.kind == "service" and f.owner == "s1")
    other = next(b.mac for b in cfg.service("s1").backends if b.name != victim.backend)
    flows["ovsbr1"] = [f if f is not victim else plan.Flow(**{
        **f.__dict__, "actions": (("set_field", "eth_dst", other),) + f.actions[1:]})
        for f in flows["ovsbr1"]]
    rep = consistency.check(cfg, p, flows, p.pipes, entries, {"fallback": 0})
    bad = rep["buckets"]
    assert bad and all(not b["ok"] and b["service"] == "s1" for b in bad)
    assert all(tbl[b["bucket"]] == victim.backend and "dst %s" % other in b["ovs"] for b in bad)
    assert rep["services"][0]["mismatched"] == 0 and rep["services"][1]["mismatched"] == len(bad)
    text = consistency.format_report(rep)
    assert "listing only the mismatched" in text and text.count("MISMATCH") == len(bad)


def test_the_mismatched_listing_is_capped_and_says_how_many_it_left_out(monkeypatch):
    cfg, p, flows, entries = maglev(2, 3)
    monkeypatch.setattr(consistency, "LIST_ALL", 10)
    # the eSwitch lost every bucket of s0: eight mismatches, only ten rows for all services
    kept = [e for e in entries if not (e.owner == "s0" and e.kind == "bucket")]
    rep = consistency.check(cfg, p, flows, p.pipes, kept, {"fallback": 0})
    assert rep["services"][0] == {"service": "s0", "buckets": 8, "ok": 0, "mismatched": 8}
    assert rep["bucket_rows"] == "mismatched" and len(rep["buckets"]) == 8
    assert rep["buckets_left_out"] == 0
    monkeypatch.setattr(consistency, "LIST_ALL", 4)
    rep = consistency.check(cfg, p, flows, p.pipes, kept, {"fallback": 0})
    assert [b["bucket"] for b in rep["buckets"]] == [0, 1, 2, 3]
    assert all(b["eswitch"] == "miss" for b in rep["buckets"])
    assert rep["buckets_left_out"] == 4 and rep["services"][0]["mismatched"] == 8
    assert "4 more not shown" in consistency.format_report(rep)


def test_each_bucket_probe_carries_its_bucket_up_to_16_bits():
    data = config.to_data(config.load(PAPER))
    for kind in ("src-ip-bits", "src-port-bits"):
        for bits in (1, 15, 16):
            data["services"][0]["policy"] = {"kind": kind, "bits": bits}
            svc = config.from_data(data, base_dir=os.path.dirname(PAPER)).service("dns")
            for b in (0, 1, (1 << bits) - 1):
                pkt = consistency._probes(svc, (4, "udp"))(b)
                got = pkt.l4_src if kind == "src-port-bits" else int(netaddr.IPAddress(pkt.ipv4_src))
                assert got & ((1 << bits) - 1) == b, (kind, bits, b)
            svc6 = dataclasses.replace(svc, vip6=netaddr.IPAddress("2001:db8::53"))
            for b in (0, 1, (1 << bits) - 1):
                pkt = consistency._probes(svc6, (6, "tcp"))(b)
                got = pkt.l4_src if kind == "src-port-bits" else int(netaddr.IPAddress(pkt.ipv6_src))
                assert got & ((1 << bits) - 1) == b and pkt.ip_proto == 6 and not pkt.ipv4_src


def test_verdict_only_skips_judging_buckets_when_drift_decides_and_pauses_otherwise():
    cfg, p, flows, entries = maglev(1, 12)
    pauses = []
    rep = consistency.check(cfg, p, flows, p.pipes, entries, {}, verdict_only=True,
                            pause=lambda: pauses.append(1))
    assert rep["verdict"] == "consistent" and rep["services"][0]["ok"] == 4096
    assert len(pauses) == 4096 // (consistency.PAUSE_MASK + 1)     # the buckets were judged
    del flows["ovsbr1"][0]                                           # a missing flow: drift
    pauses.clear()
    rep = consistency.check(cfg, p, flows, p.pipes, entries, {}, verdict_only=True,
                            pause=lambda: pauses.append(1))
    assert rep["verdict"] == "drift" and rep["drift"] and not rep["buckets"] and pauses == []
    full = consistency.check(cfg, p, flows, p.pipes, entries, {})
    assert full["verdict"] == "drift" and full["services"][0]["buckets"] == 4096


def test_the_vip6_neighbor_solicitation_is_answered_on_the_ingress_port_only():
    """The fate model follows the responder through its two tables: a client's solicitation
    for the VIP6 on p0 goes back out of p0 (with the VIP MAC as source: the rewrite), a
    duplicate address detection's is dropped, and one arriving on p1 meets the guard."""
    cfg = config.load(PAPER)
    p = plan.plan(cfg)
    flows = {}
    for f in p.flows:
        flows.setdefault(f.bridge, []).append(f)
    index = fate.OvsIndex(flows, cfg.bridge_of)
    for pkt, want in ((fate.neighbor_solicitation("p0", "2001:db8::11", "2001:db8::53"), ("output", "p0")),
                      (fate.neighbor_solicitation("p0", "::", "2001:db8::53"), ("drop", None)),
                      (fate.neighbor_solicitation("p1", "2001:db8::2", "2001:db8::53"), ("drop", None)),
                      (fate.neighbor_solicitation("p0", "2001:db8::11", "2001:db8::2"), ("normal", None))):
        for got in (fate.ovs_fate(flows, cfg.bridge_of, pkt), index.fate(pkt)):
            assert (got.verdict, got.port) == want, (pkt, got)

"""Is what is installed what the intent says, and do both planes agree?

Pure: takes the desired plan and what was read back from OVS (flows of our
cookie, as plan Flows) and from eswitchd (pipes and entries), and answers, bucket
by bucket and route by route, where each plane sends the class. Drift is listed
with what was found and what was expected. The report is JSON-ready and its
shape is stable (README, "xenoflow status --json").
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import netaddr

from . import fate
from .config import Config
from .plan import Entry, Flow, Pipe, Plan
from .render import describe_entry, to_ofctl


def _drift_ovs(desired: Plan, actual: Dict[str, Sequence[Flow]]) -> List[Dict[str, Any]]:
    out = []
    for bridge in sorted({f.bridge for f in desired.flows} | set(actual)):
        want = {f.key: f for f in desired.flows if f.bridge == bridge}
        have = {f.key: f for f in actual.get(bridge, ())}
        for k, f in want.items():
            if k not in have:
                out.append({"plane": "ovs", "where": bridge, "what": "missing",
                            "expected": to_ofctl(f), "found": None})
            elif have[k].actions != f.actions:
                out.append({"plane": "ovs", "where": bridge, "what": "changed",
                            "expected": to_ofctl(f), "found": to_ofctl(have[k])})
        for k, f in have.items():
            if k not in want:
                out.append({"plane": "ovs", "where": bridge, "what": "unexpected",
                            "expected": None, "found": to_ofctl(f)})
    return out


def _drift_eswitch(desired: Plan, pipes: Sequence[Pipe], entries: Sequence[Entry]) -> List[Dict[str, Any]]:
    out = []
    want_p = {p.key: p for p in desired.pipes}
    have_p = {p.key: p for p in pipes}
    for k in want_p.keys() - have_p.keys():
        out.append({"plane": "eswitch", "where": k[0], "what": "missing", "expected": "pipe " + k[1],
                    "found": None})
    for k in have_p.keys() - want_p.keys():
        out.append({"plane": "eswitch", "where": k[0], "what": "unexpected", "expected": None,
                    "found": "pipe " + k[1]})
    want = {e.key: e for e in desired.entries}
    have = {e.key: e for e in entries}
    for ek, e in want.items():
        if ek not in have:
            out.append({"plane": "eswitch", "where": e.port, "what": "missing",
                        "expected": describe_entry(e), "found": None})
        elif (have[ek].fwd, have[ek].dst_mac, have[ek].priority) != (e.fwd, e.dst_mac, e.priority):
            out.append({"plane": "eswitch", "where": e.port, "what": "changed",
                        "expected": describe_entry(e), "found": describe_entry(have[ek])})
    for ek, e in have.items():
        if ek not in want:
            out.append({"plane": "eswitch", "where": e.port, "what": "unexpected", "expected": None,
                        "found": describe_entry(e)})
    return out


def _bucket_packet(cfg: Config, svc_name: str, bucket: int) -> fate.Packet:
    svc = cfg.service(svc_name)
    src, sport = int(svc.vip) & 0xFFFF0000 | 0x8000, 0x8000
    if svc.policy.kind == "src-port-bits":
        sport |= bucket
    else:
        src |= bucket
    return fate.Packet(in_port=svc.ingress, eth_dst=svc.vip_mac, ip_proto=svc.ip_proto,
                       ipv4_src=str(netaddr.IPAddress(src)), ipv4_dst=str(svc.vip), l4_src=sport,
                       l4_dst=svc.port)


def check(cfg: Config, desired: Plan, ovs_flows: Optional[Dict[str, Sequence[Flow]]],
          es_pipes: Sequence[Pipe] = (), es_entries: Sequence[Entry] = (),
          counters: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """`ovs_flows` None means OVS could not be read (a bridge not connected): that is drift."""
    counters = counters or {}
    drift: List[Dict[str, Any]] = []
    if ovs_flows is None:
        drift.append({"plane": "ovs", "where": "*", "what": "unreachable", "expected": "connected",
                      "found": None})
        ovs_flows = {}
    else:
        drift += _drift_ovs(desired, ovs_flows)
    if cfg.has_eswitch:
        drift += _drift_eswitch(desired, es_pipes, es_entries)

    buckets_out = []
    for name, tbl in desired.tables:
        svc = cfg.service(name)
        for b, backend in enumerate(tbl):
            pkt = _bucket_packet(cfg, name, b)
            be = svc.backend(backend)
            of = fate.ovs_fate(ovs_flows, cfg.bridge_of, pkt)
            row: Dict[str, Any] = {"service": name, "bucket": b, "backend": backend,
                                   "expected": "%s (dst %s)" % (svc.egress, be.mac),
                                   "ovs": of.where()}
            ok = of.verdict == "output" and (of.port, of.eth_dst) == (svc.egress, be.mac)
            if cfg.has_eswitch:
                ef = fate.eswitch_fate(es_entries, pkt)
                row["eswitch"] = ef.where()
                ok = ok and ef.verdict == "output" and (ef.port, ef.eth_dst) == (svc.egress, be.mac)
            row["ok"] = ok
            buckets_out.append(row)

    routes_out = []
    for r in cfg.routes:
        # A probe address inside the route's prefix (any address for a default route).
        dst = r.dst.ip if r.dst.prefixlen >= 31 else netaddr.IPAddress(int(r.dst.network) | 1)
        if r.dst.prefixlen == 0:
            dst = netaddr.IPAddress("198.18.1.1")
        pkt = fate.Packet(in_port=r.src_port, ipv4_src="198.18.1.2", ipv4_dst=str(dst), l4_dst=9)
        of = fate.ovs_fate(ovs_flows, cfg.bridge_of, pkt)
        row = {"route": r.label, "expected": r.dst_port, "ovs": of.port or of.verdict}
        ok = of.verdict == "output" and of.port == r.dst_port
        if cfg.has_eswitch:
            ef = fate.eswitch_fate(es_entries, pkt)
            row["eswitch"] = ef.port or ef.verdict
            if cfg.eswitch.mirror_routes:
                ok = ok and ef.verdict == "output" and ef.port == r.dst_port
            else:
                row["note"] = "not mirrored: its traffic runs through OVS (fallback by design)"
        row["ok"] = ok
        routes_out.append(row)

    fallback = counters.get("fallback") if cfg.has_eswitch else None
    if drift:
        verdict = "drift"
    elif not all(r["ok"] for r in buckets_out + routes_out):
        verdict = "inconsistent"
    elif fallback:
        verdict = "fallback"
    else:
        verdict = "consistent"
    return {"verdict": verdict, "consistent": verdict == "consistent", "drift": drift,
            "buckets": buckets_out, "routes": routes_out,
            "fallback_packets": fallback, "miss_other_packets": counters.get("miss_other")}


def format_report(rep: Dict[str, Any]) -> str:
    lines = ["verdict: %s" % rep["verdict"]]
    for b in rep["buckets"]:
        lines.append("  bucket %s/%d -> %s: ovs %s%s  %s" % (
            b["service"], b["bucket"], b["backend"], b["ovs"],
            ", eswitch %s" % b["eswitch"] if "eswitch" in b else "", "ok" if b["ok"] else "MISMATCH"))
    for r in rep["routes"]:
        lines.append("  route %s: ovs %s%s  %s%s" % (
            r["route"], r["ovs"], ", eswitch %s" % r["eswitch"] if "eswitch" in r else "",
            "ok" if r["ok"] else "MISMATCH", " (%s)" % r["note"] if "note" in r else ""))
    for d in rep["drift"]:
        lines.append("  drift %s %s %s: expected %s, found %s" % (
            d["plane"], d["where"], d["what"], d["expected"], d["found"]))
    lines.append("  fallback packets: %s   miss_other packets: %s" % (
        "n/a (no eSwitch)" if rep["fallback_packets"] is None else rep["fallback_packets"],
        rep["miss_other_packets"]))
    return "\n".join(lines)

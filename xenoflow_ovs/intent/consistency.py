"""Is what is installed what the intent says, and do both planes agree?

Pure: takes the desired plan and what was read back from OVS (flows of our
cookie, as plan Flows) and from eswitchd (pipes and entries), and answers, bucket
by bucket and route by route, where each plane sends the class. Drift is listed
with what was found and what was expected. The report is JSON-ready and its
shape is stable (README, "xenoflow status --json").

The report stays small at 2^16 buckets per service: a per-service summary always,
and bucket rows for every bucket only while the plan has at most LIST_ALL of them
in all; above that, only the mismatched ones, at most LIST_ALL (`bucket_rows` says
which, `buckets_left_out` how many mismatched rows the cap dropped).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import netaddr

from . import fate
from .config import PROTOCOLS, Config, Service
from .plan import Entry, Flow, Listener, Meter, Pipe, Plan, int_to_ip, int_to_ip6
from .render import describe_entry, to_ofctl

OvsMeters = Dict[str, Dict[int, Tuple[int, int]]]     # bridge -> meter id -> (packets/s, burst)

LIST_ALL = 4096     # bucket rows: all of them up to this many in the plan; mismatched ones beyond
PAUSE_MASK = 2047   # pause() every 2048 buckets


def _drift_ovs(planned: Sequence[Flow], actual: Dict[str, Sequence[Flow]]) -> List[Dict[str, Any]]:
    wanted: Dict[str, Dict[Any, Flow]] = {}
    for f in planned:
        wanted.setdefault(f.bridge, {})[f.key] = f
    out = []
    for bridge in sorted(set(wanted) | set(actual)):
        want = wanted.get(bridge, {})
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


def _drift_eswitch(planned_pipes: Sequence[Pipe], planned: Sequence[Entry], pipes: Sequence[Pipe],
                   entries: Sequence[Entry]) -> List[Dict[str, Any]]:
    out = []
    want_p = {p.key: p for p in planned_pipes}
    have_p = {p.key: p for p in pipes}
    for k in want_p.keys() - have_p.keys():
        out.append({"plane": "eswitch", "where": k[0], "what": "missing", "expected": "pipe " + k[1],
                    "found": None})
    for k in have_p.keys() - want_p.keys():
        out.append({"plane": "eswitch", "where": k[0], "what": "unexpected", "expected": None,
                    "found": "pipe " + k[1]})
    want = {e.key: e for e in planned}
    have = {e.key: e for e in entries}
    for ek, e in want.items():
        if ek not in have:
            out.append({"plane": "eswitch", "where": e.port, "what": "missing",
                        "expected": describe_entry(e), "found": None})
        elif ((have[ek].fwd, have[ek].dst_mac, have[ek].priority, have[ek].meter, have[ek].shared_meter)
              != (e.fwd, e.dst_mac, e.priority, e.meter, e.shared_meter)):
            out.append({"plane": "eswitch", "where": e.port, "what": "changed",
                        "expected": describe_entry(e), "found": describe_entry(have[ek])})
    for ek, e in have.items():
        if ek not in want:
            out.append({"plane": "eswitch", "where": e.port, "what": "unexpected", "expected": None,
                        "found": describe_entry(e)})
    return out


def _drift_meters(plane: str, planned: Sequence[Meter], have: Dict[str, Dict[int, Tuple[int, int]]]
                  ) -> List[Dict[str, Any]]:
    """Meters of ours missing, at another rate, or left over (an OpenFlow meter or an
    eSwitch shared meter; per-bucket eSwitch meters are compared with their entries)."""
    def text(mid: int, rate: Tuple[int, int]) -> str:
        return "meter %d %d pps burst %d" % (mid, rate[0], rate[1])
    out = []
    want: Dict[str, Dict[int, Tuple[int, int]]] = {}
    for m in planned:
        want.setdefault(m.where, {})[m.meter_id] = (m.pps, m.burst)
    for where in sorted(set(want) | set(have)):
        w, h = want.get(where, {}), have.get(where, {})
        for mid in sorted(set(w) | set(h)):
            if mid not in h:
                out.append({"plane": plane, "where": where, "what": "missing", "expected": text(mid, w[mid]),
                            "found": None})
            elif mid not in w:
                out.append({"plane": plane, "where": where, "what": "unexpected", "expected": None,
                            "found": text(mid, h[mid])})
            elif tuple(h[mid]) != w[mid]:
                out.append({"plane": plane, "where": where, "what": "changed", "expected": text(mid, w[mid]),
                            "found": text(mid, h[mid])})
    return out


def expected_meters(svc: Service) -> Tuple[Tuple[int, int], ...]:
    """The limits a class of the service meets, in the order both planes apply them."""
    return tuple(r for r in (svc.limits.bucket, svc.limits.service) if r is not None)


def _probe_base(svc: Service, family: int) -> Tuple[int, int]:
    """Source address and port of bucket 0's probe: off the VIP's /16 (/112 for IPv6), a
    high port; the bucket's bits are or-ed in below (none of the base under the policy's mask)."""
    keep = ~((1 << svc.policy.bits) - 1)
    vip = int(svc.vip_of(family))
    net = vip & ~0xFFFF
    return (net | 0x8000) & keep, 0x8000 & keep


def _probes(svc: Service, listener: Listener) -> Callable[[int], fate.Packet]:
    """bucket -> the probe packet of that bucket on one listener (the service's constants
    read once)."""
    family, proto = listener
    src, sport = _probe_base(svc, family)
    common: Dict[str, Any] = dict(in_port=svc.ingress, eth_dst=svc.vip_mac, ip_proto=PROTOCOLS[proto],
                                  l4_dst=svc.port)
    if family == 6:
        common.update(eth_type=fate.ETH_IPV6, ipv4_src="", ipv4_dst="", ipv6_dst=str(svc.vip6))
        if svc.policy.kind == "src-port-bits":
            src_ip6 = int_to_ip6(src)
            return lambda b: fate.Packet(ipv6_src=src_ip6, l4_src=sport | b, **common)
        return lambda b: fate.Packet(ipv6_src=int_to_ip6(src | b), l4_src=sport, **common)
    common["ipv4_dst"] = str(svc.vip)
    if svc.policy.kind == "src-port-bits":
        src_ip = int_to_ip(src)
        return lambda b: fate.Packet(ipv4_src=src_ip, l4_src=sport | b, **common)
    return lambda b: fate.Packet(ipv4_src=int_to_ip(src | b), l4_src=sport, **common)


def listener_label(listener: Listener) -> str:
    return "ipv%d/%s" % listener


def _check_buckets(cfg: Config, tables: Sequence[Tuple[str, Sequence[str]]], ovs: fate.OvsIndex,
                   es: Optional[fate.EswitchIndex], pause: Optional[Callable[[], Any]] = None
                   ) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]], int]:
    """Every bucket's probe through both planes: (rows to list, per-service summary,
    mismatched rows left out by the cap)."""
    list_all = sum(len(tbl) for _, tbl in tables) <= LIST_ALL
    rows: List[Dict[str, Any]] = []
    summary = []
    left_out = 0
    for name, tbl in tables:
        svc = cfg.service(name)
        probes = [(lis, _probes(svc, lis)) for lis in svc.listeners]
        wants = {be.name: (svc.egress, be.mac) for be in svc.backends}
        limits = expected_meters(svc)
        mismatched = 0
        for b, backend in enumerate(tbl):
            if pause is not None and not b & PAUSE_MASK:
                pause()
            want = wants.get(backend) or (svc.egress, svc.backend(backend).mac)  # KeyError names it
            # every listener of the bucket must agree; the row shows the first that does not
            for lis, probe in probes:
                pkt = probe(b)
                of = ovs.fate(pkt)
                ok = of.verdict == "output" and (of.port, of.eth_dst) == want and of.meters == limits
                ef = None
                if es is not None:
                    ef = es.fate(pkt)
                    ok = (ok and ef.verdict == "output" and (ef.port, ef.eth_dst) == want
                          and ef.meters == limits)
                if not ok:
                    break
            if not ok:
                mismatched += 1
            if not (list_all or not ok and len(rows) < LIST_ALL):
                left_out += not ok
                continue
            row: Dict[str, Any] = {"service": name, "bucket": b, "backend": backend,
                                   "expected": "%s (dst %s)" % want, "ovs": of.where()}
            if len(probes) > 1:
                row["listener"] = listener_label(lis) if not ok else "all"
            if ef is not None:
                row["eswitch"] = ef.where()
            if limits or of.meters or (ef is not None and ef.meters):
                row["limits"] = _limits_text(limits)
                row["ovs_limits"] = _limits_text(of.meters)
                if ef is not None:
                    row["eswitch_limits"] = _limits_text(ef.meters)
            row["ok"] = ok
            rows.append(row)
        summary.append({"service": name, "buckets": len(tbl), "ok": len(tbl) - mismatched,
                        "mismatched": mismatched})
    return rows, summary, left_out


def _limits_text(rates: Sequence[Tuple[int, int]]) -> str:
    return ", ".join("%d pps burst %d" % r for r in rates) or "none"


def check(cfg: Config, desired: Plan, ovs_flows: Optional[Dict[str, Sequence[Flow]]],
          es_pipes: Sequence[Pipe] = (), es_entries: Sequence[Entry] = (),
          counters: Optional[Dict[str, Any]] = None, verdict_only: bool = False,
          pause: Optional[Callable[[], Any]] = None, ovs_meters: Optional[OvsMeters] = None,
          es_meters: Optional[Sequence[Meter]] = None) -> Dict[str, Any]:
    """`ovs_flows` None means OVS could not be read (a bridge not connected): that is drift.
    The plan's flows, entries and tables are built on each access: each is read once.
    verdict_only: with drift found, the buckets and routes are not judged (the verdict is
    drift whatever they say; at 2^16 buckets a service judging them takes seconds).
    pause: called every few thousand buckets (a cooperative framework's yield: a long
    check must not starve the switch connections)."""
    counters = counters or {}
    drift: List[Dict[str, Any]] = []
    # the rates flows and entries name: what was read back, else the plan's
    if ovs_meters is not None:
        ovs_rates = {(br, mid): tuple(r) for br, ms in ovs_meters.items() for mid, r in ms.items()}
    else:
        ovs_rates = {(m.where, m.meter_id): (m.pps, m.burst) for m in desired.meters()}
    es_read = es_meters if es_meters is not None else list(desired.es_meters())
    es_rates = {(m.where, m.meter_id): (m.pps, m.burst) for m in es_read}
    if ovs_meters is not None:
        drift += _drift_meters("ovs", list(desired.meters()), ovs_meters)
    if es_meters is not None and cfg.has_eswitch:
        have_es: Dict[str, Dict[int, Tuple[int, int]]] = {}
        for m in es_meters:
            have_es.setdefault(m.where, {})[m.meter_id] = (m.pps, m.burst)
        drift += _drift_meters("eswitch", list(desired.es_meters()), have_es)
    if ovs_flows is None:
        drift.append({"plane": "ovs", "where": "*", "what": "unreachable", "expected": "connected",
                      "found": None})
        ovs_flows = {}
    else:
        drift += _drift_ovs(desired.flows, ovs_flows)
    if cfg.has_eswitch:
        drift += _drift_eswitch(desired.pipes, desired.entries, es_pipes, es_entries)

    fallback = counters.get("fallback") if cfg.has_eswitch else None
    if drift and verdict_only:
        return {"verdict": "drift", "consistent": False, "drift": drift, "services": [],
                "buckets": [], "bucket_rows": "not judged", "buckets_left_out": 0, "routes": [],
                "fallback_packets": fallback, "miss_other_packets": counters.get("miss_other")}
    ovs = fate.OvsIndex(ovs_flows, cfg.bridge_of, ovs_rates,   # type: ignore[arg-type]
                        first_table=cfg.ovs_table)
    es = fate.EswitchIndex(es_entries, es_pipes, es_rates) if cfg.has_eswitch else None
    buckets_out, summary, left_out = _check_buckets(cfg, desired.tables, ovs, es, pause)

    routes_out = []
    for r in cfg.routes:
        for family in r.families:
            routes_out.append(_check_route(cfg, r, family, ovs, es))

    if drift:
        verdict = "drift"
    elif any(s["mismatched"] for s in summary) or not all(r["ok"] for r in routes_out):
        verdict = "inconsistent"
    elif fallback:
        verdict = "fallback"
    else:
        verdict = "consistent"
    return {"verdict": verdict, "consistent": verdict == "consistent", "drift": drift,
            "services": summary, "buckets": buckets_out,
            "bucket_rows": "all" if sum(s["buckets"] for s in summary) <= LIST_ALL else "mismatched",
            "buckets_left_out": left_out, "routes": routes_out,
            "fallback_packets": fallback, "miss_other_packets": counters.get("miss_other")}


def _route_probe(r: Any, family: int) -> fate.Packet:
    """A probe address inside the route's prefix (any address for a default route)."""
    if r.dst.version != family or r.dst.prefixlen == 0:
        dst = netaddr.IPAddress("198.18.1.1" if family == 4 else "2001:db8:1::1")
    elif r.dst.prefixlen >= (31 if family == 4 else 127):
        dst = r.dst.ip
    else:
        dst = netaddr.IPAddress(int(r.dst.network) | 1, family)
    if family == 6:
        return fate.ipv6_packet(r.src_port, "2001:db8:1::2", str(dst), l4_dst=9)
    return fate.Packet(in_port=r.src_port, ipv4_src="198.18.1.2", ipv4_dst=str(dst), l4_dst=9)


def _check_route(cfg: Config, r: Any, family: int, ovs: fate.OvsIndex,
                 es: Optional[fate.EswitchIndex]) -> Dict[str, Any]:
    pkt = _route_probe(r, family)
    of = ovs.fate(pkt)
    row: Dict[str, Any] = {"route": r.label, "expected": r.dst_port, "ovs": of.port or of.verdict}
    if len(r.families) > 1:
        row["family"] = "ipv%d" % family
    ok = of.verdict == "output" and of.port == r.dst_port
    if es is not None:
        ef = es.fate(pkt)
        row["eswitch"] = ef.port or ef.verdict
        if cfg.eswitch.mirror_routes:
            ok = ok and ef.verdict == "output" and ef.port == r.dst_port
        else:
            row["note"] = "not mirrored: its traffic runs through OVS (fallback by design)"
    row["ok"] = ok
    return row


def format_report(rep: Dict[str, Any]) -> str:
    """The report as text, the same rows as the JSON: every bucket of a small plan,
    only the mismatched ones of a large one (then a line says so)."""
    lines = ["verdict: %s" % rep["verdict"]]
    for s in rep.get("services", ()):
        lines.append("  service %s: %d buckets, %d ok, %d mismatched" % (
            s["service"], s["buckets"], s["ok"], s["mismatched"]))
    if rep.get("bucket_rows") == "mismatched":
        lines.append("  (over %d buckets in all: listing only the mismatched ones%s)" % (
            LIST_ALL, ", %d more not shown" % rep["buckets_left_out"]
            if rep.get("buckets_left_out") else ""))
    for b in rep["buckets"]:
        lines.append("  bucket %s/%d%s -> %s: ovs %s%s  %s" % (
            b["service"], b["bucket"], " " + b["listener"] if "listener" in b else "", b["backend"],
            b["ovs"],
            ", eswitch %s" % b["eswitch"] if "eswitch" in b else "", "ok" if b["ok"] else "MISMATCH"))
    for r in rep["routes"]:
        lines.append("  route %s%s: ovs %s%s  %s%s" % (
            r["route"], " " + r["family"] if "family" in r else "", r["ovs"],
            ", eswitch %s" % r["eswitch"] if "eswitch" in r else "",
            "ok" if r["ok"] else "MISMATCH", " (%s)" % r["note"] if "note" in r else ""))
    for d in rep["drift"]:
        lines.append("  drift %s %s %s: expected %s, found %s" % (
            d["plane"], d["where"], d["what"], d["expected"], d["found"]))
    lines.append("  fallback packets: %s   miss_other packets: %s" % (
        "n/a (no eSwitch)" if rep["fallback_packets"] is None else rep["fallback_packets"],
        rep["miss_other_packets"]))
    return "\n".join(lines)

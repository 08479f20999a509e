#!/usr/bin/env python3
"""softdoca's meters, the DoS guard in the eSwitch (root): how closely they hold a rate, and
what the meter chain costs the forwarder and a round trip, an A/A run beside each cost.

    client ns  g0 <-> dpu-p0 [eSwitch: root p0, UDP/53 to
                        VIP   -> "dns" (src bit, MAC) -> p1                             (plain)
                        VIP_M -> "svc" (shared meter) -> "drop1" (red: drop; else on)
                              -> "buckets" (src bit, MAC, a meter each)
                              -> "drop2" (red: drop; else on) -> p1                     (metered)]
                      dpu-p1 <-> s0  server ns (both VIPs on lo, UDP echo = DSR reply)
               replies: root p1, dst 198.18.0.10 -> p0
               g1 <-> s1 (a plain veth: the "direct" floor)

bench_ipv6.py's lab (bench_glue_forward.py's, plus the direct veth), its probe and its
paired figures; one eSwitch child holds both paths (the plain VIP's dispatch entry first, at one
priority), so the variants differ only in the chain their frames take.  "plain A" and "plain B"
are the same traffic measured as two variants: the A/A run.  The chain is the one the DoS guard
renders (DOCA's own pattern: a meter only colours a packet, a later pipe matching the colour
drops red).
1. Accuracy: a per-entry meter (one source, one bucket) and the shared one (two sources, both
   buckets) at each --rates, offered --over times the rate (tools/pacer.c, smooth) for
   --accuracy-seconds, the other meter left open; the forwarder's default back-off.  Delivered
   = frames the server's veth received (its rx counter) and = the frames the chain took minus
   the drop stages' red counters (what the product reads, as on DOCA); error against the
   configured rate.  The burst (cbs) is 20 ms of the rate: the forwarder may be descheduled for
   a few ms on the shared vCPUs, and a smaller bucket would throw those tokens away; it adds
   cbs / seconds to the delivered rate (0.7 % over 3 s).
2. Forwarding cost: the forwarder's own time per packet (busy_ns / pkts, busy-poll) at the same
   offered load, meters open (every packet green), in 0.5-s blocks in a random order each round;
   rate = 1 / time per packet.  The buckets point at a MAC nobody owns: the server drops at L2.
   The load (100 kpps) is one the sender reaches in every block even with the machine busy: the
   time per packet falls with the burst size, which the rate reached sets (at 150 kpps, with
   other work on the vCPUs, blocks reached 70-150 kpps and the A/A run drifted by 10 %).
3. Added latency: sequential DNS queries (tools/rtt_probe.py), the variants taking turns query
   by query in a random order; added = median RTT through the eSwitch - median RTT direct.
Goals: delivered within +-5 % of the rate; metered rate >= 0.9x plain A's; metered added latency
<= 1.1x plain A's (paired medians; "within noise" when the margin to the limit is smaller than
the A/A run's distance from 1).  Writes results/meters.csv, .json, .md (--quick: results/smoke/).
Namespaces (xmXXXX-g|d|s) are removed by exact name.

    sudo .venv/bin/python benchmarks/bench_meters.py             # ~1.5 min
    sudo .venv/bin/python benchmarks/bench_meters.py --quick     # ~30 s
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable, Dict, List, Tuple

# the lab's addresses, the child's plumbing (it imports pkgpath: where the package comes from)
import bench_glue_forward as bgf  # noqa: E402
import bench_ipv6 as b6  # noqa: E402  (its lab, child loop, session, probe and paired figures)

VIP, CLIENT, SERVER_MAC = bgf.VIP, bgf.CLIENT, bgf.SERVER_MAC
VIP_M = "198.18.0.54"          # the metered service
CLIENT2 = "198.18.0.11"        # a second source: the other bucket
NOBODY_MAC = b6.NOBODY_MAC
OPEN = (1000000000, 100000000)  # a meter no test reaches: every packet green
ENTRIES = ("plain0", "plain1", "svc", "drop1", "bucket0", "bucket1", "drop2", "root_plain", "root_metered")
# forwarding variants: name, VIP
FWD = (("plain A", VIP), ("metered", VIP_M), ("plain B", VIP))
# latency variants: name, server, source
LAT = (("plain A", VIP, CLIENT), ("metered", VIP_M, CLIENT), ("plain B", VIP, CLIENT),
       ("direct", b6.D_SERVER, b6.D_CLIENT))
ACC_GOAL, RATE_GOAL, LAT_GOAL = 5.0, 0.9, 1.1
PLAIN_A = b6.Base("plain A", "plain_a")   # what the other variants are set against


# --- the eSwitch process (--child) --------------------------------------------------------

def _chain(sw) -> Tuple[Dict, object]:
    """Both paths on p0 (module docstring); the entries by name and the shared meter."""
    from dpdk_glue import COLOR_RED, GlueMatch

    r0, r1 = sw.create_root_pipe("p0"), sw.create_root_pipe("p1")
    src = GlueMatch(ipv4_src=1)
    plain = sw.create_basic_pipe("p0", "dns", src, fwd_port="p1", nr_entries=2)
    red = GlueMatch(meter_color=1)      # a mask: match the colour
    drop2 = sw.create_basic_pipe("p0", "drop2", red, drop=True, miss_port="p1", nr_entries=1)
    buckets = sw.create_basic_pipe("p0", "buckets", src, fwd_pipe=drop2, meter="entry", nr_entries=2)
    drop1 = sw.create_basic_pipe("p0", "drop1", red, drop=True, miss_pipe=buckets, nr_entries=1)
    svc = sw.create_basic_pipe("p0", "svc", GlueMatch(), fwd_pipe=drop1, meter="shared", set_mac=False,
                               nr_entries=1)
    shared = sw.create_meter("p0", *OPEN)
    udp = dict(eth_type=0x0800, ip_proto=17, l4_dst=53)
    ents = sw.add_entries([
        plain.entry(GlueMatch(ipv4_src=0), SERVER_MAC), plain.entry(GlueMatch(ipv4_src=1), SERVER_MAC),
        svc.entry(GlueMatch(), shared_meter=shared),
        drop1.entry(GlueMatch(meter_color=COLOR_RED)),
        buckets.entry(GlueMatch(ipv4_src=0), SERVER_MAC, meter=OPEN),
        buckets.entry(GlueMatch(ipv4_src=1), SERVER_MAC, meter=OPEN),
        drop2.entry(GlueMatch(meter_color=COLOR_RED)),
        r0.entry(GlueMatch(ipv4_dst=VIP, **udp), priority=10, fwd_pipe=plain),
        r0.entry(GlueMatch(ipv4_dst=VIP_M, **udp), priority=10, fwd_pipe=svc),
        r1.entry(GlueMatch(eth_type=0x0800, ipv4_dst=CLIENT), priority=10, fwd_port="p0")])
    return dict(zip(ENTRIES, ents)), shared


def _setup(sw) -> Tuple[Dict[str, Callable], Callable[[], Dict]]:
    """The chain for bench_ipv6.serve; its own commands: mac MAC (every bucket), meters SHARED_CIR
    SHARED_CBS ENTRY_CIR ENTRY_CBS; its counters: every entry's packets by name."""
    e, shared = _chain(sw)

    def meters(words: List[str]) -> None:
        v = [int(x) for x in words[:4]]
        sw.modify_meter(shared, v[0], v[1])
        sw.update_entry_meters([(e["bucket0"], (v[2], v[3])), (e["bucket1"], (v[2], v[3]))])

    def counters() -> Dict:
        return {"pk": dict(zip(ENTRIES, [p for p, _ in sw.query_entries([e[k] for k in ENTRIES])]))}
    return {"mac": b6.retarget(sw, [e[k] for k in ("plain0", "plain1", "bucket0", "bucket1")]),
            "meters": meters}, counters


def child(prefix: str) -> int:
    """Commands on stdin (bench_ipv6.serve and _setup), one JSON line of counters back for each."""
    return b6.serve(prefix, _setup)


# --- figures (pure) ------------------------------------------------------------------------

COLUMNS = ("test", "variant", "rate_pps", "cbs", "offered_pps", "reached_pps", "over", "delivered_rx_pps",
           "delivered_stage_pps", "err_rx_pct", "err_stage_pct", "err_net_pct", "dropped", "ns_per_pkt",
           "rate_kpps", "forwarded_kpps", "median_us", "p99_us", "added_us", "vs_plain_a",
           "paired_vs_plain_a", "paired_min", "paired_max", "entry_hits", "sent", "misses", "lost", "n",
           "seconds")


def _row(test: str, variant: str, **kw) -> Dict:
    row = {k: "" for k in COLUMNS}
    row.update(test=test, variant=variant, **kw)
    return row


_r, _num, _c = b6._r, b6._num, b6._c


def meter_cbs(cir: int) -> int:
    """The burst the accuracy test gives a meter: 20 ms of its rate (module docstring)."""
    return max(8, cir // 50)


def delta(before: Dict, after: Dict, name: str) -> int:
    return after["pk"][name] - before["pk"][name]


def accuracy_row(kind: str, cir: int, sent: Dict, before: Dict, after: Dict, rx: int) -> Dict:
    """One meter at one rate: what was offered, what reached the chain, what the receiver and the
    drop stages say was delivered, each one's error against the configured rate (%); net: the
    drop stages' count against what srTCM allows (the full bucket, cbs, then the rate)."""
    el = sent["elapsed_s"]
    reached = delta(before, after, "svc")
    dropped = delta(before, after, "drop1") + delta(before, after, "drop2")
    staged = reached - dropped
    return _row("accuracy", kind, rate_pps=cir, cbs=meter_cbs(cir), offered_pps=_r(sent["achieved_pps"]),
                reached_pps=_r(reached / el), over=_r(reached / el / cir, 2), delivered_rx_pps=_r(rx / el),
                delivered_stage_pps=_r(staged / el), err_rx_pct=_r(100.0 * (rx / el - cir) / cir, 2),
                err_stage_pct=_r(100.0 * (staged / el - cir) / cir, 2),
                err_net_pct=_r(100.0 * (staged - meter_cbs(cir) - cir * el) / (cir * el), 2), dropped=dropped,
                entry_hits=reached, sent=sent["sent"], seconds=_r(el, 3),
                misses=after["p0"]["miss_pkts"] - before["p0"]["miss_pkts"])


def per_packet(before: Dict, after: Dict) -> float:
    """The forwarder's ns per packet between two counter snapshots."""
    pk = after["fwd"]["pkts"] - before["fwd"]["pkts"]
    return (after["fwd"]["busy_ns"] - before["fwd"]["busy_ns"]) / max(pk, 1)


def fwd_rows(res: Dict[str, List[Dict]]) -> List[Dict]:
    """Per variant: bench_ipv6.fwd_figures against plain A, with the offered load and the frames
    the drop stages took."""
    return [_row("forwarding", name, offered_pps=_r(statistics.median(r["offered"] for r in res[name])),
                 dropped=sum(r["dropped"] for r in res[name]), **cols)
            for name, cols in b6.fwd_figures(res, [v[0] for v in FWD], PLAIN_A)]


def lat_rows(pooled: Dict[str, Dict]) -> List[Dict]:
    """Per variant: bench_ipv6.lat_figures against plain A, every eSwitch variant over direct."""
    return [_row("latency", name, **cols) for name, cols in b6.lat_figures(
        pooled, [v[0] for v in LAT], lambda k: None if k == "direct" else "direct", PLAIN_A)]


def verdicts(rows: List[Dict]) -> Dict[str, Dict]:
    """The three goals from the rows (as written or read back from the CSV): accuracy, the
    worst error of either count over every meter and rate whose meter was over its rate; rate
    and latency, the metered variant's paired figure with the A/A run's beside it."""
    acc = [r for r in rows if r["test"] == "accuracy"]
    errs = [abs(_num(r[k]) or 0.0) for r in acc if (_num(r["over"]) or 0) > 1 for k in ("err_rx_pct",
                                                                                          "err_stage_pct")]
    worst = max(errs) if errs else None
    out = {"accuracy": {"value": worst, "aa": None, "limit": ACC_GOAL, "under": [r for r in acc if
                                                                                 (_num(r["over"]) or 0) <= 1],
                        "verdict": b6.verdict(worst, lambda v: v <= ACC_GOAL)}}
    out.update(b6.paired_goals(rows, "metered", "plain B", PLAIN_A, RATE_GOAL, LAT_GOAL))
    return out


# --- measurements --------------------------------------------------------------------------

def _rx(nl, s: str) -> int:
    """Frames the server's veth received (the receiver's count: counted before the kernel
    drops frames to a MAC nobody owns)."""
    return int(nl.run_in_ns(s, ["cat", "/sys/class/net/s0/statistics/rx_packets"]).stdout)


def accuracy(cmd: bgf.Cmd, nl, g: str, s: str, pacer: str, args) -> List[Dict]:
    """1. each meter at each rate, offered --over times the rate; the other meter open."""
    cmd("poll 0 50 20")
    cmd("mac " + NOBODY_MAC)
    rows = []
    for kind, srcs in (("per-entry", CLIENT), ("shared", CLIENT + "," + CLIENT2)):
        for cir in args.rates:
            mine = (cir, meter_cbs(cir))
            cmd("meters %d %d %d %d" % ((mine + OPEN) if kind == "shared" else (OPEN + mine)))
            time.sleep(0.1)                  # the bucket fills up to its cbs
            before, rx0 = cmd("stats"), _rx(nl, s)
            sent = b6.pace(nl, g, pacer, VIP_M, args.over * cir, args.accuracy_seconds, srcs)
            time.sleep(0.3)                  # the last frames through the forwarder
            after, rx1 = cmd("stats"), _rx(nl, s)
            rows.append(accuracy_row(kind, cir, sent, before, after, rx1 - rx0))
            r = rows[-1]
            print("%-9s %6d pps: offered %s, reached %s (%sx), delivered %s at the receiver (%+.2f %%), "
                  "%s by the drop stages (%+.2f %%)" % (
                      kind, cir, r["offered_pps"], r["reached_pps"], r["over"], r["delivered_rx_pps"],
                      r["err_rx_pct"], r["delivered_stage_pps"], r["err_stage_pct"]), flush=True)
    cmd("meters %d %d %d %d" % (OPEN + OPEN))
    return rows


def forwarding(cmd: bgf.Cmd, nl, g: str, pacer: str, args) -> Dict[str, List[Dict]]:
    """2. per variant and block: the sender's figures and the forwarder's cost, meters open."""
    cmd("poll 1 50 20")
    cmd("mac " + NOBODY_MAC)
    out: Dict[str, List[Dict]] = {v[0]: [] for v in FWD}
    for b, (name, dst), sent, before, after in b6.paced_blocks(
            cmd, args, FWD, lambda v: b6.pace(nl, g, pacer, v[1], args.rate, args.seconds, CLIENT)):
        root = "root_metered" if dst == VIP_M else "root_plain"
        r = {"ns_per_pkt": per_packet(before, after), "sent": sent["sent"],
             "offered": sent["achieved_pps"], "hits": delta(before, after, root),
             "dropped": delta(before, after, "drop1") + delta(before, after, "drop2"),
             "misses": after["p0"]["miss_pkts"] - before["p0"]["miss_pkts"],
             "kpps": (after["p1"]["tx_pkts"] - before["p1"]["tx_pkts"]) / sent["elapsed_s"] / 1e3}
        out[name].append(r)
        print("rep %d %-8s offered %.0f kpps, forwarded %.0f kpps, forwarder %.0f ns/packet, "
              "dropped %d" % (b, name, r["offered"] / 1e3, r["kpps"], r["ns_per_pkt"], r["dropped"]),
              flush=True)
    cmd("poll 0 50 20")
    return out


def latency(cmd: bgf.Cmd, nl, g: str, probe: str, args) -> Dict[str, Dict]:
    """3. RTTs pooled per variant (default back-off), the variants taking turns query by query."""
    cmd("poll 0 50 20")
    cmd("mac " + SERVER_MAC)
    return b6.pooled_rtts(cmd, nl, g, probe, args, LAT, 8)


# --- the section ---------------------------------------------------------------------------

def goal_table(rows: List[Dict]) -> List[str]:
    v = verdicts(rows)
    a = v["accuracy"]
    return ["| goal | measured | A/A: plain B / plain A | verdict |", "|---|---:|---:|---|",
            "| meter delivers its rate ±%.0f %% (worst of every meter, rate and count) | %s | – | %s |" % (
                ACC_GOAL, "" if a["value"] is None else "%.2f %%" % a["value"], a["verdict"]),
            "| metered forwarding rate ≥ %.1f× plain's (paired) | %s× | %s× | %s |" % (
                RATE_GOAL, _c(v["rate"]["value"]), _c(v["rate"]["aa"]), v["rate"]["verdict"]),
            "| metered added latency ≤ %.1f× plain's (paired) | %s× | %s× | %s |" % (
                LAT_GOAL, _c(v["latency"]["value"]), _c(v["latency"]["aa"]), v["latency"]["verdict"])]


def _pct(x) -> str:
    v = _num(x)
    return "" if v is None else "%+.2f %%" % v


def acc_table(rows: List[Dict]) -> List[str]:
    out = ["| meter | rate pps | cbs | offered pps | reached pps (× rate) | delivered pps, receiver | error "
           "| delivered pps, drop stages | error | net of cbs | dropped red | misses |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["test"] != "accuracy":
            continue
        errs = tuple(_pct(r.get(k)) for k in ("err_rx_pct", "err_stage_pct", "err_net_pct"))
        out.append("| %s | %s | %s | %s | %s (%s×) | %s | %s | %s | %s | %s | %s | %s |" % (
            r["variant"], r["rate_pps"], r["cbs"], r["offered_pps"], r["reached_pps"], r["over"],
            r["delivered_rx_pps"], errs[0], r["delivered_stage_pps"], errs[1], errs[2], r["dropped"],
            r["misses"]))
    return out


def fwd_table(rows: List[Dict]) -> List[str]:
    out = ["| variant | forwarder ns/pkt | rate kpps | forwarded kpps | × plain A "
           "| paired × plain A (min–max) | entry hits / sent | dropped | misses |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["test"] == "forwarding":
            cells = tuple(_c(r[k]) for k in (
                "variant", "ns_per_pkt", "rate_kpps", "forwarded_kpps", "vs_plain_a", "paired_vs_plain_a",
                "paired_min", "paired_max", "entry_hits", "sent", "dropped", "misses"))
            out.append("| %s | %s | %s | %s | %s | %s (%s–%s) | %s / %s | %s | %s |" % cells)
    return out


def _named(rows: List[Dict]) -> str:
    return ", ".join("%s at %s pps (%s×)" % (r["variant"], r["rate_pps"], r["over"]) for r in rows)


def _under_note(v: Dict[str, Dict], rows: List[Dict], over: float) -> List[str]:
    """Rows whose sender fell short of the load asked: below 2x the rate said so; at or below the
    rate (the meter had nothing to drop) left out of the accuracy goal."""
    out = []
    short = [r for r in rows if r["test"] == "accuracy" and 1 < (_num(r["over"]) or 0) < 2]
    if short:
        out.append("The sender reached less than 2× the rate for %s (asked %.1f×; the forwarder or the "
                   "sender's share of the vCPUs capped it): the meter was still over its rate." % (
                       _named(short), over))
    under = v["accuracy"]["under"]
    if under:
        out.append("The sender could not put %s over its meter's rate here (asked %.1f×): those rows do not "
                   "count toward the accuracy goal." % (_named(under), over))
    return out


def markdown(rows: List[Dict], meta: Dict) -> str:
    """The section: the goals, then each test's table and what its figures are; report.py builds
    REPORT.md's "DoS guard: meters" section with it from meters.csv and meters.json."""
    p = meta.get("params", {})
    v = verdicts(rows)
    md = b6.section_head("meters", "DoS guard: meters", "--quick", meta, (
        "softdoca on bench_ipv6.py's lab; one eSwitch child holds a plain path (VIP: root -> bucket pipe -> "
        "p1) and the DoS guard's metered chain (VIP_M: root -> shared meter -> drop stage -> bucket pipe, a "
        "meter per entry -> drop stage -> p1; a drop stage matches the meter colour and drops red, as DOCA's "
        "samples do). \"plain A\" and \"plain B\" are the same traffic measured as two variants: the A/A "
        "run, what the machine's noise alone does to a ratio (the vCPUs are shared)."), goal_table(rows),
        b6.noise_notes(v) + _under_note(v, rows, p.get("over", 0)))
    md += ["", "### Accuracy (offered %s× the rate for %s s, the forwarder's default back-off)" % (
        p.get("over", "?"), p.get("accuracy_seconds", "?")), ""]
    md += acc_table(rows)
    md += ["", "Per-entry: one source, so one bucket's own meter (the shared one open); shared: two sources, "
           "both buckets under the service-wide meter (the buckets' open). Reached: frames the chain's "
           "first entry took per second (what the meter saw; the rest of what was offered never reached "
           "the forwarder). Delivered at the receiver: the server's veth rx counter; by the drop stages: "
           "the frames the chain took minus its drop entries' counters (how the product counts drops, as "
           "on DOCA). Error against the configured rate; the burst (cbs, 20 ms of the rate) adds cbs / %s s "
           "to it, about +%.1f %%; net of cbs: the drop stages' count against what srTCM lets through "
           "(cbs, then the rate over the sender's span)." % (p.get("accuracy_seconds", "?"),
                                         2.0 / max(float(p.get("accuracy_seconds") or 1), 0.01)),
           "", "### Forwarding cost (busy-poll, %s pps offered, meters open: every packet green, %s-s "
           "blocks, %s per variant, a random order each round)" % (p.get("rate", "?"), p.get("seconds", "?"),
                                                                   p.get("reps", "?")), ""]
    md += fwd_table(rows)
    md += ["", "Rate = 1 / the forwarder's own time per packet (rx burst, parse, lookups, for the metered "
           "path two meters — a clock read and a token-bucket update each — and two colour matches, MAC "
           "rewrite, counters, tx burst: its busy-iteration clock), the median over blocks. × plain A: the "
           "ratio of the medians; paired: the median (and range) of each block's own ratio (the goal's "
           "figure). Dropped: red frames at either drop stage (none: the traffic is under the limit).",
           "", "### Added latency (the forwarder's default back-off, %s queries per variant in %s blocks)" % (
               p.get("rtt", "?"), p.get("blocks", "?")), ""]
    md += b6.lat_table(rows, PLAIN_A)
    md += ["", "One DNS query at a time (tools/rtt_probe.py), the variants taking turns query by query in a "
           "random order each round; RTTs pooled per variant. Added = the median RTT through the eSwitch "
           "(two traversals: the query through the chain, the DSR reply through p1's root) minus the median "
           "RTT over a plain veth (direct). × plain A: the ratio of those; paired: the median (and range) "
           "of each block's own ratio (the goal's figure).", ""]
    return "\n".join(md)


# --- orchestration -------------------------------------------------------------------------

def lab(nl, g: str, d: str, s: str) -> None:
    """bench_ipv6's lab, plus the metered VIP on the server and a second client source."""
    b6.lab(nl, g, d, s)
    nl.add_lo_address(s, VIP_M + "/32")
    nl.add_address("g0", CLIENT2 + "/24", ns=g)
    b6._neigh(nl, g, "g0", [(VIP_M, bgf.VIP_MAC)])


def run(args) -> List[Dict]:
    with b6.session("meters", "xm", lab, (VIP, VIP_M, b6.D_SERVER), __file__) as x:
        pooled = latency(x.cmd, x.nl, x.g, x.probe, args)
        res = forwarding(x.cmd, x.nl, x.g, x.pacer, args)
        acc = accuracy(x.cmd, x.nl, x.g, x.s, x.pacer, args)
    return acc + fwd_rows(res) + lat_rows(pooled)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", metavar="PREFIX", help=argparse.SUPPRESS)
    ap.add_argument("--rates", default="1000,10000,50000", help="meter rates (pps) of the accuracy test")
    ap.add_argument("--over", type=float, default=2.5, help="offered load in the accuracy test, × the rate")
    ap.add_argument("--accuracy-seconds", type=float, default=3.0, help="s per meter and rate")
    b6.add_common_args(ap, 0.5, 30, 100000, "--quick", 30)
    args = ap.parse_args()
    if args.child:
        return child(args.child)
    if args.smoke:
        args.accuracy_seconds, args.reps, args.rtt, args.blocks = 1.5, 4, 400, 2
    args.rates = [int(x) for x in str(args.rates).split(",")]
    return b6.measure("meters", args, ("rates", "over", "accuracy_seconds", "rate", "seconds", "reps", "rtt",
                                       "blocks", "seed"), run, COLUMNS, markdown)


if __name__ == "__main__":
    sys.exit(main())

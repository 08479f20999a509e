#!/usr/bin/env python3
"""softdoca's IPv6 figures (root): forwarding rate and added latency, IPv6 against IPv4, with an
A/A run (IPv4 against IPv4) beside each to show the machine's noise.

    client ns  g0 <-> dpu-p0 [eSwitch: root p0 -> dns4 / dns6 basic pipe (src bit) -> MAC -> p1]
                      dpu-p1 <-> s0  server ns (VIP and VIP6 on lo, UDP echo = DSR reply)
               replies: root p1, dst 198.18.0.10 / 2001:db8::10 -> p0
               g1 <-> s1 (a plain veth: the "direct" floor of each family)

bench_glue_forward.py's lab and methods, dual stack: one eSwitch child holds both families'
dispatch (UDP/53 to the VIP, UDP/53 to the VIP6, in that order at one priority) and buckets, so
the variants differ only in the frames.  The A/A pair is two separate IPv4 variants, "IPv4 A"
and "IPv4 B", measured like the others.
1. Forwarding: the forwarder's own time per packet (busy_ns / pkts, busy-poll) at the same
   offered load (smooth, tools/pacer.c: one sender binary for both families, 18-B UDP
   payload: 60-B IPv4 and 80-B IPv6 frames), in short blocks that alternate, in a random
   order each round; rate = 1 / time per packet.  A fourth variant,
   IPv4 with IPv6's frame size (38-B payload), separates the 20 header bytes from the IPv6
   parse and lookup.  The buckets point at a MAC nobody owns: the server drops at L2.
2. Added latency: sequential DNS queries (tools/rtt_probe.py, one code path for both
   families) through the eSwitch (the forwarder's default back-off) and over the plain veth,
   the variants taking turns query by query (a random order each round); added = median RTT
   through the eSwitch - median RTT direct, of the same family.
3. Where added latency goes: the forwarder's own time per traversal (busy_ns / pkts) while
   one family's queries pass alone, one in flight, the families alternating in blocks.
Goals: IPv6 rate >= 0.95x IPv4 A's; IPv6 added latency <= 1.1x IPv4 A's.  Writes
results/ipv6.csv and ipv6.md (--smoke: results/smoke/).  Namespaces are removed by exact name.

    sudo .venv/bin/python benchmarks/bench_ipv6.py [--seconds 1] [--reps 20] [--rtt 4000]   # ~2 min
    sudo .venv/bin/python benchmarks/bench_ipv6.py --smoke      # ~20 s
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
# the lab's addresses, the child's plumbing; it imports pkgpath (where the package comes from)
import bench_glue_forward as bgf  # noqa: E402

VIP, CLIENT, SERVER = bgf.VIP, bgf.CLIENT, bgf.SERVER
VIP6, CLIENT6, SERVER6 = "2001:db8::53", "2001:db8::10", "2001:db8::2"
# the direct path (g1 <-> s1): its own subnets
D_CLIENT, D_SERVER, D_CLIENT6, D_SERVER6 = "198.18.1.10", "198.18.1.2", "2001:db8:1::10", "2001:db8:1::2"
D_CLIENT_MAC, D_SERVER_MAC = "02:00:c6:12:01:10", "02:00:c6:12:01:02"
NOBODY_MAC = "02:00:c6:12:00:99"

# forwarding variants: name, destination, source, UDP payload (B)
FWD = (("IPv4 A", VIP, CLIENT, 18), ("IPv6", VIP6, CLIENT6, 18), ("IPv4 B", VIP, CLIENT, 18),
       ("IPv4, IPv6's frame size", VIP, CLIENT, 38))
# latency variants: name, server, source
LAT = (("IPv4 A", VIP, CLIENT), ("IPv6", VIP6, CLIENT6), ("IPv4 B", VIP, CLIENT),
       ("direct IPv4", D_SERVER, D_CLIENT), ("direct IPv6", D_SERVER6, D_CLIENT6))
RATE_GOAL, LAT_GOAL = 0.95, 1.1


# --- the eSwitch process (--child) --------------------------------------------------------

def serve(prefix: str, setup: Callable) -> int:
    """The eSwitch child of this benchmark and bench_meters.py: setup(sw) builds the script's pipes
    and returns its own commands ({name: fn(words)}) and its extra counters (fn() -> dict).  Then
    commands on stdin (poll BUSY SPIN_US SLEEP_US, the script's own, quit), one JSON line back for
    each other line: the ports' and the forwarder's counters and the script's."""
    from dpdk_glue import ESwitch, PortSpec, default_eal_args, softdoca_ctl

    ports = [PortSpec("p0", 0, iface="dpu-p0", rep_iface="rep-p0", pair="p1"),
             PortSpec("p1", 1, iface="dpu-p1", rep_iface="rep-p1", pair="p0")]
    with ESwitch(default_eal_args(prefix), ports) as sw:
        own, counters = setup(sw)
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            cmd = line.split()
            if not cmd:
                continue
            if cmd[0] == "quit":
                break
            if cmd[0] == "poll":
                softdoca_ctl.set_busy_poll(sw, cmd[1] == "1", int(cmd[2]), int(cmd[3]))
            elif cmd[0] in own:
                own[cmd[0]](cmd[1:])
            extra = counters()              # the entries' counters first, then the ports' and the forwarder's
            stats = {"p0": sw.port_stats("p0"), "p1": sw.port_stats("p1"),
                     "fwd": softdoca_ctl.forwarder_stats(sw)}
            stats.update(extra)
            print(json.dumps(stats), flush=True)
    return 0


def retarget(sw, entries: Sequence) -> Callable[[List[str]], None]:
    """The "mac MAC" command: every one of entries forwards to MAC (updated in place)."""
    return lambda words: sw.update_entries([(e, words[0]) for e in entries])


def _dual_stack(sw) -> Tuple[Dict[str, Callable], Callable[[], Dict]]:
    """Both families' dispatch and buckets (module docstring); "mac" retargets every bucket of
    both families, the counters add each family's dispatch hits."""
    from dpdk_glue import GlueMatch

    r0, r1 = sw.create_root_pipe("p0"), sw.create_root_pipe("p1")
    svc4 = sw.create_basic_pipe("p0", name="dns4", mask=GlueMatch(ipv4_src=1), fwd_port="p1", nr_entries=2)
    svc6 = sw.create_basic_pipe("p0", name="dns6", mask=GlueMatch(ipv6_src=1), fwd_port="p1", nr_entries=2)
    udp4 = GlueMatch(eth_type=0x0800, ipv4_dst=VIP, ip_proto=17, l4_dst=53)
    udp6 = GlueMatch(eth_type=0x86DD, ipv6_dst=VIP6, ip_proto=17, l4_dst=53)
    roots = sw.add_entries([
        r0.entry(udp4, priority=10, fwd_pipe=svc4),
        r0.entry(udp6, priority=10, fwd_pipe=svc6),
        r1.entry(GlueMatch(eth_type=0x0800, ipv4_dst=CLIENT), priority=10, fwd_port="p0"),
        r1.entry(GlueMatch(eth_type=0x86DD, ipv6_dst=CLIENT6), priority=10, fwd_port="p0")])
    buckets = sw.add_entries([svc4.entry(GlueMatch(ipv4_src=i), bgf.SERVER_MAC) for i in (0, 1)]
                             + [svc6.entry(GlueMatch(ipv6_src=i), bgf.SERVER_MAC) for i in (0, 1)])

    def hits() -> Dict:
        pk = [p for p, _ in sw.query_entries(roots[:2])]
        return {"hits4": pk[0], "hits6": pk[1]}
    return {"mac": retarget(sw, buckets)}, hits


def child(prefix: str) -> int:
    return serve(prefix, _dual_stack)


def echo(addrs: Sequence[str], port: int) -> int:
    """UDP echo on each address (replies leave from the address asked: DSR from the VIPs).
    Exits when stdin closes."""
    import select
    import socket

    socks = []
    for a in addrs:
        s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((a, port))
        socks.append(s)
    print("READY", flush=True)
    while True:
        r, _, _ = select.select(socks + [sys.stdin], [], [], 1.0)
        if sys.stdin in r and not sys.stdin.readline():
            return 0
        for s in r:
            if s is not sys.stdin:
                data, addr = s.recvfrom(2048)
                s.sendto(data, addr)


# --- the lab -------------------------------------------------------------------------------

V6_QUIET = (("ipv6.addr_gen_mode", "1"), ("ipv6.accept_ra", "0"), ("ipv6.accept_dad", "0"),
            ("ipv6.router_solicitations", "0"))   # static IPv6 only: no link-local, RS or DAD


def _dual_link(nl, ns: str, ifn: str, mac: str, cidr4: str, cidr6: str) -> None:
    nl.set_if_sysctls(ns, ifn, V6_QUIET)
    nl.prepare_link(ifn, ns=ns, mac=mac, cidr=cidr4, ipv6_off=False)
    nl.add_address(ifn, cidr6, ns=ns)


def _neigh(nl, ns: str, ifn: str, pairs: Sequence[Tuple[str, str]]) -> None:
    for ip, mac in pairs:
        nl.run_in_ns(ns, ["ip", "neigh", "replace", ip, "lladdr", mac, "dev", ifn, "nud", "permanent"])


def lab(nl, g: str, d: str, s: str) -> None:
    """bench_glue_forward's lab, dual stack on the client's and server's links, plus g1 <-> s1."""
    for ns in (g, d, s):
        nl.create_ns(ns)
    nl.add_veth("dpu-p0", "g0", ns=d, peer_ns=g)
    nl.add_veth("dpu-p1", "s0", ns=d, peer_ns=s)
    nl.add_veth("rep-p0", "p0", ns=d, peer_ns=d)
    nl.add_veth("rep-p1", "p1", ns=d, peer_ns=d)
    nl.add_veth("g1", "s1", ns=g, peer_ns=s)
    for ifn in ("dpu-p0", "dpu-p1", "rep-p0", "rep-p1", "p0", "p1"):
        nl.prepare_link(ifn, ns=d)
    _dual_link(nl, g, "g0", bgf.CLIENT_MAC, CLIENT + "/24", CLIENT6 + "/64")
    _dual_link(nl, s, "s0", bgf.SERVER_MAC, SERVER + "/24", SERVER6 + "/64")
    _dual_link(nl, g, "g1", D_CLIENT_MAC, D_CLIENT + "/24", D_CLIENT6 + "/64")
    _dual_link(nl, s, "s1", D_SERVER_MAC, D_SERVER + "/24", D_SERVER6 + "/64")
    nl.add_lo_address(s, VIP + "/32")
    nl.add_lo_address(s, VIP6 + "/128")
    nl.set_arp_dsr(s)
    _neigh(nl, g, "g0", [(VIP, bgf.VIP_MAC), (VIP6, bgf.VIP_MAC)])
    _neigh(nl, s, "s0", [(CLIENT, bgf.CLIENT_MAC), (CLIENT6, bgf.CLIENT_MAC)])
    _neigh(nl, g, "g1", [(D_SERVER, D_SERVER_MAC), (D_SERVER6, D_SERVER_MAC)])
    _neigh(nl, s, "s1", [(D_CLIENT, D_CLIENT_MAC), (D_CLIENT6, D_CLIENT_MAC)])


# --- measurements --------------------------------------------------------------------------

def shuffled(seq: Sequence, rng: random.Random) -> List:
    """seq in a random order: no variant always follows the same one (a forwarder left spinning
    or asleep, a cache warmed by the variant before, fall on all alike)."""
    out = list(seq)
    rng.shuffle(out)
    return out


def per_packet(before: Dict, after: Dict) -> Tuple[float, int, int]:
    """The forwarder's ns per packet between two stats, packets moved, packets to p1."""
    pk = after["fwd"]["pkts"] - before["fwd"]["pkts"]
    ns = after["fwd"]["busy_ns"] - before["fwd"]["busy_ns"]
    return ns / max(pk, 1), pk, after["p1"]["tx_pkts"] - before["p1"]["tx_pkts"]


def pace(nl, g: str, pacer: str, dst: str, rate: float, seconds: float, src: str, size: int = 18) -> Dict:
    """One smooth pacer run from the client to dst:53 (src: one source or several, comma-separated);
    the sender's own figures."""
    p = nl.run_in_ns(g, [pacer, "--dst", dst, "--port", "53", "--rate", str(int(rate)), "--duration",
                         str(seconds), "--size", str(size), "--src", src], timeout=seconds + 60)
    return json.loads(p.stdout)


def paced_blocks(cmd: bgf.Cmd, args, variants: Sequence, send: Callable) -> Iterator[Tuple]:
    """The forwarding test's blocks: --reps rounds, each variant once a round in a random order
    (--seed); yields (round, variant, send(variant), counters before, counters after)."""
    rng = random.Random(args.seed)
    for b in range(args.reps):
        for v in shuffled(variants, rng):
            before = cmd("stats")
            sent = send(v)
            time.sleep(0.2)                 # the last frames reach the forwarder's counters
            yield b, v, sent, before, cmd("stats")


def forwarding(cmd: bgf.Cmd, nl, g: str, pacer: str, args) -> Dict[str, List[Dict]]:
    """1. per variant and block: the sender's figures and the forwarder's cost."""
    cmd("poll 1 50 20")
    cmd("mac " + NOBODY_MAC)
    out: Dict[str, List[Dict]] = {v[0]: [] for v in FWD}
    for b, (name, dst, src, size), sent, before, after in paced_blocks(
            cmd, args, FWD, lambda v: pace(nl, g, pacer, v[1], args.rate, args.seconds, v[2], v[3])):
        ns_pp, pk, tx = per_packet(before, after)
        six = ":" in dst
        fam = "hits6" if six else "hits4"
        r = {"ns_per_pkt": ns_pp, "pkts": pk, "tx": tx, "sent": sent["sent"],
             "misses": after["p0"]["miss_pkts"] - before["p0"]["miss_pkts"],
             "hits": after[fam] - before[fam], "offered": sent["achieved_pps"],
             "kpps": tx / sent["elapsed_s"] / 1e3, "frame": 14 + (40 if six else 20) + 8 + size}
        out[name].append(r)
        print("rep %d %-24s offered %.0f kpps, forwarded %.0f kpps, forwarder %.0f ns/packet, "
              "entry hits %d of %d sent" % (b, name, r["offered"] / 1e3, r["kpps"], ns_pp, r["hits"],
                                             r["sent"]), flush=True)
    cmd("mac " + bgf.SERVER_MAC)
    return out


def _probe(nl, g: str, probe: str, targets: Sequence[Tuple[str, str]], count: int, seed: int) -> List[Dict]:
    """One rtt_probe run, the targets taking turns query by query in a random order per round:
    per target its summary plus every RTT (us) in "samples"."""
    with tempfile.NamedTemporaryFile(prefix="xf-ipv6-rtt-", suffix=".txt") as fh:
        argv = [sys.executable, probe, "--port", "53", "--count", str(count), "--warmup", "20",
                "--shuffle", str(seed), "--samples", fh.name]
        for server, src in targets:
            argv += ["--target", "%s,%s" % (server, src)]
        p = nl.run_in_ns(g, argv, timeout=120 + count * len(targets))
        out = json.loads(p.stdout)["targets"]
        for r in out:
            r["samples"] = []
        for line in open(fh.name):
            k, rtt = line.split()
            out[int(k)]["samples"].append(float(rtt))
    return out


def pooled_rtts(cmd: bgf.Cmd, nl, g: str, probe: str, args, variants: Sequence[Tuple[str, str, str]],
                width: int) -> Dict[str, Dict]:
    """RTTs pooled per variant (name, server, source) over --blocks probe runs, the variants
    taking turns query by query in a random order each round; each block's medians kept apart
    for the paired figures.  width: of the names in the progress lines."""
    pooled: Dict[str, Dict] = {v[0]: {"samples": [], "lost": 0, "blocks": []} for v in variants}
    per_block = max(50, args.rtt // args.blocks)
    for b in range(args.blocks):
        res = _probe(nl, g, probe, [(server, src) for _, server, src in variants], per_block, args.seed + b)
        for (name, _, _), r in zip(variants, res):
            pooled[name]["samples"] += r["samples"]
            pooled[name]["lost"] += r["lost"]
            pooled[name]["blocks"].append(r.get("median_us"))
            print("block %d %-*s median %s us, p99 %s us, lost %d" % (
                b, width, name, r.get("median_us"), r.get("p99_us"), r["lost"]), flush=True)
    return pooled


def latency(cmd: bgf.Cmd, nl, g: str, probe: str, args) -> Dict[str, Dict]:
    """2. RTTs pooled per variant (the forwarder's default back-off): the variants take turns
    query by query, in a random order each round."""
    cmd("poll 0 50 20")
    return pooled_rtts(cmd, nl, g, probe, args, LAT, 12)


def own_time(cmd: bgf.Cmd, nl, g: str, probe: str, args) -> Dict[str, List[float]]:
    """3. Where added latency goes: the forwarder's own time per traversal (busy_ns / pkts, the
    default back-off) while one family's queries pass alone, one in flight; the families
    alternate in blocks, in a random order each round."""
    cmd("poll 0 50 20")
    rng = random.Random(args.seed)
    fams = (("IPv4", VIP, CLIENT), ("IPv6", VIP6, CLIENT6))
    out: Dict[str, List[float]] = {f[0]: [] for f in fams}
    count = max(50, args.rtt // args.blocks // 4)
    for b in range(2 * args.blocks):   # short blocks, many: the machine's load drifts
        for name, server, src in shuffled(fams, rng):
            before = cmd("stats")
            _probe(nl, g, probe, [(server, src)], count, args.seed + b)
            ns_pp, _, _ = per_packet(before, cmd("stats"))
            out[name].append(ns_pp)
            print("block %d %s alone: forwarder %.0f ns per traversal" % (b, name, ns_pp), flush=True)
    return out


# --- figures (pure; the paired method bench_meters.py shares) ------------------------------

class Base(NamedTuple):
    """The variant the others are set against, and its columns' suffix (vs_<col>, paired_vs_<col>)."""
    name: str
    col: str


IPV4_A = Base("IPv4 A", "ipv4_a")


def pct(vals: Sequence[float], p: float) -> Optional[float]:
    """Nearest-rank percentile, as tools/rtt_probe.py computes it."""
    if not vals:
        return None
    import math
    v = sorted(vals)
    return v[max(1, math.ceil(p / 100.0 * len(v))) - 1]


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None or b == 0 else a / b


def _r(x: Optional[float], nd: int = 1):
    return "" if x is None else round(x, nd)


def _spread(paired: Sequence[float], base: Base) -> Dict:
    """The paired ratios' median and range (columns of a row; empty when none)."""
    if not paired:
        return {}
    return {"paired_vs_" + base.col: _r(statistics.median(paired), 3), "paired_min": _r(min(paired), 3),
            "paired_max": _r(max(paired), 3)}


def fwd_figures(res: Dict[str, List[Dict]], names: Sequence[str], base: Base) -> List[Tuple[str, Dict]]:
    """Per forwarding variant, the columns of its row: medians over blocks; rate against the base
    variant's, both as the ratio of medians and as the median of the blocks' paired ratios (same
    round, seconds apart: the noise that drifts between rounds is shared)."""
    ref = statistics.median(r["ns_per_pkt"] for r in res[base.name])
    out = []
    for name in names:
        rs = res[name]
        ns_pp = statistics.median(r["ns_per_pkt"] for r in rs)
        paired = [a["ns_per_pkt"] / r["ns_per_pkt"] for a, r in zip(res[base.name], rs)]
        cols = {"ns_per_pkt": _r(ns_pp), "rate_kpps": _r(1e6 / ns_pp), "vs_" + base.col: _r(ref / ns_pp, 3),
                "forwarded_kpps": _r(statistics.median(r["kpps"] for r in rs)),
                "entry_hits": sum(r["hits"] for r in rs), "misses": sum(r["misses"] for r in rs),
                "sent": sum(r["sent"] for r in rs), "n": len(rs)}
        cols.update(_spread(paired, base))
        out.append((name, cols))
    return out


def fwd_rows(res: Dict[str, List[Dict]]) -> List[Dict]:
    """One row per forwarding variant (fwd_figures against IPv4 A), with its frame size."""
    return [_row("forwarding", name, frame_b=res[name][0]["frame"], **cols)
            for name, cols in fwd_figures(res, [v[0] for v in FWD], IPV4_A)]


Med = Dict[str, Optional[float]]


def added(med: Med, floor_of: Callable[[str], Optional[str]]) -> Med:
    """Each eSwitch variant's median RTT minus its floor's: floor_of(variant) names the direct
    variant it is set against (None for a direct one)."""
    out: Dict[str, Optional[float]] = {}
    for k, m in med.items():
        f = floor_of(k)
        floor = None if f is None else med[f]
        out[k] = None if m is None or floor is None else m - floor
    return out


def lat_figures(pooled: Dict[str, Dict], names: Sequence[str], floor_of: Callable[[str], Optional[str]],
                base: Base) -> List[Tuple[str, Dict]]:
    """Per latency variant, the columns of its row: added over its floor, from the pooled RTTs;
    against the base variant as the ratio of those, and the median (range) of each block's own ratio."""
    add = added({k: pct(v["samples"], 50) for k, v in pooled.items()}, floor_of)
    nblocks = min(len(v["blocks"]) for v in pooled.values())
    per_block = [added({k: v["blocks"][b] for k, v in pooled.items()}, floor_of) for b in range(nblocks)]
    out = []
    for name in names:
        v = pooled[name]
        paired = [x for x in (_ratio(a[name], a[base.name]) for a in per_block) if x is not None]
        cols = {"median_us": _r(pct(v["samples"], 50)), "p99_us": _r(pct(v["samples"], 99)),
                "added_us": _r(add[name]), "vs_" + base.col: _r(_ratio(add[name], add[base.name]), 3),
                "lost": v["lost"], "n": len(v["samples"])}
        cols.update(_spread(paired, base))
        out.append((name, cols))
    return out


def _family_floor(variant: str) -> Optional[str]:
    """The direct variant of the variant's family (None for a direct one)."""
    if variant.startswith("direct"):
        return None
    return "direct IPv6" if variant == "IPv6" else "direct IPv4"


def lat_rows(pooled: Dict[str, Dict]) -> List[Dict]:
    """One row per latency variant (lat_figures against IPv4 A, each family over its own direct)."""
    return [_row("latency", name, **cols)
            for name, cols in lat_figures(pooled, [v[0] for v in LAT], _family_floor, IPV4_A)]


def own_rows(own: Dict[str, List[float]]) -> List[Dict]:
    """The forwarder's own time per traversal per family, one query in flight (medians)."""
    return [_row("latency_own", name, ns_per_pkt=_r(statistics.median(v)), ns_min=_r(min(v)),
                 ns_max=_r(max(v)), n=len(v)) for name, v in own.items()]


COLUMNS = ("test", "variant", "frame_b", "ns_per_pkt", "rate_kpps", "forwarded_kpps", "median_us", "p99_us",
           "added_us", "vs_ipv4_a", "paired_vs_ipv4_a", "paired_min", "paired_max", "entry_hits", "misses",
           "sent", "lost", "n", "ns_min", "ns_max")


def _row(test: str, variant: str, **kw) -> Dict:
    row = {k: "" for k in COLUMNS}
    row.update(test=test, variant=variant, **kw)
    return row


def _c(x) -> str:
    """A table cell: empty for a missing value ("" here, None once read back from the CSV)."""
    return "" if x is None or x == "" else str(x)


def _num(x) -> Optional[float]:
    return None if x is None or x == "" else float(x)


def verdict(value: Optional[float], ok: Callable[[float], bool]) -> str:
    return "not measured" if value is None else "met" if ok(value) else "missed"


def paired_goals(rows: List[Dict], variant: str, aa: str, base: Base, rate_goal: float,
                 lat_goal: float) -> Dict[str, Dict]:
    """The rate and latency goals: the variant's paired figure against its limit, the A/A
    variant's beside it, from the rows (as written, or read back from the CSV).  The figure is
    the paired one, the median of each block's own ratio: the variants of a block run seconds
    apart, so the load that drifts between blocks (the shared vCPUs) cancels."""
    by = {(r["test"], r["variant"]): r for r in rows}
    out = {}
    for goal, test, limit, ok in (("rate", "forwarding", rate_goal, lambda v: v >= rate_goal),
                                  ("latency", "latency", lat_goal, lambda v: v <= lat_goal)):
        value = _num(by.get((test, variant), {}).get("paired_vs_" + base.col))
        a = _num(by.get((test, aa), {}).get("paired_vs_" + base.col))
        out[goal] = {"value": value, "aa": a, "limit": limit, "verdict": verdict(value, ok)}
    return out


def verdicts(rows: List[Dict]) -> Dict[str, Dict]:
    """The two goals, IPv6 against IPv4 A, and their A/A runs (IPv4 B)."""
    return paired_goals(rows, "IPv6", "IPv4 B", IPV4_A, RATE_GOAL, LAT_GOAL)


def goal_table(rows: List[Dict]) -> List[str]:
    v = verdicts(rows)
    return ["| goal (paired medians) | IPv6 / IPv4 A | A/A: IPv4 B / IPv4 A | verdict |",
            "|---|---:|---:|---|",
            "| softdoca IPv6 forwarding rate ≥ %.2f× IPv4's | %s× | %s× | %s |" % (
                RATE_GOAL, _c(v["rate"]["value"]), _c(v["rate"]["aa"]), v["rate"]["verdict"]),
            "| softdoca IPv6 added latency ≤ %.1f× IPv4's | %s× | %s× | %s |" % (
                LAT_GOAL, _c(v["latency"]["value"]), _c(v["latency"]["aa"]), v["latency"]["verdict"])]


FWD_CELLS = ("variant", "frame_b", "ns_per_pkt", "rate_kpps", "forwarded_kpps", "vs_ipv4_a",
             "paired_vs_ipv4_a", "paired_min", "paired_max", "entry_hits", "sent", "misses")


def noise_notes(v: Dict[str, Dict]) -> List[str]:
    """A cost verdict (paired_goals) whose margin to its limit is smaller than the A/A run's
    distance from 1 is within this run's noise: say so beside it."""
    out = []
    for key, what in (("rate", "forwarding rate"), ("latency", "added latency")):
        g = v[key]
        if g["value"] is None or g["aa"] is None:
            continue
        margin, noise = abs(g["value"] - g["limit"]), abs(1.0 - g["aa"])
        if margin < noise:
            out.append("The %s verdict is within this run's noise: %.3f× is %.3f from the %.2f× limit, less "
                       "than the A/A run's %.3f from 1; another run may give the other verdict." % (
                           what, g["value"], margin, g["limit"], noise))
    return out


def fwd_table(rows: List[Dict]) -> List[str]:
    out = ["| variant | frame B | forwarder ns/pkt | rate kpps | forwarded kpps | × IPv4 A | paired × IPv4 A "
           "(min–max) | entry hits / sent | misses |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["test"] == "forwarding":
            cells = tuple(_c(r.get(k)) for k in FWD_CELLS)
            out.append("| %s | %s | %s | %s | %s | %s | %s (%s–%s) | %s / %s | %s |" % cells)
    return out


def lat_table(rows: List[Dict], base: Base = IPV4_A) -> List[str]:
    col = "vs_" + base.col
    out = ["| variant | median RTT µs | p99 RTT µs | added µs | × %s | paired × %s (min–max) | lost "
           "| n |" % (base.name, base.name), "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["test"] == "latency":
            paired = "%s (%s–%s)" % (r["paired_" + col], r["paired_min"], r["paired_max"]) \
                if _c(r["paired_" + col]) else ""
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % tuple(_c(x) for x in (
                r["variant"], r["median_us"], r["p99_us"], r["added_us"], r[col], paired, r["lost"], r["n"])))
    return out


def write_results(suite: str, columns: Sequence[str], rows: List[Dict], meta: Dict,
                  markdown_of: Callable[[List[Dict], Dict], str], out: str) -> None:
    """<suite>.csv (the rows), <suite>.json (the run's parameters), <suite>.md (both, as text)."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, suite + ".csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns))
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(out, suite + ".json"), "w") as fh:
        json.dump(meta, fh, indent=1)
    md = markdown_of(rows, meta)
    with open(os.path.join(out, suite + ".md"), "w") as fh:
        fh.write(md)
    print(md)


def section_head(suite: str, title: str, flag: str, meta: Dict, about: str, goals: List[str],
                 notes: List[str]) -> List[str]:
    """A section's head: its title; the command of the run (with flag for a CI-sized one), when,
    on how many vCPUs, how long, and what it measured (about); the goals; notes on them."""
    md = ["## " + title, "",
          "`sudo .venv/bin/python benchmarks/bench_%s.py%s` (%s UTC, %s vCPUs, %.0f s): %s" % (
              suite, " " + flag if meta.get("smoke") else "", meta.get("time_utc", "?"),
              meta.get("cpus", "?"), meta.get("duration_s", 0), about), ""]
    md += goals
    if notes:
        md += [""] + notes
    return md


def markdown(rows: List[Dict], meta: Dict) -> str:
    """The section: goals with their A/A runs, then each test's table and what its figures are.
    report.py builds REPORT.md's section with it from ipv6.csv and ipv6.json."""
    by = {(r["test"], r["variant"]): r for r in rows}
    p = meta.get("params", {})
    f6, f4 = by[("forwarding", "IPv6")], by[("forwarding", "IPv4 A")]
    fs = by[("forwarding", "IPv4, IPv6's frame size")]
    l6, l4 = by[("latency", "IPv6")], by[("latency", "IPv4 A")]
    md = section_head("ipv6", "softdoca: IPv6 against IPv4", "--smoke", meta, (
        "bench_glue_forward.py's lab, dual stack; one eSwitch child holds both families' dispatch "
        "(UDP/53 to the VIP, then to the VIP6, one priority) and a 2-entry bucket pipe each, so the "
        "variants differ only in their frames. \"IPv4 A\" and \"IPv4 B\" are the same IPv4 traffic "
        "measured as two variants: the A/A run, what the machine's noise alone does to a ratio (the "
        "vCPUs are shared)."), goal_table(rows), noise_notes(verdicts(rows)))
    md += ["", "### Forwarding rate (busy-poll, %s pps offered, %s-s blocks, %s per variant, a random "
           "order each round)" % (p.get("rate", "?"), p.get("seconds", "?"), p.get("reps", "?")), ""]
    md += fwd_table(rows)
    md += ["", "Rate = 1 / the forwarder's own time per packet (rx burst, parse, root and bucket lookups, "
           "MAC rewrite, counters, tx burst: its busy-iteration clock), the median over blocks; the sender "
           "shares the vCPUs, so the forwarded rate is what it offered, not a maximum. × IPv4 A: the "
           "ratio of the medians; paired: the median (and range) of each block's own ratio (the goal's "
           "figure: blocks of a round run seconds apart, so the load drifting between rounds cancels). "
           "Entry hits: frames the family's dispatch entry took, of those the sender sent (the rest never "
           "reached the forwarder); misses: frames of p0 that no entry took (to the Arm). IPv6's "
           "frames are 20 B longer (the header); IPv4 with the same frame size costs %s ns/packet "
           "against IPv4 A's %s, IPv6 %s: %s." % (
               _c(fs["ns_per_pkt"]), _c(f4["ns_per_pkt"]), _c(f6["ns_per_pkt"]), _share(f4, fs, f6)),
           "", "### Added latency (the forwarder's default back-off, %s queries per variant in %s blocks)" % (
               _c(l4["n"]), p.get("blocks", "?")), ""]
    md += lat_table(rows)
    md += ["", "One DNS query at a time (tools/rtt_probe.py), the variants taking turns query by query "
           "in a random order each round (no variant always follows the same one: the forwarder is "
           "asleep or still spinning after the variant before); RTTs pooled per variant. "
           "Added = the median RTT through the eSwitch (two forwarder traversals: query and DSR reply) minus "
           "the median RTT over a plain veth of the same family (direct), so the kernel's own IPv6 cost is "
           "not charged to softdoca: IPv6 adds %s µs, IPv4 %s µs. × IPv4 A: the ratio of those; paired: the "
           "median (and range) of each block's own ratio (the goal's figure)." % (
               _c(l6["added_us"]), _c(l4["added_us"])), "", _own_text(by, l4, l6), ""]
    return "\n".join(md)


def _own_text(by: Dict, l4: Dict, l6: Dict) -> str:
    """The forwarder's own time per traversal per family, set against IPv6's extra latency."""
    o4, o6 = by.get(("latency_own", "IPv4"), {}), by.get(("latency_own", "IPv6"), {})
    t4, t6 = _num(o4.get("ns_per_pkt")), _num(o6.get("ns_per_pkt"))
    a4, a6 = _num(l4["added_us"]), _num(l6["added_us"])
    if t4 is None or t6 is None or a4 is None or a6 is None:
        return ""
    return ("Where it goes: the forwarder's own time per traversal (rx, parse, lookups, MAC rewrite, "
            "counters, tx: its busy-iteration clock), each family's queries alone, one in flight, in %s "
            "alternating blocks: IPv4 %.0f ns (blocks %.0f–%.0f), IPv6 %.0f ns (%.0f–%.0f). Two "
            "traversals make %+.2f µs per round trip for IPv6 against IPv4, set against IPv6's %+.1f µs "
            "of added latency; what the forwarder's time does not explain lies outside it (its wake-ups "
            "from the back-off, the kernel's veth and af_packet work) or in the noise (the A/A run)." % (
                _c(o4.get("n")), t4, _num(o4.get("ns_min")) or 0, _num(o4.get("ns_max")) or 0, t6,
                _num(o6.get("ns_min")) or 0, _num(o6.get("ns_max")) or 0, 2 * (t6 - t4) / 1000.0, a6 - a4))


def _share(f4: Dict, fs: Dict, f6: Dict) -> str:
    """How much of IPv6's extra time per packet IPv4 at the same frame size also pays."""
    a, b, c = _num(f4["ns_per_pkt"]), _num(fs["ns_per_pkt"]), _num(f6["ns_per_pkt"])
    if a is None or b is None or c is None:
        return "not measured"
    if c <= a:
        return "IPv6 costs no more than IPv4 A here (%+.0f ns/packet)" % (c - a)
    if b <= a:
        return ("the 20 bytes cost IPv4 nothing measurable (%+.0f ns/packet), so IPv6's extra %.0f ns/packet "
                "is its parse and wider keys, or noise (the A/A run)" % (b - a, c - a))
    return "the header bytes account for %.0f %% of IPv6's extra %.0f ns/packet" % (100.0 * (b - a) / (c - a),
                                                                                       c - a)


# --- orchestration -------------------------------------------------------------------------

class Session(NamedTuple):
    """A benchmark's lab, running: the netns module, the client, eSwitch and server namespaces,
    the eSwitch child's command channel, the pacer binary and the probe script."""
    nl: Any
    g: str
    d: str
    s: str
    cmd: bgf.Cmd
    pacer: str
    probe: str


def _start(nl, env: Dict[str, str], s: str, d: str, tag: str, echo_addrs: Sequence[str],
           script: str) -> List[subprocess.Popen]:
    """The echo server on echo_addrs (this script's --echo) and the eSwitch child (script --child)."""
    ep = bgf._popen(nl.ns_argv(s, [sys.executable, __file__, "--echo", ",".join(echo_addrs), "53"]), env)
    if ep.stdout.readline().strip() != "READY":
        raise RuntimeError("echo server failed: " + ep.stderr.read()[-2000:])
    sw = bgf._popen(nl.ns_argv(d, [sys.executable, script, "--child", tag]), env)
    if not json.loads(sw.stdout.readline() or "{}").get("ready"):
        bgf._stop_all([ep])
        raise RuntimeError("eSwitch child failed: " + sw.stderr.read()[-3000:])
    return [ep, sw]


@contextlib.contextmanager
def session(suite: str, prefix: str, lab_of: Callable, echo_addrs: Sequence[str],
            script: str) -> Iterator[Session]:
    """Namespaces <prefix>XXXX-g|d|s with lab_of's lab, the echo server and script's eSwitch
    child running in them, the pacer built.  On the way out: the child told to quit (when the
    body ended normally), every process stopped, the namespaces removed by exact name."""
    from xenoflow_ovs.lab import netns as nl
    from xenoflow_ovs.lab.labctl import _subprocess_env

    tag = prefix + secrets.token_hex(2)
    g, d, s = tag + "-g", tag + "-d", tag + "-s"
    procs: List[subprocess.Popen] = []
    tmp = tempfile.mkdtemp(prefix="xf-bench-%s-" % suite)
    pacer = os.path.join(tmp, "pacer")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", pacer, os.path.join(HERE, "tools", "pacer.c")], check=True)
    probe = os.path.join(HERE, "tools", "rtt_probe.py")
    try:
        lab_of(nl, g, d, s)
        procs = _start(nl, _subprocess_env(), s, d, tag, echo_addrs, script)
        yield Session(nl, g, d, s, bgf.Cmd(procs[1]), pacer, probe)
        procs[1].stdin.write("quit\n")
        procs[1].stdin.flush()
        procs[1].wait(timeout=30)
    finally:
        bgf._stop_all(procs)
        for ns in (g, d, s):
            nl.delete_ns(ns)
        subprocess.run(["rm", "-rf", tmp], check=False)


def run(args) -> List[Dict]:
    with session("ipv6", "x6", lab, (VIP, VIP6, D_SERVER, D_SERVER6), __file__) as x:
        pooled = latency(x.cmd, x.nl, x.g, x.probe, args)
        own = own_time(x.cmd, x.nl, x.g, x.probe, args)
        res = forwarding(x.cmd, x.nl, x.g, x.pacer, args)
    return fwd_rows(res) + lat_rows(pooled) + own_rows(own)


def add_common_args(ap: argparse.ArgumentParser, seconds: float, reps: int, rate: int, flag: str,
                    ci_s: int) -> None:
    """The options alike in this benchmark and bench_meters.py: the forwarding and latency tests',
    the CI-sized run's (flag first, the other name accepted too; args.smoke either way), --out."""
    ap.add_argument("--seconds", type=float, default=seconds, help="s per forwarding block")
    ap.add_argument("--reps", type=int, default=reps, help="forwarding blocks per variant")
    ap.add_argument("--rate", type=int, default=rate, help="offered pps in the forwarding test (paced)")
    ap.add_argument("--rtt", type=int, default=4000, help="queries per latency variant (all blocks)")
    ap.add_argument("--blocks", type=int, default=5, help="latency blocks (one probe process each)")
    ap.add_argument("--seed", type=int, default=1, help="of the variants' random orders")
    ap.add_argument(flag, "--quick" if flag == "--smoke" else "--smoke", dest="smoke", action="store_true",
                    help="CI-sized (~%d s), into results/smoke/" % ci_s)
    ap.add_argument("--out", default=None, help="default benchmarks/results (results/smoke with %s)" % flag)


def measure(suite: str, args, params: Sequence[str], run_of: Callable[..., List[Dict]],
            columns: Sequence[str], markdown_of: Callable[[List[Dict], Dict], str]) -> int:
    """The run (root), then its files (write_results) into --out (default results/, results/smoke/
    with --smoke), with the run's parameters (the args named in params) and duration."""
    smoke = args.smoke
    args.out = args.out or os.path.join(HERE, "results", "smoke" if smoke else "")
    if os.geteuid() != 0:
        raise SystemExit("bench_%s.py needs root (namespaces, veths)" % suite)
    t0 = time.monotonic()
    rows = run_of(args)
    meta = {"suite": suite, "smoke": smoke, "cpus": os.cpu_count(),
            "time_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "duration_s": round(time.monotonic() - t0),
            "params": {k: getattr(args, k) for k in params}}
    write_results(suite, columns, rows, meta, markdown_of, args.out)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", metavar="PREFIX", help=argparse.SUPPRESS)
    ap.add_argument("--echo", nargs=2, metavar=("ADDRS", "PORT"), help=argparse.SUPPRESS)
    add_common_args(ap, 1.0, 20, 150000, "--smoke", 20)
    args = ap.parse_args()
    if args.child:
        return child(args.child)
    if args.echo:
        return echo(args.echo[0].split(","), int(args.echo[1]))
    if args.smoke:
        args.seconds, args.reps, args.rtt, args.blocks = 1.0, 2, 400, 2
    return measure("ipv6", args, ("rate", "seconds", "reps", "rtt", "blocks", "seed"), run, COLUMNS, markdown)


if __name__ == "__main__":
    sys.exit(main())

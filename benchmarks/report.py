#!/usr/bin/env python3
"""Assemble benchmarks/REPORT.md from benchmarks/results/ (nothing in it is
written by hand): the machine (from /proc and uname), then every suite's
<suite>.md (its method, tables and plot, as the suite wrote it), then the
benchmark goals against what the CSVs of the same run show.

    python benchmarks/report.py [--results DIR] [--out FILE]

Sections, in this order when present: throughput, latency, latency_load,
control, disruption, faults, glue_* and any other results/*.md; then softdoca's IPv6
against IPv4, built here from ipv6.csv and ipv6.json (bench_ipv6.py); then the DoS guard's
meters, built here from meters.csv and meters.json (bench_meters.py); then the control
plane at scale, built here from scale.csv (bench_scale.py): its goals, the fitted
growth of every cost, the points and softdoca's forwarding against the table size;
last the fleet, built here from fleet.csv (bench_fleet.py): its goals, edit to
applied per fleet size, the writes the store's cluster sustains, leader kills.
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import re
import statistics
import sys
import time
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ORDER = ["throughput", "latency", "latency_load", "control", "disruption", "faults"]


def machine() -> List[str]:
    facts = []
    try:
        cpu = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
               if line.startswith("model name")]
        facts.append("CPU: %s × %d (/proc/cpuinfo)" % (cpu[0] if cpu else "?", len(cpu)))
        mem = [line.split(":", 1)[1].strip() for line in open("/proc/meminfo")
               if line.startswith("MemTotal")]
        facts.append("Memory: %s" % (mem[0] if mem else "?"))
    except OSError:
        pass
    u = os.uname()
    facts.append("Kernel: %s %s %s (uname)" % (u.sysname, u.release, u.machine))
    try:
        facts.append("OS: " + [line.split("=", 1)[1].strip().strip('"') for line in open("/etc/os-release")
                               if line.startswith("PRETTY_NAME=")][0])
    except (OSError, IndexError):
        pass
    try:
        facts.append("1-minute load average when the report was assembled: "
                     + open("/proc/loadavg").read().split()[0])
    except OSError:
        pass
    return facts


def read_csv(path: str) -> List[Dict]:
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return []
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k, v in r.items():
            try:
                r[k] = int(v)
            except (TypeError, ValueError):
                try:
                    r[k] = float(v)
                except (TypeError, ValueError):
                    r[k] = None if v == "" else v
    return rows


def fallback_blocks(rows: List[Dict]) -> Dict:
    """Fallback packets per measured block. The suites write a block's count (fallback
    counter after minus before, around one contender's repetition) on every row of the
    block, so sums take each block once: {(suite, contender, rep, dist): packets}."""
    out: Dict = {}
    for r in rows:
        v = r.get("fallback")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            k = (r.get("suite"), r.get("contender"), r.get("rep"), r.get("dist"), r.get("measure"))
            out[k] = max(out.get(k, 0), v)
    return out


def med(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    return statistics.median(xs) if xs else None


def load_meta(results: str, suite: str) -> Dict:
    p = os.path.join(results, suite + ".json")
    return json.load(open(p)) if os.path.exists(p) else {}


# --- figures from the CSVs ----------------------------------------------------------------

def loss_free(rows: List[Dict], contender: str, payload: int) -> Optional[float]:
    out = []
    for rep in sorted({r["rep"] for r in rows}):
        rs = sorted([r for r in rows if r["contender"] == contender and r["payload"] == payload
                     and r["rep"] == rep], key=lambda r: r["offered_pps"])
        if not rs:
            continue
        lf = 0.0
        for r in rs:
            if r["loss"] > 0:
                break
            lf = r["offered_pps"]
        out.append(lf)
    return med(out)


def max_delivered(rows, contender, payload):
    return med([max([r["delivered_pps"] for r in rows if r["contender"] == contender
                     and r["payload"] == payload and r["rep"] == rep] or [None])
                for rep in sorted({r["rep"] for r in rows})])


def added_latency(rows: List[Dict]) -> Dict[str, float]:
    """Median over repetitions of (contender median - the direct floor of the same lab
    in the same repetition)."""
    direct = {(r.get("lab"), r["rep"]): r["median_us"] for r in rows
              if str(r["contender"]).startswith("direct")}
    out = {}
    for c in {r["contender"] for r in rows}:
        out[c] = med([r["median_us"] - direct[(r.get("lab"), r["rep"])] for r in rows
                      if r["contender"] == c and (r.get("lab"), r["rep"]) in direct])
    return out


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


LOOP, XDP, DNSDIST = "dpdk-loop", "xdp", "dnsdist"
P = 22   # the payload (B) the goals are judged at


class _Goals:
    """The goals table of one run, row by row, from the CSVs of results/."""

    def __init__(self, results: str) -> None:
        self.results = results
        self.tput = read_csv(os.path.join(results, "throughput.csv"))
        self.lat = read_csv(os.path.join(results, "latency.csv"))
        self.unavailable: Dict = {}
        for s in ("throughput", "latency", "latency_load"):
            self.unavailable.update(load_meta(results, s).get("unavailable", {}))
        self.present = {r["contender"] for r in self.tput + self.lat}
        self.labs: Dict = {}
        for r in self.tput + self.lat:
            self.labs.setdefault(r["contender"], set()).add(r.get("lab"))
        self.add = added_latency(self.lat) if self.lat else {}
        self.lf = {c: loss_free(self.tput, c, P) for c in self.present} if self.tput else {}
        self.rows: List[List] = []

    def ours_for(self, peer):
        """XenoFlow on softdoca to set against `peer`: the whole product (paper lab) or its
        eSwitch plane alone (softdoca, minimal lab), whichever ran on the peer's lab, so both
        share wiring and "direct" floor; else the first that ran, with the labs named."""
        labs = self.labs
        mine = [c for c in ("xenoflow-softdoca", "softdoca", "softdoca-busy") if c in self.present]
        same = [c for c in mine if labs.get(c) and labs.get(c) == labs.get(peer)]
        if same:
            return same[0], "%s lab" % "/".join(sorted(labs[peer]))
        if mine and peer in self.present:
            return mine[0], "across labs: %s on %s, %s on %s" % (
                mine[0], "/".join(sorted(labs[mine[0]])), peer, "/".join(sorted(labs[peer])))
        return (mine[0] if mine else "xenoflow-softdoca"), ""

    def why(self, *names):
        miss = [n for n in names if n not in self.present]
        if not miss:
            return ""
        return "; ".join("%s: %s" % (n, self.unavailable.get(n, "not in this run's results"))
                         for n in miss)

    def row(self, goal, value, target_ok, detail, names, because=""):
        if value is None:
            self.rows.append([goal, "not measured", "–", self.why(*names)])
        else:
            self.rows.append([goal, detail, "met" if target_ok else "missed",
                              "" if target_ok else because])

    def floor_of(self, c):
        """The direct (no balancer) contender of c's lab."""
        for d in ("direct", "direct@paper"):
            if self.labs.get(d) and self.labs.get(d) == self.labs.get(c):
                return d
        return "direct"

    def sender_bound(self, sd):
        d = self.floor_of(sd)
        md, ms = max_delivered(self.tput, d, P), max_delivered(self.tput, sd, P)
        if not md or not ms:
            return ""
        return ("the sender bounds it: with no balancer at all (%s) the lab delivers at most %s "
                "kpps, and %s delivers %.0f %% of that; %s's maximum is what the generator "
                "leaves it, not what it could forward" % (d, fmt(md, 1e3), sd, 100 * ms / md, sd))

    def io_bound(self, sd, a):
        add = self.add
        if add.get(LOOP) is None or a is None or self.labs.get(LOOP) != self.labs.get(sd):
            return ("softdoca's packets cross AF_PACKET into a user-space thread and back, "
                    "on 2 vCPUs shared with the sender")
        return ("the plain DPDK loop on the same ports, with no pipes at all, adds %.1f µs "
                "(%s %.1f µs, difference %+.1f µs): the floor is the AF_PACKET copies and the "
                "user-space thread's wake-ups on 2 shared vCPUs, not the lookup, MAC rewrite "
                "and counters" % (add[LOOP], sd, a, a - add[LOOP]))

    def ovs_peers(self):
        return [o for o in ("xenoflow-ovs", "ovs-netdev") if o in self.present] or ["ovs-netdev"]

    def forwarding_rows(self):
        lf = self.lf
        gf = glue_forward_ratio(self.results)
        sd, where = self.ours_for(LOOP)          # the loop's peer, for forwarding and latency
        r1 = ratio(lf.get(sd), lf.get(LOOP))
        if r1 is None and gf is not None:
            self.rows.append(["%s forwarding ≥ 0.9× plain DPDK loop" % sd, "%.2f× ("
                              "glue_forward.csv: forwarder time per packet, pipeline vs io loop, "
                              "busy-poll; a separate run)" % gf, "met" if gf >= 0.9 else "missed",
                              self.why(LOOP)])
        else:
            self.row("%s forwarding ≥ 0.9× plain DPDK loop (loss-free max, %d-B payload; %s)"
                     % (sd, P, where), r1, r1 is not None and r1 >= 0.9,
                     "%.2f× (%s vs %s kpps)" % (r1, fmt(lf[sd], 1e3), fmt(lf[LOOP], 1e3))
                     if r1 is not None else "", [sd, LOOP])
        for ovs in self.ovs_peers():
            sd, where = self.ours_for(ovs)
            r2 = ratio(lf.get(sd), lf.get(ovs))
            self.row("%s forwarding ≥ 2× %s (loss-free max, %d B; %s)" % (sd, ovs, P, where), r2,
                     r2 is not None and r2 >= 2,
                     "%.2f× (%s vs %s kpps)" % (r2, fmt(lf[sd], 1e3), fmt(lf[ovs], 1e3))
                     if r2 is not None else "", [sd, ovs])
            r2b = ratio(max_delivered(self.tput, sd, P), max_delivered(self.tput, ovs, P)) \
                if self.tput else None
            self.row("%s max delivered ≥ 2× %s (%d B; %s)" % (sd, ovs, P, where), r2b,
                     r2b is not None and r2b >= 2, "%.2f×" % r2b if r2b is not None else "",
                     [sd, ovs], self.sender_bound(sd))

    def latency_rows(self):
        add = self.add
        sd, where = self.ours_for(LOOP)
        a = add.get(sd)
        d = None if a is None or add.get(LOOP) is None else a - add[LOOP]
        self.row("%s added latency ≤ plain loop's + 2 µs (%s)" % (sd, where), d, d is not None and d <= 2,
                 "%+.1f µs (%.1f vs %.1f µs)" % (d, a, add[LOOP]) if d is not None else "", [sd, LOOP])
        for other, lim, label in [(o, 0.25, o + "'s") for o in self.ovs_peers()] + [
                (DNSDIST, 0.3, "dnsdist's"), (XDP, 0.56, "the XDP balancer's (stretch)")]:
            sd, where = self.ours_for(other)
            a = add.get(sd)
            r = ratio(a, add.get(other))
            because = self.io_bound(sd, a)
            if other == XDP:
                because += ("; the XDP balancer forwards inside the sender's softirq and never "
                            "leaves the kernel")
            self.row("%s added latency ≤ %.2f× %s (%s)" % (sd, lim, label, where), r,
                     r is not None and r <= lim and a is not None,
                     "%.2f× (%.1f vs %.1f µs)" % (r, a, add[other]) if r is not None else "",
                     [sd, other], because)

    def loss_rows(self):
        """Loss below the maximum: steps offered below 90 % of the contender's max delivered rate."""
        tput = self.tput
        for c in sorted({r["contender"] for r in tput}):
            rs = [r for r in tput if r["contender"] == c]
            bad = []
            for p in sorted({r["payload"] for r in rs}):
                m = max_delivered(tput, c, p) or 0
                bad += [r for r in rs if r["payload"] == p and r["offered_pps"] < 0.9 * m
                        and r["loss"] > 0]
            worst = max([r["loss"] for r in bad] or [0])
            below = [r for r in rs if r["offered_pps"] < 0.9 * (max_delivered(tput, c, r["payload"]) or 0)]
            note = ""
            if bad:
                note = "lossy at %s–%s kpps offered, %d of %d steps below 0.9× max" % (
                    fmt(min(r["offered_pps"] for r in bad), 1e3),
                    fmt(max(r["offered_pps"] for r in bad), 1e3), len(bad), len(below))
            self.rows.append(["loss below 0.9× max delivered = 0 (%s)" % c,
                              "%d lossy steps, worst %.3g" % (len(bad), worst),
                              "met" if not bad else "missed", note])

    def ipv6_rows(self):
        """bench_ipv6.py's two goals (a separate run, IPv6 and IPv4 side by side in one eSwitch),
        each with its A/A run (IPv4 against IPv4: the noise) beside it."""
        rows = read_csv(os.path.join(self.results, "ipv6.csv"))
        if not rows:
            return
        import bench_ipv6
        v = bench_ipv6.verdicts(rows)
        for key, goal in (("rate", "softdoca IPv6 forwarding rate ≥ %.2f× IPv4's" % bench_ipv6.RATE_GOAL),
                          ("latency", "softdoca IPv6 added latency ≤ %.1f× IPv4's" % bench_ipv6.LAT_GOAL)):
            g = v[key]
            aa = "%.2f×" % g["aa"] if g["aa"] is not None else "–"
            detail = "%.2f× (ipv6.csv, a separate run, paired median; A/A, IPv4 against IPv4: %s)" % (
                g["value"], aa) if g["value"] is not None else ""
            self.row(goal, g["value"], g["verdict"] == "met", detail, [],
                     "see the IPv6 section: the A/A run beside it, where IPv6's extra time goes")

    def meter_rows(self):
        """bench_meters.py's three goals (a separate run): the meters' accuracy, and the meter
        chain's cost in forwarding rate and latency with the A/A run (plain against plain) beside."""
        rows = read_csv(os.path.join(self.results, "meters.csv"))
        if not rows:
            return
        import bench_meters
        v = bench_meters.verdicts(rows)
        acc = v["accuracy"]
        self.row("a meter delivers its rate within ±%g %% (1k, 10k, 50k pps)" % bench_meters.ACC_GOAL,
                 acc["value"], acc["verdict"] == "met",
                 "worst error %.2f %% (meters.csv, a separate run)" % acc["value"] if acc["value"] is not None
                 else "", [], "see the DoS guard section")
        for key, goal in (("rate", "forwarding with meters ≥ %.1f× without" % bench_meters.RATE_GOAL),
                          ("latency", "added latency with meters ≤ %.1f× without" % bench_meters.LAT_GOAL)):
            g = v[key]
            aa = "%.2f×" % g["aa"] if g["aa"] is not None else "–"
            detail = "%.2f× (meters.csv, a separate run, paired median; A/A, plain against plain: %s)" % (
                g["value"], aa) if g["value"] is not None else ""
            self.row(goal, g["value"], g["verdict"] == "met", detail, [], "see the DoS guard section")

    def tcp_row(self):
        """bench_transports.py: dnsperf over TCP through the VIP and the VIP6 (a separate run)."""
        rows = [r for r in read_csv(os.path.join(self.results, "transports.csv"))
                if str(r["listener"]).endswith("TCP")]
        if not rows:
            return
        sent, done = sum(r["sent"] for r in rows), sum(r["completed"] for r in rows)
        pct = 100.0 * done / sent if sent else 0.0
        self.row("XenoFlow over TCP: dnsperf success 100 %", pct, done == sent and sent > 0,
                 "%.3f %%: %d of %d queries over IPv4 and IPv6 TCP (transports.csv, a separate run)"
                 % (pct, done, sent), [])

    def fallback_row(self):
        ctl = read_csv(os.path.join(self.results, "control.csv"))
        llat = read_csv(os.path.join(self.results, "latency_load.csv"))
        blocks = fallback_blocks(self.tput + self.lat + llat + ctl)
        fb = list(blocks.values())
        if not fb and any(str(c).startswith("xenoflow") for c in self.present):
            self.rows.append(["fallback packets during every experiment = 0", "not measured", "–",
                              "the XenoFlow controller's API did not answer `xenoflow status --json` "
                              "with fallback counters during the run"])
            return
        suites = sorted({str(k[0]) for k in blocks})
        self.row("fallback packets during every experiment = 0", fb or None, fb and sum(fb) == 0,
                 "%d in %d measured blocks (%s; suites %s)" % (
                     sum(fb), len(fb), ", ".join(sorted({str(k[1]) for k in blocks})),
                     ", ".join(suites)) if fb else "",
                 ["xenoflow-softdoca", "xenoflow-ovs"])

    def side_by_side(self) -> str:
        """Ratios among what did run: throughput, then latency."""
        tput, lat, add = self.tput, self.lat, self.add
        text = ""
        if tput:
            base = self.lf.get("direct") or None
            side = []
            for c in sorted({r["contender"] for r in tput}):
                pl = min(r["payload"] for r in tput if r["contender"] == c)   # dnsdist: 33 (DNS)
                lfm = loss_free(tput, c, pl)
                side.append("| %s | %d | %s | %s | %s |" % (
                    c, pl, fmt(lfm, 1e3), fmt(max_delivered(tput, c, pl), 1e3),
                    "%.2f" % ratio(lfm, base) if base and lfm is not None else "–"))
            text += ("\n\nSide by side, same run (each contender's smallest payload): loss-free "
                     "maximum and maximum delivered rate (kpps), loss-free maximum relative to "
                     "direct's at %d B:\n\n| contender | payload (B) | loss-free max | max "
                     "delivered | × direct |\n|---|---|---|---|---|\n" % P) + "\n".join(side)
        if lat:
            lat_side = []
            for c in sorted(add):
                rel = ("%.2f" % ratio(add[c], add.get(XDP))
                       if add.get(XDP) and add[c] is not None else "–")
                lat_side.append("| %s | %s | %s | %s |" % (
                    c, fmt(med([r["median_us"] for r in lat if r["contender"] == c])),
                    fmt(add[c]), rel))
            if lat_side:
                text += ("\n\nLatency, same run: median RTT (µs, median over repetitions), added over "
                         "direct (µs), added relative to the XDP balancer:\n\n| contender | median | added "
                         "| × xdp |\n|---|---|---|---|\n") + "\n".join(lat_side)
        return text

    def render(self) -> str:
        self.forwarding_rows()
        self.latency_rows()
        if self.tput:
            self.loss_rows()
        self.ipv6_rows()
        self.meter_rows()
        self.tcp_row()
        self.fallback_row()
        out = ["| goal | measured | verdict | why missed or not measured (from this run) |",
               "|---|---|---|---|"]
        out += ["| %s |" % " | ".join(map(str, r)) for r in self.rows]
        return "\n".join(out) + self.side_by_side()


def goals(results: str) -> str:
    return _Goals(results).render()


def glue_forward_ratio(results: str) -> Optional[float]:
    """pipeline / io-loop forwarding capacity from glue_forward.csv, if present."""
    rows = read_csv(os.path.join(results, "glue_forward.csv"))
    cap = {r["variant"].split(" (")[0]: r.get("capacity_kpps") for r in rows
           if r.get("test") == "throughput"}
    return ratio(cap.get("pipeline"), cap.get("io loop"))


def fmt(x, div=1.0):
    if x is None:
        return "–"
    x = x / div
    return "%.1f" % x if abs(x) < 100 else "%.0f" % x


def section(results: str, name: str) -> str:
    text = open(os.path.join(results, name + ".md")).read().strip()
    rel = os.path.relpath(results, HERE)
    # images and links are relative to results/: make them relative to REPORT.md
    text = re.sub(r"\]\((?!https?:|/)([^)]+)\)", lambda m: "](%s/%s)" % (rel, m.group(1)), text)
    meta = load_meta(results, name)
    if meta:
        m = meta.get("machine", {})
        idle = (meta.get("params") or {}).get("idle_poll")
        text += "\n\n_Run: %s UTC, %.0f s, lab %s%s%s._" % (
            m.get("time_utc", "?"), meta.get("duration_s", 0), meta.get("lab", "?"),
            ", smoke" if meta.get("smoke") else "",
            {True: ", vCPUs held in the polling idle state (PM QoS cpu_dma_latency = 0)",
             False: ", default idle (vCPUs halt when idle)"}.get(idle, ""))
        if meta.get("contenders"):
            text += "\n\nContenders:\n\n" + "\n".join(
                "- %s: %s" % (k, v) for k, v in meta["contenders"].items())
    return text


SCALE_OWN = ("scale", "glue_forward_entries")     # the scale section shows these itself
FLEET_OWN = ("fleet",)                            # and the fleet section this one
IPV6_OWN = ("ipv6",)                              # and the IPv6 section this one
METERS_OWN = ("meters",)                          # and the DoS guard's section this one


def ipv6_section(results: str) -> Optional[str]:
    """From ipv6.csv and ipv6.json (bench_ipv6.py): the goals with their A/A runs, the
    forwarding rate and the added latency per variant; None without ipv6.csv."""
    rows = read_csv(os.path.join(results, "ipv6.csv"))
    if not rows:
        return None
    import bench_ipv6
    text = bench_ipv6.markdown(rows, load_meta(results, "ipv6")).strip()
    return text + ("\n\nMethod and lab: `benchmarks/bench_ipv6.py`'s docstring; every row: "
                   "[ipv6.csv](%s/ipv6.csv)." % os.path.relpath(results, HERE))


def meters_section(results: str) -> Optional[str]:
    """From meters.csv and meters.json (bench_meters.py): the DoS guard's goals, the meters'
    accuracy, the meter chain's cost to forwarding and latency with the A/A runs; None without
    meters.csv."""
    rows = read_csv(os.path.join(results, "meters.csv"))
    if not rows:
        return None
    import bench_meters
    text = bench_meters.markdown(rows, load_meta(results, "meters")).strip()
    return text + ("\n\nMethod and lab: `benchmarks/bench_meters.py`'s docstring; every row: "
                   "[meters.csv](%s/meters.csv)." % os.path.relpath(results, HERE))


def scale_section(results: str) -> Optional[str]:
    """From scale.csv (and glue_forward_entries.csv): the goals met or missed with the
    figure, each cost's growth (constant / linear / n log n / quadratic, least squares on the
    measured points, the best with its coefficient), the points; None without scale.csv."""
    path = os.path.join(results, "scale.csv")
    if not os.path.exists(path):
        return None
    import bench_scale
    rows = read_csv(path)
    forward = read_csv(os.path.join(results, "glue_forward_entries.csv"))
    meta = {}
    if os.path.exists(os.path.join(results, "scale.json")):
        with open(os.path.join(results, "scale.json")) as f:
            meta = json.load(f)
    rel = os.path.relpath(results, HERE)
    parts = ["## Control plane at scale", "",
             "`sudo .venv/bin/python benchmarks/bench_scale.py%s`: %d points, %.0f s%s; method and "
             "every column in [scale.md](%s/scale.md)." % (
                 " --smoke" if meta.get("smoke") else "", len(rows), meta.get("duration_s", 0),
                 "; " + "; ".join(meta["notes"]) if meta.get("notes") else "", rel),
             "", "### Goals at scale", "", bench_scale.goal_table(rows, forward), "",
             "Where each missed goal spends its time, and what meeting it would take: "
             "[docs/scaling.md](../docs/scaling.md#where-the-goals-stand-and-why).",
             "", "### Growth of each cost (least squares in relative error; n = the sweep's factor)", "",
             bench_scale.fit_table(rows), "", "### Points", "", bench_scale.points_table(rows)]
    if forward:
        parts += ["", "### softdoca forwarding against the table's size", "",
                  "| entries | forwarder ns/pkt | capacity kpps |", "|---:|---:|---:|"]
        parts += ["| %s | %s | %s |" % (r.get("entries"), r.get("ns_per_pkt"), r.get("capacity_kpps"))
                  for r in forward]
    if os.path.exists(os.path.join(results, "scale.png")):
        parts += ["", "![scale](%s/scale.png)" % rel]
    return "\n".join(parts)


def fleet_section(results: str) -> Optional[str]:
    """From fleet.csv and fleet.json (bench_fleet.py): the goals met or missed with the
    figure, edit to applied per fleet size, writes per second, leader kills; None without
    fleet.csv."""
    path = os.path.join(results, "fleet.csv")
    if not os.path.exists(path):
        return None
    import bench_fleet
    rows = read_csv(path)
    meta = load_meta(results, "fleet")
    rel = os.path.relpath(results, HERE)
    p = meta.get("params") or {}
    m = meta.get("machine") or {}
    parts = ["## Fleet: DPUs following one intent", "",
             "`sudo .venv/bin/python benchmarks/bench_fleet.py%s`: %s controllers, %s edits each, "
             "%s s write bursts, %s leader kills per election timer; %s UTC on %s × %s, %.0f s, %s%s; "
             "method in [fleet.md](%s/fleet.md)." % (
                 " --smoke" if meta.get("smoke") else "", ", ".join(map(str, p.get("sizes", []))) or "?",
                 p.get("edits", "?"), p.get("write_seconds", "?"), p.get("kills", "?"),
                 m.get("time_utc", "?"), m.get("cpu", "?"), m.get("cpus", "?"), meta.get("duration_s", 0),
                 bench_fleet.provenance(meta),
                 "; " + "; ".join(meta["notes"]) if meta.get("notes") else "", rel),
             "", "### Goals of the fleet", "", bench_fleet.goal_table(rows),
             "", "### Edit to applied, per fleet size", "", bench_fleet.edit_table(rows),
             "", "### At rest, per fleet size", "", bench_fleet.rest_table(rows),
             "", "### Writes the store's cluster sustains", "", bench_fleet.writes_table(rows),
             "", "### Leader killed: writes resume", "", bench_fleet.kill_table(rows)]
    if os.path.exists(os.path.join(results, "fleet.png")):
        parts += ["", "![fleet](%s/fleet.png)" % rel]
    return "\n".join(parts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=os.path.join(HERE, "results"))
    ap.add_argument("--out", default=os.path.join(HERE, "REPORT.md"))
    a = ap.parse_args(argv)
    mds = [os.path.basename(p)[:-3] for p in glob.glob(os.path.join(a.results, "*.md"))]
    mds = [n for n in mds if n not in SCALE_OWN + FLEET_OWN + IPV6_OWN + METERS_OWN
           and not n.startswith("fleet_events")]
    names = [n for n in ORDER if n in mds]
    names += sorted(n for n in mds if n.startswith("glue_"))
    names += sorted(n for n in mds if n not in names)
    parts = ["# XenoFlow-OVS benchmark report",
             "",
             "Assembled by `python benchmarks/report.py` from `%s` on %s UTC; every number below "
             "was measured by the scripts (`python benchmarks/run.py all`)." % (
                 os.path.relpath(a.results, os.path.dirname(HERE)),
                 time.strftime("%Y-%m-%d %H:%M", time.gmtime())),
             "",
             "## Machine", ""] + ["- " + f for f in machine()]
    parts += ["", "## Goals against this run", "", goals(a.results)]
    for n in names:
        parts += ["", section(a.results, n)]
    ipv6 = ipv6_section(a.results)
    if ipv6:
        parts += ["", ipv6]
    meters = meters_section(a.results)
    if meters:
        parts += ["", meters]
    scale = scale_section(a.results)
    if scale:
        parts += ["", scale]
    fleet = fleet_section(a.results)
    if fleet:
        parts += ["", fleet]
    # bench_fleet_events.py: the lab's timers first, then runs with others (--name fleet_events_*)
    found = glob.glob(os.path.join(a.results, "fleet_events*.md"))
    events = sorted((os.path.basename(p)[:-3] for p in found), key=lambda n: (n != "fleet_events", n))
    for n in events:
        parts += ["", section(a.results, n)]
    with open(a.out, "w") as f:
        f.write("\n".join(parts) + "\n")
    print(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

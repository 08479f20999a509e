#!/usr/bin/env python3
"""XenoFlow over every listener of the paper lab's dual-stack service (root): dnsperf over UDP
and TCP, to the IPv4 VIP and to the VIP6, through the eSwitch (softdoca), side by side.

The paper lab comes up in a private run dir (or --run-dir of a lab already up: left up). For
each listener (IPv4/UDP, IPv4/TCP, IPv6/UDP, IPv6/TCP), one dnsperf per source address of the
load generator fips4 (--sources of them, each its own bucket spread), --seconds at --qps each,
the listeners one after another, --reps rounds interleaved. Per listener: queries sent,
completed, lost, success (completed / sent), the rate reached, and what the planes carried in
that window: bucket-entry packets in the eSwitch, OVS packets on the service's rules, fallback.
TCP: dnsperf keeps one connection per client and sends its queries over it (RFC 7766).

Writes benchmarks/results/transports.csv and .md (--smoke: results/smoke/). Namespaces and
processes are the lab's own, removed by `lab down` (by name and PID).

    sudo .venv/bin/python benchmarks/bench_transports.py [--seconds 8] [--qps 400] [--reps 2]
    sudo .venv/bin/python benchmarks/bench_transports.py --smoke      # ~1 min
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pkgpath  # noqa: E402,F401  (where the package comes from)

ROOT = os.path.dirname(HERE)
TOPOLOGY = os.path.join(ROOT, "topologies", "paper")
QNAME = "who.example.lab"
LISTENERS: Tuple[Tuple[int, str], ...] = ((4, "udp"), (4, "tcp"), (6, "udp"), (6, "tcp"))


def parse_dnsperf(out: str) -> Dict[str, float]:
    """dnsperf's summary: queries sent, completed and lost, and the rate it reached."""
    def num(pattern: str) -> float:
        m = re.search(pattern, out)
        if m is None:
            raise ValueError("dnsperf printed no %r:\n%s" % (pattern, out[-2000:]))
        return float(m.group(1))
    return {"sent": num(r"Queries sent:\s+(\d+)"), "completed": num(r"Queries completed:\s+(\d+)"),
            "lost": num(r"Queries lost:\s+(\d+)"), "qps": num(r"Queries per second:\s+([\d.]+)")}


def run_listener(ctl: Any, family: int, proto: str, sources: List[str], seconds: float, qps: int,
                 data: str) -> Dict[str, float]:
    from xenoflow_ovs.lab import netns as nsh
    svc = ctl.load_cfg().service("dns")
    procs = []
    for src in sources:
        argv = ["dnsperf", "-m", proto, "-s", str(svc.vip_of(family)), "-a", src, "-d", data,
                "-l", str(seconds), "-Q", str(qps), "-c", "1", "-q", "20", "-t", "2"]
        procs.append(nsh.popen_in_ns("fips4", argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    total = {"sent": 0.0, "completed": 0.0, "lost": 0.0, "qps": 0.0}
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 30)
        for k, v in parse_dnsperf(out.decode(errors="replace")).items():
            total[k] += v
    return total


def measure(ctl: Any, args: argparse.Namespace) -> List[Dict[str, Any]]:
    from xenoflow_ovs.lab.labctl import Demo, _delta
    demo = Demo(ctl)
    data = os.path.join(ctl.run_dir, "transports-queries.txt")
    with open(data, "w") as f:
        f.write("%s TXT\n" % QNAME)
    rows = []
    for rep in range(args.reps):
        for family, proto in LISTENERS:
            clients = ctl.topo.clients if family == 4 else ctl.topo.clients6
            sources = list(clients["fips4"])[:args.sources]
            before = demo.settled_counters()
            r = run_listener(ctl, family, proto, sources, args.seconds, args.qps, data)
            d = _delta(before, demo.settled_counters())
            row = {"rep": rep, "listener": "IPv%d/%s" % (family, proto.upper()),
                   "sources": len(sources),
                   "sent": int(r["sent"]), "completed": int(r["completed"]), "lost": int(r["lost"]),
                   "success_pct": 100.0 * r["completed"] / r["sent"] if r["sent"] else 0.0,
                   "qps": r["qps"], "eswitch_pkts": sum(d["eswitch"].values()),
                   "ovs_pkts": sum(d["ovs"].values()), "fallback": d["fallback"]}
            print("  %(listener)s rep %(rep)d: %(sent)d sent, %(completed)d completed "
                  "(%(success_pct).3f %%), %(qps).0f q/s; eSwitch %(eswitch_pkts)d, OVS %(ovs_pkts)d, "
                  "fallback %(fallback)s" % row, flush=True)
            rows.append(row)
    return rows


def summary(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    out = []
    for family, proto in LISTENERS:
        name = "IPv%d/%s" % (family, proto.upper())
        mine = [r for r in rows if r["listener"] == name]
        sent, done = sum(r["sent"] for r in mine), sum(r["completed"] for r in mine)
        out.append({"listener": name, "sent": sent, "completed": done, "lost": sum(r["lost"] for r in mine),
                    "success_pct": 100.0 * done / sent if sent else 0.0,
                    "qps_median": statistics.median(r["qps"] for r in mine),
                    "eswitch_pkts": sum(r["eswitch_pkts"] for r in mine),
                    "ovs_pkts": sum(r["ovs_pkts"] for r in mine),
                    "fallback": sum(r["fallback"] or 0 for r in mine)})
    return out


def write(out_dir: str, rows: List[Dict[str, Any]], summ: List[Dict[str, Any]],
          args: argparse.Namespace) -> str:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "transports.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [
        "## XenoFlow over UDP and TCP, IPv4 and IPv6 (the paper lab, softdoca)", "",
        "dnsperf from %d source addresses of fips4 per listener, %g s at %d queries/s each (%d round(s), "
        "the listeners one after another), to the VIP (198.18.0.53) or the VIP6 (2001:db8::53) of one "
        "dual-stack service (`protocols: [udp, tcp]`). TCP: one connection per dnsperf client, the "
        "queries sent over it. eSwitch: packets on the service's bucket entries in the window; OVS: "
        "packets on its rules (the slow path); fallback as `xenoflow status` counts it."
        % (args.sources, args.seconds, args.qps, args.reps), "",
        "| listener | queries sent | completed | lost | success | q/s (median of rounds) | eSwitch packets "
        "| OVS packets | fallback |",
        "|---|---|---|---|---|---|---|---|---|"]
    for s in summ:
        lines.append("| %s | %d | %d | %d | %.3f %% | %.0f | %d | %d | %d |" % (
            s["listener"], s["sent"], s["completed"], s["lost"], s["success_pct"], s["qps_median"],
            s["eswitch_pkts"], s["ovs_pkts"], s["fallback"]))
    goal = all(s["success_pct"] == 100.0 for s in summ if s["listener"].endswith("TCP"))
    lines += ["", "Goal, XenoFlow over TCP: success 100 %% -- %s." % ("met" if goal else "missed")]
    md = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, "transports.md"), "w") as f:
        f.write(md)
    return md


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--qps", type=int, default=400, help="per source address")
    ap.add_argument("--sources", type=int, default=4)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--run-dir", help="a paper lab already up (left up); default: a private one")
    ap.add_argument("--smoke", action="store_true", help="CI-sized: 3 s, 1 round, into results/smoke/")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    args = ap.parse_args()
    if args.smoke:
        args.seconds, args.reps, args.qps = 3.0, 1, 200
        args.out = os.path.join(args.out, "smoke")
    from xenoflow_ovs.lab.labctl import LabCtl, Progress
    own = args.run_dir is None
    run_dir = args.run_dir or tempfile.mkdtemp(prefix="xb-transports-")
    ctl = LabCtl(argparse.Namespace(action="up", topology=TOPOLOGY, run_dir=run_dir, eswitch="softdoca",
                                    mirror_routes=None, eswitch_mode=None), Progress(out=io.StringIO()))
    try:
        if own:
            t0 = time.monotonic()
            ctl.up()
            print("lab up in %.1f s (%s)" % (time.monotonic() - t0, run_dir), flush=True)
        rows = measure(ctl, args)
    finally:
        if own:
            ctl.down()
    print(write(args.out, rows, summary(rows), args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""softdoca's idle back-off (root): what an idle forwarder costs, and what the adaptive
back-off does to latency, with the old fixed back-off and the new adaptive one side by side.

    client ns  g0 <-> dpu-p0 [eSwitch child: root p0 -> dns basic pipe -> MAC -> p1]
                      dpu-p1 <-> s0  server ns (VIP on lo, UDP echo = DSR reply)
               replies: root p1, dst 198.18.0.10 -> p0           (bench_glue_forward's lab)

Variants (one eSwitch child, switched between them, repetitions interleaved):
  fixed:    spin 50 us after the last packet, then 20 us sleeps for ever (idle_max_us = 20,
            the back-off before the ceiling existed);
  adaptive: the same, but after idle_max_us (1000) without a packet the sleep doubles up to
            1000 us (the default).
1. idle CPU: the child's utime + stime from /proc/<pid>/stat over --idle-seconds with no
   traffic, in % of one core (median of --reps windows), and the forwarder's wake-ups/s;
2. RTT under steady load: sequential DNS queries (tools/rtt_probe.py) while tools/pacer.c
   sends --load-pps of UDP to a port no entry claims (a default miss: rx, lookup, tx to the
   representor, where the kernel drops it); the variants alternate in --blocks blocks, RTTs
   pooled per variant: median and p99;
3. first packet after idle: one query after --wake-gap s (>= 2) of silence, the variants
   alternating, --wake-tries each; its RTT (median), and the adaptive variant's extra.
The vCPUs are left in their normal idle states (no /dev/cpu_dma_latency hold: an idle
forwarder on a DPU host does not get one either).  Writes benchmarks/results/idle.csv and .md
(--smoke: results/smoke/).  Namespaces are removed by exact name, processes by PID.

    sudo .venv/bin/python benchmarks/bench_idle.py [--reps 2] [--idle-seconds 10] [--wake-tries 10]
    sudo .venv/bin/python benchmarks/bench_idle.py --smoke      # ~1 min
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
# the lab, the echo server, the child's plumbing; it imports pkgpath (where the package comes from)
import bench_glue_forward as bgf  # noqa: E402

VARIANTS = (("fixed", 20), ("adaptive", 1000))   # name, idle_max_us (sleep_us 20, spin_us 50)
LOAD_PORT = 54                                   # no entry claims it: a default miss to rep-p0


# --- the eSwitch process (--child) --------------------------------------------------------

def child(prefix: str) -> int:
    from dpdk_glue import ESwitch, GlueMatch, PortSpec, default_eal_args, softdoca_ctl

    ports = [PortSpec("p0", 0, iface="dpu-p0", rep_iface="rep-p0", pair="p1"),
             PortSpec("p1", 1, iface="dpu-p1", rep_iface="rep-p1", pair="p0")]
    with ESwitch(default_eal_args(prefix), ports) as sw:
        r0, r1 = sw.create_root_pipe("p0"), sw.create_root_pipe("p1")
        svc = sw.create_basic_pipe("p0", name="dns", mask=GlueMatch(ipv4_src=1), fwd_port="p1", nr_entries=2)
        m = GlueMatch(eth_type=0x0800, ipv4_dst=bgf.VIP, ip_proto=17, l4_dst=53)
        sw.add_entries([r0.entry(m, priority=10, fwd_pipe=svc),
                        r1.entry(GlueMatch(eth_type=0x0800, ipv4_dst=bgf.CLIENT), priority=10, fwd_port="p0"),
                        svc.entry(GlueMatch(ipv4_src=0), bgf.SERVER_MAC),
                        svc.entry(GlueMatch(ipv4_src=1), bgf.SERVER_MAC)])
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            cmd = line.split()
            if not cmd:
                continue
            if cmd[0] == "poll":  # poll SPIN_US SLEEP_US IDLE_MAX_US
                softdoca_ctl.set_busy_poll(sw, False, int(cmd[1]), int(cmd[2]), int(cmd[3]))
            elif cmd[0] == "quit":
                break
            print(json.dumps({"fwd": softdoca_ctl.forwarder_stats(sw), "p0": sw.port_stats("p0")}),
                  flush=True)
    return 0


# --- measurements --------------------------------------------------------------------------

def _cpu_ticks(pid: int) -> int:
    """utime + stime of every thread of pid (the forwarder's included), in clock ticks."""
    with open("/proc/%d/stat" % pid) as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def _set(cmd: bgf.Cmd, idle_max: int) -> Dict:
    return cmd("poll 50 20 %d" % idle_max)


def _idle(cmd: bgf.Cmd, pid: int, idle_max: int, seconds: float) -> Dict:
    _set(cmd, idle_max)
    time.sleep(1.0)  # past the spin, the hold and the doubling
    hz = os.sysconf("SC_CLK_TCK")
    before, c0, t0 = cmd("stats")["fwd"], _cpu_ticks(pid), time.monotonic()
    time.sleep(seconds)
    c1, t1, after = _cpu_ticks(pid), time.monotonic(), cmd("stats")["fwd"]
    el = t1 - t0
    return {"cpu_pct": 100.0 * (c1 - c0) / hz / el,
            "wakeups_per_s": (after["sleeps"] - before["sleeps"]) / el, "sleep_us": after["sleep_us"]}


def _probe(nl, g: str, probe: str, count: int, warmup: int, gap: float = 0.0) -> Dict:
    """One rtt_probe run; its summary plus every RTT (us) in "samples"."""
    with tempfile.NamedTemporaryFile(prefix="xf-idle-rtt-", suffix=".txt") as fh:
        argv = [sys.executable, probe, "--server", bgf.VIP, "--port", "53", "--src", bgf.CLIENT,
                "--count", str(count), "--warmup", str(warmup), "--timeout", "0.5", "--samples", fh.name]
        if gap:
            argv += ["--gap", str(gap)]
        p = nl.run_in_ns(g, argv, timeout=120 + count * (gap + 0.6))
        out = json.loads(p.stdout)
        out["samples"] = [float(x) for x in open(fh.name).read().split()]
    return out


def _pct(vals: List[float], p: float):
    """Nearest-rank percentile, as tools/rtt_probe.py computes it."""
    if not vals:
        return ""
    v = sorted(vals)
    return round(v[max(1, math.ceil(p / 100.0 * len(v))) - 1], 1)


# --- orchestration -------------------------------------------------------------------------

def _row(test: str, variant: str, **kw) -> Dict:
    row = {"test": test, "variant": variant, "cpu_pct": "", "wakeups_per_s": "", "median_us": "",
           "p99_us": "", "max_us": "", "lost": "", "n": ""}
    row.update(kw)
    return row


def _med(vals: List[float], nd: int = 1):
    vals = [v for v in vals if v is not None]
    if not vals:
        return ""
    m = statistics.median(vals)
    return round(m, nd) if nd else int(round(m))


def measure(cmd: bgf.Cmd, pid: int, nl, g: str, probe: str, pacer: str, args) -> List[Dict]:
    """The variants alternate in short blocks (the machine's noise drifts within seconds);
    RTTs are pooled per variant over every block."""
    idle: Dict[str, List[Dict]] = {v: [] for v, _ in VARIANTS}
    for rep in range(args.reps):
        for name, imax in VARIANTS:
            r = _idle(cmd, pid, imax, args.idle_seconds)
            idle[name].append(r)
            print("rep %d %-8s idle: %.2f %% of a core, %.0f wake-ups/s, sleep %d us" % (
                rep, name, r["cpu_pct"], r["wakeups_per_s"], r["sleep_us"]), flush=True)
    loaded: Dict[str, List[float]] = {v: [] for v, _ in VARIANTS}
    lost = {test: {v: 0 for v, _ in VARIANTS} for test in ("rtt_load", "first_packet")}
    per_block = max(50, args.rtt // args.blocks)
    load = nl.popen_in_ns(g, [pacer, "--dst", bgf.VIP, "--port", str(LOAD_PORT), "--rate", str(args.load_pps),
                              "--duration", "3600", "--size", "18", "--src", bgf.CLIENT])
    try:
        time.sleep(0.3)
        for b in range(args.blocks):
            for name, imax in VARIANTS:
                _set(cmd, imax)
                r = _probe(nl, g, probe, per_block, 20)
                loaded[name] += r["samples"]
                lost["rtt_load"][name] += r["lost"]
                print("block %d %-8s RTT under %d pps: median %s us, p99 %s us, lost %d" % (
                    b, name, args.load_pps, r.get("median_us"), r.get("p99_us"), r["lost"]), flush=True)
    finally:
        load.kill()  # by its PID (ip netns exec execs the pacer)
        load.wait(timeout=10)
    wake: Dict[str, List[float]] = {v: [] for v, _ in VARIANTS}
    for i in range(args.wake_tries):
        for name, imax in VARIANTS:
            _set(cmd, imax)
            time.sleep(args.wake_gap)
            r = _probe(nl, g, probe, 1, 0)
            wake[name] += r["samples"]
            lost["first_packet"][name] += r["lost"]
            print("try %d %-8s first packet after %g s idle: %s us" % (
                i, name, args.wake_gap, r.get("median_us")), flush=True)
    rows = []
    for name, _ in VARIANTS:
        rows.append(_row("idle_cpu", name, cpu_pct=_med([r["cpu_pct"] for r in idle[name]], 2),
                         wakeups_per_s=_med([r["wakeups_per_s"] for r in idle[name]], 0), n=len(idle[name])))
    for test, res in (("rtt_load", loaded), ("first_packet", wake)):
        for name, _ in VARIANTS:
            vals = res[name]
            rows.append(_row(test, name, median_us=_med(vals), p99_us=_pct(vals, 99),
                             max_us=round(max(vals), 1) if vals else "", n=len(vals), lost=lost[test][name]))
    return rows


def report(rows: List[Dict], args) -> None:
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "idle.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    by = {(r["test"], r["variant"]): r for r in rows}
    md = ["## softdoca's idle back-off: fixed vs adaptive", "",
          "`python benchmarks/bench_idle.py%s` (%s, %d vCPUs): one eSwitch child on af_packet vdevs "
          "(veths), spin 50 us after the last packet, then 20 us sleeps; fixed: for ever (idle_max_us = 20), "
          "adaptive: after 1000 us without a packet the sleep doubles up to 1000 us. Idle CPU: median of %d "
          "windows per variant; RTTs pooled over alternating blocks (two forwarder traversals per round "
          "trip)." % (
              " --smoke" if args.smoke else "", time.strftime("%Y-%m-%d"), os.cpu_count() or 0, args.reps),
          "",
          "| test | variant | % of a core | wake-ups/s | median RTT us | p99 RTT us | max us | lost | n |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        md.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["test"], r["variant"], r["cpu_pct"], r["wakeups_per_s"], r["median_us"], r["p99_us"],
            r["max_us"], r["lost"], r["n"]))
    fw, ad = by[("first_packet", "fixed")], by[("first_packet", "adaptive")]
    extra = (ad["median_us"] - fw["median_us"]) if fw["median_us"] != "" and ad["median_us"] != "" else ""
    md += ["",
           "idle_cpu: the child's CPU (every thread) over %g s without traffic. rtt_load: the probe while "
           "%d pps of default misses pass the forwarder (gaps far below the ceiling: the sleep never grows). "
           "first_packet: one query after %g s of silence each; the adaptive back-off adds %s us to its "
           "median RTT (its sleep is 1000 us long when the query comes: on average half of it)." % (
               args.idle_seconds, args.load_pps, args.wake_gap,
               "%.0f" % extra if extra != "" else "?"), ""]
    with open(os.path.join(args.out, "idle.md"), "w") as fh:
        fh.write("\n".join(md))
    print("\n".join(md))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", metavar="PREFIX", help=argparse.SUPPRESS)
    ap.add_argument("--reps", type=int, default=3, help="idle CPU windows per variant")
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    ap.add_argument("--rtt", type=int, default=4000, help="queries per variant under load (all blocks)")
    ap.add_argument("--blocks", type=int, default=8, help="alternating blocks of the RTT-under-load test")
    ap.add_argument("--load-pps", type=int, default=5000, help="background load (pps) during the RTT runs")
    ap.add_argument("--wake-gap", type=float, default=2.0, help="s of silence before each first packet")
    ap.add_argument("--wake-tries", type=int, default=10, help="first packets per variant (all repetitions)")
    ap.add_argument("--smoke", action="store_true", help="CI-sized (~1 min), into results/smoke/")
    ap.add_argument("--out", default=None, help="default benchmarks/results (results/smoke with --smoke)")
    args = ap.parse_args()
    if args.child:
        return child(args.child)
    if args.smoke:
        args.reps, args.idle_seconds, args.rtt, args.blocks, args.wake_tries = 1, 3.0, 400, 2, 3
    args.wake_gap = max(args.wake_gap, 2.0)
    args.out = args.out or os.path.join(HERE, "results", "smoke" if args.smoke else "")
    if os.geteuid() != 0:
        raise SystemExit("bench_idle.py needs root (namespaces, veths)")

    from xenoflow_ovs.lab import netns as nl
    from xenoflow_ovs.lab.labctl import _subprocess_env

    tag = "xi" + secrets.token_hex(2)
    g, d, s = tag + "-g", tag + "-d", tag + "-s"
    procs: List[subprocess.Popen] = []
    tmp = tempfile.mkdtemp(prefix="xf-bench-idle-")
    pacer = os.path.join(tmp, "pacer")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", pacer, os.path.join(HERE, "tools", "pacer.c")], check=True)
    probe = os.path.join(HERE, "tools", "rtt_probe.py")
    env = _subprocess_env()
    try:
        bgf._lab(nl, g, d, s)
        ep = bgf._popen(nl.ns_argv(s, [sys.executable, bgf.__file__, "--echo", bgf.VIP, "53"]), env)
        procs.append(ep)
        if ep.stdout.readline().strip() != "READY":
            raise RuntimeError("echo server failed: " + ep.stderr.read()[-2000:])
        sw = bgf._popen(nl.ns_argv(d, [sys.executable, __file__, "--child", tag]), env)
        procs.append(sw)
        if not json.loads(sw.stdout.readline() or "{}").get("ready"):
            raise RuntimeError("eSwitch child failed: " + sw.stderr.read()[-3000:])
        rows = measure(bgf.Cmd(sw), sw.pid, nl, g, probe, pacer, args)
        sw.stdin.write("quit\n")
        sw.stdin.flush()
        sw.wait(timeout=30)
    finally:
        bgf._stop_all(procs)
        for ns in (g, d, s):
            nl.delete_ns(ns)
        subprocess.run(["rm", "-rf", tmp], check=False)
    report(rows, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

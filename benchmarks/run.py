#!/usr/bin/env python3
"""Run the benchmark suites: one command for all, one per suite.

    python benchmarks/run.py all                  # every suite, full size
    python benchmarks/run.py latency              # one suite
    python benchmarks/run.py all --smoke          # ~1 minute per suite (CI)
    python benchmarks/run.py throughput --contenders xdp,direct --lab minimal

Suites: throughput (RQ2/RQ3), latency (RQ4), latency_load (RQ5), control.
Each writes <out>/<suite>.csv, .png, .md and .json (machine, parameters,
contenders that could not run and why); `python benchmarks/report.py` then
assembles benchmarks/REPORT.md. --smoke writes to benchmarks/results/smoke/
unless --out is given.

Labs: --lab minimal (default) builds benchmarks/lab_min.py's xb-* namespaces
for the run and removes them at the end; --lab paper uses topologies/paper
through `xenoflow lab up|down` (the XenoFlow contenders need it).
Root is required (namespaces, XDP).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
import traceback
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))

import contenders as C  # noqa: E402
import measure as M  # noqa: E402
from lab_min import MinLab, minimal_spec, paper_spec  # noqa: E402
from report import fallback_blocks, read_csv  # noqa: E402


def plotting(fn):
    """Plots need matplotlib (the `bench` extra); without it the suite still writes
    its CSV and Markdown and says the plot is missing."""
    def wrap(ctx, *a, **kw):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            log("matplotlib missing (pip install -e .[bench]): no plot")
            return
        return fn(ctx, *a, **kw)
    return wrap

SETTLE_S = 0.5       # after a contender comes up (daemons start, first flows/upcalls)

SUITES = ("throughput", "latency", "latency_load", "control")
DEFAULT_ORDER = ["xenoflow-softdoca", "xenoflow-ovs", "softdoca", "softdoca-busy",
                 "dpdk-loop", "ovs-netdev", "xdp",
                 "dnsdist", "direct"]
PLOT_ORDER = DEFAULT_ORDER + ["direct@paper"]
COLORS = {"xenoflow-softdoca": "#1f77b4", "softdoca": "#9467bd", "softdoca-busy": "#bcbd22",
          "xenoflow-ovs": "#17becf", "dpdk-loop": "#7f7f7f", "ovs-netdev": "#ff7f0e", "xdp": "#2ca02c",
          "dnsdist": "#d62728", "direct": "#000000", "direct@paper": "#8c564b"}


def log(msg: str) -> None:
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


class Ctx:
    """One suite's run. `labs`: {"minimal": spec, "paper": spec} (one or both). The
    XenoFlow contenders run on the paper lab; the others on the minimal lab when it is
    there (a DPU namespace no eswitchd shares), and "direct" on each lab, so every
    contender's added latency is taken against the floor of its own lab."""

    def __init__(self, args, labs: Dict, out: str, session=None) -> None:
        self.args = args
        self.labs = labs
        self.lab = labs.get("minimal") or labs["paper"]
        self.smoke = args.smoke
        self.out = out
        self.contenders: List[C.Contender] = []
        self.unavailable: Dict[str, str] = {}
        self.session = session       # contenders.PaperSession on the paper lab
        self._recv: Dict[str, M.Receivers] = {}

    def recv(self, lab) -> M.Receivers:
        """The receivers (xdp_sink on every backend) of `lab`, attached on first use."""
        r = self._recv.get(lab.kind)
        if r is None:
            r = self._recv[lab.kind] = M.Receivers(lab).attach()
        return r

    def detach_receivers(self) -> None:
        for r in self._recv.values():
            try:
                r.detach()
            except Exception:
                pass
        self._recv = {}

    def pick(self, names: List[str]) -> None:
        labs = self.labs
        for n in names:
            if n.startswith("xenoflow"):
                kinds = ["paper" if "paper" in labs else "minimal"]
            elif n == "direct":
                kinds = [k for k in ("minimal", "paper") if k in labs]
            else:
                kinds = ["minimal" if "minimal" in labs else "paper"]
            for k in kinds:
                c = C.BY_NAME[n](labs[k])
                if n == "direct" and k == "paper" and "minimal" in labs:
                    c.name = "direct@paper"
                try:
                    c.check()
                    self.contenders.append(c)
                except C.NotAvailable as e:
                    self.unavailable[c.name] = str(e)
                    log("%s: %s" % (c.name, e))

    @property
    def lab_kinds(self) -> str:
        return " + ".join(sorted(self.labs))

    def path(self, suite: str, ext: str) -> str:
        return os.path.join(self.out, "%s.%s" % (suite, ext))


def bring_up(ctx: "Ctx", c, backends: int = 2) -> bool:
    """c.up(); False (reason recorded) when it fails or is not available."""
    try:
        if c.lab.kind == "paper" and ctx.session is not None:
            if ctx.session.ensure(c.wiring or ctx.session.wiring or "softdoca"):
                ctx._recv.pop("paper", None)     # new namespaces: sinks re-attach on use
        c.up(backends)
    except C.NotAvailable as e:
        log("%s (%d backends): %s" % (c.name, backends, e))
        c.down()
        return False
    except Exception as e:
        ctx.unavailable[c.name] = "up failed: %s" % e
        log(traceback.format_exc())
        c.down()
        return False
    time.sleep(SETTLE_S)
    return True


def failed(ctx: "Ctx", c, e: Exception) -> None:
    """A contender failed mid-measurement: say so in the results, go on with the others."""
    log("%s failed: %s" % (c.name, traceback.format_exc()))
    ctx.unavailable[c.name] = "failed during the run (%s: %s)" % (type(e).__name__,
                                                                 str(e).strip()[-200:])


def write_csv(path: str, rows: List[Dict]) -> None:
    if not rows:
        open(path, "w").close()
        return
    keys: List[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow(r)


def write_meta(ctx: Ctx, suite: str, params: Dict, t0: float) -> None:
    meta = {"suite": suite, "smoke": ctx.smoke, "lab": ctx.lab_kinds, "machine": M.machine(),
            "params": dict(params, idle_poll=M.IDLE_POLL),
            "duration_s": round(time.time() - t0, 1),
            "contenders": {c.name: c.description.replace("%s", "") for c in ctx.contenders},
            "unavailable": ctx.unavailable}
    with open(ctx.path(suite, "json"), "w") as f:
        json.dump(meta, f, indent=1)


def md_table(header: List[str], rows: List[List]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        out.append("| " + " | ".join(fmt(x) for x in r) + " |")
    return "\n".join(out)


def fmt(x) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        if abs(x) >= 100:
            return "%.0f" % x
        return "%.1f" % x if abs(x) >= 1 else "%.3g" % x
    return str(x)


def unavailable_md(ctx: Ctx) -> str:
    if not ctx.unavailable:
        return ""
    return "\nNot measured, or not completely, in this run:\n\n" + "\n".join(
        "- **%s**: %s" % (k, v) for k, v in ctx.unavailable.items()) + "\n"


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as p
    p.rcParams.update({"font.family": "serif", "font.size": 9, "axes.grid": True,
                       "grid.alpha": 0.3, "figure.dpi": 120})
    return p


# ----------------------------------------------------------------------------- throughput

def suite_throughput(ctx: Ctx) -> None:
    t0 = time.time()
    if ctx.smoke:
        sizes, rates, dur, reps = [22, 512], [20000, 100000, 0], 1.0, 1
    else:
        sizes = [22, 23, 64, 512, 1024]
        rates = [10000, 25000, 50000, 75000, 100000, 150000, 200000, 300000, 0]
        dur, reps = 1.0, 2      # 1 s steps: >= 10k packets each; keeps `make bench` under 30 min
    rows: List[Dict] = []
    for rep in range(reps):
        order = ctx.contenders[rep % max(1, len(ctx.contenders)):] + \
            ctx.contenders[:rep % max(1, len(ctx.contenders))]
        for c in order:
            my_sizes = sizes if c.raw_udp else [33]     # dnsdist: real DNS queries only
            if not bring_up(ctx, c, 2):
                continue
            fb0 = c.fallback()
            try:
                dst, port = c.target()
                srcs = c.lab.loadgen_srcs if not c.name.startswith("direct") else None
                for size in my_sizes:
                    for rate in rates:
                        r = step(ctx, c, dst, port, rate, dur, size, srcs)
                        r.update(rep=rep, lab=c.lab.kind)
                        rows.append(r)
                        log("tput %-12s size=%4d target=%7d sent=%9.0f pps delivered=%9.0f pps "
                            "loss=%.4f" % (c.name, size, rate, r["offered_pps"],
                                           r["delivered_pps"], r["loss"]))
                        if rate and r["offered_pps"] < 0.85 * rate:
                            break          # the sender is saturated: no higher step
                        if r["loss"] > 0.3:
                            break          # well past this contender's maximum
                fb = c.fallback_since(fb0)
                for r in rows:
                    if r["contender"] == c.name and r["rep"] == rep:
                        r["fallback"] = fb
            finally:
                c.down()
    write_csv(ctx.path("throughput", "csv"), rows)
    summary = tput_summary(rows)
    plot_throughput(ctx, rows, summary)
    write_tput_md(ctx, rows, summary, dict(sizes=sizes, rates=rates, step_s=dur, reps=reps))
    write_meta(ctx, "throughput", dict(sizes=sizes, rates=rates, step_s=dur, reps=reps), t0)


def step(ctx: Ctx, c, dst, port, rate, dur, size, srcs) -> Dict:
    lab = c.lab
    if c.raw_udp:
        before = ctx.recv(lab).read()
        res = M.run_pacer(lab.loadgen_ns, dst, port, rate, dur, size=size, srcs=srcs)
        time.sleep(0.2)                        # let queues drain
        per = M.delta(ctx.recv(lab).read(), before)
    else:
        before = {b.name: M.rx_packets(b.ns, b.dev) for b in lab.backends}
        res = M.run_pacer(lab.loadgen_ns, dst, port, rate, dur, size=size, srcs=srcs, dns=True)
        time.sleep(0.2)
        after = {b.name: M.rx_packets(b.ns, b.dev) for b in lab.backends}
        per = M.delta(after, before)
    sent = res["sent"]
    delivered = sum(per.values())
    if not c.raw_udp:
        delivered = min(delivered, sent)       # rx counters also see health checks, ARP
    el = res["elapsed_s"]
    return {"suite": "throughput", "contender": c.name, "payload": res["payload"],
            "frame": res["payload"] + 42, "target_pps": rate, "sent": sent,
            "offered_pps": sent / el, "delivered": delivered, "delivered_pps": delivered / el,
            "loss": max(0.0, 1.0 - delivered / sent) if sent else 0.0,
            "per_backend": json.dumps(per), "fallback": None}


def tput_summary(rows: List[Dict]) -> Dict:
    """Per (contender, payload): loss-free max (highest offered rate of a step with
    zero loss, all lower steps loss-free too) and max delivered, median over reps."""
    by: Dict = {}
    for r in rows:
        by.setdefault((r["contender"], r["payload"], r["rep"]), []).append(r)
    per: Dict = {}
    for (c, p, rep), rs in by.items():
        rs = sorted(rs, key=lambda r: r["offered_pps"])
        lf = 0.0
        for r in rs:
            if r["loss"] > 0:
                break
            lf = r["offered_pps"]
        per.setdefault((c, p), []).append((lf, max(r["delivered_pps"] for r in rs),
                                           max(r["offered_pps"] for r in rs)))
    return {k: {"loss_free_pps": med([v[0] for v in vs]), "max_delivered_pps": med([v[1] for v in vs]),
                "max_offered_pps": med([v[2] for v in vs]), "reps": len(vs)}
            for k, vs in per.items()}


@plotting
def plot_throughput(ctx, rows, summary) -> None:
    p = plt()
    sizes = sorted({r["payload"] for r in rows})
    if not sizes:
        return
    n = len(sizes) + 1
    cols = min(3, n)
    nrows = (n + cols - 1) // cols
    fig, axes = p.subplots(nrows, cols, figsize=(4 * cols, 3.2 * nrows), squeeze=False)
    axl = [a for row in axes for a in row]
    names = [c for c in PLOT_ORDER if any(r["contender"] == c for r in rows)]
    for ax, size in zip(axl, sizes):
        for c in names:
            rs = [r for r in rows if r["contender"] == c and r["payload"] == size]
            targets = sorted({r["target_pps"] for r in rs}, key=lambda t: t or 1e12)
            pts = [(med([r["offered_pps"] for r in rs if r["target_pps"] == t]),
                    med([r["delivered_pps"] for r in rs if r["target_pps"] == t])) for t in targets]
            if pts:             # one point per rate step: medians over repetitions
                ax.plot([x / 1e3 for x, _ in pts], [y / 1e3 for _, y in pts],
                        "o-", ms=3, label=c, color=COLORS.get(c))
        lim = max([r["offered_pps"] for r in rows if r["payload"] == size] or [1]) / 1e3
        ax.plot([0, lim], [0, lim], ":", color="grey", lw=0.8)
        ax.set_title("UDP payload %d B" % size)
        ax.set_xlabel("offered (kpps)")
        ax.set_ylabel("delivered (kpps)")
    ax = axl[len(sizes)]
    width = 0.8 / max(1, len(names))
    for i, c in enumerate(names):
        xs = [j + i * width for j, s in enumerate(sizes)]
        ys = [(summary.get((c, s)) or {}).get("loss_free_pps") or 0 for s in sizes]
        ax.bar(xs, [y / 1e3 for y in ys], width, label=c, color=COLORS.get(c))
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(sizes))])
    ax.set_xticklabels([str(s) for s in sizes])
    ax.set_xlabel("UDP payload (B)")
    ax.set_ylabel("loss-free max (kpps)")
    ax.set_title("loss-free maximum")
    axl[0].legend(fontsize=7)
    for ax in axl[len(sizes) + 1:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(ctx.path("throughput", "png"))
    p.close(fig)


def write_tput_md(ctx, rows, summary, params) -> None:
    names = [c for c in PLOT_ORDER if any(k[0] == c for k in summary)]
    sizes = sorted({k[1] for k in summary})
    trs = []
    for c in names:
        for s in sizes:
            v = summary.get((c, s))
            if v:
                trs.append([c, s, v["loss_free_pps"] / 1e3, v["max_delivered_pps"] / 1e3,
                            v["max_offered_pps"] / 1e3, v["reps"]])
    fb = list(fallback_blocks(rows).values())
    text = """## Throughput and loss (RQ2/RQ3)

Method: the C sendmmsg pacer (benchmarks/tools/pacer.c) in the load generator's namespace
sends UDP to the contender's target at stepped rates (targets {rates} pps, 0 = as fast as it
can; {step_s} s per step; a contender's steps stop once the sender falls 15 % short of the
target or loss passes 30 %), rotating over {nsrc} source addresses so every bucket gets traffic. Delivered
packets are counted at the receivers: xdp_sink (benchmarks/xdp_lb/xdp_sink.c) on each
backend's interface counts and drops the marked packets; dnsdist, a DNS proxy, gets real
DNS queries (33-B payload) and is counted by the backends' interface rx counters.
Loss = 1 - delivered/sent. Loss-free maximum = the highest offered rate of a step with zero
loss when every lower step was loss-free too. {reps} repetition(s), contenders interleaved;
medians over repetitions. Lab: {lab}. On this 2-vCPU VM the kernel forwards a veth packet
in the sender's own softirq, so for the kernel paths (direct, xdp) the sender's core also
does the forwarding and the maxima are whole-box figures.

{table}

{fallback}{unavail}
![throughput](throughput.png)
""".format(rates=params["rates"], step_s=params["step_s"], reps=params["reps"], lab=ctx.lab_kinds,
           nsrc=len(ctx.lab.loadgen_srcs),
           table=md_table(["contender", "payload (B)", "loss-free max (kpps)",
                           "max delivered (kpps)", "max offered (kpps)", "reps"], trs),
           fallback=("Fallback packets during the suite (XenoFlow): %s\n" % sum(fb)) if fb else "",
           unavail=unavailable_md(ctx))
    open(ctx.path("throughput", "md"), "w").write(text)


# ----------------------------------------------------------------------------- latency

def suite_latency(ctx: Ctx) -> None:
    t0 = time.time()
    reps, count = (3, 2000) if ctx.smoke else (5, 2000)
    rows, samples = [], {}
    sdir = os.path.join(ctx.out, "samples")
    os.makedirs(sdir, exist_ok=True)
    for rep in range(reps):
        k = rep % max(1, len(ctx.contenders))
        for c in ctx.contenders[k:] + ctx.contenders[:k]:
            if not bring_up(ctx, c, 2):
                continue
            try:
                fb0 = c.fallback()
                dst, port = c.target()
                src = c.lab.srcs_of_parity(c.lab.client_srcs, 0)[0]  # even: backend 1 everywhere
                sp = os.path.join(sdir, "latency-%s-%d.txt" % (c.name, rep))
                r = M.rtt_probe(c.lab.client_ns, dst, port, src, count=count, samples=sp)
                fb = c.fallback_since(fb0)
            except Exception as e:
                failed(ctx, c, e)
                continue
            finally:
                c.down()
            samples.setdefault(c.name, []).extend(float(x) for x in open(sp))
            row = {"suite": "latency", "rep": rep, "contender": c.name, "lab": c.lab.kind,
                   "src": src, "target": dst,
                   "n": r["n"], "lost": r["lost"], "median_us": r.get("median_us"),
                   "p90_us": r.get("p90_us"), "p99_us": r.get("p99_us"), "min_us": r.get("min_us"),
                   "max_us": r.get("max_us"), "mean_us": r.get("mean_us"),
                   "fallback": fb}
            rows.append(row)
            log("lat rep %d %-12s median %.1f us p99 %.1f us lost %d" % (
                rep, c.name, row["median_us"] or -1, row["p99_us"] or -1, row["lost"]))
    write_csv(ctx.path("latency", "csv"), rows)
    summ = latency_summary(rows)
    plot_latency(ctx, samples, summ)
    names = [c for c in PLOT_ORDER if c in summ]
    trs = [[c, summ[c]["median_us"], summ[c]["p99_us"], summ[c]["added_us"],
            summ[c]["added_p99_us"], summ[c]["lost"], summ[c]["reps"]] for c in names]
    text = """## Added latency (RQ4)

Method: benchmarks/tools/rtt_probe.py in the client namespace sends one DNS query
(www.example.lab A) at a time to the contender's target from an even source address
({src}, bucket 0: backend 1 for every balancer; "direct" asks backend 1 itself) and waits
for the answer (0.5 s timeout = lost); 50 warm-up queries, then {count} timed ones per
repetition; {reps} repetitions, contenders interleaved (each brought up and torn down per
repetition, the order rotated). Per contender: the median over repetitions of the
per-repetition median and p99 (nearest rank); added latency = the median over repetitions
of (contender median - direct median of the same repetition). Lab: {lab}.

{table}
{unavail}
![latency](latency.png)
""".format(src="the lab's .12", count=count, reps=reps, lab=ctx.lab_kinds,
           unavail=unavailable_md(ctx),
           table=md_table(["contender", "median RTT (µs)", "p99 RTT (µs)", "added median (µs)",
                           "added p99 (µs)", "lost", "reps"], trs))
    open(ctx.path("latency", "md"), "w").write(text)
    write_meta(ctx, "latency", dict(reps=reps, count=count), t0)


def latency_summary(rows: List[Dict]) -> Dict:
    """Medians over repetitions; added = contender - the direct floor of the same lab
    in the same repetition."""
    direct = {(r["lab"], r["rep"]): r for r in rows if r["contender"].startswith("direct")}
    out = {}
    for c in {r["contender"] for r in rows}:
        rs = [r for r in rows if r["contender"] == c]

        def diff(key):
            return [r[key] - direct[(r["lab"], r["rep"])][key] for r in rs
                    if (r["lab"], r["rep"]) in direct and r[key] is not None
                    and direct[(r["lab"], r["rep"])][key] is not None]
        add, addp = diff("median_us"), diff("p99_us")
        out[c] = {"median_us": med([r["median_us"] for r in rs]),
                  "p99_us": med([r["p99_us"] for r in rs]),
                  "added_us": med(add), "added_p99_us": med(addp),
                  "lost": sum(r["lost"] for r in rs), "reps": len(rs)}
    return out


@plotting
def plot_latency(ctx, samples, summ) -> None:
    p = plt()
    fig, (a1, a2) = p.subplots(1, 2, figsize=(9, 3.4))
    names = [c for c in PLOT_ORDER if c in samples]
    for c in names:
        s = sorted(samples[c])
        if s:
            a1.plot(s, [(i + 1) / len(s) for i in range(len(s))], label=c, color=COLORS.get(c))
    a1.set_xscale("log")
    a1.set_xlabel("DNS RTT (µs, log)")
    a1.set_ylabel("CDF")
    a1.set_title("RTT distribution (all repetitions)")
    a1.legend(fontsize=7)
    xs = range(len(names))
    a2.bar(xs, [summ[c]["median_us"] or 0 for c in names],
           color=[COLORS.get(c) for c in names], label="median")
    a2.scatter(xs, [summ[c]["p99_us"] or 0 for c in names], marker="_", s=200, color="k",
               label="p99", zorder=3)
    a2.set_xticks(list(xs))
    a2.set_xticklabels(names, rotation=20, fontsize=7)
    a2.set_ylabel("RTT (µs, log)")
    a2.set_yscale("log")
    a2.set_title("median (bars) and p99 (ticks)")
    a2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(ctx.path("latency", "png"))
    p.close(fig)


# ----------------------------------------------------------------------------- latency under load

DISTS = {"single": None, "50/50": None, "100/0": 0, "0/100": 1}


def _load_block(ctx: Ctx, c, rep: int, dist: str, rates: List[int], src: str, bsrcs,
                count: int, bg_dur: float, rows: List[Dict]) -> None:
    """One contender and load distribution, brought up: the probe at every background
    rate (rows appended as they are measured), then the block's fallback on its rows."""
    lab = c.lab
    first = len(rows)
    fb0 = c.fallback()
    dst, port = c.target()
    for rate in rates:
        before = ctx.recv(lab).read()
        pacer = None
        if rate:
            pacer = M.start_pacer(lab.loadgen_ns, dst, port, rate, bg_dur, size=22,
                                  srcs=None if c.name.startswith("direct") else bsrcs)
            time.sleep(0.3)
        r = M.rtt_probe(lab.client_ns, dst, port, src, count=count)
        bg = M.finish_pacer(pacer) if pacer else {"sent": 0, "achieved_pps": 0}
        time.sleep(0.1)
        per = M.delta(ctx.recv(lab).read(), before)
        rows.append({"suite": "latency_load", "rep": rep, "contender": c.name,
                     "lab": lab.kind,
                     "dist": dist, "bg_target_pps": rate,
                     "bg_offered_pps": bg["achieved_pps"], "bg_sent": bg["sent"],
                     "bg_delivered": sum(per.values()),
                     "per_backend": json.dumps(per),
                     "n": r["n"], "lost": r["lost"],
                     "median_us": r.get("median_us"), "p90_us": r.get("p90_us"),
                     "p99_us": r.get("p99_us"), "fallback": None})
        log("load %-12s %-6s bg %6d pps: median %.1f us p99 %.1f us lost %d" % (
            c.name, dist, rate, r.get("median_us") or -1, r.get("p99_us") or -1,
            r["lost"]))
    fb = c.fallback_since(fb0)
    for row in rows[first:]:
        row["fallback"] = fb


def suite_latency_load(ctx: Ctx) -> None:
    t0 = time.time()
    if ctx.smoke:
        rates, dists, count, reps = [0, 50000], ["single", "50/50"], 1000, 1
    else:
        rates, dists, count, reps = [0, 25000, 50000, 100000], list(DISTS), 2000, 1
    bg_dur = 1.5 + count * 0.0006
    rows = []
    for rep in range(reps):
        for c in ctx.contenders:
            for dist in dists:
                if c.name.startswith("direct") and dist != "single":
                    continue
                lab = c.lab
                src = lab.srcs_of_parity(lab.client_srcs, 0)[0]
                nb = 1 if dist == "single" else 2
                if dist in ("single", "50/50"):
                    bsrcs = lab.loadgen_srcs
                else:
                    bsrcs = lab.srcs_of_parity(lab.loadgen_srcs, DISTS[dist])
                if not bring_up(ctx, c, nb):
                    continue
                try:
                    _load_block(ctx, c, rep, dist, rates, src, bsrcs, count, bg_dur, rows)
                except Exception as e:
                    failed(ctx, c, e)
                finally:
                    c.down()
    write_csv(ctx.path("latency_load", "csv"), rows)
    plot_latency_load(ctx, rows, dists)
    trs = []
    for c in [n for n in PLOT_ORDER if any(r["contender"] == n for r in rows)]:
        for d in dists:
            for rate in rates:
                rs = [r for r in rows if r["contender"] == c and r["dist"] == d
                      and r["bg_target_pps"] == rate]
                if rs:
                    trs.append([c, d, rate / 1e3, med([r["bg_offered_pps"] for r in rs]) / 1e3,
                                med([r["median_us"] for r in rs]), med([r["p99_us"] for r in rs]),
                                sum(r["lost"] for r in rs)])
    text = """## Latency under load (RQ5)

Method: the RTT probe of the latency suite (source {src}, backend 1; {count} queries after
50 warm-up) runs while the pacer in the load generator's namespace sends 22-B marked UDP
packets to the same target at each background rate (pps; xdp_sink drops them at the
backends, so bind9 only serves the probe). Distributions of the background load over the
backends (the paper's): single = the balancer has one backend (all load on the probed
backend); 50/50 = all sixteen load sources (both buckets); 100/0 = only even sources (the
probed backend); 0/100 = only odd sources (the other backend). "direct" has no balancer:
its load goes to backend 1 (single). dnsdist receives the marked packets itself and drops
them (not DNS queries). {reps} repetition(s); medians. Lab: {lab}.

{table}
{unavail}
![latency under load](latency_load.png)
""".format(src="the lab's .12", count=count, reps=reps, lab=ctx.lab_kinds,
           unavail=unavailable_md(ctx),
           table=md_table(["contender", "distribution", "bg target (kpps)", "bg offered (kpps)",
                           "median RTT (µs)", "p99 RTT (µs)", "lost"], trs))
    open(ctx.path("latency_load", "md"), "w").write(text)
    write_meta(ctx, "latency_load", dict(rates=rates, dists=dists, count=count, reps=reps), t0)


@plotting
def plot_latency_load(ctx, rows, dists) -> None:
    p = plt()
    fig, axes = p.subplots(1, len(dists), figsize=(3.2 * len(dists), 3.2), squeeze=False)
    names = [c for c in PLOT_ORDER if any(r["contender"] == c for r in rows)]
    for ax, d in zip(axes[0], dists):
        for c in names:
            rates = sorted({r["bg_target_pps"] for r in rows if r["contender"] == c and r["dist"] == d})
            if not rates:
                continue
            m = [med([r["median_us"] for r in rows if r["contender"] == c and r["dist"] == d
                      and r["bg_target_pps"] == x]) for x in rates]
            q = [med([r["p99_us"] for r in rows if r["contender"] == c and r["dist"] == d
                      and r["bg_target_pps"] == x]) for x in rates]
            ax.plot([x / 1e3 for x in rates], m, "o-", ms=3, color=COLORS.get(c), label=c)
            ax.plot([x / 1e3 for x in rates], q, "--", lw=0.8, color=COLORS.get(c))
        ax.set_title("load %s" % d)
        ax.set_xlabel("background load (kpps)")
        ax.set_ylabel("RTT (µs): median, p99 dashed")
        ax.set_yscale("log")
    from matplotlib.lines import Line2D
    axes[0][-1].legend([Line2D([0], [0], color=COLORS.get(c), marker="o", ms=3) for c in names],
                       names, fontsize=6)
    fig.tight_layout()
    fig.savefig(ctx.path("latency_load", "png"))
    p.close(fig)


# ----------------------------------------------------------------------------- control plane

CONTROL_PORT = 5353


def suite_control(ctx: Ctx) -> None:
    """Insert to first forwarded packet: the pacer sends to VIP:5353 (even sources: backend
    1) before the balancer has the service; the balancer gets it (softdoca: the root entry
    and the buckets in one batch; xdp: the config map write that enables the program) and a
    receiver bound to VIP:5353 on backend 1 notes when the first packet arrives. Both
    clocks are CLOCK_MONOTONIC, shared by every namespace."""
    t0 = time.time()
    reps = 2 if ctx.smoke else 5
    rate = 50000
    rows: List[Dict] = []
    todo = [c for c in ctx.contenders if c.name in ("softdoca", "softdoca-busy", "xdp")]
    for c in ctx.contenders:
        if c not in todo and not c.name.startswith("xenoflow"):
            ctx.unavailable.setdefault(c.name, "no timed insert for this contender (here: "
                                       "softdoca, softdoca-busy, xdp)")
    for rep in range(reps):
        for c in todo:
            lab = c.lab
            be = lab.backends[0]
            rx = subprocess.Popen(nsh_argv(be.ns, [sys.executable, os.path.join(HERE, "tools",
                                                   "first_packet.py"), "--bind", lab.vip,
                                                   "--port", str(CONTROL_PORT), "--timeout", "8"]),
                                  stdout=subprocess.PIPE, universal_newlines=True)
            try:
                assert json.loads(rx.stdout.readline()).get("ready")
                if c.name.startswith("softdoca"):
                    c.up(2, port=CONTROL_PORT, defer=True)
                else:
                    c.up(2)
                    c.lb.port = CONTROL_PORT
                    c.lb.configure(enable=False)    # buckets and egress in, service off
                time.sleep(SETTLE_S)
                pacer = M.start_pacer(lab.loadgen_ns, lab.vip, CONTROL_PORT, rate, 2.0, size=22,
                                      srcs=lab.srcs_of_parity(lab.loadgen_srcs, 0))
                time.sleep(0.5)
                if c.name.startswith("softdoca"):
                    r = c.insert()
                    ta, tb = r["t0_ns"], r["t1_ns"]
                else:
                    ta = time.monotonic_ns()
                    c.lb.enable()
                    tb = time.monotonic_ns()
                M.finish_pacer(pacer)
                out = json.loads(rx.stdout.readline() or "{}")
            finally:
                if rx.poll() is None:
                    rx.kill()
                rx.wait()
                c.down()
            first = out.get("first_ns")
            row = {"suite": "control", "rep": rep, "contender": c.name, "lab": lab.kind,
                   "insert_call_us": (tb - ta) / 1e3,
                   "first_packet_us": (first - ta) / 1e3 if first else None,
                   "after_return_us": (first - tb) / 1e3 if first else None,
                   "packets_in_300ms": out.get("packets"), "rate_pps": rate, "measure": "insert"}
            rows.append(row)
            log("control %-12s insert call %.0f us, first packet %s us after the call began"
                % (c.name, row["insert_call_us"], fmt(row["first_packet_us"])))
    rrows = control_ovs_restart(ctx, 2 if ctx.smoke else 3)
    write_csv(ctx.path("control", "csv"), rows + rrows)
    plot_control(ctx, rows + rrows)
    trs = []
    for name in [n for n in PLOT_ORDER if any(r["contender"] == n for r in rows)]:
        rs = [r for r in rows if r["contender"] == name]
        trs.append([name, med([r["insert_call_us"] for r in rs]),
                    med([r["first_packet_us"] for r in rs]), med([r["after_return_us"] for r in rs]),
                    sum(1 for r in rs if r["first_packet_us"] is None), len(rs)])
    text = """## Control plane

### Insert to first forwarded packet

Method: The pacer sends {rate} pps to VIP:{port} from
even sources (bucket 0: backend 1) before the balancer knows the service; then the
balancer gets it in one step, timed with CLOCK_MONOTONIC (shared by all namespaces):
softdoca (XenoFlow's eSwitch plane through dpdk_glue) adds the root-pipe entry and the
buckets in one batch (`add_entries`: queued entries + one entries_process); xdp has its
buckets and egress in its maps already and writes the service config that enables it (one
`bpftool map update`, process start included).
A receiver bound to VIP:{port} on backend 1 notes the first packet. At {rate} pps the
arrival resolution is {res:.0f} µs. {reps} repetitions; medians. Entries per second:
the glue_install suite (below, when present).

{table}

{restart}
![control plane](control.png)
{unavail}""".format(rate=rate, port=CONTROL_PORT, res=1e6 / rate, reps=reps,
                    unavail=unavailable_md(ctx), restart=restart_md(rrows),
                    table=md_table(["contender", "insert call (µs)", "insert start to first packet (µs)",
                                    "call return to first packet (µs)", "never arrived", "reps"], trs))
    open(ctx.path("control", "md"), "w").write(text)
    write_meta(ctx, "control", dict(reps=reps, rate=rate, port=CONTROL_PORT), t0)


RESTART_RATE = 20000     # pps of UDP load through the balancer while OVS restarts


def control_ovs_restart(ctx: Ctx, reps: int) -> List[Dict]:
    """Time to reconcile after an OVS restart (the XenoFlow contenders, paper lab): under a
    steady load through the VIP, ovs-vswitchd is killed and started again on the same
    database; how long until the controller has every planned flow back and `xenoflow
    check` says consistent, and how many of the load's packets were lost meanwhile."""
    rows: List[Dict] = []
    for c in [c for c in ctx.contenders if c.name in ("xenoflow-softdoca", "xenoflow-ovs")]:
        for rep in range(reps):
            if not bring_up(ctx, c, 2):
                break
            lab = c.lab
            try:
                fb0 = c.fallback()
                before = ctx.recv(lab).read()
                pacer = M.start_pacer(lab.loadgen_ns, lab.vip, lab.port, RESTART_RATE, 5.0,
                                      size=22, srcs=lab.loadgen_srcs)
                time.sleep(1.0)
                t = c.restart_ovs()
                res = M.finish_pacer(pacer)
                time.sleep(0.3)
                per = M.delta(ctx.recv(lab).read(), before)
                fb = c.fallback_since(fb0)
            except Exception as e:
                failed(ctx, c, e)
                c.down()
                break
            c.down()
            sent, got = res["sent"], sum(per.values())
            row = dict(suite="control", measure="ovs_restart", rep=rep, contender=c.name,
                       lab=lab.kind, rate_pps=RESTART_RATE, sent=sent, delivered=got,
                       lost=max(0, sent - got),
                       fallback=fb, **t)
            rows.append(row)
            log("control %-17s OVS restart: flows back %s s, consistent %s s, lost %d of %d"
                % (c.name, fmt(t["flows_restored_s"]), fmt(t["consistent_s"]), row["lost"], sent))
    return rows


def restart_md(rows: List[Dict]) -> str:
    if not rows:
        return ("### Reconcile after an OVS restart\n\nNot measured in this run: it needs the "
                "XenoFlow contenders on the paper lab.\n")
    trs = []
    for name in [n for n in PLOT_ORDER if any(r["contender"] == n for r in rows)]:
        rs = [r for r in rows if r["contender"] == name]
        trs.append([name, med([r["daemon_up_s"] for r in rs]), med([r["flows_restored_s"] for r in rs]),
                    med([r["consistent_s"] for r in rs]), med([r["lost"] for r in rs]),
                    med([r["sent"] for r in rs]), len(rs)])
    return """### Reconcile after an OVS restart

Method: {rate} pps of 22-B UDP to the VIP from fips4's sources for 5 s; 1 s in, ovs-vswitchd
is killed and started again on the same database (the bridges come back empty of flows). The
times run from the restart: daemon up, every bridge carrying its planned flows again (the
controller's reconcile), `xenoflow check` consistent. Lost = sent - received at the backends.
On softdoca the eSwitch keeps forwarding while OVS is away; on plain OVS the outage is the
reconcile. Medians.

{table}
""".format(rate=RESTART_RATE, table=md_table(
        ["contender", "daemon up (s)", "flows restored (s)", "consistent (s)", "lost (median)",
         "sent (median)", "reps"], trs))


@plotting
def plot_control(ctx, rows) -> None:
    """Left: insert to first forwarded packet per repetition; right: the OVS restart's
    times (flows restored, consistent) per repetition, with the packets lost."""
    p = plt()
    fig, (a1, a2) = p.subplots(1, 2, figsize=(7.0, 3.0))
    ins = [r for r in rows if r.get("measure") in ("insert", None, "")    # None: CSVs before the restart
           and r.get("first_packet_us") not in (None, "")]
    rst = [r for r in rows if r.get("measure") == "ovs_restart"]
    for i, c in enumerate([n for n in PLOT_ORDER if any(r["contender"] == n for r in ins)]):
        ys = [float(r["first_packet_us"]) for r in ins if r["contender"] == c]
        a1.bar(i, med(ys), color=COLORS.get(c), alpha=0.6)
        a1.plot([i] * len(ys), ys, "k.", ms=3)
        a1.text(i, 0, c, rotation=90, ha="center", va="bottom", fontsize=7)
    a1.set_xticks([])
    a1.set_ylabel("insert start to first packet (µs)")
    a1.set_title("entry insert to first packet")
    names = [n for n in PLOT_ORDER if any(r["contender"] == n for r in rst)]
    for i, c in enumerate(names):
        rs = [r for r in rst if r["contender"] == c]
        for j, (k, mk) in enumerate((("flows_restored_s", "o"), ("consistent_s", "s"))):
            ys = [float(r[k]) for r in rs if r.get(k) not in (None, "")]
            a2.plot([i + 0.15 * (j - 0.5)] * len(ys), ys, mk, color=COLORS.get(c), ms=4,
                    fillstyle="full" if j == 0 else "none")
    lost = [fmt(med([float(r["lost"]) for r in rst if r["contender"] == c])) for c in names]
    a2.set_xticks(range(len(names)))
    a2.set_xticklabels(["%s\nlost %s" % (c, n) for c, n in zip(names, lost)], fontsize=7)
    a2.set_ylim(bottom=0)
    a2.set_xlim(-0.6, max(0.6, len(names) - 0.4))
    a2.set_ylabel("s after the restart (o flows, □ consistent)")
    a2.set_title("reconcile after an OVS restart")
    fig.tight_layout()
    fig.savefig(ctx.path("control", "png"))
    p.close(fig)


def nsh_argv(ns, argv):
    from xenoflow_ovs.lab.netns import ns_argv
    return ns_argv(ns, argv)


# ----------------------------------------------------------------------------- main

def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("suite", choices=SUITES + ("all",))
    ap.add_argument("--smoke", action="store_true", help="CI-sized (about a minute per suite)")
    ap.add_argument("--replot", action="store_true",
                    help="only redraw the suite's PNG from its CSV in --out (no lab, no root)")
    ap.add_argument("--lab", choices=["minimal", "paper", "both"], default="both",
                    help="both (default): the XenoFlow contenders on the paper lab, the others "
                         "on the minimal one; the paper lab is skipped (XenoFlow not measured) "
                         "when it cannot come up")
    ap.add_argument("--contenders", default=",".join(DEFAULT_ORDER))
    ap.add_argument("--wait-paper", type=float, default=0, metavar="SECONDS",
                    help="when another lab holds the paper lab's namespaces, retry this long "
                         "before going on without the XenoFlow contenders")
    ap.add_argument("--idle-poll", choices=["on", "off"], default="on",
                    help="hold /dev/cpu_dma_latency at 0 during the run (PM QoS: the vCPUs poll "
                         "instead of halting, so no contender pays the VM's wake-up latency); "
                         "released when the run ends")
    ap.add_argument("--prefix", default="xb", help="namespace prefix of the minimal lab "
                    "(xb: xb-dpu, xb-cli, ...)")
    ap.add_argument("--out", default=None, help="results dir (default benchmarks/results, "
                                                "benchmarks/results/smoke with --smoke)")
    return ap


def _unwind_on_signals() -> None:
    import signal

    main_pid = os.getpid()

    def _stop(signum, frame):        # SIGTERM/SIGHUP: unwind, so every finally cleans up
        if os.getpid() != main_pid:  # a forked helper (pyroute2's netns workers): default
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    signal.signal(signal.SIGINT, _stop)   # also when started in the background


def _hold_idle_poll(a) -> Optional[int]:
    """PM QoS: cpu_dma_latency held at 0 while the returned fd stays open (None: not held)."""
    if a.idle_poll != "on":
        return None
    try:
        import struct
        qos_fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
        os.write(qos_fd, struct.pack("i", 0))
        log("PM QoS: cpu_dma_latency held at 0 us for the run")
        return qos_fd
    except OSError as e:
        log("PM QoS not available: %s" % e)
        return None


def _bring_up_paper(a, session, labs: Dict) -> Optional[str]:
    """The paper lab through `session` (waiting up to --wait-paper for another lab to go);
    None when it is up, else why not (raised instead with --lab paper)."""
    deadline = time.monotonic() + a.wait_paper
    try:
        while True:
            try:
                session.ensure("softdoca")
                break
            except RuntimeError as e:
                if "not this lab's" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(3)
        labs["paper"] = paper_spec()
        return None
    except Exception as e:
        paper_error = "the paper lab did not come up: %s" % str(e).strip()[-300:]
        session.close()
        log(paper_error)
        if a.lab == "paper":
            raise
        return paper_error


def _run_suites(a, suites: List[str], names: List[str], labs: Dict, out: str, session,
                paper_error: Optional[str]) -> int:
    rc = 0
    for suite in suites:
        ctx = Ctx(a, labs, out, session)
        ctx.pick(names)
        if paper_error:
            for n in names:
                if n.startswith("xenoflow"):
                    ctx.unavailable[n] = paper_error
        log("suite %s: %s" % (suite, ", ".join(c.name for c in ctx.contenders)))
        try:
            SUITE_RUNS[suite](ctx)
        except Exception:
            log(traceback.format_exc())
            rc = 1
        finally:
            for c in ctx.contenders:
                try:
                    c.down()
                except Exception:
                    pass
            ctx.detach_receivers()
    return rc


def main(argv=None) -> int:
    ap = _parser()
    a = ap.parse_args(argv)
    if a.replot:
        return replot(a)
    _unwind_on_signals()
    if os.geteuid() != 0:
        sys.stderr.write("run.py needs root (namespaces, XDP)\n")
        return 2
    out = a.out or os.path.join(HERE, "results", "smoke" if a.smoke else "")
    os.makedirs(out, exist_ok=True)
    names = [n.strip() for n in a.contenders.split(",") if n.strip()]
    bad = [n for n in names if n not in C.BY_NAME]
    if bad:
        ap.error("unknown contenders %s (known: %s)" % (bad, ", ".join(C.BY_NAME)))
    suites = list(SUITES) if a.suite == "all" else [a.suite]
    M.build_tools()
    qos_fd = _hold_idle_poll(a)
    M.IDLE_POLL = qos_fd is not None
    labs: Dict = {}
    minlab = session = None
    paper_error = None
    try:
        if a.lab in ("paper", "both") and any(n.startswith("xenoflow") or a.lab == "paper"
                                             for n in names):
            session = C.PaperSession()
            paper_error = _bring_up_paper(a, session, labs)
        if a.lab in ("minimal", "both"):
            minlab = MinLab(minimal_spec(a.prefix))
            log("minimal lab up (%s)" % " ".join(minlab.namespaces))
            minlab.up()
            labs["minimal"] = minlab.spec
        return _run_suites(a, suites, names, labs, out, session, paper_error)
    finally:
        if minlab:
            minlab.down()
            log("minimal lab down")
        if session is not None:
            session.close()
        if qos_fd is not None:
            os.close(qos_fd)


SUITE_RUNS = {"throughput": suite_throughput, "latency": suite_latency,
              "latency_load": suite_latency_load, "control": suite_control}


def replot(a) -> int:
    out = a.out or os.path.join(HERE, "results", "smoke" if a.smoke else "")
    for suite in (list(SUITES) if a.suite == "all" else [a.suite]):
        path = os.path.join(out, suite + ".csv")
        if not os.path.exists(path):
            continue
        rows = read_csv(path)
        ctx = Ctx(a, {"minimal": minimal_spec(a.prefix)}, out)
        if suite == "throughput":
            plot_throughput(ctx, rows, tput_summary(rows))
        elif suite == "latency":
            samples: Dict[str, List[float]] = {}
            for r in rows:
                sp = os.path.join(out, "samples", "latency-%s-%d.txt" % (r["contender"], r["rep"]))
                if os.path.exists(sp):
                    samples.setdefault(r["contender"], []).extend(float(x) for x in open(sp))
            plot_latency(ctx, samples, latency_summary(rows))
        elif suite == "control":
            plot_control(ctx, rows)
        else:
            plot_latency_load(ctx, rows, [d for d in DISTS if any(r["dist"] == d for r in rows)])
        log("redrew %s.png" % suite)
    return 0


if __name__ == "__main__":
    sys.exit(main())

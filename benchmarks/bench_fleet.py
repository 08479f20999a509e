#!/usr/bin/env python3
"""The fleet: DPUs following one intent in the store's Raft cluster, side by side in one run.

    sudo .venv/bin/python benchmarks/bench_fleet.py            # full (~8 min on 2 cores)
    sudo .venv/bin/python benchmarks/bench_fleet.py --smoke    # CI-sized (~1.5 min)

Every bed is xenoflow_ovs/lab/fleet_bed.py's: a 3-member ovsdb-server cluster (Raft on
127.0.0.1, clients on unix sockets) holding one service (maglev, 2^10 buckets, 8 backends),
and N DPUs, each a namespace with a private OVS and a controller (eSwitch driver none)
following the store. One bed at a time, stopped and removed before the next:

  edits      per fleet size (2, 4, 8, 16 controllers; smoke 2, 4): K edits (drain / undrain
             of one backend, in turn), each timed from just before `Store.change()`: its
             commit (when change() returns), then the store's replica polled (woken by its
             updates, at least every 2 ms) until every DPU's row shows the version applied;
             per DPU the first time its row showed it; the controllers' own apply time
             (`last_apply.seconds` of their /status). Then a few weight edits the same way
             (validated against every DPU's facts in the transaction). Then, at rest,
             every controller's RSS and CPU, and the store members' CPU.
  writes     on the largest bed, 1 and 4 writer threads (each its own Store) doing weight
             edits for T s: committed edits/s and commit latency, with the controllers
             running (each version is applied by every DPU: how long until they caught up
             after the burst), then the same with the controllers stopped (the store alone).
  leader     on a bed of 2 DPUs with a 500 ms election timer (full run: also the default
             1000 ms): the leader killed (SIGKILL), weight edits tried from that instant
             (1 s per attempt) until one commits; the DPUs' flows checked during the outage
             and after; every DPU applies the edit; the member restarted and back in the
             cluster before the next round.

Writes <out>/fleet.csv (one row per sample: measure = bed | edit | rest | store | writes |
kill), fleet.md, fleet.json (machine, parameters) and fleet.png (matplotlib); report.py
builds REPORT.md's fleet section from them. Beds live in /tmp/xb-fleet, namespaces xbf-d<i>,
Raft ports from 17641; everything is stopped and removed on the way out, Ctrl-C included.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
import pkgpath  # noqa: E402,F401  (before the package: where it comes from)

ROOT = "/tmp/xb-fleet"
PREFIX = "xbf"
BASE_PORT = 17641
SERVICE = "dns"
BACKENDS = 8
VIP_FLOW = "nw_dst=198.18.0.53"       # the service's flows in a DPU's OVS
DRAINED = "be1"                       # the backend the edit phase drains and undrains
WEIGHTED = "be5"                      # the one whose weight it changes
APPLY_TIMEOUT = 60.0                  # s for every DPU to apply one version
GOAL_EDIT_MS = 150.0                  # p99 edit -> applied by all, at 4 controllers
GOAL_EDIT_DPUS = 4
GOAL_RESUME_S = 1.5                   # leader killed -> a write commits, 500 ms election timer
GOAL_TIMER_MS = 500

# The intents the edits run on: a 1024-bucket Maglev table over 8 backends (hundreds of
# OpenFlow changes per drain), and the paper's (src-ip-bits 1 over 2 backends: a few).
INTENTS = {"maglev": "1024-bucket Maglev, 8 backends", "paper": "the paper's: src-ip-bits 1, 2 backends"}
COLUMNS = ["measure", "intent", "dpus", "timer_ms", "writers", "round", "op", "version", "commit_ms",
           "first_ms", "applied_ms", "edit_ms", "apply_max_s", "dpu_ms", "seconds", "commits", "errors",
           "per_s",
           "commit_med_ms", "commit_p99_ms", "catch_up_s", "member", "resume_s", "elected_s", "attempts",
           "reconnected", "flows_during", "flows_after", "applied_after_s", "rejoin_s", "dpu", "rss_mb",
           "cpu", "up_s", "error"]


def log(msg: str) -> None:
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


# ----------------------------------------------------------------------------- figures

def num(v: Any) -> Optional[float]:
    """A number from a row as measured or as read back from the CSV ("" / None: none)."""
    if v is None or v == "" or isinstance(v, bool):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def nums(rows: Sequence[Dict[str, Any]], col: str) -> List[float]:
    return [x for x in (num(r.get(col)) for r in rows) if x is not None]


def median(xs: Sequence[float]) -> Optional[float]:
    return statistics.median(xs) if xs else None


def p99(xs: Sequence[float]) -> Optional[float]:
    """Nearest rank: the smallest sample with at least 99 % of the samples at or below it."""
    if not xs:
        return None
    s = sorted(xs)
    return s[max(0, math.ceil(0.99 * len(s)) - 1)]


def truthy(v: Any) -> bool:
    return v is True or str(v).strip().lower() in ("true", "1", "yes")


def of(rows: Sequence[Dict[str, Any]], measure: str, **match: Any) -> List[Dict[str, Any]]:
    return [r for r in rows if r.get("measure") == measure
            and all(num(r.get(k)) == v for k, v in match.items())]


def sizes(rows: Sequence[Dict[str, Any]]) -> List[int]:
    return sorted({int(num(r["dpus"]) or 0) for r in rows if r.get("measure") in ("edit", "bed")})


def is_weight(r: Dict[str, Any]) -> bool:
    return str(r.get("op") or "").startswith("weight")


def intent_of(r: Dict[str, Any]) -> str:
    return str(r.get("intent") or "maglev")


def edit_summary(rows: Sequence[Dict[str, Any]], n: int, weight: bool = False,
                 intent: str = "maglev") -> Dict[str, Any]:
    """One fleet size: its drain / undrain edits' figures (ms), or its weight edits', the
    controllers' RSS (MB), the bed's start-up."""
    es = [r for r in of(rows, "edit", dpus=n) if is_weight(r) == weight and intent_of(r) == intent]
    done = [r for r in es if num(r.get("applied_ms")) is not None]
    rss = nums(of(rows, "rest", dpus=n), "rss_mb")
    cpu = nums(of(rows, "rest", dpus=n), "cpu")
    store = nums(of(rows, "store", dpus=n), "cpu")
    up = nums(of(rows, "bed", dpus=n), "up_s")
    return {"dpus": n, "edits": len(es), "applied_by_all": len(done),
            "commit_med": median(nums(es, "commit_ms")), "commit_p99": p99(nums(es, "commit_ms")),
            "first_med": median(nums(done, "first_ms")),
            "applied_med": median(nums(done, "applied_ms")), "applied_p99": p99(nums(done, "applied_ms")),
            "edit_med": median(nums(done, "edit_ms")), "edit_p99": p99(nums(done, "edit_ms")),
            "apply_med": median(nums(es, "apply_max_s")),
            "apply_max": max(nums(es, "apply_max_s") or [0]) or None,
            "rss_med": median(rss), "rss_max": max(rss) if rss else None, "rss_n": len(rss),
            "cpu_med": median(cpu), "cpu_max": max(cpu) if cpu else None,
            "store_cpu": sum(store) if store else None,
            "store_rss": sum(nums(of(rows, "store", dpus=n), "rss_mb")) or None,
            "up_s": up[0] if up else None,
            "errors": sorted({str(r["error"]) for r in of(rows, "edit", dpus=n) + of(rows, "bed", dpus=n)
                              if r.get("error")})}


def kill_summary(rows: Sequence[Dict[str, Any]], timer: int) -> Dict[str, Any]:
    ks = of(rows, "kill", timer_ms=timer)
    ok = [r for r in ks if num(r.get("resume_s")) is not None]
    res = nums(ok, "resume_s")
    return {"timer_ms": timer, "kills": len(ks), "recovered": len(ok),
            "applied": sum(1 for r in ok if num(r.get("applied_after_s")) is not None),
            "flows_kept": sum(1 for r in ks
                              if truthy(r.get("flows_during")) and truthy(r.get("flows_after"))),
            "resume_med": median(res), "resume_max": max(res) if res else None,
            "attempts_max": max(nums(ks, "attempts") or [0]) or None,
            "applied_med": median(nums(ok, "applied_after_s")), "rejoin_med": median(nums(ks, "rejoin_s")),
            "elected_med": median(nums(ok, "elected_s")),
            "errors": sorted({str(r["error"]) for r in ks if r.get("error")})}


def timers(rows: Sequence[Dict[str, Any]]) -> List[int]:
    return sorted({int(num(r["timer_ms"]) or 0) for r in rows if r.get("measure") == "kill"})


SLOW_APPLY_S = 0.5      # a controller's own apply this long is an outlier here (typical: 0.05-0.2 s)


def edit_goal(rows: Sequence[Dict[str, Any]], intent: str = "maglev") -> Dict[str, Any]:
    e = edit_summary(rows, GOAL_EDIT_DPUS, intent=intent)
    g: Dict[str, Any] = {"goal": "p99 edit → applied by every DPU, %d controllers (%s)" % (
        GOAL_EDIT_DPUS, INTENTS[intent]),
                         "limit": "≤ %.0f ms" % GOAL_EDIT_MS, "value": None, "why": ""}
    if not e["edits"]:
        return dict(g, measured="not measured", verdict="not measured")
    if e["applied_by_all"] < e["edits"]:
        return dict(g, measured="%d of %d edits applied by all" % (e["applied_by_all"], e["edits"]),
                    verdict="missed")
    v = e["edit_p99"]
    g.update(value=v, verdict="met" if v <= GOAL_EDIT_MS else "missed",
             measured="%s ms (median %s; commit → all applied p99 %s, median %s; %d edits)" % (
                 f3(v), f3(e["edit_med"]), f3(e["applied_p99"]), f3(e["applied_med"]), e["edits"]))
    if g["verdict"] == "met":
        return g
    es = [r for r in of(rows, "edit", dpus=GOAL_EDIT_DPUS) if not is_weight(r) and intent_of(r) == intent]
    slow = [r for r in es if (num(r.get("apply_max_s")) or 0) >= SLOW_APPLY_S]
    why = []
    if e["edit_med"] is not None and e["edit_med"] > GOAL_EDIT_MS:
        why.append("the median alone is %s ms: commit %s ms, then the slowest DPU's own apply (median "
                   "%s s; %d controllers share the machine's cores) and the write of its row" % (
                       f3(e["edit_med"]), f3(e["commit_med"]), f3(e["apply_med"]), GOAL_EDIT_DPUS))
    if slow:
        rest = p99(nums([r for r in es if r not in slow], "edit_ms"))
        why.append("%d of %d edits waited for a controller whose own apply took ≥ %.1f s (max %s s)%s" % (
            len(slow), len(es), SLOW_APPLY_S, f3(max(nums(slow, "apply_max_s"))),
            "; without them the p99 is %s ms" % f3(rest) if rest is not None else ""))
    g["why"] = "; ".join(why)
    return g


def kill_goal(rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    k = kill_summary(rows, GOAL_TIMER_MS)
    g: Dict[str, Any] = {"goal": "leader killed → writes resume, %d ms election timer" % GOAL_TIMER_MS,
                         "limit": "≤ %.1f s" % GOAL_RESUME_S, "value": k["resume_max"], "why": ""}
    if not k["kills"]:
        return dict(g, measured="not measured", verdict="not measured")
    if k["recovered"] < k["kills"]:
        return dict(g, measured="%d of %d kills recovered" % (k["recovered"], k["kills"]), verdict="missed",
                    why="; ".join(k["errors"]))
    g.update(measured="max %s s, median %s s (%d kills)" % (f3(k["resume_max"]), f3(k["resume_med"]),
                                                             k["kills"]),
             verdict="met" if k["resume_max"] <= GOAL_RESUME_S else "missed")
    if g["verdict"] == "missed":
        worst = max(of(rows, "kill", timer_ms=GOAL_TIMER_MS), key=lambda r: num(r.get("resume_s")) or 0)
        g["why"] = "the slowest: new leader elected %s s after the kill, the write committed %s s after " \
                   "the kill, at attempt %s" % (f3(worst.get("elected_s")), f3(worst.get("resume_s")),
                                                worst.get("attempts"))
    return g


def goals(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The fleet's goals against the rows: goal, limit, value, measured text, verdict, why
    missed (from the same rows)."""
    return [edit_goal(rows, i) for i in INTENTS] + [kill_goal(rows)]


def f3(v: Any, digits: int = 3) -> str:
    """`digits` significant digits, integers whole (1490, not 1.49e+03)."""
    x = num(v)
    if x is None:
        return "–"
    return "%.0f" % x if abs(x) >= 10 ** digits else ("%%.%dg" % digits) % x


# ----------------------------------------------------------------------------- tables

def goal_summary(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [{k: g[k] for k in ("goal", "limit", "value", "verdict", "why")} for g in goals(rows)]


def goal_table(rows: Sequence[Dict[str, Any]]) -> str:
    lines = ["| goal | limit | measured | verdict | why missed (from this run) |", "|---|---|---|---|---|"]
    lines += ["| %s | %s | %s | %s | %s |" % (g["goal"], g["limit"], g["measured"], g["verdict"], g["why"])
              for g in goals(rows)]
    return "\n".join(lines)


def edit_table(rows: Sequence[Dict[str, Any]]) -> str:
    head = ["controllers", "edits (applied by all)", "commit ms med / p99",
            "commit → first DPU ms med", "commit → all ms med / p99", "edit → all ms med / p99",
            "× 2 controllers (edit → all, med)", "controller apply s med / max",
            "weight edits: commit ms med / edit → all ms med"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for intent, n in [(i, n) for i in INTENTS for n in sizes(rows)]:
        e, w = edit_summary(rows, n, intent=intent), edit_summary(rows, n, weight=True, intent=intent)
        if not e["edits"]:
            continue
        base = edit_summary(rows, sizes(rows)[0], intent=intent)["edit_med"]
        rel = "%.2f" % (e["edit_med"] / base) if base and e["edit_med"] is not None else "–"
        lines.append("| " + " | ".join([
            "%d (%s)" % (n, intent), "%d (%d)" % (e["edits"], e["applied_by_all"]),
            "%s / %s" % (f3(e["commit_med"]), f3(e["commit_p99"])), f3(e["first_med"]),
            "%s / %s" % (f3(e["applied_med"]), f3(e["applied_p99"])),
            "%s / %s" % (f3(e["edit_med"]), f3(e["edit_p99"])), rel,
            "%s / %s" % (f3(e["apply_med"]), f3(e["apply_max"])),
            "%s / %s (%d)" % (f3(w["commit_med"]), f3(w["edit_med"]), w["edits"])]) + " |")
        for err in e["errors"]:
            lines.append("| %d | %s |" % (n, err.replace("|", "/")) + " |" * (len(head) - 2))
    return "\n".join(lines)


def rest_table(rows: Sequence[Dict[str, Any]]) -> str:
    """Per fleet size: the bed's start-up, every controller's RSS and CPU at rest, the store's."""
    head = ["controllers", "bed start-up s", "controller RSS MB med / max",
            "controller CPU at rest, % of a core, med / max", "store members CPU % (3, sum)",
            "store members RSS MB (sum)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for n in sizes(rows):
        e = edit_summary(rows, n)
        lines.append("| " + " | ".join([
            str(n), f3(e["up_s"]), "%s / %s" % (f3(e["rss_med"]), f3(e["rss_max"])),
            "%s / %s" % (f3(pct(e["cpu_med"])), f3(pct(e["cpu_max"]))), f3(pct(e["store_cpu"])),
            f3(e["store_rss"])]) + " |")
    return "\n".join(lines)


def writes_table(rows: Sequence[Dict[str, Any]]) -> str:
    head = ["store", "writers", "seconds", "committed", "errors", "edits/s", "commit ms med / p99",
            "DPUs caught up after s"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for r in of(rows, "writes"):
        n = int(num(r.get("dpus")) or 0)
        lines.append("| " + " | ".join([
            "with %d controllers following" % n if n else "alone (controllers stopped)",
            str(r.get("writers")), f3(r.get("seconds")), str(r.get("commits")), str(r.get("errors")),
            f3(r.get("per_s")), "%s / %s" % (f3(r.get("commit_med_ms")), f3(r.get("commit_p99_ms"))),
            f3(r.get("catch_up_s")) if n else "–"]) + " |")
    return "\n".join(lines)


def kill_table(rows: Sequence[Dict[str, Any]]) -> str:
    head = ["election timer ms", "kills", "writes resumed", "resume s med / max", "new leader elected s med",
            "attempts max",
            "flows kept (during / after)", "commit → both DPUs applied s med", "member back s med"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for t in timers(rows):
        k = kill_summary(rows, t)
        lines.append("| " + " | ".join([
            str(t), str(k["kills"]), str(k["recovered"]),
            "%s / %s" % (f3(k["resume_med"]), f3(k["resume_max"])), f3(k["elected_med"]),
            f3(k["attempts_max"]), "%d of %d" % (k["flows_kept"], k["kills"]), f3(k["applied_med"]),
            f3(k["rejoin_med"])]) + " |")
        for err in k["errors"]:
            lines.append("| %d | %s |" % (t, err.replace("|", "/")) + " |" * (len(head) - 2))
    rounds = ["| %s | %s | %s | %s | %s | %s | %s |" % (
        r.get("timer_ms"), r.get("round"), r.get("member"), f3(r.get("elected_s")), f3(r.get("resume_s")),
        r.get("attempts"), "yes" if truthy(r.get("reconnected")) else "no") for r in of(rows, "kill")]
    if rounds:
        lines += ["", "| election timer ms | round | member killed | new leader elected s | resume s "
                      "| attempts | writer reconnected |",
                  "|---:|---:|---|---:|---:|---:|---|"] + rounds
    return "\n".join(lines)


# ----------------------------------------------------------------------------- one bed

class Poller:
    """The bench's own client of the store: a replica whose updates wake the polling loop."""

    def __init__(self, remotes: List[str], timeout: float = 5.0):
        from xenoflow_ovs.fleet.store import Store
        self.changed = threading.Event()
        self.store = Store(remotes, timeout=timeout, on_change=self.changed.set).connect()

    def wait_applied(self, version: int, names: Sequence[str], timeout: float) -> Dict[str, float]:
        """When each DPU's row first showed `version` (or later) applied (monotonic s)."""
        first: Dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while True:
            self.changed.clear()
            rows = self.store.snapshot()["dpus"]
            now = time.monotonic()
            for n in names:
                if n not in first and int(rows.get(n, {}).get("applied_version") or -1) >= version:
                    first[n] = now
            if len(first) == len(names) or now > deadline:
                return first
            self.changed.wait(0.002)

    def close(self) -> None:
        self.store.close()


def controller_apply_s(bed: Any, version: int) -> Optional[float]:
    """The slowest controller's own time to apply `version` (/status fleet.last_apply)."""
    from xenoflow_ovs.api import server as api
    worst = None
    for d in bed.dpus:
        try:
            code, body = api.request("GET", "/status", unix_path=d.api_socket, timeout=10)
        except OSError:
            return None
        last = ((body or {}).get("fleet") or {}).get("last_apply") or {} if code == 200 else {}
        if last.get("version") != version or last.get("seconds") is None:
            return None
        worst = max(worst or 0.0, float(last["seconds"]))
    return worst


def edit_round(bed: Any, poller: Poller, i: int, weight: bool = False,
               intent: str = "maglev") -> Dict[str, Any]:
    """One edit: drain / undrain DRAINED in turn, or a new weight of WEIGHTED."""
    from xenoflow_ovs.fleet import edits
    names = [d.name for d in bed.dpus]
    row: Dict[str, Any] = {"measure": "edit", "intent": intent, "dpus": len(names), "round": i}
    if weight:
        w = next_weight(WEIGHTED)
        row["op"] = "weight %s=%d" % (WEIGHTED, w)
        mutate = edits.backend_edit("weight", SERVICE, WEIGHTED, weight=w)
    else:
        row["op"] = ("drain %s" if i % 2 == 0 else "undrain %s") % DRAINED
        mutate = edits.drain(SERVICE, DRAINED, on=i % 2 == 0)
    t0 = time.monotonic()
    v = poller.store.change(mutate, "bench: " + row["op"])
    tc = time.monotonic()
    row.update(version=v, commit_ms=(tc - t0) * 1e3)
    first = poller.wait_applied(v, names, APPLY_TIMEOUT)
    row["dpu_ms"] = " ".join("%s=%.1f" % (n, (first[n] - tc) * 1e3) for n in names if n in first)
    if first:
        row["first_ms"] = (min(first.values()) - tc) * 1e3
    if len(first) == len(names):
        row["applied_ms"] = (max(first.values()) - tc) * 1e3
        row["edit_ms"] = (max(first.values()) - t0) * 1e3
        row["apply_max_s"] = controller_apply_s(bed, v)
    else:
        row["error"] = "%d of %d DPUs applied version %d within %.0f s" % (len(first), len(names), v,
                                                                          APPLY_TIMEOUT)
    return row


def use_intent(bed: Any, intent: str) -> None:
    """Import the intent's services and wait until every DPU applied them."""
    from xenoflow_ovs.fleet import edits
    from xenoflow_ovs.lab.fleet_bed import SERVICE as SVC
    from xenoflow_ovs.lab.fleet_bed import backends
    svc = dict(SVC, backends=backends(BACKENDS)) if intent == "maglev" else dict(
        SVC, policy={"kind": "src-ip-bits", "bits": 1}, backends=backends(2))
    poller = Poller(bed.cluster.remotes)
    try:
        v = poller.store.change(edits.import_services([svc]), "bench: intent " + intent)
        got = poller.wait_applied(v, [d.name for d in bed.dpus], APPLY_TIMEOUT)
        if len(got) < len(bed.dpus):
            raise RuntimeError("intent %s: %d of %d DPUs applied it" % (intent, len(got), len(bed.dpus)))
    finally:
        poller.close()


def edit_phase(bed: Any, k: int, kw: int, gap: float, emit: Callable[[Dict[str, Any]], None],
               intent: str = "maglev") -> None:
    """k drain / undrain edits, then kw weight edits, one at a time."""
    poller = Poller(bed.cluster.remotes)
    es: List[Dict[str, Any]] = []
    try:
        for i in range(k + kw):
            es.append(edit_round(bed, poller, i, weight=i >= k, intent=intent))
            emit(es[-1])
            time.sleep(gap)       # the controllers' post-apply work (row, cache) settles
    finally:
        poller.close()
    for label, rs in (("drain/undrain", es[:k]), ("weight", es[k:])):
        if rs:
            log("  %d controllers, %s, %s: edit -> all applied median %s ms, p99 %s ms; "
                "commit median %s ms" % (
                len(bed.dpus), intent, label, f3(median(nums(rs, "edit_ms"))), f3(p99(nums(rs, "edit_ms"))),
                f3(median(nums(rs, "commit_ms")))))


def cpu_ticks(pid: Optional[int]) -> Optional[int]:
    """utime + stime of a process (/proc/<pid>/stat), in clock ticks."""
    if not pid:
        return None
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None


def rss_mb(pid: Optional[int]) -> Optional[float]:
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, TypeError, ValueError):
        return None
    return None


def resources(bed: Any, window: float, emit: Callable[[Dict[str, Any]], None]) -> None:
    """Every controller's RSS, and its CPU (share of one core) over `window` s with no edit:
    what following the fleet costs at rest (heartbeats, every DPU's row updates, flow-stats
    polls); the same for each member of the store."""
    procs = [("rest", d.name, d.proc.pid if d.proc is not None else None) for d in bed.dpus]
    procs += [("store", m.name, m.pid()) for m in bed.cluster.members]
    t0, before = time.monotonic(), [cpu_ticks(pid) for _, _, pid in procs]
    time.sleep(window)
    t1, after = time.monotonic(), [cpu_ticks(pid) for _, _, pid in procs]
    hz = os.sysconf("SC_CLK_TCK")
    for (measure, name, pid), b, a in zip(procs, before, after):
        mb = rss_mb(pid)
        emit({"measure": measure, "dpus": len(bed.dpus), "dpu": name, "rss_mb": mb, "seconds": t1 - t0,
              "cpu": (a - b) / hz / (t1 - t0) if a is not None and b is not None else None,
              "error": None if mb else "%s is gone" % name})
    e = edit_summary(STATE.rows, len(bed.dpus))
    log("  at rest: controller RSS median %s MB, max %s MB; controller CPU median %s %%, max %s %% of a "
        "core; the store's members %s %%" % (f3(e["rss_med"]), f3(e["rss_max"]), f3(pct(e["cpu_med"])),
                                       f3(pct(e["cpu_max"])), f3(pct(e["store_cpu"]))))


def pct(x: Optional[float]) -> Optional[float]:
    return None if x is None else 100.0 * x


# ----------------------------------------------------------------------------- writes

_EDITS: Dict[str, int] = {}


def next_weight(be: str) -> int:
    """2..9 in turn per backend: every edit sets a weight the backend does not have (an
    edit that changes nothing commits no version)."""
    _EDITS[be] = _EDITS.get(be, 0) + 1
    return 2 + _EDITS[be] % 8


class Writers:
    """`n` threads, each with its own Store, editing the weight of its own backend."""

    def __init__(self, remotes: List[str], n: int, seconds: float):
        from xenoflow_ovs.fleet.store import Store
        self.n, self.seconds = n, seconds
        self.stores = [Store(remotes, timeout=5.0).connect() for _ in range(n)]
        self.lat: List[List[float]] = [[] for _ in range(n)]
        self.errors = [0] * n
        self.why: List[str] = []
        self.versions = [0] * n
        self.ends = [0.0] * n
        self.start = threading.Barrier(n + 1)
        self.t0 = self.deadline = 0.0

    def work(self, k: int) -> None:
        from xenoflow_ovs.fleet import edits
        be, store = "be%d" % (k % BACKENDS), self.stores[k]
        self.start.wait()
        while time.monotonic() < self.deadline:
            t = time.monotonic()
            try:
                v = store.change(edits.backend_edit("weight", SERVICE, be, weight=next_weight(be)),
                                 "bench: weight %s" % be)
            except Exception as exc:      # a timeout, a refusal: counted, the burst goes on
                self.errors[k] += 1
                if len(self.why) < 3:
                    self.why.append("%s: %s" % (type(exc).__name__, str(exc)[:200]))
                continue
            self.ends[k] = time.monotonic()
            self.lat[k].append(self.ends[k] - t)
            self.versions[k] = max(self.versions[k], v)

    def run(self) -> Tuple[float, List[float]]:
        threads = [threading.Thread(target=self.work, args=(k,), daemon=True) for k in range(self.n)]
        for t in threads:
            t.start()
        self.t0 = time.monotonic()
        self.deadline = self.t0 + self.seconds
        self.start.wait()
        for t in threads:
            t.join(self.seconds + 30)
        elapsed = max(self.ends + [self.t0 + 1e-9]) - self.t0
        return elapsed, [x for xs in self.lat for x in xs]

    def close(self) -> None:
        for s in self.stores:
            s.close()


def write_burst(bed: Any, n: int, seconds: float, following: bool) -> Dict[str, Any]:
    w = Writers(bed.cluster.remotes, n, seconds)
    try:
        elapsed, lat = w.run()
    finally:
        w.close()
    dpus = len(bed.dpus) if following else 0
    row: Dict[str, Any] = {"measure": "writes", "dpus": dpus, "writers": n, "seconds": elapsed,
                           "commits": len(lat), "errors": sum(w.errors), "per_s": len(lat) / elapsed,
                           "commit_med_ms": (median(lat) or 0) * 1e3, "commit_p99_ms": (p99(lat) or 0) * 1e3,
                           "version": max(w.versions), "error": "; ".join(w.why) or None}
    if following and lat:
        poller = Poller(bed.cluster.remotes)
        try:
            t = time.monotonic()
            first = poller.wait_applied(max(w.versions), [d.name for d in bed.dpus], 120)
            if len(first) == len(bed.dpus):
                row["catch_up_s"] = max(first.values()) - (w.t0 + elapsed)
                row["catch_up_s"] = max(row["catch_up_s"], 0.0)
            else:
                row["error"] = "; ".join(filter(None, [row["error"], "%d of %d DPUs caught up in %.0f s" % (
                    len(first), len(bed.dpus), time.monotonic() - t)]))
        finally:
            poller.close()
    return row


def writes_phase(bed: Any, writers: List[int], seconds: float,
                 emit: Callable[[Dict[str, Any]], None]) -> None:
    for following in (True, False):
        if not following:
            log("  controllers stopped: the store alone")
            for d in bed.dpus:
                d.stop()
        for n in writers:
            row = write_burst(bed, n, seconds, following)
            emit(row)
            log("  %d writer(s), %s: %s edits/s, commit median %s ms, %d errors%s" % (
                n, "%d controllers following" % len(bed.dpus) if following else "store alone",
                f3(row["per_s"]), f3(row["commit_med_ms"]), row["errors"],
                ", DPUs caught up %s s after" % f3(row.get("catch_up_s")) if following else ""))


# ----------------------------------------------------------------------------- leader kill

def all_have_flows(bed: Any) -> bool:
    try:
        return all(VIP_FLOW in d.flows() for d in bed.dpus)
    except Exception:
        return False


def first_write(bed: Any, holder: List[Any], t0: float,
                timeout: float = 30.0) -> Tuple[Optional[int], float, int]:
    """Weight edits from `t0` until one commits: (version or None, when, attempts). The
    writer's Store is replaced when it does not reconnect by itself within 3 attempts."""
    from xenoflow_ovs.fleet import edits
    from xenoflow_ovs.fleet.store import Store, StoreError
    attempts = 0
    while time.monotonic() - t0 < timeout:
        attempts += 1
        try:
            v = holder[0].change(edits.backend_edit("weight", SERVICE, "be2", weight=next_weight("be2")),
                                     "bench: weight after a leader kill")
            return v, time.monotonic(), attempts
        except StoreError:
            if attempts % 3 == 0 and not holder[0].connected():
                holder[0].close()
                holder[0] = Store(bed.cluster.remotes, timeout=1.0)
    return None, time.monotonic(), attempts


def wait_rejoined(bed: Any, i: int, timeout: float = 30.0) -> Optional[float]:
    """Until member i follows a known leader again and the cluster has a leader of 3 servers."""
    from xenoflow_ovs.fleet import cluster
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        try:
            st = bed.cluster.members[i].status()
            lead = bed.cluster.leader()
            if st.get("Role") in ("follower", "leader") and st.get("Leader", "unknown") != "unknown" \
                    and lead is not None and len(lead.status()["servers"].splitlines()) == 3:
                return time.monotonic() - t
        except cluster.ClusterError:
            pass
        time.sleep(0.05)
    return None


def elected_at(bed: Any, t0: float) -> Optional[float]:
    """When the leader now in office won its election, in s after t0 (its "Last Election
    won: N ms ago")."""
    from xenoflow_ovs.fleet import cluster
    try:
        lead = bed.cluster.leader()
        t = time.monotonic()
        ago = (lead.status() if lead is not None else {}).get("Last Election won", "")
    except cluster.ClusterError:
        return None
    words = ago.split()
    if len(words) < 2 or words[1] != "ms" or not words[0].isdigit():
        return None
    return t - int(words[0]) / 1000.0 - t0


def kill_round(bed: Any, holder: List[Any], poller: Poller, timer: int, r: int) -> Dict[str, Any]:
    leader = bed.cluster.leader()
    if leader is None:
        return {"measure": "kill", "dpus": len(bed.dpus), "timer_ms": timer, "round": r, "error": "no leader"}
    i, pid = bed.cluster.members.index(leader), leader.pid()
    row: Dict[str, Any] = {"measure": "kill", "dpus": len(bed.dpus), "timer_ms": timer, "round": r,
                           "member": leader.name}
    during: List[bool] = []

    def look() -> None:              # 0.3 s into the outage: the DPUs still forward
        time.sleep(0.3)
        during.append(all_have_flows(bed))
    check = threading.Thread(target=look, daemon=True)
    lives = holder[0].lives
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)       # itself, not Member.stop(): that waits for init to reap it
    check.start()
    v, tc, row["attempts"] = first_write(bed, holder, t0)
    check.join(30)
    row["flows_during"] = bool(during and during[0])
    row["reconnected"] = holder[0].lives != lives or row["attempts"] > 1
    if v is None:
        row["error"] = "no write committed within %.0f s of the kill" % (tc - t0)
    else:
        row.update(resume_s=tc - t0, version=v, elected_s=elected_at(bed, t0))
        first = poller.wait_applied(v, [d.name for d in bed.dpus], APPLY_TIMEOUT)
        if len(first) == len(bed.dpus):
            row["applied_after_s"] = max(first.values()) - tc
        else:
            row["error"] = "%d of %d DPUs applied the write" % (len(first), len(bed.dpus))
    row["flows_after"] = all_have_flows(bed)
    leader.stop(signal.SIGKILL)        # gone (reaped) before it serves again
    bed.cluster.serve(i)
    row["rejoin_s"] = wait_rejoined(bed, i)
    if row["rejoin_s"] is None:
        row["error"] = "; ".join(filter(None, [row.get("error"), "%s did not rejoin" % leader.name]))
    return row


def kill_phase(bed: Any, timer: int, rounds: int, emit: Callable[[Dict[str, Any]], None]) -> None:
    from xenoflow_ovs.fleet.store import Store
    holder = [Store(bed.cluster.remotes, timeout=1.0).connect()]
    poller = Poller(bed.cluster.remotes)
    try:
        for r in range(rounds):
            row = kill_round(bed, holder, poller, timer, r)
            emit(row)
            log("  timer %d ms, round %d: killed %s, new leader %s s, a write committed %s s later (%s "
                "attempts), both DPUs applied it %s s after, flows kept %s/%s, member back in %s s%s" % (
                    timer, r, row.get("member"), f3(row.get("elected_s")), f3(row.get("resume_s")),
                    row.get("attempts"),
                    f3(row.get("applied_after_s")), row.get("flows_during"), row.get("flows_after"),
                    f3(row.get("rejoin_s")), ": " + row["error"] if row.get("error") else ""))
            if row.get("rejoin_s") is None:
                break
            time.sleep(1.0)            # every client back on a live member
    finally:
        holder[0].close()
        poller.close()


# ----------------------------------------------------------------------------- beds

class State:
    def __init__(self) -> None:
        self.rows: List[Dict[str, Any]] = []
        self.out = ""

    def emit(self, row: Dict[str, Any]) -> None:
        self.rows.append(row)
        write_csv(os.path.join(self.out, "fleet.csv"), self.rows)    # a crash keeps what was measured


STATE = State()


def bed_dir(root: str, name: str) -> str:
    path = os.path.join(root, name)
    if os.path.exists(path):
        raise RuntimeError("%s exists: another run, or one that crashed (then remove it, and its "
                           "namespaces %s-d*)" % (path, "<prefix>"))
    return path


def run_bed(a: argparse.Namespace, name: str, n: int, timer: Optional[int],
            body: Callable[[Any], None]) -> None:
    """A bed of n DPUs up (its start-up time a row), `body(bed)`, then the bed gone."""
    from xenoflow_ovs.lab.fleet_bed import SERVICE as SVC
    from xenoflow_ovs.lab.fleet_bed import FleetBed, backends
    bed = FleetBed(bed_dir(a.root, name), n, prefix=a.prefix, base_port=a.base_port)
    try:
        t = time.monotonic()
        bed.start([dict(SVC, backends=backends(BACKENDS))], election_timer=timer)
        up = time.monotonic() - t
        log("bed %s: %d DPUs up in %.1f s" % (name, n, up))
        if timer is None:
            STATE.emit({"measure": "bed", "dpus": n, "up_s": up})
        body(bed)
    except Exception as exc:
        log(traceback.format_exc())
        STATE.emit({"measure": "bed" if timer is None else "kill", "dpus": n, "timer_ms": timer or None,
                    "error": "%s: %s" % (type(exc).__name__, str(exc).strip().replace("\n", " ")[-300:])})
    finally:
        t = time.monotonic()
        bed.stop()
        bed.remove()
        log("bed %s down in %.1f s" % (name, time.monotonic() - t))


def election_timer(bed: Any) -> int:
    lead = bed.cluster.leader()
    return int(lead.status().get("Election timer") or 0) if lead is not None else 0


# ----------------------------------------------------------------------------- outputs

def _cell(v: Any) -> Any:
    return "%.6g" % v if isinstance(v, float) else ("" if v is None else v)


def write_csv(path: str, rows: List[Dict[str, Any]]) -> None:
    import csv
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: _cell(r.get(k)) for k in COLUMNS})


def provenance(meta: Dict[str, Any]) -> str:
    c = meta.get("code") or {}
    if not c.get("commit"):
        return "code: unknown"
    return "code: %s%s" % (c["commit"], " with uncommitted changes to %s" % ", ".join(c["changed"])
                           if c.get("changed") else "")


def write_md(out: str, rows: List[Dict[str, Any]], meta: Dict[str, Any]) -> None:
    p = meta["params"]
    notes = "".join("\n- note: %s" % n for n in meta.get("notes", []))
    text = """## Fleet: DPUs following one intent

Method (`benchmarks/bench_fleet.py{smoke}`, {date}, {dur:.0f} s, {code}; the machine: {cpus} vCPUs
shared by everything): each bed is a 3-member ovsdb-server cluster (Raft on 127.0.0.1, clients on unix
sockets) holding one service (maglev, 2^10 buckets, {be} backends) and N DPUs, each a namespace
with a private OVS (userspace datapath) and a controller (eSwitch driver none) following the
store; one bed at a time.
- edits: per fleet size, {k} edits in turn draining and undraining one backend, one at a
  time; commit = the time `Store.change()` takes; then the bench's replica of the store is
  read (woken by every update, at least every 2 ms) until every DPU's row shows the version
  applied: commit → first / all DPUs, and edit → all (from just before the change: what an
  operator waits). The controllers' own apply time is `last_apply.seconds` of their /status
  (the slowest DPU's). Percentiles by nearest rank (p99 of {k} samples is their maximum).
  Then {kw} weight edits the same way: unlike a drain, a weight edit is validated in the
  transaction against every DPU's published facts (a config composed per DPU);
- at rest: after the edits, every controller's VmRSS, and its CPU (/proc/<pid>/stat) over
  {win:.0f} s with no edit (heartbeat observations, the DPU rows' updates every replica
  receives, flow-stats polls), as a share of one core; the same for the store's members;
- writes: on the largest bed, writer threads of this process (they share its interpreter
  lock), each with its own Store, each setting the weight of its own backend for {ws:.0f} s
  (every edit verifies and bumps the fleet's version: concurrent ones retry on the fresh
  replica); committed edits/s, commit latency, and how long the DPUs took to apply the last
  version after the burst; then the same with the controllers stopped: the store alone (their
  rows, and so the validation per DPU, stay);
- leader kill: a bed of 2 DPUs, election timer {timers} ms; the leader SIGKILLed, then weight
  edits (a Store with a 1 s timeout, replaced when it does not reconnect by itself) until one
  commits: resume = kill → commit; new leader elected = when the new leader won its election
  (its `cluster/status`), after the kill; the DPUs' flows for the VIP checked 0.3 s into the
  outage and after; both DPUs apply the edit; the member restarted and back in the cluster
  before the next of {r} rounds.{notes}

### Goals

{goals}

### Edit to applied, per fleet size

{edits}

### At rest, per fleet size

{rest}

### Writes the cluster sustains

{writes}

### Leader killed: writes resume

{kills}

![fleet](fleet.png)
""".format(smoke=" --smoke" if meta["smoke"] else "", date=time.strftime("%Y-%m-%d"), dur=meta["duration_s"],
           cpus=meta["machine"].get("cpus", "?"), be=BACKENDS, k=p["edits"], kw=p["weight_edits"],
           win=p["idle_window_s"], code=provenance(meta),
           ws=p["write_seconds"],
           timers=" and ".join(str(t) for t in p["timers"]), r=p["kills"], notes=notes,
           goals=goal_table(rows), edits=edit_table(rows), rest=rest_table(rows), writes=writes_table(rows),
           kills=kill_table(rows))
    with open(os.path.join(out, "fleet.md"), "w") as f:
        f.write(text)


def plot(out: str, rows: List[Dict[str, Any]]) -> None:
    """Edit latency against the fleet's size, writes/s, the kill rounds. Needs matplotlib."""
    import bench_scale
    plt = bench_scale.pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    ax = axes[0]
    ns = sizes(rows)
    ss = [edit_summary(rows, n) for n in ns]
    for key, label, style in (("edit_med", "edit → all, median", "o-"), ("edit_p99", "edit → all, p99", "s-"),
                              ("first_med", "commit → first DPU, median", "^--"),
                              ("commit_med", "commit, median", "v:")):
        pts = [(n, s[key]) for n, s in zip(ns, ss) if s[key] is not None]
        if pts:
            ax.plot([x for x, _ in pts], [y for _, y in pts], style, ms=4, label=label)
    ax.axhline(GOAL_EDIT_MS, color="k", lw=0.8, ls="--")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns)
    ax.set_xticklabels([str(n) for n in ns])
    ax.set_yscale("log")
    ax.set_xlabel("controllers")
    ax.set_ylabel("ms")
    ax.legend(fontsize=7)
    ws = of(rows, "writes")
    axes[1].bar(range(len(ws)), [num(r.get("per_s")) or 0 for r in ws])
    axes[1].set_xticks(range(len(ws)))
    axes[1].set_xticklabels(["%s w\n%s" % (r.get("writers"), "%s DPUs" % r.get("dpus") if num(r.get("dpus"))
                                           else "alone") for r in ws], fontsize=7)
    axes[1].set_ylabel("committed edits/s")
    for t in timers(rows):
        ks = [r for r in of(rows, "kill", timer_ms=t) if num(r.get("resume_s")) is not None]
        axes[2].plot([num(r["round"]) for r in ks], [num(r["resume_s"]) for r in ks], "o",
                     label="timer %d ms" % t)
    axes[2].axhline(GOAL_RESUME_S, color="k", lw=0.8, ls="--")
    axes[2].set_ylim(bottom=0)
    axes[2].xaxis.get_major_locator().set_params(integer=True)
    axes[2].set_xlabel("leader kill (round)")
    axes[2].set_ylabel("s to the first committed write")
    if timers(rows):
        axes[2].legend(fontsize=7)
    for a in axes:
        a.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "fleet.png"), dpi=110)
    plt.close(fig)


def code() -> Dict[str, Any]:
    """The checkout measured: its commit, and the product's files changed since (if any)."""
    import subprocess
    root = os.path.dirname(HERE)
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, universal_newlines=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "xenoflow_ovs"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True,
                               timeout=10).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": head, "changed": [line[3:] for line in dirty if line.strip()]}


def machine() -> Dict[str, str]:
    out = {"uname": " ".join(os.uname()), "cpus": str(os.cpu_count())}
    try:
        out["cpu"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                          if line.startswith("model name"))
        out["mem"] = next(line.split(":", 1)[1].strip() for line in open("/proc/meminfo")
                          if line.startswith("MemTotal"))
        out["os"] = next(line.split("=", 1)[1].strip().strip('"') for line in open("/etc/os-release")
                         if line.startswith("PRETTY_NAME="))
    except (OSError, StopIteration):
        pass
    out["time_utc"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    return out


# ----------------------------------------------------------------------------- main

def _ints(text: str) -> List[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="CI-sized: 2 and 4 controllers, fewer rounds")
    ap.add_argument("--out", default=None, help="results dir (default benchmarks/results, "
                                                "benchmarks/results/smoke with --smoke)")
    ap.add_argument("--sizes", type=_ints, default=None,
                    help="controllers per bed (default 2,4,8,16; smoke 2,4)")
    ap.add_argument("--edits", type=int, default=None, help="edits per fleet size (default 40, smoke 10)")
    ap.add_argument("--weight-edits", type=int, default=None,
                    help="weight edits per fleet size, after the drains (default 10, smoke 4)")
    ap.add_argument("--idle-window", type=float, default=None,
                    help="s of CPU sampling at rest after the edits (default 5, smoke 2)")
    ap.add_argument("--gap", type=float, default=0.05, help="s between two edits (default 0.05)")
    ap.add_argument("--writers", type=_ints, default=[1, 4], help="writer threads per burst (default 1,4)")
    ap.add_argument("--write-seconds", type=float, default=None, help="s per burst (default 10, smoke 3)")
    ap.add_argument("--kills", type=int, default=None, help="leader kills per timer (default 5, smoke 2)")
    ap.add_argument("--timers", type=_ints, default=None,
                    help="election timers, ms (default 500,1000; smoke 500); 1000 is the cluster's default")
    ap.add_argument("--render", action="store_true",
                    help="no measuring: fleet.md and fleet.png again from <out>/fleet.csv and fleet.json")
    ap.add_argument("--root", default=ROOT)
    ap.add_argument("--prefix", default=PREFIX, help="namespaces <prefix>-d<i>")
    ap.add_argument("--base-port", type=int, default=BASE_PORT, help="Raft ports base..base+2")
    return ap


def params(a: argparse.Namespace) -> Dict[str, Any]:
    return {"sizes": a.sizes or ([2, 4] if a.smoke else [2, 4, 8, 16]),
            "edits": a.edits or (10 if a.smoke else 40), "gap_s": a.gap, "writers": a.writers,
            "weight_edits": a.weight_edits if a.weight_edits is not None else (4 if a.smoke else 10),
            "idle_window_s": a.idle_window or (2.0 if a.smoke else 5.0),
            "write_seconds": a.write_seconds or (3.0 if a.smoke else 10.0),
            "kills": a.kills if a.kills is not None else (2 if a.smoke else 5),
            "timers": a.timers or ([500] if a.smoke else [500, 1000]), "backends": BACKENDS,
            "root": a.root, "prefix": a.prefix, "base_port": a.base_port}


def run_all(a: argparse.Namespace, p: Dict[str, Any]) -> None:
    emit = STATE.emit
    for n in p["sizes"]:
        def body(bed: Any, n: int = n) -> None:
            log("edits: %d controllers, %d edits" % (n, p["edits"]))
            edit_phase(bed, p["edits"], p["weight_edits"], p["gap_s"], emit)
            resources(bed, p["idle_window_s"], emit)
            use_intent(bed, "paper")
            edit_phase(bed, p["edits"], 0, p["gap_s"], emit, intent="paper")
            use_intent(bed, "maglev")
            if n == max(p["sizes"]) and p["writers"] and p["write_seconds"] > 0:
                log("writes: %s writer(s), %.0f s each" % (",".join(map(str, p["writers"])),
                                                             p["write_seconds"]))
                writes_phase(bed, p["writers"], p["write_seconds"], emit)
        run_bed(a, "n%d" % n, n, None, body)
    for t in p["timers"] if p["kills"] > 0 else []:
        def kills(bed: Any, t: int = t) -> None:
            got = election_timer(bed)
            log("leader kills: election timer %d ms, %d rounds" % (got, p["kills"]))
            kill_phase(bed, got or t, p["kills"], emit)
        run_bed(a, "kill%d" % t, 2, t, kills)


def render(out: str) -> int:
    import csv
    with open(os.path.join(out, "fleet.csv")) as f:
        rows: List[Dict[str, Any]] = list(csv.DictReader(f))
    with open(os.path.join(out, "fleet.json")) as f:
        meta = json.load(f)
    meta["goals"] = goal_summary(rows)
    write_md(out, rows, meta)
    plot(out, rows)
    with open(os.path.join(out, "fleet.json"), "w") as f:
        json.dump(meta, f, indent=1)
    log("wrote %s/fleet.md, fleet.json's goals from fleet.csv and fleet.json" % out)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    a = _parser().parse_args(argv)
    out = a.out or (os.path.join(HERE, "results", "smoke") if a.smoke else os.path.join(HERE, "results"))
    os.makedirs(out, exist_ok=True)
    if a.render:
        return render(out)
    if os.geteuid() != 0:
        sys.stderr.write("bench_fleet.py needs root (namespaces, private OVS instances)\n")
        return 2
    p = params(a)
    STATE.out = out
    import bench_scale  # its signal handling: every finally cleans up
    bench_scale.unwind_on_signals()
    t0 = time.time()
    load = [os.getloadavg()[0]]
    measured = code()
    notes: List[str] = []
    try:
        run_all(a, p)
    except KeyboardInterrupt:
        notes.append("interrupted after %d rows" % len(STATE.rows))
        log(notes[-1])
    try:
        os.rmdir(a.root)          # every bed is gone: the root too, when nothing else is in it
    except OSError:
        pass
    rows = STATE.rows
    notes += ["%s (%s DPUs): %s" % (r["measure"], r.get("dpus"), r["error"]) for r in rows
              if r.get("measure") == "bed" and r.get("error")]
    meta = {"suite": "fleet", "smoke": a.smoke,
            "lab": "fleet bed (%s, namespaces %s-d*)" % (a.root, a.prefix),
            "machine": machine(), "code": measured, "params": p, "duration_s": round(time.time() - t0, 1),
            "notes": notes,
            "load_1min": {"start": load[0], "end": os.getloadavg()[0]},
            "goals": goal_summary(rows)}
    write_csv(os.path.join(out, "fleet.csv"), rows)
    write_md(out, rows, meta)
    plot(out, rows)
    with open(os.path.join(out, "fleet.json"), "w") as f:
        json.dump(meta, f, indent=1)
    for g in meta["goals"]:
        log("goal %s %s: %s" % (g["goal"], g["limit"], g["verdict"]))
    log("wrote %s/fleet.csv, fleet.md, fleet.json" % out)
    return 1 if notes else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""DPU events in the fleet lab (two DPUs behind a BGP/ECMP router, docs/lab-fleet.md), under
a steady, sequence-numbered load: loss windows, false BFD failovers, re-announce times and
the clients that changed backend.

    sudo .venv/bin/python benchmarks/bench_fleet_events.py            # full (~6 min)
    sudo .venv/bin/python benchmarks/bench_fleet_events.py --smoke    # CI-sized (~2 min)

It brings the fleet lab up in its own run dir (/tmp/xb-fleet-events), then per round and
event kind, while fips1 sends DNS queries from 64 source addresses (one flow each, hashed
over both DPUs by the router) at --rate queries/s:

  eswitchd_killed   SIGKILL to dpu1's eswitchd: its in-band BGP/BFD dies with it; restarted
                    after --hold s
  silent_failure    nft in the router drops everything to and from dpu1's uplink (the link
                    stays up: only BFD can tell); removed after --hold s
  planned_drain     `xenoflow fleet drain-dpu dpu1`, which waits until the VIP counters are
                    flat; `--undo` after --hold s
  backends_out      dpu1's egress to the backends' segment dropped (nft on the switch): its
                    health probes all fail and it withdraws; restored after --hold s

Per event: the loss window (the longest run of unanswered queries, in send time, plus one
sending interval), queries lost, time until the router dropped dpu1's nexthop, time from
dpu1's return to its nexthop being back (it is announced only once its planes check
consistent), dpu1's verdict then, and the share of clients whose backend differs before and
after (the event; the return). BFD session-down events at the router are counted over the
whole run, and those no event caused are false failovers. At the end, the idle CPU of the
lab's processes (both DPUs at rest).

Writes <out>/fleet_events.csv (one row per event), fleet_events.md and fleet_events.json;
report.py puts them after the fleet section of REPORT.md. The lab is taken down on the way
out, Ctrl-C included.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# the lab tests' paced load generator and event runner: one implementation for both
sys.path.insert(0, os.path.join(REPO, "tests"))

GOALS = {"eswitchd_killed": 1.0, "silent_failure": 1.0, "planned_drain": 0.0}
STRETCH = 0.5


def log(msg: str) -> None:
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="one round, shorter holds")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=float, default=2000.0, help="queries/s (default %(default)g: the Python "
                    "sender keeps its pace on 2 vCPUs beside the lab)")
    ap.add_argument("--hold", type=float, default=4.0, help="s the DPU stays out")
    ap.add_argument("--events", default=",".join(("eswitchd_killed", "silent_failure", "planned_drain",
                                                   "backends_out")))
    ap.add_argument("--run-dir", default="/tmp/xb-fleet-events")
    ap.add_argument("--topology", default="fleet", help="the fleet lab's topology (name, dir or file)")
    ap.add_argument("--bfd-ms", type=int, help="run on a copy of the topology whose DPUs (and so the "
                    "router) use this BFD interval (the multiplier stays)")
    ap.add_argument("--out", help="results dir (default benchmarks/results, smoke: results/smoke)")
    ap.add_argument("--name", default="fleet_events", help="the results' file names (default %(default)s; "
                    "report.py shows every fleet_events*.md, e.g. fleet_events_bfd150 for a run with "
                    "other timers)")
    return ap


def lab_of(run_dir: str, topology: str = "fleet") -> Any:
    from xenoflow_ovs.lab.fleet_lab import FleetLab
    from xenoflow_ovs.lab.labctl import Progress, topology_path
    from xenoflow_ovs.lab.topology import load_topology
    args = argparse.Namespace(topology=topology, run_dir=run_dir, eswitch=None, mirror_routes=None,
                              eswitch_mode=None)
    return FleetLab(args, Progress(out=sys.stderr), load_topology(topology_path(topology)))


def idle_cpu(lab: Any, seconds: float = 10.0) -> Dict[str, float]:
    """% of one core per kind of process of the lab, at rest, from /proc/<pid>/stat."""
    procs: Dict[int, str] = {}
    for n, p in lab.state.data["processes"].items():
        procs[p["pid"]] = n.split("-")[0]
    for d in lab.dpus:
        for n, p in d.state.data["processes"].items():
            procs[p["pid"]] = n.split("-")[0]
    hz = os.sysconf("SC_CLK_TCK")

    def ticks() -> Dict[int, int]:
        out = {}
        for pid in procs:
            try:
                with open("/proc/%d/stat" % pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                out[pid] = int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                pass
        return out
    a = ticks()
    time.sleep(seconds)
    b = ticks()
    kinds: Dict[str, float] = {}
    for pid, kind in procs.items():
        if pid in a and pid in b:
            kinds[kind] = kinds.get(kind, 0.0) + 100.0 * (b[pid] - a[pid]) / hz / seconds
    kinds["total"] = sum(kinds.values())
    return {k: round(v, 2) for k, v in sorted(kinds.items())}


def with_bfd(topology: str, ms: int, into: str) -> str:
    """A copy of the topology's directory whose DPU configs have BFD at `ms` (the router takes
    its timers from them)."""
    import shutil

    import yaml

    from xenoflow_ovs.lab.labctl import topology_path
    src = os.path.dirname(topology_path(topology))
    dst = os.path.join(into, "topology-bfd%d" % ms)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    for name in os.listdir(dst):
        path = os.path.join(dst, name)
        with open(path) as f:
            data = yaml.safe_load(f)
        bgp = ((data or {}).get("fleet") or {}).get("bgp") if isinstance(data, dict) else None
        if bgp is not None:
            bgp.setdefault("bfd", {})["interval_ms"] = ms
            with open(path, "w") as f:
                yaml.safe_dump(data, f, sort_keys=False)
    return dst


def summarize(rows: List[Dict[str, Any]], false_failovers: Optional[int]) -> List[Dict[str, Any]]:
    out = []
    for kind in dict.fromkeys(r["event"] for r in rows):
        rs = [r for r in rows if r["event"] == kind]
        win = [r["loss_window"] for r in rs]
        back = [r["announced_again_in"] for r in rs if r.get("announced_again_in") is not None]
        out.append({"event": kind, "n": len(rs), "loss_window_median": statistics.median(win),
                    "loss_window_max": max(win), "lost_median": statistics.median(r["lost"] for r in rs),
                    "withdrawn_in_median": _median(r.get("withdrawn_in") for r in rs),
                    "announced_again_median": statistics.median(back) if back else None,
                    "changed_share_max": max(max(r["changed_share"], r["changed_share_back"]) for r in rs),
                    "consistent_when_back": all(r.get("verdict_when_back") == "consistent" for r in rs)})
    return out


def _median(xs: Any) -> Optional[float]:
    v = [x for x in xs if x is not None]
    return statistics.median(v) if v else None


def goal_lines(summary: List[Dict[str, Any]], false_failovers: Optional[int]) -> List[str]:
    lines = []
    for s in summary:
        goal = GOALS.get(s["event"])
        if goal is None:
            continue
        med = s["loss_window_median"]
        met = med <= goal if goal else s["lost_median"] == 0 and s["loss_window_max"] == 0
        lines.append("| %s loss window | %s | %s s median, %s s max | %s%s |" % (
            s["event"].replace("_", " "), "0 (no query lost)" if not goal else "≤ %g s (stretch ≤ %g s)"
            % (goal, STRETCH), _f(med), _f(s["loss_window_max"]), "met" if met else "MISSED",
            ", stretch met" if goal and med <= STRETCH else ""))
    lines.append("| false BFD failovers over the run | 0 | %s | %s |" % (
        "?" if false_failovers is None else false_failovers,
        "met" if false_failovers == 0 else "MISSED"))
    lines.append("| clients that changed backend across DPU events | 0 | %s | %s |" % (
        _f(max((s["changed_share_max"] for s in summary), default=0.0)),
        "met" if all(s["changed_share_max"] == 0 for s in summary) else "MISSED"))
    return lines


def _f(x: Any) -> str:
    return "–" if x is None else ("%.3f" % x if isinstance(x, float) else str(x))


def write_md(out: str, rows: List[Dict[str, Any]], meta: Dict[str, Any], name: str = "fleet_events") -> None:
    summary = meta["summary"]
    lines = ["## Fleet: DPU events under load (BGP, ECMP, BFD %s)" % meta.get("bfd", "?"), "",
             "`sudo .venv/bin/python benchmarks/bench_fleet_events.py%s%s`: the fleet lab (two DPUs on "
             "softdoca behind an FRR router with L4 ECMP, BFD %s), %d round(s) per event, %g queries/s "
             "from 64 sources (one flow each), DPU out for %g s. Loss window: per flow, the longest run "
             "of its unanswered queries (send time) plus one of its sending intervals; the table's "
             "figure is the worst flow's." % (
                 " --smoke" if meta["smoke"] else "",
                 "".join(" %s %s" % (k, v) for k, v in (meta.get("flags") or {}).items()),
                 meta.get("bfd", "?"), meta["rounds"], meta["rate"],
                 meta["hold"]),
             "", "| goal | target | measured | verdict |", "|---|---|---|---|"]
    lines += goal_lines(summary, meta.get("false_failovers"))
    lines += ["", "| event | rounds | loss window median / max s | lost (median) | withdrawn after s | "
              "announced again after s | clients changed backend | consistent when back |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]
    for s in summary:
        lines.append("| %s | %d | %s / %s | %s | %s | %s | %s | %s |" % (
            s["event"], s["n"], _f(s["loss_window_median"]), _f(s["loss_window_max"]), _f(s["lost_median"]),
            _f(s["withdrawn_in_median"]), _f(s["announced_again_median"]), _f(s["changed_share_max"]),
            "yes" if s["consistent_when_back"] else "NO"))
    idle = meta.get("idle_cpu") or {}
    if idle:
        lines += ["", "At rest, the lab's processes (%% of one core over 10 s): %s." % ", ".join(
            "%s %s" % (k, v) for k, v in idle.items())]
    lines += ["", "Withdrawn after: from the event to the router's route losing dpu1's nexthop (for a "
              "planned drain, after `drain-dpu` returned). Announced again after: from the DPU's return "
              "(eswitchd answering again, the nft rule removed, `drain-dpu --undo` issued) to the nexthop "
              "being back. A DPU that cannot reach its backends withdraws once its probes have all failed "
              "for 0.5 s; the queries it got meanwhile are its loss window."]
    if meta.get("notes"):
        lines += [""] + ["- " + n for n in meta["notes"]]
    with open(os.path.join(out, name + ".md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv: Optional[List[str]] = None) -> int:
    a = _parser().parse_args(argv)
    if os.geteuid() != 0:
        sys.stderr.write("bench_fleet_events.py needs root (namespaces, OVS, FRR)\n")
        return 2
    if a.smoke:
        a.rounds, a.hold = 1, 3.0
    out = a.out or (os.path.join(HERE, "results", "smoke") if a.smoke else os.path.join(HERE, "results"))
    os.makedirs(out, exist_ok=True)
    import bench_fleet
    import bench_scale
    import fleet_lab_events as ev
    bench_scale.unwind_on_signals()
    copy_dir = None
    if a.bfd_ms:
        import tempfile
        copy_dir = tempfile.mkdtemp(prefix="xb-fleet-topology-")
        a.topology = with_bfd(a.topology, a.bfd_ms, copy_dir)
    t0 = time.time()
    lab = lab_of(a.run_dir, a.topology)
    rows: List[Dict[str, Any]] = []
    notes: List[str] = []
    meta: Dict[str, Any] = {"suite": a.name, "smoke": a.smoke, "rounds": a.rounds, "rate": a.rate,
                            "hold": a.hold, "lab": "fleet (%s)" % a.run_dir, "machine": bench_fleet.machine(),
                            "code": bench_fleet.code(),
                            "flags": {k: v for k, v in (("--bfd-ms", a.bfd_ms), ("--name", a.name))
                                      if v and v != "fleet_events"}}
    try:
        lab.up()
        lab = lab_of(a.run_dir, a.topology)
        fr = ev.FleetRun(lab)
        b = lab.dpus[0].load_cfg().fleet.bgp
        meta["bfd"] = "%d ms × %d" % (b.bfd_interval_ms, b.bfd_multiplier)
        start = ev.bfd_down_events(fr)
        caused: Dict[str, int] = {}
        for rnd in range(a.rounds):
            for kind in a.events.split(","):
                log("round %d: %s" % (rnd + 1, kind))
                r = ev.run_event(fr, kind, rate=a.rate, hold=a.hold)
                if kind in ("eswitchd_killed", "silent_failure"):
                    caused[r["dpu"]] = caused.get(r["dpu"], 0) + 1
                r["round"] = rnd + 1
                rows.append(r)
                log("  loss window %.3f s, lost %d of %d, withdrawn after %s s, back after %s s, changed %s"
                    % (r["loss_window"], r["lost"], r["sent"], _f(r.get("withdrawn_in")),
                       _f(r.get("announced_again_in")), _f(r["changed_share"])))
                if r.get("error"):
                    notes.append("%s round %d: %s" % (kind, rnd + 1, r["error"]))
        end = ev.bfd_down_events(fr)
        meta["false_failovers"] = sum(end.get(d, 0) - start.get(d, 0) - caused.get(d, 0) for d in end)
        meta["bfd_down"] = {d: end.get(d, 0) - start.get(d, 0) for d in end}
        time.sleep(3)
        meta["idle_cpu"] = idle_cpu(lab)
    except KeyboardInterrupt:
        notes.append("interrupted after %d events" % len(rows))
    finally:
        try:
            lab_of(a.run_dir, a.topology).down()
        except Exception as exc:
            notes.append("lab down: %s" % exc)
    if copy_dir:
        import shutil
        shutil.rmtree(copy_dir, ignore_errors=True)
    meta["notes"] = notes
    meta["duration_s"] = round(time.time() - t0, 1)
    meta["summary"] = summarize(rows, meta.get("false_failovers")) if rows else []
    cols = ["round", "event", "dpu", "rate", "sent", "lost", "loss_window", "withdrawn_in",
            "announced_again_in", "verdict_when_back", "changed_share", "changed_share_back", "drain_rc",
            "error"]
    with open(os.path.join(out, a.name + ".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    with open(os.path.join(out, a.name + ".json"), "w") as f:
        json.dump(meta, f, indent=1, default=str)
    if rows:
        write_md(out, rows, meta, a.name)
        for line in goal_lines(meta["summary"], meta.get("false_failovers")):
            log(line)
    log("wrote %s/%s.csv, .md, .json" % (out, a.name))
    return 1 if notes else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The control plane at scale: generated intents, one factor at a time around a base point
(1 service, 2^10 buckets, 8 backends, maglev), and the largest point 8 x 2^16.

    sudo .venv/bin/python benchmarks/bench_scale.py            # full (~30 min on 2 cores)
    sudo .venv/bin/python benchmarks/bench_scale.py --smoke    # CI-sized (~3 min)
    sudo .venv/bin/python benchmarks/bench_scale.py --points 1x2^16-8be-maglev

Per point, in one run of the paper lab (brought up once, run dir /tmp/xb-scale): plan and
diff of one backend removal in process; then, the controller stopped and both planes
emptied, the point's config, the controller started: install from empty until its status
says both planes programmed; one backend drained through the API until applied; an
ovs-vswitchd restart until the flows are back and `xenoflow check` is consistent; the
controller's CPU at steady state (its flow-stats polling) and both daemons' RSS; `xenoflow
check`'s time. Then, lab down, softdoca's forwarding cost with 2 and 2^16 bucket entries
(bench_glue_forward.py --entries). Each point has a time limit: one that runs out is a row
saying where, and the suite goes on.
Writes <out>/scale.csv, scale.md, scale.png, scale.json and glue_forward_entries.csv/.md;
report.py adds the section to REPORT.md. After a crash: `xenoflow lab down --run-dir
/tmp/xb-scale`.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
import pkgpath  # noqa: E402,F401  (before the package: where it comes from)
import scale_points as SP  # noqa: E402

RUN_DIR = "/tmp/xb-scale"
COLUMNS = ["point", "services", "bits", "backends", "policy", "buckets", "sweeps", "flows", "entries",
           "plan_s", "replan_s", "diff_s", "plan_diff_s", "changes", "moved_expected",
           "install_s", "api_up_s", "install_rc", "removal_s", "moved_reported", "removal_rc",
           "removal_phases", "ovs_up_s", "reconcile_s", "reconcile_consistent_s", "ctrl_cpu", "cpu_window_s",
           "ctrl_rss_mb", "esw_rss_mb", "check_s", "check_rc", "point_s", "error"]


def log(msg: str) -> None:
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


class PointTimeout(BaseException):
    """The point's time ran out (BaseException: no broad handler on the way swallows it)."""


def _alarm(signum: int, frame: Any) -> None:
    raise PointTimeout()


# ----------------------------------------------------------------------------- one point

def measure_pure(p: SP.Point, row: Dict[str, Any]) -> Any:
    """plan of the point from empty, the plan after one removal, their diff; the plan
    after the removal (what the lab must carry after the drain)."""
    from xenoflow_ovs.intent import config as config_mod
    from xenoflow_ovs.intent import plan as plan_mod
    cfg = config_mod.from_data(SP.point_data(p), base_dir=os.path.dirname(SP.PAPER_CONFIG))
    t = time.perf_counter()
    old = plan_mod.plan(cfg)
    row["plan_s"] = time.perf_counter() - t
    svc, be = SP.REMOVED
    t = time.perf_counter()
    try:
        new = plan_mod.plan(cfg, exclude={svc: [be]}, reuse=old)
    except TypeError:            # a plan() without reuse
        new = plan_mod.plan(cfg, exclude={svc: [be]})
    row["replan_s"] = time.perf_counter() - t
    t = time.perf_counter()
    changes = plan_mod.diff(old, new)
    row["diff_s"] = time.perf_counter() - t
    row["plan_diff_s"] = row["replan_s"] + row["diff_s"]
    row["changes"] = len(changes)
    row["moved_expected"] = plan_mod.moved_buckets(old, new)
    row["flows"] = old.flow_count() if hasattr(old, "flow_count") else len(old.flows)
    row["entries"] = old.entry_count() if hasattr(old, "entry_count") else len(old.entries)
    if hasattr(new, "flow_count"):
        return {br.name: new.flow_count(br.name) for br in cfg.bridges}
    return {br.name: len(new.bridge_flows(br.name)) for br in cfg.bridges}


def measure_lab(lab: Any, p: SP.Point, row: Dict[str, Any], want: Dict[str, int], deadline: float,
                cpu_window: float, step: List[str]) -> None:
    from scale_lab import cpu_seconds, rss_mb
    step[0] = "reset"
    lab.reset(SP.point_data(p, lab.paper))
    step[0] = "install"
    t0 = time.monotonic()
    lab.start_controller()
    answered = lab.wait_programmed(deadline)
    row["install_s"] = time.monotonic() - t0
    row["api_up_s"] = answered - t0
    step[0] = "check after install"
    row["install_rc"] = lab.check(deadline)["rc"]
    step[0] = "removal"
    svc, be = SP.REMOVED
    t = time.monotonic()
    reply = lab.api("POST", "/services/%s/backends/%s/drain" % (svc, be), deadline - time.monotonic())
    row["removal_s"] = time.monotonic() - t
    row["moved_reported"] = reply.get("moved_buckets")
    # the controller's own account of where the change spent its time
    row["removal_phases"] = " ".join("%s=%.3f" % kv for kv in (reply.get("seconds") or {}).items())
    step[0] = "check after removal"
    row["removal_rc"] = lab.check(deadline)["rc"]
    step[0] = "steady state"
    time.sleep(1.0)                       # the removal's verification settles
    pid = lab.pid("controller")
    c0, t = cpu_seconds(pid), time.monotonic()
    time.sleep(cpu_window)
    row["ctrl_cpu"] = (cpu_seconds(pid) - c0) / (time.monotonic() - t)
    row["cpu_window_s"] = cpu_window
    row["ctrl_rss_mb"] = rss_mb(pid)
    row["esw_rss_mb"] = rss_mb(lab.pid("eswitchd"))
    step[0] = "OVS restart"
    row.update(lab.restart_ovs(want, deadline))
    step[0] = "check"
    chk = lab.check(deadline)
    row["check_s"], row["check_rc"] = chk["seconds"], chk["rc"]


def point_timeout(base: float, p: SP.Point) -> float:
    """A point's time limit: `base`, more for the big ones (a check and a reconcile judge
    every bucket: ~0.1 ms each here, several times per point)."""
    return max(base, p.buckets / 1000.0)


def run_point(lab: Any, p: SP.Point, sweeps: List[str], timeout: float, cpu_window: float) -> Dict[str, Any]:
    row: Dict[str, Any] = {"point": p.name, "services": p.services, "bits": p.bits, "backends": p.backends,
                           "policy": p.policy, "buckets": p.buckets, "sweeps": "+".join(sweeps)}
    t0 = time.monotonic()
    deadline = t0 + timeout
    step = ["plan"]
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout + 5)    # the steps' own deadlines come first
    try:
        want = measure_pure(p, row)
        if lab is not None:
            measure_lab(lab, p, row, want, deadline, cpu_window, step)
    except PointTimeout:
        row["error"] = "timed out after %.0f s in: %s" % (timeout, step[0])
    except Exception as e:
        row["error"] = "%s in %s: %s" % (type(e).__name__, step[0], str(e).strip().replace("\n", " ")[-300:])
        if "timed out" not in str(e):
            log(traceback.format_exc())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    row["point_s"] = time.monotonic() - t0
    return row


# ----------------------------------------------------------------------------- outputs

def write_csv(path: str, rows: List[Dict[str, Any]]) -> None:
    import csv
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: _cell(r.get(k)) for k in COLUMNS})


def _cell(v: Any) -> Any:
    return "%.6g" % v if isinstance(v, float) else ("" if v is None else v)


def _f(v: Any, digits: int = 3) -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return "–"
    return ("%%.%dg" % digits) % x


COSTS = (("plan_diff_s", "plan+diff of one removal", "s", 1.0),
         ("install_s", "install from empty", "s", 1.0), ("removal_s", "one removal applied", "s", 1.0),
         ("reconcile_s", "reconcile after OVS restart", "s", 1.0),
         ("ctrl_cpu", "controller CPU at steady state", "% core", 100.0),
         ("ctrl_rss_mb", "controller RSS", "MB", 1.0), ("esw_rss_mb", "eswitchd RSS", "MB", 1.0),
         ("check_s", "`xenoflow check`", "s", 1.0))


def fits(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per cost and sweep: the fitted growth (scale_points.fit) over the sweep's measured points."""
    out = []
    for col, label, unit, scale in COSTS:
        for sweep in ("bits", "services", "backends"):
            var = SP.sweep_variable(sweep)
            pts = []
            for r in rows:
                if sweep in str(r.get("sweeps", "")).split("+") and r.get(col) not in (None, ""):
                    p = SP.Point(int(r["services"]), int(r["bits"]), int(r["backends"]), r["policy"])
                    pts.append((var(p), float(r[col]) * scale))
            out.append({"cost": label, "column": col, "sweep": sweep, "unit": unit, "fit": SP.fit(pts),
                        "points": len(pts)})
    return out


def fit_table(rows: List[Dict[str, Any]]) -> str:
    labels = tuple(SP.SWEEP_LABEL[s] for s in ("bits", "services", "backends"))
    lines = ["| cost | vs %s | vs %s | vs %s |" % labels, "|---|---|---|---|"]
    fs = fits(rows)
    for _, label, _, _ in COSTS:
        cells = [SP.describe_fit(f["fit"], f["unit"]) for f in fs if f["cost"] == label]
        lines.append("| %s | %s |" % (label, " | ".join(cells)))
    return "\n".join(lines)


def goal_table(rows: List[Dict[str, Any]], forward: List[Dict[str, Any]]) -> str:
    lines = ["| goal | limit | measured | verdict |", "|---|---|---|---|"]
    for g in SP.evaluate_goals(rows, forward):
        val = "–" if g["value"] is None else "%s %s" % (_f(g["value"]), g["unit"])
        lines.append("| %s | %s | %s | %s%s |" % (g["goal"], g["limit"], val, g["verdict"],
                                                   " (%s)" % g["note"] if g["note"] else ""))
    return "\n".join(lines)


def points_table(rows: List[Dict[str, Any]]) -> str:
    head = ["point", "sweeps", "flows", "entries", "plan s", "plan+diff s", "moved (exp/got)", "install s",
            "API up s",
            "removal s", "reconcile s", "ctrl CPU %", "ctrl RSS MB", "esw RSS MB", "check s", "verdicts",
            "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        rcs = [r.get(k) for k in ("install_rc", "removal_rc", "check_rc")]
        verdicts = "–" if all(v in (None, "") for v in rcs) else \
            "consistent" if all(str(v) == "0" for v in rcs) else "rc " + "/".join(str(v) for v in rcs)
        cpu = _f(float(r["ctrl_cpu"]) * 100) if r.get("ctrl_cpu") not in (None, "") else "–"
        lines.append("| " + " | ".join([
            r["point"], str(r.get("sweeps", "")), str(r.get("flows", "–")), str(r.get("entries", "–")),
            _f(r.get("plan_s")), _f(r.get("plan_diff_s")),
            "%s/%s" % (r.get("moved_expected", "–"), r.get("moved_reported") if r.get("moved_reported")
                       not in (None, "") else "–"),
            _f(r.get("install_s")), _f(r.get("api_up_s")), _f(r.get("removal_s")),
            _f(r.get("reconcile_s")), cpu,
            _f(r.get("ctrl_rss_mb")), _f(r.get("esw_rss_mb")), _f(r.get("check_s")), verdicts,
            str(r.get("error") or "")]) + " |")
    return "\n".join(lines)


def read_forward(out: str) -> List[Dict[str, Any]]:
    import csv
    path = os.path.join(out, "glue_forward_entries.csv")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def write_md(out: str, rows: List[Dict[str, Any]], meta: Dict[str, Any]) -> None:
    forward = read_forward(out)
    fwd = ""
    p = os.path.join(out, "glue_forward_entries.md")
    if os.path.exists(p):
        fwd = "### softdoca forwarding against the table's size\n\n" + \
            open(p).read().split("\n", 2)[-1].strip() + "\n"
    text = """## Control plane at scale

Method (`benchmarks/bench_scale.py{smoke}`, {date}, {dur:.0f} s): generated intents on the paper
lab (its DPU, OVS bridges and routes; services with VIPs 198.18.1.x, backends 198.19.x.y),
one factor at a time around 1 service x 2^10 buckets x 8 backends, maglev: bits 1-16
(backends min(8, 2^k): a table must hold every backend), services 1-64, backends 2-1024 (bits
max(10, log2 backends)), every policy; and 8 x 2^16 maglev. The lab comes up once; per point
the controller is stopped, eswitchd restarted empty, our OVS flows deleted and the overlay
forgotten, then:
- plan, plan+diff: in process, `plan()` from empty, then `plan(exclude=removed)` and `diff()`
  of one backend's removal (b0_0 of s0); moved = buckets whose backend changes;
- install: controller start until `GET /status` says both planes programmed (every bridge
  connected, in sync, holding its planned flows; the eSwitch adopted and programmed); API up:
  until the API first answered (the process's start-up: imports, config, before any plane);
- removal: `POST /services/s0/backends/b0_0/drain` until its reply (applied to both planes),
  then `xenoflow check`; the reply's moved buckets against the pure diff's;
- reconcile: ovs-vswitchd killed and restarted on its database until every bridge carries
  its planned flows again (counted by OVS) and `xenoflow check` is consistent;
- controller CPU: /proc/<pid>/stat over {win:.0f} s at steady state, after the removal (poll interval as
  configured, default 1 s), as a share of one core; RSS: VmRSS of the controller and eswitchd;
- check: one `xenoflow check` at steady state (CLI start included).
Each point has {timeout:.0f} s (more for the big ones: buckets / 1000 s); one that runs out
says where. The machine: 2 shared vCPUs.

{points}

### Goals

{goals}

### Growth (least squares in relative error; n = the sweep's factor)

{fits}

{fwd}
![scale](scale.png)
""".format(smoke=" --smoke" if meta["smoke"] else "", date=time.strftime("%Y-%m-%d"),
           dur=meta["duration_s"], win=meta["cpu_window_s"], timeout=meta["point_timeout_s"],
           points=points_table(rows), goals=goal_table(rows, forward), fits=fit_table(rows), fwd=fwd)
    with open(os.path.join(out, "scale.md"), "w") as f:
        f.write(text)


def pyplot() -> Any:
    """matplotlib.pyplot for files (Agg), or None after saying it is missing: plots need
    the `bench` extra, and a suite without it still writes its CSV and Markdown."""
    try:
        import matplotlib
    except ImportError:
        log("matplotlib missing (pip install -e .[bench]): no plot")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot(out: str, rows: List[Dict[str, Any]]) -> None:
    """Log-log, one panel per sweep: the time costs against the sweep's factor."""
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for ax, sweep in zip(axes, ("bits", "services", "backends")):
        var = SP.sweep_variable(sweep)
        rs = [r for r in rows if sweep in str(r.get("sweeps", "")).split("+")]
        for col, label in (("plan_diff_s", "plan+diff"), ("install_s", "install"), ("removal_s", "removal"),
                           ("reconcile_s", "reconcile"), ("check_s", "check")):
            pts = sorted((var(SP.Point(int(r["services"]), int(r["bits"]), int(r["backends"]), r["policy"])),
                          float(r[col])) for r in rs if r.get(col) not in (None, "") and float(r[col]) > 0)
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], "o-", ms=3, label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(SP.SWEEP_LABEL[sweep])
        ax.set_ylabel("seconds")
        ax.grid(True, alpha=0.3)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "scale.png"))
    plt.close(fig)


# ----------------------------------------------------------------------------- main

def forward_sweep(out: str, smoke: bool) -> Optional[str]:
    """bench_glue_forward.py --entries 2,65536 into `out`; None, else why it failed."""
    argv = [sys.executable, os.path.join(HERE, "bench_glue_forward.py"), "--entries", "2,65536", "--out", out]
    # single runs spread by +-10 % on this machine: the full run takes the median of 9
    argv += ["--seconds", "1", "--reps", "1"] if smoke else ["--seconds", "2", "--reps", "9"]
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                           timeout=300)
    except subprocess.TimeoutExpired:
        return "bench_glue_forward.py --entries timed out"
    return None if p.returncode == 0 else "bench_glue_forward.py --entries failed: " + p.stdout[-500:]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="CI-sized: three small points, short windows")
    ap.add_argument("--out", default=None, help="results dir (default benchmarks/results, "
                                                "benchmarks/results/smoke with --smoke)")
    ap.add_argument("--points", default=None,
                    help="only these points (names as in scale.csv, comma-separated)")
    ap.add_argument("--point-timeout", type=float, default=None,
                    help="seconds per point (default 100, smoke 60)")
    ap.add_argument("--cpu-window", type=float, default=None,
                    help="seconds of CPU sampling (default 10, smoke 3)")
    ap.add_argument("--no-lab", action="store_true", help="only the in-process plan/diff (no root needed)")
    ap.add_argument("--no-forward", action="store_true", help="skip the softdoca forwarding sweep")
    ap.add_argument("--run-dir", default=RUN_DIR)
    return ap


def unwind_on_signals() -> None:
    main_pid = os.getpid()

    def _stop(signum: int, frame: Any) -> None:   # unwind, so every finally cleans up
        if os.getpid() != main_pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt("signal %d" % signum)
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, _stop)


def main(argv: Optional[List[str]] = None) -> int:
    a = _parser().parse_args(argv)
    out = a.out or os.path.join(HERE, "results", "smoke" if a.smoke else "")
    os.makedirs(out, exist_ok=True)
    timeout = a.point_timeout or (60.0 if a.smoke else 100.0)
    window = a.cpu_window or (3.0 if a.smoke else 10.0)
    points = SP.smoke_points() if a.smoke else SP.full_points()
    if a.points:
        want = set(a.points.split(","))
        everything = dict(SP.full_points() + SP.smoke_points())
        points = [(p, s) for p, s in everything.items() if p.name in want]
        if not points:
            raise SystemExit("--points: none of %s (names like %s)" % (sorted(want), SP.BASE.name))
    if not a.no_lab and os.geteuid() != 0:
        sys.stderr.write("bench_scale.py needs root (the paper lab); --no-lab for plan/diff only\n")
        return 2
    unwind_on_signals()
    t0 = time.time()
    rows: List[Dict[str, Any]] = []
    notes: List[str] = []
    lab = None
    meta = {"smoke": a.smoke, "point_timeout_s": timeout, "cpu_window_s": window, "run_dir": a.run_dir}
    try:
        if not a.no_lab:
            from scale_lab import ScaleLab
            lab = ScaleLab(a.run_dir, log)
            log("paper lab up (run dir %s)" % a.run_dir)
            lab.up()
        for p, sweeps in points:
            log("point %s (%s)" % (p.name, "+".join(sweeps)))
            row = run_point(lab, p, sweeps, point_timeout(timeout, p), window)
            rows.append(row)
            log("  %s" % ", ".join("%s=%s" % (k, _f(row[k]) if isinstance(row[k], float) else row[k])
                                   for k in COLUMNS[9:] if row.get(k) not in (None, "")))
            write_csv(os.path.join(out, "scale.csv"), rows)      # a crash keeps what was measured
    except KeyboardInterrupt:
        notes.append("interrupted after %d points" % len(rows))
        log(notes[-1])
    finally:
        if lab is not None:
            lab.down()
            log("paper lab down")
    if not a.no_forward and os.geteuid() == 0 and not notes:
        log("softdoca forwarding with 2 and 65536 entries")
        err = forward_sweep(out, a.smoke)
        if err:
            notes.append(err)
            log(err)
    meta.update(duration_s=round(time.time() - t0, 1), notes=notes, points=len(rows))
    write_csv(os.path.join(out, "scale.csv"), rows)
    write_md(out, rows, meta)
    plot(out, rows)
    with open(os.path.join(out, "scale.json"), "w") as f:
        json.dump(meta, f, indent=1)
    log("wrote %s/scale.csv, scale.md" % out)
    return 1 if notes else 0


if __name__ == "__main__":
    sys.exit(main())

"""The scale suite's pure parts: which points it measures, the config of a point, the
growth fits and the goals. No I/O besides reading the paper config (bench_scale.py,
report.py and the smoke test share these).

A point is (services, bits, backends per service, policy). The sweeps move one factor at a
time around BASE; a maglev table of 2^k buckets must hold every backend (intent/config.py
_check_capacity), so where the factor would break that, the other one is raised or lowered:
the bits sweep uses min(8, 2^k) backends, the backends sweep max(10, log2(backends)) bits.
"""
from __future__ import annotations

import copy
import math
import os
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
PAPER_CONFIG = os.path.join(os.path.dirname(HERE), "topologies", "paper", "xenoflow.yaml")

POLICIES = ("src-ip-bits", "src-port-bits", "maglev")


class Point(NamedTuple):
    services: int
    bits: int
    backends: int
    policy: str

    @property
    def name(self) -> str:
        return "%dx2^%d-%dbe-%s" % (self.services, self.bits, self.backends, self.policy)

    @property
    def buckets(self) -> int:
        """Buckets over all services."""
        return self.services << self.bits


BASE = Point(1, 10, 8, "maglev")
LARGEST = Point(8, 16, 8, "maglev")


def full_points() -> List[Tuple[Point, List[str]]]:
    """Every point of the full run, once, with the sweeps it belongs to, small ones first
    (a slow control plane times out on the big ones without costing the small ones)."""
    sweeps: Dict[Point, List[str]] = {}

    def add(p: Point, sweep: str) -> None:
        sweeps.setdefault(p, []).append(sweep)
    for k in range(1, 17):
        add(BASE._replace(bits=k, backends=min(BASE.backends, 1 << k)), "bits")
    for n in (1, 2, 4, 8, 16, 32, 64):
        add(BASE._replace(services=n), "services")
    for e in range(1, 11):
        n = 1 << e
        add(BASE._replace(backends=n, bits=max(BASE.bits, e)), "backends")
    for pol in POLICIES:
        add(BASE._replace(policy=pol), "policy")
    add(LARGEST, "largest")
    return sorted(sweeps.items(), key=lambda kv: (kv[0].buckets * max(1, kv[0].backends // 64), kv[0]))


def smoke_points() -> List[Tuple[Point, List[str]]]:
    """CI-sized: every policy, more than one service, small tables."""
    return [(Point(1, 4, 4, "src-ip-bits"), ["policy"]), (Point(1, 4, 4, "src-port-bits"), ["policy"]),
            (Point(2, 6, 8, "maglev"), ["policy", "services"])]


def sweep_variable(sweep: str) -> Optional[Callable[[Point], int]]:
    """The factor a sweep moves (None: the sweep has no numeric factor)."""
    return {"bits": lambda p: 1 << p.bits, "services": lambda p: p.services,
            "backends": lambda p: p.backends}.get(sweep)


SWEEP_LABEL = {"bits": "buckets per service (2^k)", "services": "services", "backends": "backends"}


# ----------------------------------------------------------------------------- configs

def point_data(p: Point, base: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The paper config (its DPU, OVS, routes) with the point's generated services. Every
    address stays inside the lab's 198.18.0.0/15: VIPs 198.18.1.x, backends 198.19.x.y;
    MACs are locally administered (02:...)."""
    if base is None:
        import yaml
        with open(PAPER_CONFIG) as f:
            base = yaml.safe_load(f)
    if p.services > 250 or p.backends > 250 * 250:
        raise ValueError("%s: more services or backends than the address plan holds" % p.name)
    data = copy.deepcopy(base)
    svcs = []
    for s in range(p.services):
        bes = [{"name": "b%d_%d" % (s, i), "ip": "198.19.%d.%d" % (i // 250, i % 250 + 1),
                "mac": "02:00:%02x:00:%02x:%02x" % (s, i >> 8, i & 255), "weight": 1}
               for i in range(p.backends)]
        svcs.append({"name": "s%d" % s, "vip": "198.18.1.%d" % (s + 1),
                     "vip_mac": "02:01:00:00:00:%02x" % s, "protocol": "udp", "port": 53,
                     "ingress": "p0", "egress": "p1", "policy": {"kind": p.policy, "bits": p.bits},
                     "backends": bes})
    data["services"] = svcs
    return data


REMOVED = ("s0", "b0_0")      # the backend one removal takes out (a drain)


# ----------------------------------------------------------------------------- fits

# y = b + a * f(n): constant has a = 0
MODELS: Tuple[Tuple[str, Optional[Callable[[float], float]]], ...] = (
    ("constant", None), ("linear", lambda n: n), ("n log n", lambda n: n * math.log2(max(n, 1.0))),
    ("quadratic", lambda n: n * n))


def fit(points: Sequence[Tuple[float, float]]) -> Optional[Dict[str, Any]]:
    """Least squares of each model on (n, y), in relative error (weights 1/y^2: the points
    span orders of magnitude and the small ones count too). The best: the simplest model
    whose residual is within 20 % of the smallest (n and n log n are close on short ranges).
    None with fewer than 3 usable points."""
    pts = [(float(n), float(y)) for n, y in points if y is not None and y > 0 and n > 0]
    if len(pts) < 3:
        return None
    res = []
    for name, f in MODELS:
        w = [1.0 / (y * y) for _, y in pts]
        if f is None:
            b = sum(wi * y for wi, (_, y) in zip(w, pts)) / sum(w)
            a = 0.0
        else:
            xs = [f(n) for n, _ in pts]
            sw = sum(w)
            sx = sum(wi * x for wi, x in zip(w, xs))
            sy = sum(wi * y for wi, (_, y) in zip(w, pts))
            sxx = sum(wi * x * x for wi, x in zip(w, xs))
            sxy = sum(wi * x * y for wi, x, (_, y) in zip(w, xs, pts))
            det = sw * sxx - sx * sx
            if det == 0:
                continue
            a = (sw * sxy - sx * sy) / det
            b = (sy - a * sx) / sw
        sse = sum(wi * (b + a * (f(n) if f else 0.0) - y) ** 2 for wi, (n, y) in zip(w, pts))
        res.append({"model": name, "a": a, "b": b, "rel_rms": math.sqrt(sse / len(pts))})
    if not res:
        return None
    smallest = min(r["rel_rms"] for r in res)
    for r in res:
        if r["rel_rms"] <= smallest * 1.2 + 1e-12 and (r["model"] == "constant" or r["a"] > 0):
            return dict(r, n=len(pts))
    return dict(min(res, key=lambda r: r["rel_rms"]), n=len(pts))


def describe_fit(f: Optional[Dict[str, Any]], unit: str) -> str:
    if f is None:
        return "–"
    if f["model"] == "constant":
        return "constant %.3g %s (±%.0f %%)" % (f["b"], unit, 100 * f["rel_rms"])
    term = {"linear": "n", "n log n": "n log2 n", "quadratic": "n²"}[f["model"]]
    return "%s: %.3g %s·%s + %.3g (±%.0f %%)" % (f["model"], f["a"], unit, term, f["b"], 100 * f["rel_rms"])


# ----------------------------------------------------------------------------- goals

class Goal(NamedTuple):
    what: str
    point: Point
    column: str
    limit: float
    unit: str
    scale: float = 1.0       # value shown = column * scale
    at_least: bool = False


GOALS = (
    Goal("plan+diff of one removal at 8x2^16", LARGEST, "plan_diff_s", 0.5, "s"),
    Goal("install from empty, 2^16 buckets, both planes", Point(1, 16, 8, "maglev"), "install_s", 3.0, "s"),
    Goal("one backend removal applied, 2^16 buckets", Point(1, 16, 8, "maglev"), "removal_s", 1.0, "s"),
    Goal("steady-state controller CPU at 2^16 flows", Point(1, 16, 8, "maglev"), "ctrl_cpu", 5.0,
         "% of a core", 100.0),
    Goal("controller RSS at 8x2^16", LARGEST, "ctrl_rss_mb", 150.0, "MB"),
)
FORWARD_GOAL = ("softdoca forwarding at 2^16 entries vs 2 entries", 0.95)


def _num(v: Any) -> Optional[float]:
    try:
        return None if v in (None, "") else float(v)
    except (TypeError, ValueError):
        return None


def evaluate_goals(rows: Sequence[Dict[str, Any]], forward: Sequence[Dict[str, Any]] = ()
                   ) -> List[Dict[str, Any]]:
    """[{goal, limit, value, unit, verdict: met | missed | not measured, note}] from scale.csv's
    rows (dicts, values as written or read back) and glue_forward_entries.csv's."""
    out = []
    for g in GOALS:
        row = next((r for r in rows if r.get("point") == g.point.name), None)
        v = _num(row.get(g.column)) if row else None
        note = "" if row else "point %s not in this run" % g.point.name
        if row is not None and v is None:
            note = row.get("error") or "not measured at %s" % g.point.name
        value = None if v is None else v * g.scale
        verdict = "not measured" if value is None else (
            "met" if (value >= g.limit if g.at_least else value <= g.limit) else "missed")
        out.append({"goal": g.what, "limit": ("≥ " if g.at_least else "≤ ") + "%g %s" % (g.limit, g.unit),
                    "value": value, "unit": g.unit, "verdict": verdict, "note": note})
    by = {int(float(r["entries"])): _num(r.get("ns_per_pkt")) for r in forward if r.get("entries")}
    small, big = by.get(2), by.get(1 << 16)
    ratio = small / big if small and big else None
    verdict = "not measured" if ratio is None else ("met" if ratio >= FORWARD_GOAL[1] else "missed")
    out.append({"goal": FORWARD_GOAL[0], "limit": "≥ %gx" % FORWARD_GOAL[1], "value": ratio, "unit": "x",
                "verdict": verdict,
                "note": "" if ratio is not None else "glue_forward_entries.csv lacks 2 or 65536 entries"})
    return out

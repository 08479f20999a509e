"""CI smoke of the scale suite: `benchmarks/bench_scale.py --smoke` on the paper lab (its
own run dir), three small points (every policy, two services), then softdoca's forwarding
with 2 and 65536 entries. About a minute and a half. Sanity of the rows, not their timing:
every point measured, times positive, the verdicts consistent, the removal moved what the
pure diff says, the goals evaluated. The paper lab's namespace names are fixed: not while
another lab is up.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.root]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "benchmarks")

if os.environ.get("XENOFLOW_RUNTIME") == "ryu":
    pytest.skip("benchmarks run in the product runtime (osken env) only", allow_module_level=True)

TIMES = ("plan_s", "replan_s", "diff_s", "install_s", "api_up_s", "removal_s", "ovs_up_s",
         "reconcile_s", "reconcile_consistent_s", "check_s")


def bench_module(name):
    """A module of benchmarks/ (not a package: imported from its folder)."""
    import importlib
    sys.path.insert(0, BENCH)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(BENCH)


@pytest.fixture(scope="module")
def scale(tmp_path_factory):
    import shutil
    missing = [t for t in ("ovs-vswitchd", "named", "gcc") if not shutil.which(t)]
    if missing:
        pytest.skip("missing tools: %s (scripts/install-deps.sh)" % ", ".join(missing))
    out = str(tmp_path_factory.mktemp("scale"))
    p = subprocess.run([sys.executable, os.path.join(BENCH, "bench_scale.py"), "--smoke", "--out", out,
                        "--run-dir", str(tmp_path_factory.mktemp("scale-run")) + "/run"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=400)
    assert p.returncode == 0, p.stdout[-4000:]
    with open(os.path.join(out, "scale.csv")) as f:
        rows = list(csv.DictReader(f))
    return out, rows, p.stdout


def test_every_smoke_point_is_measured(scale):
    out, rows, log = scale
    scale_points = bench_module("scale_points")
    assert [r["point"] for r in rows] == [p.name for p, _ in scale_points.smoke_points()], log[-3000:]
    assert {r["policy"] for r in rows} == set(scale_points.POLICIES)
    for r in rows:
        assert r["error"] == "", r
        for k in TIMES:
            assert float(r[k]) > 0, (k, r)
        assert float(r["api_up_s"]) <= float(r["install_s"]), r
        assert float(r["reconcile_s"]) <= float(r["reconcile_consistent_s"]), r
        assert 0 < float(r["ctrl_cpu"]) < 2.0, r              # a share of one core (2 vCPUs)
        assert float(r["ctrl_rss_mb"]) > 10 and float(r["esw_rss_mb"]) > 10, r
        # the planes as planned: buckets x services flows at least, one entry per bucket
        assert int(r["entries"]) >= int(r["buckets"]), r
        assert int(r["flows"]) > 0 and int(r["changes"]) > 0, r


def test_verdicts_consistent_and_removal_moved_what_the_diff_says(scale):
    _, rows, _ = scale
    for r in rows:
        assert r["install_rc"] == r["removal_rc"] == r["check_rc"] == "0", r
        assert int(r["moved_expected"]) >= 1, r
        assert r["moved_reported"] == r["moved_expected"], r


def test_goals_evaluated_and_written(scale):
    out, rows, _ = scale
    scale_points = bench_module("scale_points")
    with open(os.path.join(out, "glue_forward_entries.csv")) as f:
        forward = list(csv.DictReader(f))
    assert [int(r["entries"]) for r in forward] == [2, 65536]
    goals = scale_points.evaluate_goals(rows, forward)
    assert len(goals) == len(scale_points.GOALS) + 1
    assert {g["verdict"] for g in goals} <= {"met", "missed", "not measured"}
    fwd = goals[-1]
    assert fwd["verdict"] in ("met", "missed") and fwd["value"] > 0, fwd
    md = open(os.path.join(out, "scale.md")).read()
    for g in goals:
        assert g["goal"] in md
    assert "### Growth" in md


def test_report_has_the_scale_section(scale, tmp_path):
    out, _, _ = scale
    rep = tmp_path / "REPORT.md"
    subprocess.run([sys.executable, os.path.join(BENCH, "report.py"), "--results", out, "--out", str(rep)],
                   check=True, stdout=subprocess.PIPE)
    text = rep.read_text()
    assert "## Control plane at scale" in text
    assert "### Goals at scale" in text and "### Growth of each cost" in text

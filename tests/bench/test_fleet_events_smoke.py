"""CI smoke of `benchmarks/bench_fleet_events.py`: the fleet lab up in its own run dir, one
round of two DPU events (a planned drain and eswitchd killed) at a low rate, the idle CPU,
the lab down. About 80 s. Sanity of the rows, not their timing: the drain lost nothing,
the killed eswitchd's DPU was withdrawn and announced again consistent, no client changed
backend, the report's section renders, nothing of the lab is left.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.lab]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "benchmarks")
NAMESPACES = ("fips1", "rtr", "dpu1", "dpu2", "sw", "fips2", "fips3", "mgmt")   # the fleet lab's


def _present():
    out = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, universal_newlines=True).stdout
    return sorted({line.split()[0] for line in out.splitlines()} & set(NAMESPACES))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    deadline = time.monotonic() + 900
    while _present():             # another lab (the paper's shares fips1..3) is up: wait for it
        if time.monotonic() > deadline:
            pytest.fail("namespaces %s held by another lab for 15 min" % _present())
        time.sleep(10)
    out = str(tmp_path_factory.mktemp("events"))
    run_dir = tempfile.mkdtemp(prefix="xf-evs-")
    p = subprocess.run([sys.executable, os.path.join(BENCH, "bench_fleet_events.py"), "--smoke",
                        "--rate", "1000", "--events", "planned_drain,eswitchd_killed", "--out", out,
                        "--run-dir", run_dir],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=600)
    if not os.path.exists(os.path.join(out, "fleet_events.csv")):
        shutil.rmtree(run_dir, ignore_errors=True)
        pytest.fail("bench_fleet_events.py wrote no results (exit %d):\n%s"
                    % (p.returncode, p.stdout[-4000:]))
    with open(os.path.join(out, "fleet_events.csv")) as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(out, "fleet_events.json")) as f:
        meta = json.load(f)
    yield out, rows, meta, p
    shutil.rmtree(run_dir, ignore_errors=True)


def test_the_suite_ran_clean(run):
    out, rows, meta, p = run
    assert p.returncode == 0, p.stdout[-4000:]
    assert [r["event"] for r in rows] == ["planned_drain", "eswitchd_killed"], p.stdout[-3000:]
    assert not meta["notes"], meta["notes"]


def test_a_planned_drain_lost_nothing_and_a_killed_eswitchd_came_back(run):
    _, rows, _, _ = run
    drain, killed = rows
    assert int(drain["lost"]) == 0 and float(drain["loss_window"]) == 0.0, drain
    assert drain["drain_rc"] == "0", drain
    assert int(killed["lost"]) > 0 and 0 < float(killed["loss_window"]) < 3.0, killed
    for r in rows:
        assert float(r["withdrawn_in"]) >= 0 and float(r["announced_again_in"]) > 0, r
        assert r["verdict_when_back"] == "consistent", r
        assert float(r["changed_share"]) == 0.0 and float(r["changed_share_back"]) == 0.0, r


def test_false_failovers_counted_and_idle_cpu_measured(run):
    _, _, meta, _ = run
    assert meta["false_failovers"] == 0, meta.get("bfd_down")
    assert meta["bfd_down"].get("dpu1") == 1, meta.get("bfd_down")      # the eswitchd kill, once
    idle = meta["idle_cpu"]
    assert 0 < idle["total"] < 100 and idle.get("eswitchd", 0) > 0, idle


def test_the_report_has_the_section_and_nothing_is_left(run, tmp_path):
    out, _, _, _ = run
    report = tmp_path / "REPORT.md"
    subprocess.run([sys.executable, os.path.join(BENCH, "report.py"), "--results", out, "--out", str(report)],
                   check=True, stdout=subprocess.PIPE, timeout=120)
    text = report.read_text()
    assert "## Fleet: DPU events under load" in text
    assert "| planned drain loss window | 0 (no query lost) |" in text, text
    assert not _present()
    assert not [d for d in ("xf-dpu1", "xf-dpu2", "xf-rtr") if os.path.exists("/var/run/frr/" + d)]

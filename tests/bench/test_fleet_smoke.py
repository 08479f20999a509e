"""CI smoke of the fleet suite: `benchmarks/bench_fleet.py` at its smallest (one bed of 2
DPUs: 5 drain edits and 2 weight edits, 2 s of writes by one writer with the controllers
running and then alone; one leader kill with a 500 ms election timer), in its own root,
namespace prefix and Raft ports. About 40 s. Sanity of the rows, not their timing: every
edit applied by every DPU, the latencies positive and finite, writes committed, the
leader kill recovered (a write committed after it, both DPUs applied it, their flows
stayed), the controllers' memory and CPU at rest measured, the report's fleet section;
nothing left behind.
"""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.root]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "benchmarks")

if os.environ.get("XENOFLOW_RUNTIME") == "ryu":
    pytest.skip("benchmarks run in the product runtime (osken env) only", allow_module_level=True)

EDITS, WEIGHT_EDITS = 5, 2


def free_ports(n: int) -> int:
    """The first of n consecutive TCP ports free on 127.0.0.1 (the cluster's Raft ports)."""
    import random
    for _ in range(50):
        base = random.randrange(20000, 30000)
        socks = []
        try:
            for i in range(n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no %d consecutive free ports" % n)


def namespaces(prefix: str):
    out = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, universal_newlines=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix + "-d")]


def run_bench(argv, timeout: float) -> str:
    """The suite in a child; on a timeout SIGTERM first, so it stops and removes its beds."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=60)
        pytest.fail("bench_fleet.py took more than %.0f s:\n%s" % (timeout, out[-4000:]))
    assert p.returncode == 0, out[-4000:]
    return out


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, lab_prefix):
    missing = [t for t in ("ovsdb-server", "ovsdb-tool", "ovs-vswitchd") if not shutil.which(t)
               and not os.path.exists("/usr/sbin/" + t)]
    if missing:
        pytest.skip("missing tools: %s (scripts/install-deps.sh)" % ", ".join(missing))
    out = str(tmp_path_factory.mktemp("fleet"))
    root = tempfile.mkdtemp(prefix="xf-fleet-")       # short: unix socket paths < 108 bytes
    prefix = lab_prefix + "f"
    try:
        log = run_bench([sys.executable, os.path.join(BENCH, "bench_fleet.py"), "--out", out,
                         "--sizes", "2", "--edits", str(EDITS), "--weight-edits", str(WEIGHT_EDITS),
                         "--writers", "1", "--write-seconds", "2", "--kills", "1", "--timers", "500",
                         "--root", root, "--prefix", prefix, "--base-port", str(free_ports(3))], 150)
        left = os.listdir(root) if os.path.exists(root) else []     # the suite removes it when empty
    finally:
        shutil.rmtree(root, ignore_errors=True)
    with open(os.path.join(out, "fleet.csv")) as f:
        rows = list(csv.DictReader(f))
    return out, rows, log, left, prefix


def _of(rows, measure):
    return [r for r in rows if r["measure"] == measure]


def _pos(r, col):
    v = float(r[col])
    assert math.isfinite(v) and v > 0, (col, r)
    return v


def test_every_edit_applied_by_every_dpu(fleet):
    _, rows, log, _, _ = fleet
    edits = _of(rows, "edit")
    # on the Maglev intent drains and weights, then drains on the paper's
    want = ["maglev"] * (EDITS + WEIGHT_EDITS) + ["paper"] * EDITS
    assert [r["intent"] for r in edits] == want, log[-3000:]
    assert sum(r["op"].startswith("weight") for r in edits) == WEIGHT_EDITS
    versions = [int(r["version"]) for r in edits]
    assert versions == sorted(set(versions)), versions        # each edit its own version
    for r in edits:
        assert r["error"] == "" and r["dpus"] == "2", r
        assert sorted(x.split("=")[0] for x in r["dpu_ms"].split()) == ["dpu1", "dpu2"], r
        commit, first, applied, edit = (_pos(r, c) for c in ("commit_ms", "first_ms", "applied_ms",
                                                               "edit_ms"))
        assert first <= applied and edit >= applied and edit >= commit, r
        assert edit < 60000, r
        assert _pos(r, "apply_max_s") < 60, r


def test_writes_committed(fleet):
    _, rows, log, _, _ = fleet
    writes = _of(rows, "writes")
    assert [(r["dpus"], r["writers"]) for r in writes] == [("2", "1"), ("0", "1")], log[-3000:]
    for r in writes:
        assert int(r["commits"]) > 0, r
        assert _pos(r, "per_s") == pytest.approx(int(r["commits"]) / float(r["seconds"]), rel=1e-3)
        _pos(r, "commit_med_ms")
    assert float(writes[0]["catch_up_s"]) >= 0, writes[0]       # the DPUs applied the last one


def test_leader_kill_recovered(fleet):
    _, rows, log, _, _ = fleet
    kills = _of(rows, "kill")
    assert len(kills) == 1, log[-3000:]
    k = kills[0]
    assert k["error"] == "" and k["timer_ms"] == "500", k
    assert 0 < _pos(k, "resume_s") < 30, k                     # a write committed after the kill
    assert int(k["version"]) >= 2, k                             # its own bed: import 1, then this edit
    _pos(k, "applied_after_s")                                  # and both DPUs applied it
    assert k["flows_during"] == k["flows_after"] == "True", k  # their flows stayed
    _pos(k, "rejoin_s")                                         # the member came back


def test_memory_and_outputs(fleet):
    out, rows, _, left, prefix = fleet
    rest = _of(rows, "rest")                                     # every controller at rest
    assert len(rest) == 2 and all(_pos(r, "rss_mb") > 10 for r in rest), rest
    assert all(0 <= float(r["cpu"]) < 2.0 for r in rest), rest    # a share of one core (2 vCPUs)
    store = _of(rows, "store")                                   # and every member of the store
    assert len(store) == 3 and all(_pos(r, "rss_mb") > 1 and float(r["cpu"]) >= 0 for r in store), store
    assert _pos(_of(rows, "bed")[0], "up_s") < 120
    meta = json.load(open(os.path.join(out, "fleet.json")))
    assert meta["params"]["sizes"] == [2] and meta["params"]["timers"] == [500] and not meta["notes"]
    assert {g["verdict"] for g in meta["goals"]} <= {"met", "missed", "not measured"}
    assert len(meta["goals"]) == 3                              # edits (two intents), leader kill
    assert meta["goals"][-1]["verdict"] in ("met", "missed")    # the kill's goal was judged
    md = open(os.path.join(out, "fleet.md")).read()
    assert "### Goals" in md and "| 2 |" in md
    # nothing left behind: no bed directory, no namespace
    assert left == [] and namespaces(prefix) == []


def test_report_has_the_fleet_section(fleet, tmp_path):
    out = fleet[0]
    rep = tmp_path / "REPORT.md"
    subprocess.run([sys.executable, os.path.join(BENCH, "report.py"), "--results", out, "--out", str(rep)],
                   check=True, stdout=subprocess.PIPE)
    text = rep.read_text()
    assert "## Fleet: DPUs following one intent" in text and "### Goals of the fleet" in text
    assert "leader killed → writes resume" in text

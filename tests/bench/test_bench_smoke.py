"""CI smoke of the benchmarks: every suite that can run here, CI-sized,
on benchmarks/lab_min.py's own namespaces (prefix ``xbs``/``xbt``), plus a check
that the XDP balancer really balances; then the XenoFlow contenders on the paper
lab (control and latency suites: reconcile after an OVS restart, fallback
counters). About four minutes in all. The paper lab's namespace names are fixed:
not while another lab (or a full benchmark run) is up.

Runs once, in the product runtime (os-ken / Python 3.11): the benchmarks are not
part of the Ryu app's import path.
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


def _tools_missing():
    import shutil
    return [t for t in ("clang", "bpftool", "gcc", "named", "ethtool") if not shutil.which(t)]


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    missing = _tools_missing()
    if missing:
        pytest.skip("missing tools: %s (scripts/install-deps.sh)" % ", ".join(missing))
    out = str(tmp_path_factory.mktemp("bench"))
    p = subprocess.run([sys.executable, os.path.join(BENCH, "run.py"), "all", "--smoke",
                        "--out", out, "--prefix", "xbs", "--lab", "minimal"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=400)
    log = p.stdout
    assert p.returncode == 0, log[-4000:]
    return out, log


def _rows(out, suite):
    path = os.path.join(out, suite + ".csv")
    assert os.path.exists(path), suite
    with open(path) as f:
        return list(csv.DictReader(f))


def test_throughput_rows_are_sane(smoke_results):
    out, log = smoke_results
    rows = _rows(out, "throughput")
    assert rows, log[-3000:]
    names = {r["contender"] for r in rows}
    assert {"xdp", "direct"} <= names, names
    for r in rows:
        sent, delivered = int(r["sent"]), int(r["delivered"])
        assert sent > 0
        assert 0 <= delivered <= sent, r
        assert 0.0 <= float(r["loss"]) <= 1.0, r
        assert float(r["offered_pps"]) > 0
    # at a low rate the kernel paths and the plain DPDK loop lose nothing
    assert "dpdk-loop" in names, log[-3000:]
    low = [r for r in rows if r["contender"] in ("xdp", "direct", "dpdk-loop")
           and int(r["target_pps"]) == 20000]
    assert low and all(float(r["loss"]) == 0.0 for r in low), low
    assert os.path.exists(os.path.join(out, "throughput.md"))


def test_latency_rows_are_sane(smoke_results):
    out, log = smoke_results
    rows = _rows(out, "latency")
    assert {"xdp", "direct"} <= {r["contender"] for r in rows}, log[-3000:]
    for r in rows:
        assert int(r["n"]) + int(r["lost"]) == 2000
        assert int(r["n"]) >= 1990, r
        assert 0 < float(r["min_us"]) <= float(r["median_us"]) <= float(r["p99_us"]), r
    reps = {r["rep"] for r in rows}
    assert len(reps) >= 3


def test_latency_load_rows_are_sane(smoke_results):
    out, _ = smoke_results
    rows = _rows(out, "latency_load")
    assert rows
    for r in rows:
        assert float(r["median_us"]) > 0
        assert int(r["bg_delivered"]) <= int(r["bg_sent"]) or r["contender"] == "dnsdist"


def test_report_assembles(smoke_results, tmp_path):
    out, _ = smoke_results
    rep = tmp_path / "REPORT.md"
    subprocess.run([sys.executable, os.path.join(BENCH, "report.py"), "--results", out,
                    "--out", str(rep)], check=True, stdout=subprocess.PIPE)
    text = rep.read_text()
    for h in ("## Machine", "## Goals", "## Throughput", "## Added latency", "## Latency under load"):
        assert h in text, h


@pytest.fixture(scope="module")
def paper_results(tmp_path_factory):
    """The XenoFlow contenders on the paper lab (its own run dir, /tmp/xb-paper): the
    control suite (OVS restart) and the latency suite, CI-sized."""
    missing = _tools_missing()
    if missing:
        pytest.skip("missing tools: %s (scripts/install-deps.sh)" % ", ".join(missing))
    out = str(tmp_path_factory.mktemp("bench-paper"))
    logs = []
    for suite in ("control", "latency"):
        p = subprocess.run([sys.executable, os.path.join(BENCH, "run.py"), suite, "--smoke",
                            "--out", out, "--lab", "paper",
                            "--contenders", "xenoflow-softdoca,xenoflow-ovs"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=400)
        assert p.returncode == 0, p.stdout[-4000:]
        logs.append(p.stdout)
    return out, "\n".join(logs)


def test_ovs_restart_is_reconciled_and_softdoca_loses_nothing(paper_results):
    out, log = paper_results
    rows = [r for r in _rows(out, "control") if r["measure"] == "ovs_restart"]
    assert {r["contender"] for r in rows} == {"xenoflow-softdoca", "xenoflow-ovs"}, log[-3000:]
    for r in rows:
        assert r["flows_restored_s"] and 0 < float(r["flows_restored_s"]) < 30, r
        assert r["consistent_s"] and float(r["consistent_s"]) >= float(r["flows_restored_s"]), r
        assert int(r["sent"]) > 0
    for r in rows:
        if r["contender"] == "xenoflow-softdoca":
            # the eSwitch forwards while OVS is away, and nothing fell back to the Arm
            assert int(r["lost"]) == 0 and r["fallback"] == "0", r
        else:
            assert r["fallback"] == "", r       # no eSwitch: fallback does not apply
    assert os.path.exists(os.path.join(out, "control.md"))


def test_latency_records_fallback_for_xenoflow(paper_results):
    out, log = paper_results
    rows = [r for r in _rows(out, "latency") if r["contender"] == "xenoflow-softdoca"]
    assert len(rows) >= 3, log[-3000:]
    assert all(r["fallback"] == "0" for r in rows), rows


def test_xdp_balancer_balances(monkeypatch):
    """Per-bucket counters of the XDP balancer equal the packets sent per source parity,
    and each backend's receiver counts exactly its bucket's packets."""
    missing = _tools_missing()
    if missing:
        pytest.skip("missing tools: %s" % ", ".join(missing))
    monkeypatch.syspath_prepend(BENCH)      # the benchmarks are scripts, not a package
    import measure
    from lab_min import MinLab, minimal_spec
    from xdp_lb import xdplb

    measure.build_tools()
    spec = minimal_spec("xbt")
    lab = MinLab(spec, bind9=False).up()
    try:
        lb = xdplb.XdpLb(spec.dpu_ns, spec.in_dev, spec.out_dev, spec.vip, spec.port, 1,
                         [b.mac for b in spec.backends], peer_ns=spec.tor_ns,
                         peer=spec.out_peer).attach()
        recv = measure.Receivers(spec).attach()
        srcs = spec.loadgen_srcs[:3]        # .64 .65 .66: two even, one odd
        res = measure.run_pacer(spec.loadgen_ns, spec.vip, spec.port, 20000, 1.0, size=22,
                                srcs=srcs)
        n = res["sent"]
        assert n > 15000, res
        even = sum(1 for k in range(n) if int(srcs[k % 3].rsplit(".", 1)[1]) % 2 == 0)
        import time
        time.sleep(0.2)
        assert lb.buckets() == {0: even, 1: n - even}
        assert recv.read() == {"be1": even, "be2": n - even}
        # not the VIP's port: passed, not balanced
        measure.run_pacer(spec.loadgen_ns, spec.vip, spec.port + 1, 1000, 0.2, size=22, srcs=srcs)
        assert lb.buckets() == {0: even, 1: n - even}
        recv.detach()
        lb.detach()
    finally:
        lab.down()

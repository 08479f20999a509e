"""CI smoke of `benchmarks/bench_ipv6.py --smoke`: softdoca forwarding IPv6 and IPv4 side by side
on its own namespaces (about 20 s). Sanity of the rows, not their timing: each family's frames
took its own dispatch entry and none missed to the Arm, every variant was timed, no query was
lost, the eSwitch adds latency over the plain veth, the verdicts follow the figures, the
report's section and goal rows render, no namespace of the run is left.
"""
from __future__ import annotations

import os

import pytest
from smoke_runs import bench_module, report, run_bench, skip_outside_product_runtime

pytestmark = [pytest.mark.slow, pytest.mark.root]
skip_outside_product_runtime()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out, rows, meta, left = run_bench(str(tmp_path_factory.mktemp("ipv6")), "ipv6", "--smoke", "x6")
    return out, {(r["test"], r["variant"]): r for r in rows}, meta, left


FWD = ("IPv4 A", "IPv6", "IPv4 B", "IPv4, IPv6's frame size")
ESW = ("IPv4 A", "IPv6", "IPv4 B")


def test_each_family_takes_its_own_entry(run):
    _, rows, meta, _ = run
    assert {v for t, v in rows if t == "forwarding"} == set(FWD)
    for v in FWD:
        r = rows[("forwarding", v)]
        sent, hits = int(r["sent"]), int(r["entry_hits"])
        assert sent > 0.5 * meta["params"]["rate"] * meta["params"]["seconds"] * meta["params"]["reps"], r
        # the family's root entry took what reached the forwarder: nearly all, none to the Arm
        assert 0.9 * sent <= hits <= sent, r
        assert int(r["misses"]) <= 0.001 * sent, r
        assert int(r["n"]) == meta["params"]["reps"]


def test_frames_and_costs(run):
    _, rows, _, _ = run
    frames = {v: int(rows[("forwarding", v)]["frame_b"]) for v in FWD}
    assert frames == {"IPv4 A": 60, "IPv6": 80, "IPv4 B": 60, "IPv4, IPv6's frame size": 80}
    for v in FWD:
        r = rows[("forwarding", v)]
        ns = float(r["ns_per_pkt"])
        assert 50 < ns < 1e6, r
        assert abs(float(r["rate_kpps"]) - 1e6 / ns) < 0.1, r
        assert abs(float(r["vs_ipv4_a"]) - float(rows[("forwarding", "IPv4 A")]["ns_per_pkt"]) / ns) < 0.01, r
        assert float(r["paired_min"]) <= float(r["paired_vs_ipv4_a"]) <= float(r["paired_max"]), r
    assert float(rows[("forwarding", "IPv4 A")]["vs_ipv4_a"]) == 1.0


def test_latency_rows(run):
    _, rows, meta, _ = run
    for v in ESW + ("direct IPv4", "direct IPv6"):
        r = rows[("latency", v)]
        assert int(r["lost"]) == 0 and int(r["n"]) == meta["params"]["rtt"], r
        assert 0 < float(r["median_us"]) <= float(r["p99_us"]), r
    for v in ESW:
        r = rows[("latency", v)]
        floor = rows[("latency", "direct IPv6" if v == "IPv6" else "direct IPv4")]
        # two forwarder traversals (af_packet in and out, twice) cost more than a plain veth
        assert float(r["added_us"]) > 0, r
        assert abs(float(r["median_us"]) - float(floor["median_us"]) - float(r["added_us"])) < 0.2, r
    a, six = float(rows[("latency", "IPv4 A")]["added_us"]), rows[("latency", "IPv6")]
    assert abs(float(six["vs_ipv4_a"]) - float(six["added_us"]) / a) < 0.01


def test_forwarder_time_per_traversal_per_family(run):
    _, rows, meta, _ = run
    for fam in ("IPv4", "IPv6"):
        r = rows[("latency_own", fam)]
        assert int(r["n"]) == 2 * meta["params"]["blocks"], r
        assert float(r["ns_min"]) <= float(r["ns_per_pkt"]) <= float(r["ns_max"]), r
        # one traversal: an rx and a tx burst at least, far below a round trip's added latency
        assert 100 < float(r["ns_per_pkt"]) < 1000 * float(rows[("latency", "IPv4 A")]["median_us"]), r


def test_verdicts_follow_the_figures(run):
    out, rows, _, _ = run
    v = bench_module("bench_ipv6").verdicts(list(rows.values()))
    rate = float(rows[("forwarding", "IPv6")]["paired_vs_ipv4_a"])
    lat = float(rows[("latency", "IPv6")]["paired_vs_ipv4_a"])
    assert v["rate"]["verdict"] == ("met" if rate >= 0.95 else "missed")
    assert v["latency"]["verdict"] == ("met" if lat <= 1.1 else "missed")
    assert v["rate"]["aa"] == float(rows[("forwarding", "IPv4 B")]["paired_vs_ipv4_a"])
    md = open(os.path.join(out, "ipv6.md")).read()
    six = rows[("forwarding", "IPv6")]["paired_vs_ipv4_a"]
    assert "| softdoca IPv6 forwarding rate ≥ 0.95× IPv4's | %s× |" % six in md


def test_report_has_the_ipv6_section_and_goals(run, tmp_path):
    out, rows, _, _ = run
    text = report(out, str(tmp_path / "REPORT.md"))
    assert "## softdoca: IPv6 against IPv4" in text and "### Added latency" in text
    goals = text.split("## Goals against this run", 1)[1].split("\n## ", 1)[0]
    for g in ("softdoca IPv6 forwarding rate ≥ 0.95× IPv4's", "softdoca IPv6 added latency ≤ 1.1× IPv4's"):
        six = rows[("forwarding" if "rate" in g else "latency", "IPv6")]["paired_vs_ipv4_a"]
        assert "| %s | %s× (ipv6.csv" % (g, "%.2f" % float(six)) in goals, goals


def test_no_namespace_left(run):
    assert run[3] == []

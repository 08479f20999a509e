"""CI smoke of `benchmarks/bench_meters.py --quick`: softdoca's meters, the DoS guard's eSwitch half,
on the script's own namespaces (about 30 s). Sanity of the rows, not their timing: each meter at
each rate was offered more than its rate and delivered about its rate, the receiver and the drop
stages agree, traffic under the limit is never dropped and never misses to the Arm, every
variant was timed, no query was lost, the verdicts follow the figures, the report's section
renders, no namespace of the run is left.
"""
from __future__ import annotations

import os

import pytest
from smoke_runs import bench_module, report, run_bench, skip_outside_product_runtime

pytestmark = [pytest.mark.slow, pytest.mark.root]
skip_outside_product_runtime()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_bench(str(tmp_path_factory.mktemp("meters")), "meters", "--quick", "xm")


def _by(rows, test):
    return {r["variant"]: r for r in rows if r["test"] == test}


def test_columns(run):
    _, rows, _, _ = run
    bm = bench_module("bench_meters")
    assert tuple(rows[0]) == bm.COLUMNS
    assert {r["test"] for r in rows} == {"accuracy", "forwarding", "latency"}


def test_every_meter_at_every_rate_holds_it(run):
    _, rows, meta, _ = run
    acc = [r for r in rows if r["test"] == "accuracy"]
    rates = meta["params"]["rates"]
    assert sorted((r["variant"], int(r["rate_pps"])) for r in acc) == sorted(
        (k, c) for k in ("per-entry", "shared") for c in rates)
    for r in acc:
        cir, el = int(r["rate_pps"]), float(r["seconds"])
        # the meter was over its rate, so it had something to drop, and dropped it as red
        assert float(r["over"]) > 1.5 and int(r["dropped"]) > 0, r
        assert int(r["misses"]) == 0, r
        # delivered about the rate (a sanity band: the goal's 5 % is the full run's to judge)
        for k in ("delivered_rx_pps", "delivered_stage_pps"):
            assert 0.8 * cir < float(r[k]) < 1.2 * cir, r
        # what the server received is what the chain took minus its drop stages' counts
        rx, staged = float(r["delivered_rx_pps"]), float(r["delivered_stage_pps"])
        assert abs(rx - staged) * el <= 2 + 0.001 * cir * el, r
        assert abs(float(r["err_stage_pct"]) - 100.0 * (staged - cir) / cir) < 0.02, r
        assert int(r["entry_hits"]) <= int(r["sent"]), r


def test_forwarding_under_the_limit(run):
    _, rows, meta, _ = run
    fwd = _by(rows, "forwarding")
    assert set(fwd) == {"plain A", "metered", "plain B"}
    for v, r in fwd.items():
        sent = int(r["sent"])
        assert int(r["n"]) == meta["params"]["reps"], r
        assert sent > 0.5 * meta["params"]["rate"] * meta["params"]["seconds"] * meta["params"]["reps"], r
        # the variant's dispatch entry took what reached the forwarder; nothing red, nothing to the Arm
        assert 0.9 * sent <= int(r["entry_hits"]) <= sent, r
        assert int(r["dropped"]) == 0 and int(r["misses"]) == 0, r
        ns = float(r["ns_per_pkt"])
        assert 50 < ns < 1e6, r
        assert abs(float(r["rate_kpps"]) - 1e6 / ns) < 0.1, r
        assert float(r["paired_min"]) <= float(r["paired_vs_plain_a"]) <= float(r["paired_max"]), r
    assert float(fwd["plain A"]["vs_plain_a"]) == 1.0


def test_latency_rows(run):
    _, rows, meta, _ = run
    lat = _by(rows, "latency")
    assert set(lat) == {"plain A", "metered", "plain B", "direct"}
    for r in lat.values():
        assert int(r["lost"]) == 0 and int(r["n"]) == meta["params"]["rtt"], r
        assert 0 < float(r["median_us"]) <= float(r["p99_us"]), r
    floor = float(lat["direct"]["median_us"])
    for v in ("plain A", "metered", "plain B"):
        r = lat[v]
        # two forwarder traversals (af_packet in and out, twice) cost more than a plain veth
        assert float(r["added_us"]) > 0, r
        assert abs(float(r["median_us"]) - floor - float(r["added_us"])) < 0.2, r
    m = lat["metered"]
    assert abs(float(m["vs_plain_a"]) - float(m["added_us"]) / float(lat["plain A"]["added_us"])) < 0.01


def test_verdicts_follow_the_figures(run):
    out, rows, _, _ = run
    bm = bench_module("bench_meters")
    v = bm.verdicts(rows)
    worst = max(abs(float(r[k])) for r in rows if r["test"] == "accuracy" for k in ("err_rx_pct",
                                                                                    "err_stage_pct"))
    assert v["accuracy"]["value"] == worst
    assert v["accuracy"]["verdict"] == ("met" if worst <= 5.0 else "missed")
    rate = float(_by(rows, "forwarding")["metered"]["paired_vs_plain_a"])
    lat = float(_by(rows, "latency")["metered"]["paired_vs_plain_a"])
    assert v["rate"]["verdict"] == ("met" if rate >= 0.9 else "missed")
    assert v["latency"]["verdict"] == ("met" if lat <= 1.1 else "missed")
    assert v["rate"]["aa"] == float(_by(rows, "forwarding")["plain B"]["paired_vs_plain_a"])
    md = open(os.path.join(out, "meters.md")).read()
    assert "| metered forwarding rate ≥ 0.9× plain's (paired) | %s× |" % _by(
        rows, "forwarding")["metered"]["paired_vs_plain_a"] in md


def test_report_has_the_meters_section(run, tmp_path):
    out, rows, _, _ = run
    text = report(out, str(tmp_path / "REPORT.md"))
    assert text.count("## DoS guard: meters") == 1   # built once, not also as a generic section
    section = text.split("## DoS guard: meters", 1)[1]
    assert "### Accuracy" in section and "### Forwarding cost" in section and "### Added latency" in section
    for r in rows:
        if r["test"] == "accuracy":
            assert "| %s | %s | %s |" % (r["variant"], r["rate_pps"], r["cbs"]) in section, r


def test_no_namespace_left(run):
    assert run[3] == []

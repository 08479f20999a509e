"""Meters in the eSwitch plane (the DoS guard): a service-wide shared meter and per-bucket
meters chained with drop stages that match the meter colour, on softdoca with its manual
clock, so the token-bucket arithmetic is exact (srTCM: n packets at t, from a full bucket,
are min(n, cbs + cir * t) green).  The chain (glue_child.meter_chain): root -> svc (shared
meter, cir 100/s, cbs 10) -> drop1 (red: drop) -> buckets (even source: cir 5, cbs 3; odd:
cir 1000, cbs 1000; MAC) -> drop2 (red: drop) -> p1."""
from __future__ import annotations

import pytest

MAC_A, MAC_B = "0200c6120002", "0200c6120003"


@pytest.fixture(scope="module")
def met(glue):
    return glue.run("meters")


def test_burst_takes_exactly_cbs_per_bucket(met):
    assert met["burst_even"] == {"p1:" + MAC_A: 3, "drop": 2}  # even's own cbs 3
    assert met["burst_odd"] == {"p1:" + MAC_B: 5}  # its bucket is large, the shared one has 5 left
    assert met["shared_empty"] == {"drop": 3}  # the shared meter's 10 are spent: red, dropped at drop1


def test_colour_and_drop_stage_counters_are_exact(met):
    c = met["after_burst"]
    assert c["shared"] == {"green": 10, "red": 3}
    assert c["even"] == {"green": 3, "red": 2} and c["odd"] == {"green": 5, "red": 0}
    # the drop stages' entry counters are the packets dropped (what real DOCA offers)
    assert c["entry_pkts"] == {"svc": 13, "drop1": 3, "even": 5, "odd": 5, "drop2": 2}


def test_classify_reports_the_meters_met(met):
    assert met["trace_even_red"] == ["drop", 1, 2]  # red at the shared meter, dropped before the bucket
    assert met["trace_no_meter"] == ["p1", 0, 0]  # no meter: green


def test_refill_is_integer_and_capped(met):
    assert met["half_token"] == {"drop": 1}  # 100 ms at 5/s = half a token
    assert met["one_token"] == {"p1:" + MAC_A: 1}  # 200 ms: one
    assert met["capped"] == {"p1:" + MAC_B: 10, "drop": 10}  # 10 s later: cbs, not cir * t


def test_modify_shared_meter_in_place(met):
    # 50 ms at the old 100/s (5) + 10 ms at the new 1000/s (10); its users kept it
    assert met["after_modify"] == {"p1:" + MAC_B: 15, "drop": 5}


def test_update_entry_meter_in_place_keeps_counters(met):
    assert met["after_update"] == {"p1:" + MAC_A: 4, "drop": 2}  # the new cbs 4
    b, a = met["counts_before_update"], met["counts_after_update"]
    assert a["even"] == {"green": b["even"]["green"] + 4, "red": b["even"]["red"] + 2}
    assert a["entry_pkts"]["even"] == b["entry_pkts"]["even"] + 6


def test_life_cycle_and_refusals(met):
    assert met["destroy_used"]["doca_error"] == "DOCA_ERROR_IN_USE"
    assert met["destroy_unused"] is None and met["destroy_after_remove"] is None
    assert met["use_destroyed"]["type"] == "RuntimeError"
    assert met["destroy_pipe_in_chain"]["doca_error"] == "DOCA_ERROR_IN_USE"
    assert met["clock_not_manual"]["doca_error"] == "DOCA_ERROR_BAD_STATE"
    bad = met["bad"]
    for k in ("cbs0", "cir0", "meter_on_plain", "shared_on_entry_pipe", "no_meter", "mac_on_drop", "two_fwds",
              "meter_kind", "update_no_own"):
        assert bad[k]["type"] == "ValueError", k
    assert "cbs" in bad["cbs0"]["msg"] and "cir" in bad["cir0"]["msg"]
    assert "no per-entry meter" in bad["meter_on_plain"]["msg"]
    assert "no shared meter" in bad["shared_on_entry_pipe"]["msg"]
    assert bad["color_value"]["doca_error"] == "DOCA_ERROR_INVALID_VALUE"


def test_budgets_are_declared_and_enforced(glue):
    b = glue.run("meter_budgets")
    second = b["second_shared"]
    assert second["doca_error"] == "DOCA_ERROR_FULL" and "shared_meters=1" in second["msg"]
    third = b["third_entry_meter"]
    assert third["doca_error"] == "DOCA_ERROR_FULL" and "meters=2" in third["msg"]
    assert b["two_fit_after"] == 2  # the failed batch took nothing
    assert b["shared_reused"] is None  # a destroyed meter's slot serves the next

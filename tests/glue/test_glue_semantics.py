"""Match semantics, DOCA-like rejections, counters, update/remove, close, fault injection,
switch mode: through softdoca's classify entry point (ports without packet I/O), each
scenario in its own child process (one EAL per process)."""
from __future__ import annotations

import pytest

MAC_A = "0200c6120002"
MAC_B = "0200c6120003"
VIP_MAC = "02c612000035"


@pytest.fixture(scope="module")
def semantics(glue):
    return glue.run("semantics")


def test_target_is_softdoca(semantics):
    assert semantics["target"] == "softdoca"


def test_basic_pipe_mask_picks_backend_by_source_parity(semantics):
    r = semantics["res"]
    assert r["even"] == ["p1", MAC_A]
    assert r["odd"] == ["p1", MAC_B]
    assert r["odd_hi"] == ["p1", MAC_B]  # only the masked bit counts


def test_control_entries_mask_and_priority(semantics):
    r = semantics["res"]
    assert r["vip_udp54"] == ["p1", VIP_MAC]  # not the service: the /24 route (prio 20), MAC untouched
    assert r["tcp53"] == ["drop", VIP_MAC]    # TCP to the VIP: the prio-5 drop entry
    assert semantics["with_hi"] == ["p1", VIP_MAC]  # a prio-1 entry beats the prio-10 service
    assert semantics["after_hi_removed"] == ["p1", MAC_A]


def test_misses_and_malformed_frames(semantics):
    r = semantics["res"]
    for k in ("other_net", "arp", "trunc_ip", "bad_ihl", "trunc_eth", "udp_no_ports"):
        assert r[k][0] == "miss", k
    assert r["arp"][1] == "ffffffffffff"  # a miss is not rewritten
    # a non-first fragment has no ports: it cannot match the UDP/53 service, the route takes it
    assert r["fragment"] == ["p1", VIP_MAC]
    assert semantics["p1_ingress"][0] == "miss"  # no root pipe on p1: everything to its representor
    st = semantics["stats"]
    assert st["miss_pkts"] == 6
    assert st["malformed_pkts"] == 4  # trunc_ip, bad_ihl, trunc_eth, udp_no_ports
    assert st["drop_pkts"] == 1
    assert st["rx_pkts"] == 14


def test_entry_counters_of_semantics(semantics):
    c = semantics["counters"]
    # root->svc: even, odd, odd_hi, after_hi_removed = 4; buckets: 2 even, 2 odd;
    # route: vip_udp54 + fragment; drop: tcp53
    assert [p for p, _ in c] == [4, 2, 2, 2, 1]


def test_rejections(glue):
    r = glue.run("rejects")
    inval = ("GlueError", "DOCA_ERROR_INVALID_VALUE")
    assert (r["outside_mask"]["type"], r["outside_mask"]["doca_error"]) == inval
    assert r["outside_mask"]["call"] == "doca_flow_pipe_add_entry"
    assert (r["outside_entry_mask"]["type"], r["outside_entry_mask"]["doca_error"]) == inval
    assert r["outside_entry_mask"]["call"] == "doca_flow_pipe_control_add_entry"
    assert r["duplicate"]["doca_error"] == "DOCA_ERROR_ALREADY_EXIST"
    assert r["duplicate"]["call"] == "doca_flow_entries_process"
    assert r["dup_in_batch"]["failures"] == [[1, "DOCA_ERROR_ALREADY_EXIST", "doca_flow_entries_process"]]
    assert r["over_capacity"]["doca_error"] == "DOCA_ERROR_FULL"
    assert r["mixed_batch"]["failures"] == [[1, "DOCA_ERROR_INVALID_VALUE", "doca_flow_pipe_add_entry"]]
    assert r["after_rollback"] is None  # the batch's good entries were taken back: no duplicates
    for k in ("bad_mac", "bad_mac2", "too_wide_port", "too_wide_ip", "bad_ip", "unknown_port", "two_fwds",
              "update_control"):
        assert r[k]["type"] == "ValueError", k
    assert r["update_basic_ok"] is None
    assert r["destroy_in_use"]["doca_error"] == "DOCA_ERROR_IN_USE"
    # vnf mode: p0 is paired with p1; DOCA refuses a forward to a port it is not paired with
    assert (r["unpaired_fwd"]["doca_error"], r["unpaired_fwd"]["call"]) == (
        "DOCA_ERROR_INVALID_VALUE", "doca_flow_pipe_control_add_entry")
    for k in ("query_removed", "remove_twice", "add_to_destroyed", "entry_of_destroyed", "fwd_to_destroyed",
              "after_close_create", "after_close_add"):
        assert r[k]["type"] == "RuntimeError", k
    assert "closed" in r["after_close_add"]["msg"]
    assert r["second_root"]["doca_error"] == "DOCA_ERROR_ALREADY_EXIST"
    assert r["second_open"]["type"] == "GlueError"
    assert r["second_open"]["doca_error"] == "DOCA_ERROR_BAD_STATE"
    assert "once per process" in r["second_open"]["msg"]


def test_counters_are_exact(glue):
    r = glue.run("counters")
    even, odd = r["sent"]["even"], r["sent"]["odd"]
    root, b0, b1 = r["counters"]
    assert b0 == even and b1 == odd
    assert root == [even[0] + odd[0], even[1] + odd[1]]
    assert r["stats"]["rx_pkts"] == 12 and r["stats"]["miss_pkts"] == 0


def test_update_in_place_remove_and_readd(glue):
    r = glue.run("update_remove")
    assert r["before"] == [["p1", MAC_A], ["p1", MAC_B]]
    assert r["after_update"] == [["p1", MAC_B], ["p1", MAC_A]]
    assert [p for p, _ in r["counters_after_update"]] == [4, 2, 2]  # counters survive an update
    assert r["after_remove"] == [["p1", MAC_B], ["miss", VIP_MAC]]  # bucket gone: default miss
    assert r["removed_alive"] is False
    assert r["after_readd"] == [["p1", MAC_B], ["p1", "0200c6120009"]]
    assert r["readd_counter"][0][0] == 1  # a re-added entry starts from zero
    assert r["stats"]["miss_pkts"] == 1
    assert r["after_churn"] == ["p1", MAC_B]


def test_close_with_entries_installed(glue):
    r = glue.run("close_with_entries")
    assert r["alive"] == [False] * 6 and r["pipe_alive"] == [False, False]
    assert r["use_after"]["type"] == "RuntimeError"
    assert r["reopen"]["doca_error"] == "DOCA_ERROR_BAD_STATE"


def test_fault_injection(glue):
    r = glue.run("fault")
    assert r["at_add"]["failures"] == [[1, "DOCA_ERROR_FULL", "doca_flow_pipe_add_entry"]]
    assert r["at_process"]["failures"] == [[2, "DOCA_ERROR_FULL", "doca_flow_entries_process"]]
    assert r["retry"] is None and r["disarmed"] is None  # failed batches left nothing behind
    assert r["frame"][0] == "miss"


def test_switch_mode_root_views_per_port(glue):
    r = glue.run("switch")
    assert r["p0"] == ["p1", MAC_A]
    assert r["p1"] == ["p2", VIP_MAC]
    assert r["p2"][0] == "miss"
    # p3's e-switch is another: DOCA refuses a forward across e-switches; its own root works
    assert (r["cross_eswitch"]["doca_error"], r["cross_eswitch"]["call"]) == (
        "DOCA_ERROR_INVALID_VALUE", "doca_flow_pipe_control_add_entry")
    assert r["p3"][0] == "drop"
    assert r["p1_after"][0] == "miss"      # p1's view destroyed, p0's entries untouched
    assert r["p0_after"] == ["p1", MAC_A]


def test_switch_mode_representors(glue):
    """p1, p2: representors of p0's e-switch (doca_flow_port_cfg_set_dev_rep, DOCA 3.1+)."""
    r = glue.run("reps")
    assert r["p0_even"] == ["p1", MAC_A] and r["p0_odd"] == ["p1", MAC_B]
    assert r["p2"] == ["p0", "02c612000035"]
    assert r["p1"][0] == "miss"  # no root view on p1

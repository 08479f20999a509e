"""IPv6 in the eSwitch plane: GlueMatch's IPv6 fields and family through the C glue to softdoca,
frames run through the pipes with softdoca's classify call (glue_child.py scenarios ipv6 and
ipv6_rejects, one eSwitch per child process).  softdoca classifies IPv6 frames as OVS's flow
extraction does, so that both planes agree (dpdk_glue/softdoca/README.md)."""
from __future__ import annotations

import ipaddress

import pytest

from dpdk_glue.binding import _SPEC, GlueMatch

MAC_A, MAC_B = "0200c6120002", "0200c6120003"
MAC4_A, MAC4_B = "0200c6120402", "0200c6120403"
VIP_MAC = "02c612000035"  # untouched: no MAC rewrite
UNTOUCHED_ROUTE = ["p1", VIP_MAC]


@pytest.fixture(scope="module")
def v6(glue):
    return glue.run("ipv6")


@pytest.fixture(scope="module")
def rejects(glue):
    return glue.run("ipv6_rejects")


def test_entry_spec_layout_matches_the_glue(glue_pkg_parent):
    from dpdk_glue import _glue  # built by the fixture

    assert _glue.ffi.sizeof("struct xf_entry_spec") == _SPEC.size == 152
    assert _glue.ffi.sizeof("struct xf_match") == 52


def test_ipv6_values_and_family():
    vip = "2001:db8:53::53"
    assert GlueMatch(ipv6_dst=vip) == GlueMatch(ipv6_dst=int(ipaddress.IPv6Address(vip)))
    assert GlueMatch(ipv6_dst=ipaddress.IPv6Address(vip)).l3 == 6  # ipv6 fields imply the family
    assert GlueMatch(l4_src=1, l3=6) != GlueMatch(l4_src=1)
    assert GlueMatch(ipv4_src=1).l3 == 0  # IPv4 matches unchanged: the glue derives their family
    m = GlueMatch(ipv6_src=(1 << 4) - 1).full_mask()
    assert m.ipv6_src == (1 << 128) - 1 and m.l3 == 6
    # four host-order words, most significant first
    words = GlueMatch(ipv6_src=(1 << 96) | 7)._packed()[7]
    assert [int.from_bytes(words[i:i + 4], "little") for i in range(0, 16, 4)] == [1, 0, 0, 7]


def test_dispatch_and_buckets_per_family_and_transport(v6):
    r = v6["res"]
    assert r["u_even"] == ["p1", MAC_A] and r["u_odd"] == ["p1", MAC_B]
    assert r["u_odd_hi"] == ["p1", MAC_B]  # only the masked low bit of the source counts
    # TCP/53: the pipe on the source port's low bit (l3=6), whatever the address
    assert r["t_even_port"] == ["p1", MAC_A] and r["t_odd_port"] == ["p1", MAC_B]
    assert r["v4_even"] == ["p1", MAC4_A] and r["v4_odd"] == ["p1", MAC4_B]
    assert r["v6_other_net"][0] == "miss"


def test_one_family_never_takes_the_others_frames(v6):
    r = v6["res"]
    assert r["v6_5353"][0] == "drop" and r["v4_5353"][0] == "miss"   # l3=6 entry: IPv6 only
    assert r["v4_5454"] == UNTOUCHED_ROUTE and r["v6_5454"][0] == "miss"  # derived family: IPv4 only


def test_extension_headers_lead_to_the_upper_layer(v6):
    r = v6["res"]
    for k in ("hbh_dst_udp", "routing_udp", "ah_udp", "frag_first"):
        assert r[k] == ["p1", MAC_A], k
    # a non-first fragment reads as protocol 44 without ports (as in OVS): the ip_proto=44 drop
    assert r["frag_later"][0] == "drop"
    assert r["esp"][0] == "drop"              # ESP ends the chain: ip_proto 50
    assert r["no_next"] == UNTOUCHED_ROUTE    # 59: no L4, the route takes it


def test_odd_frames_as_ovs_extracts_them(v6):
    r = v6["res"]
    assert r["version4"] == ["p1", MAC_A]  # the version nibble is not checked (OVS does not)
    assert r["padding"] == ["p1", MAC_A]   # payload shorter than the frame: Ethernet padding
    # too little L4 for UDP (8) or TCP (20): no ports, L3 kept, so the route, not the service
    for k in ("padding_cuts_udp", "udp_short", "tcp_short"):
        assert r[k] == UNTOUCHED_ROUTE, k


def test_malformed_ipv6_misses(v6):
    r = v6["res"]
    malformed = ("short_hdr", "plen_long", "trunc_chain", "trunc_chain_hdr", "trunc_frag")
    for k in malformed:
        assert r[k][0] == "miss", k
    st = v6["stats"]
    assert st["malformed_pkts"] == len(malformed)
    misses = [k for k, res in r.items() if res[0] == "miss"]
    assert st["miss_pkts"] == len(misses) == len(malformed) + 3  # + v4_5353, v6_5454, v6_other_net
    assert st["drop_pkts"] == 3 and st["rx_pkts"] == len(r)


def test_counters_are_exact_per_entry(v6):
    r, size = v6["res"], v6["sizes"]

    def tally(keys):
        return [len(keys), sum(size[k] for k in keys)]

    to_svc6 = ["u_even", "u_odd", "u_odd_hi", "hbh_dst_udp", "routing_udp", "ah_udp", "frag_first",
               "version4", "padding"]
    even6 = [k for k in to_svc6 if r[k] == ["p1", MAC_A]]
    route = ["no_next", "padding_cuts_udp", "udp_short", "tcp_short"]
    c = v6["counters"]
    # root: udp6, tcp6, udp4, route, esp drop, frag drop, 5353, 5454; then the buckets
    assert c[0] == tally(to_svc6)
    assert c[1] == tally(["t_even_port", "t_odd_port"]) and c[2] == tally(["v4_even", "v4_odd"])
    assert c[3] == tally(route)
    assert c[4] == tally(["esp"]) and c[5] == tally(["frag_later"])
    assert c[6] == tally(["v6_5353"]) and c[7] == tally(["v4_5454"])
    assert c[8] == tally(even6) and c[9] == tally(["u_odd", "u_odd_hi"])
    assert len(even6) == 7
    assert c[10] == tally(["t_even_port"]) and c[11] == tally(["t_odd_port"])
    assert c[12] == tally(["v4_even"]) and c[13] == tally(["v4_odd"])


def test_rejections(rejects):
    r = rejects
    inval = ("GlueError", "DOCA_ERROR_INVALID_VALUE", "doca_flow_pipe_add_entry")
    for k in ("outside_mask", "v6_in_v4_pipe", "v4_in_v6_pipe", "l3_4_in_v6_port_pipe"):
        assert (r[k]["type"], r[k]["doca_error"], r[k]["call"]) == inval, k
    assert (r["duplicate"]["doca_error"], r["duplicate"]["call"]) == ("DOCA_ERROR_ALREADY_EXIST",
                                                                      "doca_flow_entries_process")
    # an entry whose value and mask are of different families: refused before DOCA sees it
    assert (r["families_of_entry"]["doca_error"], r["families_of_entry"]["call"]) == (
        "DOCA_ERROR_INVALID_VALUE", "dpdk_glue")
    assert r["batch"]["failures"] == [[0, "DOCA_ERROR_ALREADY_EXIST", "doca_flow_entries_process"]]
    assert r["after_batch"][0] == "miss"  # the batch's good drop entry was taken back


def test_mixing_families_is_a_value_error_naming_the_fields(rejects):
    r = rejects
    assert r["mix_fields"]["type"] == "ValueError" and "ipv4_src" in r["mix_fields"]["msg"]
    assert "ipv6_src" in r["mix_fields"]["msg"]
    assert "ipv6_dst" in r["l3_4_v6"]["msg"] and "ipv4_dst" in r["l3_6_v4"]["msg"]
    for k in ("l3_5", "too_wide", "bad_str", "v4_str"):
        assert r[k]["type"] == "ValueError", k
    assert r["bool"]["type"] == "TypeError"

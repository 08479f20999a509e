"""IPv6 in the topology file: where it is on, which addresses, and errors with their lines."""
from __future__ import annotations

import ipaddress
import os

import pytest

from xenoflow_ovs.intent import config as config_mod
from xenoflow_ovs.lab.topology import TopologyError, ipv6_off, load_topology, sysctl_order

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(REPO, "topologies", "paper", "topology.yaml")
LAB6 = ipaddress.ip_network("2001:db8::/32")
HOSTS6 = {"fips1", "fips2", "fips3", "fips4"}


@pytest.fixture(scope="module")
def topo():
    return load_topology(PAPER)


def test_ipv6_is_on_on_the_hosts_eth0_only(topo):
    on = {(e.netns, e.ifname) for e in topo.ends()
          if not ipv6_off(topo.sysctls_of(e.netns), e.ifname, e.sysctls)}
    assert on == {(ns, "eth0") for ns in HOSTS6}
    # the dpu's plane veths, the tor's ports and the host: every end off, taps (made later) too
    assert ipv6_off(topo.sysctls_of(topo.dpu_netns), "pf1sf0")
    assert all(ipv6_off(topo.sysctls_of(ns), "lo") for ns in ("dpu", "tor", "fips5"))


def test_static_ipv6_everywhere(topo):
    for ns in topo.namespaces:
        kv = topo.sysctls_of(ns)
        for scope in ("all", "default"):
            for key in ("accept_ra", "autoconf", "router_solicitations", "dad_transmits"):
                assert kv["net.ipv6.conf.%s.%s" % (scope, key)] == "0", (ns, scope, key)


def test_ipv6_addresses_from_the_documentation_prefix(topo):
    for e in topo.ends():
        assert all(":" not in a for a in e.addresses)
        for a in e.addresses6:
            assert ipaddress.ip_interface(a).ip in LAB6, a
    assert {(e.netns, a) for e in topo.ends() for a in e.addresses6 if e.netns in ("fips2", "fips3")} == {
        ("fips2", "2001:db8::2/64"), ("fips3", "2001:db8::3/64")}
    for ns in ("fips2", "fips3"):
        assert "2001:db8::53/128" in topo.loopback[ns]
        assert not ipv6_off(topo.sysctls_of(ns), "lo")    # the VIP6 on lo needs lo's IPv6


def test_ipv6_clients_cover_every_bucket_and_are_their_hosts(topo):
    assert sum(len(a) for a in topo.clients6.values()) >= 16
    assert {int(ipaddress.ip_address(a)) & 15 for a in topo.clients6["fips4"]} == set(range(16))
    assert {int(ipaddress.ip_address(a)) & 3 for a in topo.clients6["fips1"]} == set(range(4))
    held = {(e.netns, str(ipaddress.ip_interface(a).ip)) for e in topo.ends() for a in e.addresses6}
    for ns, addrs in topo.clients6.items():
        assert all((ns, a) in held for a in addrs), ns
    cfg = config_mod.load(topo.config_path)
    for svc in cfg.services:
        mask = svc.policy.buckets - 1
        assert {int(ipaddress.ip_address(a)) & mask for s in topo.clients6.values() for a in s} == set(
            range(svc.policy.buckets))


def test_sysctl_order_writes_all_and_default_first():
    kv = {"net.ipv6.conf.lo.disable_ipv6": "0", "net.ipv6.conf.all.disable_ipv6": "1",
          "net/ipv6/conf/eth0/accept_ra": "0", "net.ipv4.ip_forward": "0",
          "net.ipv6.conf.default.disable_ipv6": "1"}
    assert [k for k, _ in sysctl_order(kv)] == [
        "net.ipv4.ip_forward", "net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6",
        "net.ipv6.conf.lo.disable_ipv6", "net/ipv6/conf/eth0/accept_ra"]


def test_ipv6_off_follows_what_the_kernel_inherits():
    all_off = {"net.ipv6.conf.all.disable_ipv6": "1"}
    assert ipv6_off(all_off, "eth0")                        # a write to all sets default too
    assert ipv6_off(all_off, "lo")                          # and reaches lo, which exists
    assert not ipv6_off(all_off, "eth0", [("ipv6.disable_ipv6", "0")])
    assert not ipv6_off(dict(all_off, **{"net/ipv6/conf/lo/disable_ipv6": "0"}), "lo")
    assert not ipv6_off({"net.ipv6.conf.default.disable_ipv6": "1"}, "lo")   # lo was made before
    assert not ipv6_off({}, "eth0")


def _write(tmp_path, text):
    p = tmp_path / "topology.yaml"
    p.write_text("namespaces: [a]\ndpu: {netns: a, ports: {}}\n" + text)
    return p


def test_ipv6_errors_name_key_path_and_line(tmp_path):
    p = _write(tmp_path,
               "sysctls:\n"
               "  '*': {net.ipv6.conf.all.disable_ipv6: 1}\n"
               "links:\n"
               "  - a: {netns: a, ifname: x, addresses: ['2001:db9::1/64']}\n"
               "    b: {netns: a, ifname: y, addresses: ['2001:db8::2/64']}\n"
               "  - a: {netns: a, ifname: z, sysctls: {ipv7.forwarding: 0, ipv6.accept_ra: [0]}}\n"
               "    b: {netns: a, ifname: w, sysctls: {ipv6.disable_ipv6: 0},"
               " addresses: ['2001:db8::3/64']}\n"
               "loopback:\n"
               "  a: ['2001:db8::53/128']\n"
               "clients6:\n"
               "  a: [198.18.0.11, '2001:db8::11']\n")
    with pytest.raises(TopologyError) as exc:
        load_topology(str(p))
    assert exc.value.lines() == [
        "%s:6: links[0].a.addresses[0]: 2001:db9::1/64 is outside 2001:db8::/32 (the lab's only IPv6 "
        "addresses)" % p,
        "%s:8: links[1].a.sysctls.ipv7.forwarding: 'ipv7.forwarding' is not a per-interface sysctl "
        "(ipv4.<name> or ipv6.<name>)" % p,
        "%s:8: links[1].a.sysctls.ipv6.accept_ra: must be a value, got a list" % p,
        "%s:13: clients6.a[0]: 198.18.0.11 is not an IPv6 address of 2001:db8::/32" % p,
        "%s:7: links[0].b.addresses: IPv6 is off on a/y (sysctls of a): add sysctls: "
        "{ipv6.disable_ipv6: 0} to it" % p,
        "%s:11: loopback.a: IPv6 is off on lo in a: set net.ipv6.conf.lo.disable_ipv6: 0 in sysctls.a" % p,
    ]


def test_unquoted_ipv6_that_yaml_reads_as_a_number_is_an_error(tmp_path):
    p = _write(tmp_path, "clients6:\n  a: [2001:10]\n")
    with pytest.raises(TopologyError, match=r"clients6\.a\[0\]: must be an address"):
        load_topology(str(p))

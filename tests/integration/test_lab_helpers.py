"""The lab helpers themselves: private OVS, namespaces, bind9, the DNS client.

Runs in both tox envs (Python 3.11/dnspython 2 and Python 3.9/dnspython 1.16).
Addresses: 198.18.0.0/15 and 2001:db8::/32 only, inside namespaces these tests create.
"""
from __future__ import annotations

import os
import socket
import subprocess
import threading

import pytest

from xenoflow_ovs.lab import dnsclient
from xenoflow_ovs.lab import netns as nsh
from xenoflow_ovs.lab.bind9 import Bind9
from xenoflow_ovs.lab.ovs_instance import OvsInstance, _pid_alive


def _tun_devices(ns):
    p = subprocess.run(["ip", "-n", ns, "-o", "link", "show", "type", "tun"],
                       stdout=subprocess.PIPE, universal_newlines=True, check=True)
    return [line.split(":")[1].strip() for line in p.stdout.splitlines() if ":" in line]


def _pair(a_ns, b_ns, a_ip, b_ip, a_mac, b_mac):
    nsh.add_veth("eth0", "eth0", ns=a_ns, peer_ns=b_ns)
    nsh.prepare_link("eth0", a_ns, mac=a_mac, cidr=a_ip + "/24")
    nsh.prepare_link("eth0", b_ns, mac=b_mac, cidr=b_ip + "/24")
    assert nsh.wait_oper_up("eth0", a_ns)


# --- no root: the DNS client against a tiny local responder ----------------------

def _tiny_txt_server(sock, txt, n):
    import dns.message
    import dns.rrset

    for _ in range(n):
        data, addr = sock.recvfrom(2048)
        q = dns.message.from_wire(data)
        r = dns.message.make_response(q)
        r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "TXT", '"%s"' % txt))
        sock.sendto(r.to_wire(), addr)


def test_dnsclient_query_many_loopback():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    t = threading.Thread(target=_tiny_txt_server, args=(s, "be-x", 3), daemon=True)
    t.start()
    try:
        r = dnsclient.query_many("127.0.0.1", src="127.0.0.1", count=3, port=port, timeout=2)
        assert r["answers"] == ["be-x"] * 3
        assert r["by_answer"] == {"be-x": 3} and r["timeouts"] == 0 and r["errors"] == 0
        # nobody answers any more: a timeout is None, not an exception
        assert dnsclient.query_txt("127.0.0.1", port=port, timeout=0.2) is None
    finally:
        t.join(5)
        s.close()


def _tiny_tcp_txt_server(sock, txt, n):
    """Answer `n` TCP connections, one query each (2-byte length prefix, RFC 1035 4.2.2)."""
    import struct

    import dns.message
    import dns.rrset

    for _ in range(n):
        conn, _ = sock.accept()
        with conn:
            (size,) = struct.unpack("!H", conn.recv(2, socket.MSG_WAITALL))
            q = dns.message.from_wire(conn.recv(size, socket.MSG_WAITALL))
            r = dns.message.make_response(q)
            r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "TXT", '"%s"' % txt))
            wire = r.to_wire()
            conn.sendall(struct.pack("!H", len(wire)) + wire)


def test_dnsclient_tcp_loopback(capsys):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    port = s.getsockname()[1]
    t = threading.Thread(target=_tiny_tcp_txt_server, args=(s, "be-t", 3), daemon=True)
    t.start()
    try:
        r = dnsclient.query_many("127.0.0.1", src="127.0.0.1", count=2, port=port, timeout=2, tcp=True)
        assert r["answers"] == ["be-t"] * 2 and r["tcp"] is True and r["errors"] == 0, r
        assert dnsclient.main(["--server", "127.0.0.1", "--port", str(port), "--tcp"]) == 0
    finally:
        t.join(5)
        s.close()
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["answers"] == ["be-t"] and out["tcp"] is True
    # over UDP nobody listens on that port: no answer, no exception
    assert dnsclient.query_txt("127.0.0.1", port=port, timeout=0.2) is None
    # nobody accepts any more: a refused connection is counted, not raised
    r = dnsclient.query_many("127.0.0.1", count=1, port=port, timeout=0.5, tcp=True)
    assert r["answers"] == [None] and r["timeouts"] + r["errors"] == 1, r


def test_dnsclient_cli_json(capsys):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    t = threading.Thread(target=_tiny_txt_server, args=(s, "cli", 1), daemon=True)
    t.start()
    try:
        assert dnsclient.main(["--server", "127.0.0.1", "--port", str(port), "--count", "1"]) == 0
    finally:
        t.join(5)
        s.close()
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["answers"] == ["cli"] and out["count"] == 1


def test_check_ifname():
    assert nsh.check_ifname("x" * 15)
    for bad in ("", "x" * 16, "a/b", "a b"):
        with pytest.raises(ValueError):
            nsh.check_ifname(bad)


# --- root: OVS lifecycle ---------------------------------------------------------------

@pytest.mark.root
@pytest.mark.ovs
def test_ovs_start_restart_stop_leaves_nothing(netns, short_tmp):
    o = netns("o")
    peer = netns("p")
    inst = OvsInstance(os.path.join(short_tmp, "ovs"), netns=o)
    try:
        inst.start()
        assert inst.running()
        pids = (inst.pid("ovsdb-server"), inst.pid("ovs-vswitchd"))
        assert "Open_vSwitch" in inst.appctl("ovsdb-server", "ovsdb-server/list-dbs")
        inst.add_bridge("br0")
        nsh.add_veth("p1", "eth0", ns=o, peer_ns=peer)
        nsh.prepare_link("p1", o)
        inst.vsctl("add-port", "br0", "p1", "--", "set", "interface", "p1", "ofport_request=1")
        inst.ofctl("add-flow", "br0", "cookie=0x42,priority=10,in_port=1,actions=drop")
        assert "cookie=0x42" in inst.ofctl("dump-flows", "br0")
        assert sorted(_tun_devices(o)) == ["br0", "ovs-netdev"]

        # same DB after restarts: the bridge and port come back (flows do not:
        # they live in ovs-vswitchd, a controller re-installs them)
        inst.restart_vswitchd()
        assert inst.pid("ovs-vswitchd") not in (None, pids[1])
        assert not _pid_alive(pids[1])
        assert inst.bridges() == ["br0"]
        assert "p1" in inst.vsctl("list-ports", "br0").split()
        assert "cookie=0x42" not in inst.ofctl("dump-flows", "br0")
        inst.ofctl("add-flow", "br0", "cookie=0x43,priority=10,in_port=1,actions=drop")

        inst.restart_ovsdb()
        assert inst.pid("ovsdb-server") not in (None, pids[0])
        assert inst.bridges() == ["br0"]
        assert "cookie=0x43" in inst.ofctl("dump-flows", "br0")
        pids = (inst.pid("ovsdb-server"), inst.pid("ovs-vswitchd"))
    finally:
        inst.stop()
    assert not inst.running()
    assert not any(_pid_alive(p) for p in pids)
    assert _tun_devices(o) == []
    assert inst.leftover_taps() == []


# --- root: namespaces + bind9 ----------------------------------------------------------

@pytest.mark.root
def test_bind9_answers_and_counts(netns, short_tmp):
    c, s = netns("c"), netns("s")
    _pair(c, s, "198.18.3.1", "198.18.3.2", "02:00:c6:12:03:01", "02:00:c6:12:03:02")
    nsh.add_lo_address(s, "198.18.3.53/32")
    nsh.set_arp_dsr(s)
    b = Bind9(s, os.path.join(short_tmp, "bind"), "fips2", "198.18.3.53")
    try:
        b.start()
        pid = b.pid
        before = b.queries_answered()
        r = dnsclient.query_many_in_ns(c, "198.18.3.2", src="198.18.3.1", count=7)
        assert r["answers"] == ["fips2"] * 7, r
        assert b.queries_answered() - before == 7
        # the VIP on lo answers too (route to it through the backend)
        nsh.run_in_ns(c, ["ip", "route", "add", "198.18.3.53/32", "via", "198.18.3.2"])
        assert dnsclient.query_txt_in_ns(c, "198.18.3.53") == "fips2"
        assert b.queries_answered() - before == 8
    finally:
        b.stop()
    assert b.pid is None and not _pid_alive(pid)


def _dual_stack_pair(c, s):
    """c -- s over one veth, both families; IPv6 static (no RA, no DAD: the server's
    link-local, which its neighbour solicitations come from, is never tentative)."""
    for ns in (c, s):
        for key in ("accept_ra", "autoconf", "router_solicitations", "dad_transmits"):
            nsh.set_sysctl(ns, "net/ipv6/conf/default/%s" % key, 0)
    nsh.add_veth("eth0", "eth0", ns=c, peer_ns=s)
    for ns, mac, v4, v6 in ((c, "02:00:c6:12:05:01", "198.18.5.1/24", "2001:db8:5::11/64"),
                            (s, "02:00:c6:12:05:02", "198.18.5.2/24", "2001:db8:5::2/64")):
        nsh.prepare_link("eth0", ns, mac=mac, cidr=v4, ipv6_off=False)
        nsh.add_address("eth0", v6, ns=ns)
    assert nsh.wait_oper_up("eth0", c)


@pytest.mark.root
def test_ipv6_addresses_are_added_without_dad(netns):
    c, s = netns("c"), netns("s")
    _dual_stack_pair(c, s)
    nsh.add_address("eth0", "2001:db8:5::11/64", ns=c)          # again: idempotent
    nsh.add_lo_address(s, "2001:db8:5::53")                     # /128 by default
    p = nsh.run_in_ns(c, ["ip", "-6", "-o", "address", "show", "dev", "eth0", "scope", "global"])
    assert len(p.stdout.splitlines()) == 1 and "nodad" in p.stdout and "tentative" not in p.stdout
    p = nsh.run_in_ns(s, ["ip", "-6", "-o", "address", "show", "dev", "lo"])
    assert "2001:db8:5::53/128" in p.stdout


@pytest.mark.root
def test_bind9_answers_both_families_udp_and_tcp(netns, short_tmp):
    """named listens on IPv6 and TCP too: on its own addresses, and on the VIP6 held on lo
    (direct server return), answering from the address asked (the client checks)."""
    c, s = netns("c"), netns("s")
    _dual_stack_pair(c, s)
    nsh.add_lo_address(s, "198.18.5.53/32")
    nsh.add_lo_address(s, "2001:db8:5::53/128")
    nsh.set_arp_dsr(s)
    nsh.run_in_ns(c, ["ip", "-6", "route", "add", "2001:db8:5::53/128", "via", "2001:db8:5::2"])
    nsh.run_in_ns(c, ["ip", "route", "add", "198.18.5.53/32", "via", "198.18.5.2"])
    b = Bind9(s, os.path.join(short_tmp, "bind"), "fips2", "198.18.5.53")
    try:
        b.start()
        before = b.queries_answered()
        asked = 0
        for server, src in (("2001:db8:5::2", "2001:db8:5::11"), ("2001:db8:5::53", "2001:db8:5::11"),
                            ("198.18.5.2", "198.18.5.1"), ("198.18.5.53", "198.18.5.1")):
            for tcp in (False, True):
                r = dnsclient.query_many_in_ns(c, server, src=src, count=2, timeout=2.0, tcp=tcp)
                assert r["answers"] == ["fips2"] * 2, (server, tcp, r)
                asked += 2
        assert dnsclient.query_txt_in_ns(c, "2001:db8:5::53", tcp=True) == "fips2"
        assert b.queries_answered() - before == asked + 1
    finally:
        b.stop()


@pytest.mark.root
@pytest.mark.ovs
def test_dns_through_private_ovs(ovs, netns, short_tmp):
    """client -- OVS bridge (in the session OVS's namespace) -- bind9; UDP only
    works because prepare_link turns TX checksum offload off."""
    c, s = netns("c"), netns("s")
    tag = netns.prefix.rsplit("-", 1)[1]  # 't<N>': unique in this session's OVS namespace
    br, ports = "br-" + tag, (tag + "c", tag + "s")
    ovs.add_bridge(br)
    b = Bind9(s, os.path.join(short_tmp, "bind"), "fips3", "198.18.4.53")
    try:
        for port, ns, ip, mac in ((ports[0], c, "198.18.4.1", "02:00:c6:12:04:01"),
                                  (ports[1], s, "198.18.4.2", "02:00:c6:12:04:02")):
            nsh.add_veth(port, "eth0", ns=ovs.netns, peer_ns=ns)
            nsh.prepare_link(port, ovs.netns)
            nsh.prepare_link("eth0", ns, mac=mac, cidr=ip + "/24")
            ovs.vsctl("add-port", br, port)
        ovs.ofctl("add-flow", br, "cookie=0x7,priority=0,actions=NORMAL")
        b.start()
        before = b.queries_answered()
        r = dnsclient.query_many_in_ns(c, "198.18.4.2", src="198.18.4.1", count=5)
        assert r["by_answer"] == {"fips3": 5}, r
        assert b.queries_answered() - before == 5
        flows = ovs.ofctl("dump-flows", br)
        assert "n_packets=0," not in flows, flows
    finally:
        b.stop()
        ovs.vsctl("--if-exists", "del-br", br)
    assert br not in _tun_devices(ovs.netns)

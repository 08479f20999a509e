"""The VIP6's Neighbor Discovery answered by a real Open vSwitch (private instance,
userspace datapath) with the flows of intent/nd.py, sent as the controller sends them
(ofrules.Rules.wire over an OpenFlow connection to the bridge).

A client namespace with IPv6 on (accept_ra 0, a nodad address from 2001:db8::/32)
resolves the VIP6: the kernel accepts the Neighbor Advertisement (its checksum and
flags must be right) and keeps the VIP MAC; the capture shows the NA as sent. A
duplicate address detection for the VIP6 is not answered (the address the client
tries does not fail DAD). Everything is removed by name / PID.
"""
from __future__ import annotations

import os
import socket
import struct
import subprocess
import time

import pytest

from xenoflow_ovs.controller import ofrules
from xenoflow_ovs.intent import nd
from xenoflow_ovs.intent.plan import Change, Flow
from xenoflow_ovs.lab import netns as nsh

compat = pytest.importorskip("xenoflow_ovs.controller.compat")

pytestmark = [pytest.mark.root, pytest.mark.ovs]

VIP6, VIP_MAC = "2001:db8::53", "02:00:c6:12:00:35"
CLIENT6, CLIENT_MAC = "2001:db8::7", "02:00:c6:12:00:07"
BR, PORT = "xfnd6br", "xfnd6p0"


def responder_flows():
    return [Flow(BR, 300 + r.above, tuple([("in_port", PORT)] + list(r.fields.items())), r.actions,
                 "arp", "dns6", table=r.table) for r in nd.responder_rules(VIP6, VIP_MAC)]


def send_openflow(mgmt, messages, timeout=5.0):
    """HELLO, the messages (xids 1..n), and what the switch answered until the barrier
    reply: a list of (type, bytes)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(mgmt)
    try:
        s.sendall(struct.pack("!BBHI", 4, 0, 8, 0))
        for xid, msg in enumerate(messages, 1):
            s.sendall(msg[:4] + struct.pack("!I", xid) + msg[8:])
        replies, buf = [], b""
        while True:
            buf += s.recv(65536)
            while len(buf) >= 8 and len(buf) >= struct.unpack_from("!H", buf, 2)[0]:
                n = struct.unpack_from("!H", buf, 2)[0]
                replies.append((buf[1], buf[:n]))
                buf = buf[n:]
                if replies[-1][0] == 21:          # OFPT_BARRIER_REPLY
                    return replies
    finally:
        s.close()


def neigh(ns):
    return nsh.run_in_ns(ns, ["ip", "-6", "neigh", "show", VIP6, "dev", "eth0"]).stdout


@pytest.fixture
def wired(ovs, netns):
    client = netns("c6")
    ovs.add_bridge(BR)
    try:
        nsh.add_veth(PORT, "eth0", ns=ovs.netns, peer_ns=client)
        ovs.vsctl("add-port", BR, PORT, "--", "set", "interface", PORT, "ofport_request=1")
        for ns, ifname in ((ovs.netns, PORT), (client, "eth0")):
            nsh.disable_tx_offload(ifname, ns)
        nsh.set_sysctl(client, "net/ipv6/conf/all/accept_ra", 0)
        nsh.set_sysctl(client, "net/ipv6/conf/eth0/accept_ra", 0)
        nsh.set_sysctl(client, "net/ipv6/conf/eth0/disable_ipv6", 0)
        nsh.set_link("eth0", ns=client, mac=CLIENT_MAC, up=None)
        nsh.run_in_ns(client, ["ip", "-6", "addr", "add", CLIENT6 + "/64", "dev", "eth0", "nodad"])
        nsh.set_link("eth0", ns=client, up=True)
        nsh.set_link(PORT, ns=ovs.netns, up=True)
        assert nsh.wait_oper_up("eth0", ns=client)
        yield ovs, client
    finally:
        ovs.vsctl("--if-exists", "del-br", BR)
        nsh.delete_link(PORT, ns=ovs.netns)


def capture(ns, path):
    """tcpdump of the first Neighbor Advertisement on the client's link, by PID."""
    return nsh.popen_in_ns(ns, ["tcpdump", "-i", "eth0", "-n", "-U", "-c", "1", "-w", path,
                                "icmp6 and ip6[40] == 136"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_the_vip6_is_resolved_by_flows_and_dad_is_not_answered(wired, short_tmp):
    ovs, client = wired
    rules = ofrules.Rules(compat.ofproto_v1_3, compat.ofproto_v1_3_parser)
    flows = responder_flows()
    msgs = rules.wire([Change("ovs", "add", f) for f in flows], {PORT: 1})
    replies = send_openflow(os.path.join(ovs.rundir, BR + ".mgmt"), msgs)
    assert [t for t, _ in replies if t == 1] == [], "OVS refused a message: %r" % replies
    dump = ovs.ofctl("dump-flows", BR)
    assert "set_field:2->nd_options_type" in dump and "goto_table:1" in dump, dump

    pcap = os.path.join(short_tmp, "na.pcap")
    tcpdump = capture(client, pcap)
    try:
        time.sleep(1.0)                      # tcpdump is listening
        nsh.run_in_ns(client, ["ping", "-6", "-c", "1", "-W", "1", VIP6], check=False)
        tcpdump.wait(5)
    finally:
        if tcpdump.poll() is None:
            tcpdump.kill()
            tcpdump.wait(5)
    entry = neigh(client)
    assert "lladdr " + VIP_MAC in entry and ("REACHABLE" in entry or "STALE" in entry), entry
    text = subprocess.run(["tcpdump", "-r", pcap, "-n", "-vv", "-e"], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, universal_newlines=True).stdout
    assert "%s > %s" % (VIP_MAC, CLIENT_MAC) in text, text
    assert "%s > %s" % (VIP6, CLIENT6) in text and "hlim 255" in text, text
    assert "[icmp6 sum ok]" in text and "neighbor advertisement" in text, text
    assert "tgt is %s, Flags [solicited, override]" % VIP6 in text, text
    assert "destination link-address option (2), length 8 (1): %s" % VIP_MAC in text, text

    # DAD for the VIP6 (from ::): dropped above the responder, so the address stays
    nsh.run_in_ns(client, ["ip", "-6", "addr", "add", VIP6 + "/128", "dev", "eth0"])
    deadline = time.monotonic() + 10
    addr = ""
    while time.monotonic() < deadline:
        addr = nsh.run_in_ns(client, ["ip", "-6", "addr", "show", "dev", "eth0", "to", VIP6]).stdout
        if "tentative" not in addr:
            break
        time.sleep(0.2)
    assert VIP6 in addr and "dadfailed" not in addr and "tentative" not in addr, addr
    dad = [line for line in ovs.ofctl("dump-flows", BR).splitlines() if "priority=301" in line]
    assert len(dad) == 1 and "n_packets=0" not in dad[0], dad

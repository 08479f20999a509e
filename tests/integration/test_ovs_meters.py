"""OpenFlow meters on a real Open vSwitch (userspace datapath, the session's private OVS):
a Bridge drives the switch over its management socket with the very bytes the app sends,
and reads back what the switch reports, the way the app's handlers feed it.

Wiring: snd (198.18.200.1) -- xmi1|xmi0 [xmbr0] xmo0|xmo1 -- rcv. One flow: UDP from xmi0,
through our meter, out xmo0. Frames are counted where they land (rcv's rx counter) and in
the meter's stats. Only 198.18.0.0/15 inside namespaces created here.
"""
from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time

import pytest

from xenoflow_ovs.controller import ofrules
from xenoflow_ovs.intent import plan as plan_mod
from xenoflow_ovs.intent.plan import Change, Flow

compat = pytest.importorskip("xenoflow_ovs.controller.compat")
from xenoflow_ovs.controller import bridge as bridge_mod  # noqa: E402  (needs a runtime)

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.slow]

OFP, PARSER = compat.ofproto_v1_3, compat.ofproto_v1_3_parser
BR, IN, OUT = "xmbr0", "xmi0", "xmo0"
SRC, DST, DST_MAC = "198.18.200.1", "198.18.200.2", "02:00:c6:12:c8:02"
OURS = plan_mod.meter_id(11, 4, 0)
SENDER = r"""
import socket, sys, time
n, secs = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t0 = time.monotonic()
for i in range(n):
    while secs and time.monotonic() < t0 + i * secs / n:
        pass
    s.sendto(b"x" * 32, (sys.argv[3], 9))
"""


class OfConn:
    """A synchronous OpenFlow 1.3 connection to a bridge's management socket: what a Bridge
    needs of a datapath, and the switch's messages parsed by the framework."""

    def __init__(self, path):
        from importlib import import_module
        self.mod = import_module(PARSER.__name__.rsplit(".", 1)[0] + ".ofproto_parser")
        self.ofproto, self.ofproto_parser = OFP, PARSER
        self.id, self.xid, self.buf = 1, 100, b""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.sock.sendall(struct.pack("!BBHI", 4, OFP.OFPT_HELLO, 8, 1))
        assert self.recv().msg_type == OFP.OFPT_HELLO
        self.ports = {}
        req = PARSER.OFPPortDescStatsRequest(None, 0)
        self.set_xid(req)
        self.send_msg(req)
        for p in self.recv().body:
            self.ports[p.port_no] = p

    def set_xid(self, msg):
        self.xid += 1
        msg.set_xid(self.xid)

    def send_msg(self, msg):
        msg.datapath = self
        msg.serialize()
        self.sock.sendall(bytes(msg.buf))

    def send(self, buf):
        self.sock.sendall(buf)

    def recv(self):
        while True:
            while len(self.buf) < 8 or len(self.buf) < struct.unpack_from("!H", self.buf, 2)[0]:
                chunk = self.sock.recv(65536)
                assert chunk, "the switch closed the connection"
                self.buf += chunk
            version, mtype, length, xid = struct.unpack_from("!BBHI", self.buf, 0)
            buf, self.buf = self.buf[:length], self.buf[length:]
            if mtype == OFP.OFPT_ECHO_REQUEST:
                self.sock.sendall(struct.pack("!BBHI", 4, OFP.OFPT_ECHO_REPLY, length, xid) + buf[8:])
                continue
            return self.mod.msg(self, version, mtype, length, xid, buf)

    def close(self):
        self.sock.close()


class Driver:
    """The app's handlers, inline: replies fed to the Bridge until a condition holds."""

    def __init__(self, b, conn, meters):
        self.b, self.conn, self.meters = b, conn, meters
        self.errors, self.dump = [], None

    def pump(self, done, timeout=10.0):
        end = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < end, "no answer from the switch"
            msg = self.conn.recv()
            if isinstance(msg, PARSER.OFPBarrierReply):
                self.b.barrier_replied(msg.xid)
            elif isinstance(msg, PARSER.OFPErrorMsg):
                self.errors.append((msg.type, msg.code))
                self.b.refused(msg.xid, "type=%d code=%d" % (msg.type, msg.code))
            elif isinstance(msg, (PARSER.OFPMeterConfigStatsReply, PARSER.OFPMeterStatsReply)):
                got = self.b.meter_reply(msg)
                if got and got[0] == "config" and not self.b.meters_predate_sends():
                    self.b.reconcile_meters(self.meters)
            elif isinstance(msg, PARSER.OFPFlowStatsReply):
                got = self.b.dump_reply(msg)
                if got is not None:
                    self.dump = got

    def attach(self, conn):
        """Connect the bridge: its first meter read and flow dump answered and reconciled."""
        self.b.attach(conn)
        self.pump(lambda: self.dump is not None)
        self.settle()

    def dump_again(self, reason):
        """One more full dump (and, when the bridge asks, meter read), answered."""
        self.dump = None
        self.b.request_dump(reason)
        self.pump(lambda: self.dump is not None)
        self.settle()

    def settle(self):
        """Send nothing more, wait for every batch in flight."""
        self.pump(lambda: not self.b.barriers and not self.b.meter_xids)

    def send(self, changes):
        settled = []
        self.b.send(changes, settled.append)
        self.pump(lambda: settled)
        assert settled == [None] and not self.errors, (settled, self.errors)


def dump_meters(ovs):
    """{meter id: (rate, burst)} as ovs-ofctl reads them."""
    out, mid = {}, None
    for word in ovs.ofctl("dump-meters", BR).replace("\n", " ").split():
        if word.startswith("meter="):
            mid = int(word[6:])
            out[mid] = [None, None]
        elif word.startswith("rate="):
            out[mid][0] = int(word[5:])
        elif word.startswith("burst_size="):
            out[mid][1] = int(word[11:])
    return {k: tuple(v) for k, v in out.items()}


def rx(ns, ifname="xmo1"):
    p = subprocess.run(["ip", "netns", "exec", ns, "cat", "/sys/class/net/%s/statistics/rx_packets" % ifname],
                       stdout=subprocess.PIPE, universal_newlines=True, check=True)
    return int(p.stdout)


def blast(ns, n, secs):
    subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", SENDER, str(n), str(secs), DST],
                   check=True, timeout=60)
    time.sleep(0.5)        # the datapath drains its queues


@pytest.fixture
def wired(ovs, netns):
    from xenoflow_ovs.lab import netns as nsh
    snd, rcv = netns("snd"), netns("rcv")
    nsh.add_veth(IN, "xmi1", ns=ovs.netns, peer_ns=snd)
    nsh.add_veth(OUT, "xmo1", ns=ovs.netns, peer_ns=rcv)
    try:
        for ifname, ns in ((IN, ovs.netns), (OUT, ovs.netns), ("xmi1", snd), ("xmo1", rcv)):
            nsh.disable_ipv6(ifname, ns)
            nsh.set_link(ifname, ns)
        nsh.add_address("xmi1", SRC + "/24", snd)
        nsh.run_in_ns(snd, ["ip", "neigh", "replace", DST, "lladdr", DST_MAC, "dev", "xmi1"])
        ovs.add_bridge(BR)
        ovs.vsctl("add-port", BR, IN, "--", "set", "interface", IN, "ofport_request=1",
                  "--", "add-port", BR, OUT, "--", "set", "interface", OUT, "ofport_request=2")
        yield ovs, snd, rcv
    finally:
        ovs.vsctl("--if-exists", "del-br", BR)
        for ifname in (IN, OUT):
            nsh.delete_link(ifname, ovs.netns)


def connect(ovs, meters):
    rules = ofrules.Rules.default()
    b = bridge_mod.Bridge(BR, 1, rules)
    b.metered = True
    conn = OfConn(os.path.join(ovs.rundir, BR + ".mgmt"))
    return Driver(b, conn, meters), conn


def meter(pps, burst, mid=OURS):
    return plan_mod.Meter("ovs", BR, mid, pps, burst, "dns", "service")


FLOW = Flow(BR, 100, (("in_port", IN), ("eth_type", 0x0800), ("ip_proto", 17)),
            (("meter", OURS), ("output", OUT)), "service", "dns")


def test_meters_reconcile_by_id_carry_a_flow_and_drop_above_the_rate(wired):
    ovs, snd, rcv = wired
    stale = plan_mod.meter_id(12, 4, 3)
    ovs.ofctl("add-meter", BR, "meter=5,pktps,bands=type=drop,rate=10")        # another controller's
    ovs.ofctl("add-meter", BR, "meter=%d,pktps,burst,stats,bands=type=drop,rate=7,burst_size=1" % stale)
    d, conn = connect(ovs, [meter(200, 20)])
    try:
        d.attach(conn)            # asks the meter config, then the flows: answered in that order
        assert not d.errors
        assert dump_meters(ovs) == {5: (10, None), OURS: (200, 20)}, "ours added, stale gone, foreign kept"

        d.send([Change("ovs", "add", FLOW)])
        assert "actions=meter:%d,output:2" % OURS in ovs.ofctl("dump-flows", BR)   # xmo0 is port 2
        d.dump_again("asked")
        assert dump_meters(ovs)[OURS] == (200, 20) and d.b.meters_in_sync
        got = [i for i in d.dump if i.ours]
        assert [i.canon_actions[0] for i in got] == [("meter", OURS)]
        assert ofrules.reconcile(d.b.rules, [FLOW], d.dump, d.b.ports).changes == []

        # the datapath drops above the rate: ~1000 pps offered for 2 s against 200 pps
        before = rx(rcv)
        blast(snd, 2000, 2.0)
        delivered = rx(rcv) - before
        d.b.request_meters("stats")
        d.pump(lambda: d.b.meter_counts)
        pkts, _, drops = d.b.meter_counts[OURS]
        expect = 200 * 2 + 20
        print("offered 2000 over 2 s at 200 pps, burst 20: delivered %d (expected ~%d), "
              "meter in %d, band drops %d" % (delivered, expect, pkts, drops))
        assert pkts >= 1990 and drops == pkts - delivered
        assert 0.7 * expect <= delivered <= 1.3 * expect
    finally:
        conn.close()


def test_a_meter_modified_in_place_keeps_its_id_its_flow_and_takes_the_new_burst(wired):
    ovs, snd, rcv = wired
    d, conn = connect(ovs, [meter(100, 10)])
    try:
        d.attach(conn)
        d.send([Change("ovs", "add", FLOW)])
        results = {}
        for burst in (10, 200):
            d.meters = [meter(100, burst)]
            d.dump_again("asked")
            assert dump_meters(ovs) == {OURS: (100, burst)}
            assert "meter:%d" % OURS in ovs.ofctl("dump-flows", BR), "the flow outlives a modify"
            time.sleep(1.5)        # the bucket refills
            before = rx(rcv)
            blast(snd, 600, 0)     # back to back: the burst, and little of the rate
            results[burst] = rx(rcv) - before
        print("600 frames back to back at 100 pps: burst 10 -> %d delivered, burst 200 -> %d"
              % (results[10], results[200]))
        assert results[10] < 60 and 150 <= results[200] <= 300
    finally:
        conn.close()


def test_the_last_meter_removed_is_read_again_so_none_is_reported_that_is_gone(wired):
    """The plan's last limit removed: its meter is deleted and the bridge no longer reads
    meters with every dump. The dump after that send reads them once more, so the bridge's
    view (what the check compares) is empty too, not the meter as it was."""
    ovs, _, _ = wired
    d, conn = connect(ovs, [meter(100, 10)])
    try:
        d.attach(conn)
        d.send([Change("ovs", "add", FLOW)])
        d.dump_again("sent")           # metered: the meters are read with it
        assert set(d.b.meters) == {OURS} and d.b.report()["meters"] == 1

        plain = Flow(BR, 100, FLOW.match, (("output", OUT),), "service", "dns")
        d.meters, d.b.metered = [], False
        d.send([Change("ovs", "modify", plain, FLOW),
                Change("ovs", "delete_meter", ofrules.InstalledMeter(BR, OURS, 100, 10))])
        assert dump_meters(ovs) == {} and "meter:" not in ovs.ofctl("dump-flows", BR)
        d.dump_again("sent")
        assert d.b.meters == {} and d.b.meters_in_sync
        assert d.b.report()["meters"] == 0

        d.dump = None                  # nothing sent since: the next dump reads no meters
        d.b.request_dump("audit")
        assert not d.b.meter_xids
        d.pump(lambda: d.dump is not None)
    finally:
        conn.close()

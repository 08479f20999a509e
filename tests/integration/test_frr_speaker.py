"""Real FRR (zebra, bfdd, bgpd) in network namespaces: a router and two DPU speakers, each
on a veth of its own to the router, rendered by fleet/bgp.py and run by fleet/frr.py.

Both speakers announce one VIP and the router spreads it over both (ECMP); a withdraw, a
MED, a bgpd restart (which forgets the run-time announcements: the controller must make
them again), a speaker gone silent (BFD, not the hold timer, takes it out) and a speaker
stopped each leave the router with the right nexthops. Heavy and runtime-independent:
osken env only (`once`)."""

import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import netaddr
import pytest

from xenoflow_ovs.fleet import bgp
from xenoflow_ovs.fleet.frr import FRR_BIN, Frr
from xenoflow_ovs.intent.config import Bgp, BgpPeer
from xenoflow_ovs.lab import netns as N

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.once]

VIP = "198.18.0.53/32"
ROUTER_AS, SPEAKER_AS = 65000, 65001
# speaker i: router 198.18.1i.1/24 <-> speaker 198.18.1i.2/24
SPEAKERS = ("a", "b")


def link(i):
    return "198.18.%d.1" % (11 + i), "198.18.%d.2/24" % (11 + i)


class Bed:
    def __init__(self, prefix, root):
        self.prefix, self.root = prefix, root
        self.router_ns = prefix + "-br"
        self.ns = {s: "%s-b%s" % (prefix, s) for s in SPEAKERS}
        self.router = Frr(prefix + "r", netns=self.router_ns, conf_dir=os.path.join(root, "r"))
        self.speakers = {s: Frr(prefix + s, netns=self.ns[s], conf_dir=os.path.join(root, s))
                         for s in SPEAKERS}
        self.files = {}
        self.created = []

    def address(self, s):
        return link(SPEAKERS.index(s))[1].split("/")[0]

    def up(self):
        for ns in [self.router_ns] + list(self.ns.values()):
            N.create_ns(ns)
            self.created.append(ns)
        neighbors = []
        for i, s in enumerate(SPEAKERS):
            rtr, spk = link(i)
            N.add_veth("v" + s, "up", ns=self.router_ns, peer_ns=self.ns[s])
            N.prepare_link("v" + s, ns=self.router_ns, cidr=rtr + "/24", tx_off=False)
            N.prepare_link("up", ns=self.ns[s], cidr=spk, tx_off=False)
            neighbors.append((spk.split("/")[0], SPEAKER_AS))
            conf = Bgp(asn=SPEAKER_AS, port="up", peers=(BgpPeer(netaddr.IPAddress(rtr), ROUTER_AS),))
            self.files[s] = bgp.speaker_files(conf, netaddr.IPNetwork(spk), "dpu-" + s)
        self.router.start(bgp.router_files(ROUTER_AS, link(0)[0], neighbors))
        for s in SPEAKERS:
            self.speakers[s].start(self.files[s])

    def down(self):
        for f in [self.router] + list(self.speakers.values()):
            f.stop()
        while self.created:
            N.delete_ns(self.created.pop())

    def nexthops(self):
        """The router's kernel nexthops of the VIP (gateway addresses)."""
        out = subprocess.run(["ip", "-n", self.router_ns, "-j", "route", "show", VIP.split("/")[0]],
                             stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
        routes = json.loads(out or "[]")
        if not routes:
            return set()
        r = routes[0]
        return {h["gateway"] for h in r.get("nexthops", [r])}


def wait_for(what, fn, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.01)


@pytest.fixture(scope="module")
def bed(lab_prefix):
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces, FRR daemons)")
    # CI installs FRR (scripts/install-deps.sh): its absence is a failure, not a skip
    assert os.path.exists(os.path.join(FRR_BIN, "bgpd")), "FRR is not installed (apt install frr)"
    root = tempfile.mkdtemp(prefix="xf-frr-")
    os.chmod(root, 0o755)   # the daemons read their files as user frr
    b = Bed(lab_prefix, root)
    try:
        b.up()
        yield b
    finally:
        b.down()
        shutil.rmtree(root, ignore_errors=True)


def established(frr, peer):
    p = frr.peers().get(peer)
    return p is not None and p["bgp"] == "Established" and p["bfd"] == "up"


def test_files_are_frrs_to_read_and_nobody_elses(bed):
    st = os.stat(bed.speakers["a"].conf_dir)
    assert stat.S_IMODE(st.st_mode) == 0o750
    for name in bed.files["a"]:
        st = os.stat(os.path.join(bed.speakers["a"].conf_dir, name))
        assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == 0
    assert bed.router.running() and all(f.running() for f in bed.speakers.values())


def test_both_announce_then_one_withdraws(bed):
    a, b = bed.speakers["a"], bed.speakers["b"]
    for s in SPEAKERS:
        wait_for("session of " + s, lambda: established(bed.speakers[s], link(SPEAKERS.index(s))[0]))
        wait_for("router's session to " + s, lambda: established(bed.router, bed.address(s)))
    t = time.monotonic()
    a.announce(SPEAKER_AS, VIP)
    wait_for("a's route", lambda: bed.nexthops() == {bed.address("a")})
    print("announce -> router's kernel route: %.3f s" % (time.monotonic() - t))
    b.announce(SPEAKER_AS, VIP)
    a.announce(SPEAKER_AS, VIP)   # again: no error, no change
    wait_for("ECMP", lambda: bed.nexthops() == {bed.address("a"), bed.address("b")})
    assert a.networks(SPEAKER_AS) == {VIP}
    assert a.peers()[link(0)[0]]["prefixes_sent"] == 1

    a.withdraw(SPEAKER_AS, VIP)
    a.withdraw(SPEAKER_AS, VIP)   # again: nothing to do
    wait_for("b alone", lambda: bed.nexthops() == {bed.address("b")})
    assert a.networks(SPEAKER_AS) == set()
    a.announce(SPEAKER_AS, VIP)
    wait_for("ECMP again", lambda: len(bed.nexthops()) == 2)


def test_med_makes_a_speaker_less_preferred(bed):
    a = bed.speakers["a"]
    a.set_med(SPEAKER_AS, 100)
    wait_for("b preferred", lambda: bed.nexthops() == {bed.address("b")})
    a.set_med(SPEAKER_AS, None)
    wait_for("ECMP again", lambda: len(bed.nexthops()) == 2)


def test_vtysh_refusals_raise(bed):
    from xenoflow_ovs.fleet.frr import FrrError

    with pytest.raises(FrrError, match="Unknown command"):
        bed.speakers["a"].vtysh("show no-such-thing")
    with pytest.raises(FrrError):
        bed.speakers["a"].configure(bgp.network_commands(65099, VIP, True))   # not our AS


def test_bgpd_restart_forgets_the_announcements_but_comes_back(bed):
    a = bed.speakers["a"]
    before = a.pids()
    os.kill(before["bgpd"], signal.SIGTERM)
    wait_for("bgpd gone", lambda: a.pids()["bgpd"] is None)
    assert not a.running()
    after = a.start(bed.files["a"])   # starts what is missing only
    assert after["zebra"] == before["zebra"] and after["bfdd"] == before["bfdd"]
    assert after["bgpd"] != before["bgpd"]
    # bgpd read its file again: the run-time `network` is gone, the controller re-announces
    assert a.networks(SPEAKER_AS) == set()
    wait_for("session back", lambda: established(a, link(0)[0]))
    wait_for("b alone", lambda: bed.nexthops() == {bed.address("b")})
    a.announce(SPEAKER_AS, VIP)
    wait_for("ECMP again", lambda: len(bed.nexthops()) == 2)


def test_silent_speaker_is_taken_out_by_bfd_and_a_stopped_one_at_once(bed):
    a, b = bed.speakers["a"], bed.speakers["b"]
    pids = a.pids()
    frozen = [pids["bfdd"], pids["bgpd"]]
    t = time.monotonic()
    try:
        for pid in frozen:   # no BFD, no keepalives, no TCP close: only BFD can tell
            os.kill(pid, signal.SIGSTOP)
        wait_for("a out", lambda: bed.nexthops() == {bed.address("b")}, timeout=10)
        print("silent speaker -> nexthop gone: %.3f s" % (time.monotonic() - t))
        assert bed.router.peers()[bed.address("a")]["bfd"] == "down"
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    wait_for("a back", lambda: len(bed.nexthops()) == 2)

    t = time.monotonic()
    assert b.stop() == ["bgpd", "bfdd", "zebra"]
    wait_for("b out", lambda: bed.nexthops() == {bed.address("a")}, timeout=10)
    print("stopped speaker -> nexthop gone: %.3f s" % (time.monotonic() - t))
    assert b.pids() == {"zebra": None, "bfdd": None, "bgpd": None} and not b.running()
    assert not os.path.exists(b.run_dir)
    assert b.stop() == []

"""End to end (root): softdoca forwards real frames between af_packet vdevs on veths.

    client ns            dpu ns (eSwitch child)                 tor ns (bridge)    backends
    c0 .10/.11  <-> dpu-p0 [root: VIP udp/53 -> dns pipe]
                         dns pipe: src bit0 -> MAC b0|b1 -> p1
                    dpu-p1 ------------------------------> t-p1 -- br -- t-b0 <-> e0 (b0, VIP on lo)
                    rep-p0 <-> p0 (capture: misses)                       t-b1 <-> e1 (b1, VIP on lo)
                    rep-p1 <-> p1

DNS queries from 198.18.0.10 (even) must reach backend b0, from .11 (odd) b1; entry counters
must equal what each backend received; a UDP port no entry claims and ARP are misses,
delivered out rep-p0.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, "glue_child.py")
NETPROBE = os.path.join(HERE, "netprobe.py")

pytestmark = [pytest.mark.root, pytest.mark.slow]

VIP = "198.18.0.53"
VIP_MAC = "02:00:c6:12:00:35"
CLIENT_MAC = "02:00:c6:12:00:10"
BACKENDS = [("b0", "e0", "t-b0", "02:00:c6:12:00:02", "198.18.0.2"),
            ("b1", "e1", "t-b1", "02:00:c6:12:00:03", "198.18.0.3")]
N_EVEN, N_ODD, N_OTHER, N_ARP = 40, 30, 10, 5


def _start(argv, env=None):
    return subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _readline(proc, timeout=30.0):
    import select

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stdout], [], [], 0.5)
        if r:
            line = proc.stdout.readline()
            if not line:
                break
            return line.strip()
        if proc.poll() is not None:
            break
    err = proc.stderr.read() if proc.poll() is not None else ""
    raise AssertionError("no output from %s (rc=%s): %s" % (proc.args[-2:], proc.poll(), err))


def _stop(proc):
    """Close stdin (the helpers exit on EOF), then kill by PID if it lingers."""
    if proc.poll() is None:
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _wire(netns):
    """The namespaces and veths of the module docstring; returns (c, d, t, {backend: ns})."""
    from xenoflow_ovs.lab import netns as nl

    c, d, t = netns("c"), netns("d"), netns("t")
    bns = {name: netns(name) for name, *_ in BACKENDS}

    # wire p0: client <-> dpu; wire p1: dpu <-> tor bridge; representors stay in dpu
    nl.add_veth("dpu-p0", "c0", ns=d, peer_ns=c)
    nl.add_veth("dpu-p1", "t-p1", ns=d, peer_ns=t)
    nl.add_veth("rep-p0", "p0", ns=d, peer_ns=d)
    nl.add_veth("rep-p1", "p1", ns=d, peer_ns=d)
    for ifn in ("dpu-p0", "dpu-p1", "rep-p0", "rep-p1", "p0", "p1"):
        nl.prepare_link(ifn, ns=d)
    nl.prepare_link("c0", ns=c, mac=CLIENT_MAC, cidr="198.18.0.10/24")
    nl.add_address("c0", "198.18.0.11/24", ns=c)
    nl.run_in_ns(c, ["ip", "neigh", "replace", VIP, "lladdr", VIP_MAC, "dev", "c0", "nud", "permanent"])
    nl.run_in_ns(t, ["ip", "link", "add", "br0", "type", "bridge", "stp_state", "0"])
    nl.prepare_link("br0", ns=t, tx_off=False)
    nl.prepare_link("t-p1", ns=t)
    nl.run_in_ns(t, ["ip", "link", "set", "t-p1", "master", "br0"])
    for name, ifn, tif, mac, ip in BACKENDS:
        nl.add_veth(tif, ifn, ns=t, peer_ns=bns[name])
        nl.prepare_link(tif, ns=t)
        nl.run_in_ns(t, ["ip", "link", "set", tif, "master", "br0"])
        nl.prepare_link(ifn, ns=bns[name], mac=mac, cidr=ip + "/24")
        nl.add_lo_address(bns[name], VIP + "/32")
        nl.set_arp_dsr(bns[name])
    return c, d, t, bns


def _run(netns, glue, serve: dict, spec: dict, done):
    """Wire the namespaces, start the backends' sinks, the p0 representor's capture and the
    eSwitch child (glue_child.py serve with `serve` added to its kwargs), send `spec` from
    the client, poll the switch's stats until done(stats) (at most 10 s), then collect.
    Returns (received per backend, captured on rep p0, last stats, the sender's result)."""
    from xenoflow_ovs.lab import netns as nl

    c, d, t, bns = _wire(netns)
    env = glue.env()
    procs = []
    try:
        sinks = {}
        for name, *_ in BACKENDS:
            p = _start(nl.ns_argv(bns[name], [sys.executable, NETPROBE, "sink", VIP, "53"]), env)
            procs.append(p)
            assert _readline(p) == "READY"
            sinks[name] = p
        cap = _start(nl.ns_argv(d, [sys.executable, NETPROBE, "capture", "p0"]), env)
        procs.append(cap)
        assert _readline(cap) == "READY"

        kwargs = dict(vip=VIP, macs=[BACKENDS[0][3], BACKENDS[1][3]], **serve)
        sw = _start(nl.ns_argv(d, [sys.executable, CHILD, "serve", json.dumps(kwargs)]), env)
        procs.append(sw)
        assert _readline(sw, timeout=60) == "READY"

        out = nl.run_in_ns(c, [sys.executable, NETPROBE, "send", json.dumps(spec)], env=env, timeout=60)
        sent = json.loads(out.stdout.strip().splitlines()[-1])

        deadline = time.monotonic() + 10
        while True:
            sw.stdin.write("stats\n")
            sw.stdin.flush()
            stats = json.loads(_readline(sw))
            if done(stats) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        time.sleep(0.3)  # let the last frames cross the bridge
        received = {}
        for name, p in sinks.items():
            p.stdin.close()
            received[name] = json.loads(_readline(p))
        cap.stdin.close()
        captured = json.loads(_readline(cap))
        sw.stdin.write("quit\n")
        sw.stdin.flush()
        assert _readline(sw) == "CLOSED"
        assert sw.wait(timeout=20) == 0
    finally:
        for p in procs:
            _stop(p)
    return received, captured, stats, sent


def _ports(driver="af_packet"):
    return [dict(name="p0", id=0, iface="dpu-p0", rep_iface="rep-p0", driver=driver),
            dict(name="p1", id=1, iface="dpu-p1", rep_iface="rep-p1", driver=driver)]


@pytest.mark.parametrize("driver", ["af_packet", "af_xdp"])
def test_dns_by_source_parity_and_misses(netns, glue, glue_pkg_parent, driver):
    spec = {"udp": [["198.18.0.10", VIP, 53, N_EVEN], ["198.18.0.11", VIP, 53, N_ODD],
                    ["198.18.0.10", VIP, 5454, N_OTHER]],
            "arp_iface": "c0", "arp_src": "198.18.0.10", "arp_count": N_ARP}
    # wait until the forwarder has seen everything (bounded)
    received, captured, stats, sent = _run(
        netns, glue, dict(prefix=glue.file_prefix("e2e"), ports=_ports(driver)), spec,
        lambda st: st["p0"]["rx_pkts"] >= N_EVEN + N_ODD + N_OTHER + N_ARP)
    assert sent["arp"] == N_ARP

    # forwarding by source parity, checksums intact (the kernel sockets accepted them)
    assert received["b0"] == {"198.18.0.10": N_EVEN}
    assert received["b1"] == {"198.18.0.11": N_ODD}
    root_c, b0_c, b1_c = stats["entries"]
    assert root_c[0] == N_EVEN + N_ODD
    assert b0_c[0] == received["b0"]["198.18.0.10"]
    assert b1_c[0] == received["b1"]["198.18.0.11"]
    # unmatched traffic: counted as miss on p0 and delivered out its representor
    assert captured["udp_mark"] == N_OTHER and captured["arp_mark"] == N_ARP
    p0 = stats["p0"]
    assert p0["miss_pkts"] >= N_OTHER + N_ARP
    assert p0["rep_tx_pkts"] == p0["miss_pkts"]
    assert stats["p1"]["tx_pkts"] == N_EVEN + N_ODD
    assert stats["fwd"]["pkts"] >= N_EVEN + N_ODD + N_OTHER + N_ARP


def test_bench_bypass_is_a_mac_rewriting_loop(netns, glue, glue_pkg_parent):
    """The benchmarks' "dpdk-loop" baseline: with the pipeline bypassed every frame from p0
    leaves p1 with the one given destination MAC, whatever its source or port, and nothing
    goes to the representor."""
    spec = {"udp": [["198.18.0.10", VIP, 53, N_EVEN], ["198.18.0.11", VIP, 53, N_ODD]]}
    received, captured, stats, _ = _run(
        netns, glue, dict(prefix=glue.file_prefix("bypass"), ports=_ports(),
                          bypass_mac=BACKENDS[1][3]), spec,
        lambda st: st["p1"]["tx_pkts"] >= N_EVEN + N_ODD)

    # the installed entries would have split by parity: bypassed, all go to the one MAC
    assert received["b0"] == {}
    assert received["b1"] == {"198.18.0.10": N_EVEN, "198.18.0.11": N_ODD}
    assert stats["entries"][0][0] == 0          # the root entry saw nothing
    assert captured["udp_mark"] == 0 and stats["p0"]["miss_pkts"] == 0

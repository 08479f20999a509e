"""Child-process side of the dpdk_glue tests.

The DPDK EAL initialises once per process, so every eSwitch runs in its own child:
``python glue_child.py <scenario> '<json kwargs>'``.  A scenario returns JSON-able data,
printed on the last line as ``RESULT <json>``; the tests assert on it.  The ``serve``
scenario is interactive (stdin commands) for the end-to-end test.
"""
from __future__ import annotations

import ipaddress
import json
import struct
import sys
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence

from dpdk_glue import ESwitch, GlueError, GlueMatch, PortSpec, default_eal_args, softdoca_ctl
from dpdk_glue.binding import COLOR_GREEN, COLOR_RED
from xenoflow_ovs.lab import frames as fr

VIP = "198.18.0.53"
MAC_A = "02:00:c6:12:00:02"
MAC_B = "02:00:c6:12:00:03"
SRC_MAC = "02:c6:12:00:00:10"
VIP_MAC = "02:c6:12:00:00:35"


# --- frames (from SRC_MAC to VIP_MAC) ---------------------------------------------------

def eth_ipv4(ip_packet: bytes) -> bytes:
    return fr.ethernet(VIP_MAC, SRC_MAC, fr.ETH_P_IP, ip_packet)


def udp_frame(src: str, dst: str, sport: int, dport: int, data: bytes = b"q" * 18) -> bytes:
    return fr.udp_frame(VIP_MAC, SRC_MAC, src, dst, sport, dport, data)


def tcp_frame(src: str, dst: str, sport: int, dport: int) -> bytes:
    return fr.tcp_frame(VIP_MAC, SRC_MAC, src, dst, sport, dport)


def arp_frame(target: str) -> bytes:
    return fr.arp_frame(SRC_MAC, "198.18.0.10", target)


# --- IPv6 frames (built here byte by byte: the extension headers and the broken ones too) --

VIP6 = "2001:db8:53::53"
MAC4_A = "02:00:c6:12:04:02"
MAC4_B = "02:00:c6:12:04:03"


def ipv6(src: str, dst: str, nh: int, payload: bytes, plen: Optional[int] = None, version: int = 6) -> bytes:
    """A 40-byte IPv6 header + payload; ``plen`` overrides the payload length field."""
    head = struct.pack("!IHBB", version << 28, len(payload) if plen is None else plen, nh, 64)
    return head + ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed + payload


def eth6(ip_packet: bytes) -> bytes:
    return fr.ethernet(VIP_MAC, SRC_MAC, fr.ETH_P_IPV6, ip_packet)


def udp6_frame(src: str, dst: str, sport: int, dport: int, data: bytes = b"q" * 18) -> bytes:
    return eth6(ipv6(src, dst, 17, fr.udp(sport, dport, data)))


def tcp6_frame(src: str, dst: str, sport: int, dport: int) -> bytes:
    return eth6(ipv6(src, dst, 6, fr.tcp_syn(sport, dport)))


def opt_hdr(nh: int, units: int = 0) -> bytes:
    """Hop-by-hop / destination options / routing: (units + 1) * 8 bytes."""
    return bytes([nh, units]) + b"\0" * (6 + 8 * units)


def ah_hdr(nh: int) -> bytes:
    """An AH header of 16 bytes (payload length field 2: (2 + 2) * 4)."""
    return bytes([nh, 2]) + b"\0" * 14


def frag_hdr(nh: int, offset: int, more: bool) -> bytes:
    return struct.pack("!BBHI", nh, 0, (offset << 3) | int(more), 0x1234)


# --- helpers ----------------------------------------------------------------------------

def none_ports(n: int, mode: str = "vnf", esw: Optional[int] = None,
               reps: Sequence[str] = ()) -> List[PortSpec]:
    """n ports without packet I/O.  vnf: p0 and p1 paired both ways (p0 forwards to p1), the
    way the config pairs a service's ingress and egress.  switch: the device ports in
    e-switch ``esw`` (None: each its own); ``reps`` are representors of p0 (DOCA 3.1+)."""
    out = []
    for i in range(n):
        name = "p%d" % i
        pair = None
        if mode == "vnf" and n >= 2 and i < 2:
            pair = "p%d" % (1 - i)
        out.append(PortSpec(name=name, id=i, driver="none", pair=pair,
                            of="p0" if name in reps else None,
                            esw=None if name in reps else esw))
    return out


def err(fn: Callable[[], Any]) -> Optional[Dict[str, Any]]:
    """Run fn; describe the exception it raised (None if it raised nothing)."""
    try:
        fn()
    except GlueError as e:
        return {"type": "GlueError", "doca_error": e.doca_error, "call": e.call,
                "failures": [list(f) for f in e.failures], "msg": str(e)}
    except Exception as e:  # the tests check the type
        return {"type": type(e).__name__, "msg": str(e)}
    return None


def classify(sw: ESwitch, port: str, frame: bytes) -> List[str]:
    res, out = softdoca_ctl.classify(sw, port, frame)
    return [res, out[:6].hex()]


def dns_setup(sw: ESwitch, nr_entries: int = 2, root_entries: int = 16):
    root = sw.create_root_pipe("p0", nr_entries=root_entries)
    svc = sw.create_basic_pipe("p0", name="dns", mask=GlueMatch(ipv4_src=1), fwd_port="p1",
                               nr_entries=nr_entries)
    vip_udp53 = GlueMatch(eth_type=0x0800, ipv4_dst=VIP, ip_proto=17, l4_dst=53)
    es = sw.add_entries([
        root.entry(match=vip_udp53, mask=vip_udp53.full_mask(), priority=10, fwd_pipe=svc),
        svc.entry(match=GlueMatch(ipv4_src=0), dst_mac=MAC_A),
        svc.entry(match=GlueMatch(ipv4_src=1), dst_mac=MAC_B),
    ])
    return root, svc, es


# --- scenarios ----------------------------------------------------------------------------

def sc_semantics(prefix: str, mode: str = "vnf") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    with ESwitch(default_eal_args(prefix), none_ports(3, mode=mode, esw=0), mode=mode) as sw:
        out["target"] = sw.target
        root, svc, es = dns_setup(sw)
        net = GlueMatch(eth_type=0x0800, ipv4_dst="198.18.0.0")
        net_mask = GlueMatch(eth_type=0xFFFF, ipv4_dst="255.255.255.0")
        tcp_vip = GlueMatch(eth_type=0x0800, ipv4_dst=VIP, ip_proto=6)
        extra = sw.add_entries([
            root.entry(match=net, mask=net_mask, priority=20, fwd_port="p1"),   # a mirrored route
            root.entry(match=tcp_vip, priority=5, drop=True),                    # TCP to the VIP: drop
        ])
        frames = {
            "even": udp_frame("198.18.0.10", VIP, 40000, 53),
            "odd": udp_frame("198.18.0.11", VIP, 40000, 53),
            "odd_hi": udp_frame("198.18.7.201", VIP, 1, 53),
            "vip_udp54": udp_frame("198.18.0.10", VIP, 40000, 54),
            "tcp53": tcp_frame("198.18.0.10", VIP, 40000, 53),
            "other_net": udp_frame("198.18.0.10", "198.18.1.5", 40000, 53),
            "arp": arp_frame(VIP),
            "trunc_ip": fr.truncated(udp_frame("198.18.0.10", VIP, 40000, 53), 30),
            "bad_ihl": eth_ipv4(fr.malformed_ipv4("198.18.0.10", VIP, 17, b"\0" * 8, ihl=4)),
            "trunc_eth": b"\x01\x02\x03",
            "udp_no_ports": eth_ipv4(fr.ipv4("198.18.0.10", VIP, 17, b"")),
            "fragment": eth_ipv4(fr.ipv4("198.18.0.10", VIP, 17, b"\0" * 16, frag=100)),
        }
        out["res"] = {k: classify(sw, "p0", f) for k, f in frames.items()}
        out["p1_ingress"] = classify(sw, "p1", frames["even"])  # p1 has no root pipe
        # priority: a higher-priority (lower value) catch-all for the VIP wins over the service
        hi = sw.add_entries([root.entry(match=GlueMatch(eth_type=0x0800, ipv4_dst=VIP), priority=1,
                                        fwd_port="p1")])
        out["with_hi"] = classify(sw, "p0", frames["even"])
        sw.remove_entries(hi)
        out["after_hi_removed"] = classify(sw, "p0", frames["even"])
        out["stats"] = sw.port_stats("p0")
        out["counters"] = sw.query_entries(es + extra)
    return out


def sc_rejects(prefix: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    with ESwitch(default_eal_args(prefix), none_ports(3)) as sw:
        root = sw.create_root_pipe("p0")
        svc = sw.create_basic_pipe("p0", name="svc", mask=GlueMatch(ipv4_src=3), fwd_port="p1", nr_entries=4)
        small = sw.create_basic_pipe("p0", name="small", mask=GlueMatch(ipv4_src=1), fwd_port="p1",
                                     nr_entries=1)
        out["outside_mask"] = err(lambda: sw.add_entries([svc.entry(GlueMatch(ipv4_src=4), MAC_A)]))
        out["outside_entry_mask"] = err(lambda: sw.add_entries([
            root.entry(GlueMatch(ipv4_dst="198.18.0.53"), mask=GlueMatch(ipv4_dst="255.255.255.0"),
                       fwd_port="p1")]))
        first = sw.add_entries([svc.entry(GlueMatch(ipv4_src=0), MAC_A)])
        out["duplicate"] = err(lambda: sw.add_entries([svc.entry(GlueMatch(ipv4_src=0), MAC_B)]))
        out["dup_in_batch"] = err(lambda: sw.add_entries([svc.entry(GlueMatch(ipv4_src=1), MAC_A),
                                                          svc.entry(GlueMatch(ipv4_src=1), MAC_B)]))
        sw.add_entries([small.entry(GlueMatch(ipv4_src=0), MAC_A)])
        out["over_capacity"] = err(lambda: sw.add_entries([small.entry(GlueMatch(ipv4_src=1), MAC_A)]))
        # all-or-nothing: the good ones of a failed batch are taken back
        out["mixed_batch"] = err(lambda: sw.add_entries([svc.entry(GlueMatch(ipv4_src=1), MAC_A),
                                                         svc.entry(GlueMatch(ipv4_src=8), MAC_A),
                                                         svc.entry(GlueMatch(ipv4_src=2), MAC_A)]))
        out["after_rollback"] = err(lambda: sw.add_entries([svc.entry(GlueMatch(ipv4_src=1), MAC_A),
                                                            svc.entry(GlueMatch(ipv4_src=2), MAC_A)]))
        out["bad_mac"] = err(lambda: svc.entry(GlueMatch(ipv4_src=3), "02:00:00:00:00"))
        out["bad_mac2"] = err(lambda: svc.entry(GlueMatch(ipv4_src=3), "zz:00:00:00:00:00"))
        out["too_wide_port"] = err(lambda: GlueMatch(l4_dst=70000))
        out["too_wide_ip"] = err(lambda: GlueMatch(ipv4_src=1 << 32))
        out["bad_ip"] = err(lambda: GlueMatch(ipv4_src="198.18.0.300"))
        out["unknown_port"] = err(lambda: root.entry(GlueMatch(eth_type=0x800), fwd_port="p9"))
        out["two_fwds"] = err(lambda: root.entry(GlueMatch(eth_type=0x800), fwd_port="p1", drop=True))
        # vnf: p0 is paired with p1 only; a forward to p2 is what DOCA refuses without a pair
        to_p2 = root.entry(GlueMatch(eth_type=0x800), fwd_port="p2")
        out["unpaired_fwd"] = err(lambda: sw.add_entries([to_p2]))
        out["update_basic_ok"] = err(lambda: sw.update_entries([(first[0], MAC_B)]))  # basic: fine
        rootent = sw.add_entries([root.entry(GlueMatch(eth_type=0x800), fwd_pipe=svc)])
        out["update_control"] = err(lambda: sw.update_entries([(rootent[0], MAC_B)]))
        out["destroy_in_use"] = err(lambda: sw.destroy_pipe(svc))
        sw.remove_entries(rootent)
        out["query_removed"] = err(lambda: sw.query_entries(rootent))
        out["remove_twice"] = err(lambda: sw.remove_entries(rootent))
        sw.destroy_pipe(svc)
        out["add_to_destroyed"] = err(lambda: sw.add_entries([svc.entry(GlueMatch(ipv4_src=0), MAC_A)]))
        out["entry_of_destroyed"] = err(lambda: sw.query_entries(first))
        out["fwd_to_destroyed"] = err(lambda: root.entry(GlueMatch(eth_type=0x800), fwd_pipe=svc))
        out["second_root"] = err(lambda: sw.create_root_pipe("p0"))
        held = small
    out["after_close_add"] = err(lambda: sw.add_entries([held.entry(GlueMatch(ipv4_src=0), MAC_A)]))
    out["after_close_create"] = err(lambda: sw.create_root_pipe("p1"))
    out["second_open"] = err(lambda: ESwitch(default_eal_args(prefix + "b"), none_ports(1)).open())
    return out


def sc_counters(prefix: str) -> Dict[str, Any]:
    with ESwitch(default_eal_args(prefix), none_ports(2)) as sw:
        root, svc, es = dns_setup(sw)
        sent = {"even": [0, 0], "odd": [0, 0]}
        for i in range(7):
            f = udp_frame("198.18.0.%d" % (2 * i + 10), VIP, 1000 + i, 53, b"x" * (10 + i))
            assert softdoca_ctl.classify(sw, "p0", f)[0] == "p1"
            sent["even"][0] += 1
            sent["even"][1] += len(f)
        for i in range(5):
            f = udp_frame("198.18.0.%d" % (2 * i + 11), VIP, 2000 + i, 53, b"y" * (40 + 3 * i))
            assert softdoca_ctl.classify(sw, "p0", f)[0] == "p1"
            sent["odd"][0] += 1
            sent["odd"][1] += len(f)
        return {"sent": sent, "counters": sw.query_entries(es), "stats": sw.port_stats("p0")}


def sc_update_remove(prefix: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    with ESwitch(default_eal_args(prefix), none_ports(2)) as sw:
        root, svc, es = dns_setup(sw)
        even = udp_frame("198.18.0.10", VIP, 1, 53)
        odd = udp_frame("198.18.0.11", VIP, 1, 53)
        out["before"] = [classify(sw, "p0", even), classify(sw, "p0", odd)]
        sw.update_entries([(es[1], MAC_B), (es[2], MAC_A)])  # swap backends, in place
        out["after_update"] = [classify(sw, "p0", even), classify(sw, "p0", odd)]
        out["counters_after_update"] = sw.query_entries(es)  # kept across the update
        sw.remove_entries([es[2]])
        out["after_remove"] = [classify(sw, "p0", even), classify(sw, "p0", odd)]
        out["removed_alive"] = es[2].alive
        new = sw.add_entries([svc.entry(GlueMatch(ipv4_src=1), "02:00:c6:12:00:09")])
        out["after_readd"] = [classify(sw, "p0", even), classify(sw, "p0", odd)]
        out["readd_counter"] = sw.query_entries(new)
        out["stats"] = sw.port_stats("p0")
        # churn: remove and re-add the same bucket many times (table tombstones, reuse)
        for i in range(300):
            sw.remove_entries(new)
            new = sw.add_entries([svc.entry(GlueMatch(ipv4_src=1), MAC_B)])
        out["after_churn"] = classify(sw, "p0", odd)
    return out


def sc_close_with_entries(prefix: str) -> Dict[str, Any]:
    sw = ESwitch(default_eal_args(prefix), none_ports(2)).open()
    root, svc, es = dns_setup(sw, root_entries=256)
    many = sw.add_entries([root.entry(GlueMatch(eth_type=0x800, ip_proto=6, l4_dst=p), priority=30,
                                      fwd_port="p1") for p in range(1, 200)])
    sw.close()
    sw.close()  # idempotent
    return {"alive": [e.alive for e in es + many[:3]], "pipe_alive": [root.alive, svc.alive],
            "use_after": err(lambda: sw.query_entries(es)),
            "reopen": err(lambda: sw.open())}


def sc_fault(prefix: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    with ESwitch(default_eal_args(prefix), none_ports(2)) as sw:
        sw.create_root_pipe("p0")  # no root entries: the frame below must miss
        svc = sw.create_basic_pipe("p0", name="svc", mask=GlueMatch(ipv4_src=0xff), fwd_port="p1",
                                   nr_entries=256)
        batch = [svc.entry(GlueMatch(ipv4_src=i), MAC_A) for i in range(3)]
        softdoca_ctl.fault_inject(sw, 2)
        out["at_add"] = err(lambda: sw.add_entries(batch))
        softdoca_ctl.fault_inject(sw, 3, at_process=True)
        out["at_process"] = err(lambda: sw.add_entries(batch))
        out["retry"] = err(lambda: sw.add_entries(batch))  # nothing left over: no duplicates
        softdoca_ctl.fault_inject(sw, 5)
        softdoca_ctl.fault_inject(sw, 0)  # disarm
        out["disarmed"] = err(lambda: sw.add_entries([svc.entry(GlueMatch(ipv4_src=i), MAC_A)
                                                      for i in range(3, 10)]))
        out["frame"] = classify(sw, "p0", udp_frame("198.18.0.1", VIP, 1, 53))  # no root entry: miss
    return out


def sc_switch(prefix: str) -> Dict[str, Any]:
    """Switch mode: p0..p2 share one e-switch (a multiport e-switch: p0, started first, is its
    manager), p3 has its own."""
    out: Dict[str, Any] = {}
    ports = none_ports(3, mode="switch", esw=0) + [PortSpec(name="p3", id=3, driver="none")]
    with ESwitch(default_eal_args(prefix), ports, mode="switch") as sw:
        r0 = sw.create_root_pipe("p0")
        r1 = sw.create_root_pipe("p1")
        svc = sw.create_basic_pipe("p0", name="dns", mask=GlueMatch(ipv4_src=1), fwd_port="p1", nr_entries=2)
        m = GlueMatch(eth_type=0x0800, ipv4_dst=VIP, ip_proto=17, l4_dst=53)
        sw.add_entries([r0.entry(m, priority=10, fwd_pipe=svc),
                        svc.entry(GlueMatch(ipv4_src=0), MAC_A), svc.entry(GlueMatch(ipv4_src=1), MAC_B),
                        r1.entry(m, priority=10, fwd_port="p2")])
        f = udp_frame("198.18.0.10", VIP, 1, 53)
        out["p0"] = classify(sw, "p0", f)
        out["p1"] = classify(sw, "p1", f)
        out["p2"] = classify(sw, "p2", f)  # no root view on p2: default miss
        # p3 is another e-switch: no forward reaches it from p0's, its own root works
        to_p3 = r0.entry(GlueMatch(eth_type=0x806), fwd_port="p3")
        out["cross_eswitch"] = err(lambda: sw.add_entries([to_p3]))
        r3 = sw.create_root_pipe("p3")
        sw.add_entries([r3.entry(m, priority=10, drop=True)])
        out["p3"] = classify(sw, "p3", f)
        sw.destroy_pipe(r1)
        out["p1_after"] = classify(sw, "p1", f)
        out["p0_after"] = classify(sw, "p0", f)
    return out


def sc_reps(prefix: str) -> Dict[str, Any]:
    """Switch mode with representors (DOCA 3.1+): p1 and p2 are representors of p0's
    e-switch, started with doca_flow_port_cfg_set_dev_rep."""
    out: Dict[str, Any] = {}
    ports = none_ports(3, mode="switch", reps=("p1", "p2"))
    with ESwitch(default_eal_args(prefix), ports, mode="switch") as sw:
        r0 = sw.create_root_pipe("p0")
        r2 = sw.create_root_pipe("p2")
        svc = sw.create_basic_pipe("p0", name="dns", mask=GlueMatch(ipv4_src=1), fwd_port="p1", nr_entries=2)
        m = GlueMatch(eth_type=0x0800, ipv4_dst=VIP, ip_proto=17, l4_dst=53)
        sw.add_entries([r0.entry(m, priority=10, fwd_pipe=svc),
                        svc.entry(GlueMatch(ipv4_src=0), MAC_A), svc.entry(GlueMatch(ipv4_src=1), MAC_B),
                        r2.entry(GlueMatch(eth_type=0x0800), priority=10, fwd_port="p0")])
        out["p0_even"] = classify(sw, "p0", udp_frame("198.18.0.10", VIP, 1, 53))
        out["p0_odd"] = classify(sw, "p0", udp_frame("198.18.0.11", VIP, 1, 53))
        out["p2"] = classify(sw, "p2", udp_frame("198.18.0.5", "198.18.0.9", 1, 53))
        out["p1"] = classify(sw, "p1", udp_frame("198.18.0.10", VIP, 1, 53))
        out["target"] = sw.target
    return out


def sc_reps_refused(prefix: str) -> Dict[str, Any]:
    """Before DOCA 3.1 there is no set_dev_rep: the glue refuses representor ports."""
    ports = none_ports(2, mode="switch", reps=("p1",))
    return {"open": err(lambda: ESwitch(default_eal_args(prefix), ports, mode="switch").open())}


def sc_info(prefix: str) -> Dict[str, Any]:
    from dpdk_glue import glue_info
    return dict(glue_info())


def sc_serve(prefix: str, ports: List[Dict[str, Any]], vip: str, macs: List[str], busy_poll: bool = False,
             bypass_mac: Optional[str] = None) -> None:
    """Interactive: install the DNS service (with ``bypass_mac``, then bypass it: the
    benchmarks' plain loop), print READY, then answer stdin commands ('stats' -> one JSON
    line, 'quit' -> close and exit)."""
    specs = [PortSpec(**p) for p in ports]
    for sp, other in ((specs[0], "p1"), (specs[1], "p0")):  # vnf: p0 forwards to p1
        if sp.pair is None and sp.name in ("p0", "p1"):
            sp.pair = other
    with ESwitch(default_eal_args(prefix), specs) as sw:
        if busy_poll:
            softdoca_ctl.set_busy_poll(sw, True)
        root = sw.create_root_pipe("p0")
        svc = sw.create_basic_pipe("p0", name="dns", mask=GlueMatch(ipv4_src=1), fwd_port="p1", nr_entries=2)
        m = GlueMatch(eth_type=0x0800, ipv4_dst=vip, ip_proto=17, l4_dst=53)
        es = sw.add_entries([root.entry(m, priority=10, fwd_pipe=svc),
                             svc.entry(GlueMatch(ipv4_src=0), macs[0]),
                             svc.entry(GlueMatch(ipv4_src=1), macs[1])])
        if bypass_mac:
            softdoca_ctl.bench_bypass(sw, True, bypass_mac)
        print("READY", flush=True)
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "stats":
                print(json.dumps({"entries": sw.query_entries(es), "p0": sw.port_stats("p0"),
                                  "p1": sw.port_stats("p1"), "fwd": softdoca_ctl.forwarder_stats(sw)}),
                      flush=True)
            elif cmd == "quit":
                break
    print("CLOSED", flush=True)


def sc_idle_backoff(prefix: str, ceiling_us: int, sleep_us: int = 20) -> Dict[str, Any]:
    """af_packet ports on the veths tests/glue/test_idle_backoff.py made (dpu-pN <-> xN, rep-pN
    <-> rN): the forwarder's idle sleep grows to the ceiling with no traffic, a frame sent on
    x0 brings it back to sleep_us, and a ceiling lowered to sleep_us stops the growth.  Waits
    on the forwarder's counters (events), never on a clock; the deadlines only stop a hang."""
    import socket
    import time

    out: Dict[str, Any] = {}
    ports = [PortSpec("p0", 0, iface="dpu-p0", rep_iface="rep-p0", pair="p1"),
             PortSpec("p1", 1, iface="dpu-p1", rep_iface="rep-p1", pair="p0")]

    def wait(cond: Callable[[Dict[str, int]], bool], what: str) -> Dict[str, int]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = softdoca_ctl.forwarder_stats(sw)
            if cond(st):
                return st
            time.sleep(0.005)
        raise AssertionError("forwarder never got %s: %s" % (what, softdoca_ctl.forwarder_stats(sw)))

    with ESwitch(default_eal_args(prefix), ports) as sw:
        out["bad_ceiling"] = err(lambda: softdoca_ctl.set_busy_poll(sw, False, idle_max_us=2_000_000))
        softdoca_ctl.set_busy_poll(sw, False, spin_us=50, sleep_us=sleep_us, idle_max_us=ceiling_us)
        seen = [softdoca_ctl.forwarder_stats(sw)["sleep_us"]]

        def grown(st: Dict[str, int]) -> bool:
            if st["sleep_us"] != seen[-1]:
                seen.append(st["sleep_us"])
            return st["sleep_us"] == ceiling_us

        idle = wait(grown, "to the ceiling")
        out["seen_idle"] = seen
        out["idle"] = idle
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        s.bind(("x0", 0))
        s.send(udp_frame("198.18.0.10", VIP, 40000, 53))  # no pipes: a miss, out rep-p0
        s.close()
        out["after_packet"] = wait(lambda st: st["backoff_resets"] > idle["backoff_resets"], "a reset")
        out["p0"] = sw.port_stats("p0")
        # the old fixed back-off: a ceiling at sleep_us, every sleep from the next one on is short
        softdoca_ctl.set_busy_poll(sw, False, idle_max_us=sleep_us)
        first = softdoca_ctl.forwarder_stats(sw)["sleeps"]
        out["fixed"] = wait(lambda st: st["sleeps"] >= first + 200, "200 more sleeps")
    return out


def ipv6_setup(sw: ESwitch) -> Dict[str, Any]:
    """p0's root: UDP/53 to VIP6 -> a pipe on the source's low bit, TCP/53 to VIP6 -> a pipe
    on the source port's low bit (l3=6), UDP/53 to the IPv4 VIP -> an IPv4 pipe, the VIP6's
    /64 as a route, ESP and non-first fragments (protocol 44) to VIP6 dropped, and one entry
    per family on ports alone (5353: IPv6, 5454: IPv4)."""
    root = sw.create_root_pipe("p0", nr_entries=32)
    svc6 = sw.create_basic_pipe("p0", name="dns6", mask=GlueMatch(ipv6_src=1), fwd_port="p1", nr_entries=4)
    svc6p = sw.create_basic_pipe("p0", name="dns6tcp", mask=GlueMatch(l4_src=1, l3=6), fwd_port="p1",
                                 nr_entries=4)
    svc4 = sw.create_basic_pipe("p0", name="dns4", mask=GlueMatch(ipv4_src=1), fwd_port="p1", nr_entries=2)
    udp6 = GlueMatch(eth_type=0x86DD, ip_proto=17, ipv6_dst=VIP6, l4_dst=53)
    tcp6 = GlueMatch(eth_type=0x86DD, ip_proto=6, ipv6_dst=VIP6, l4_dst=53)
    udp4 = GlueMatch(eth_type=0x0800, ip_proto=17, ipv4_dst=VIP, l4_dst=53)
    net6 = int(ipaddress.IPv6Address(VIP6)) & ~((1 << 64) - 1)
    route = GlueMatch(eth_type=0x86DD, ipv6_dst=net6)
    route_mask = GlueMatch(eth_type=0xFFFF, ipv6_dst=((1 << 64) - 1) << 64)
    entries = sw.add_entries([
        root.entry(udp6, priority=10, fwd_pipe=svc6),
        root.entry(tcp6, priority=10, fwd_pipe=svc6p),
        root.entry(udp4, priority=10, fwd_pipe=svc4),
        root.entry(route, mask=route_mask, priority=20, fwd_port="p1"),
        root.entry(GlueMatch(eth_type=0x86DD, ip_proto=50, ipv6_dst=VIP6), priority=5, drop=True),
        root.entry(GlueMatch(eth_type=0x86DD, ip_proto=44, ipv6_dst=VIP6), priority=6, drop=True),
        root.entry(GlueMatch(ip_proto=17, l4_dst=5353, l3=6), priority=30, drop=True),
        root.entry(GlueMatch(ip_proto=17, l4_dst=5454), priority=30, fwd_port="p1"),
        svc6.entry(GlueMatch(ipv6_src=0), MAC_A),
        svc6.entry(GlueMatch(ipv6_src=1), MAC_B),
        svc6p.entry(GlueMatch(l4_src=0, l3=6), MAC_A),
        svc6p.entry(GlueMatch(l4_src=1), MAC_B),  # no family stated: the pipe's
        svc4.entry(GlueMatch(ipv4_src=0), MAC4_A),
        svc4.entry(GlueMatch(ipv4_src=1), MAC4_B),
    ])
    return {"root": root, "svc6": svc6, "svc6p": svc6p, "svc4": svc4, "entries": entries}


def ipv6_frames() -> Dict[str, bytes]:
    even, odd = "2001:db8::10", "2001:db8::11"
    udp = fr.udp(40000, 53, b"q" * 18)
    return {
        # the service, both families, both transports
        "u_even": udp6_frame(even, VIP6, 40000, 53),
        "u_odd": udp6_frame(odd, VIP6, 40000, 53),
        "u_odd_hi": udp6_frame("2001:db8:ffff::7:1", VIP6, 1, 53),  # only the masked bit counts
        "t_even_port": tcp6_frame(odd, VIP6, 40000, 53),
        "t_odd_port": tcp6_frame(even, VIP6, 40001, 53),
        "v4_even": udp_frame("198.18.0.10", VIP, 40000, 53),
        "v4_odd": udp_frame("198.18.0.11", VIP, 40000, 53),
        # one family's entries never take the other's frames
        "v6_5353": udp6_frame(even, "2001:db8:99::1", 1, 5353),
        "v4_5353": udp_frame("198.18.0.10", "198.18.0.99", 1, 5353),
        "v6_5454": udp6_frame(even, "2001:db8:99::1", 1, 5454),
        "v4_5454": udp_frame("198.18.0.10", "198.18.0.99", 1, 5454),
        "v6_other_net": udp6_frame(even, "2001:db8:54::53", 40000, 53),
        # extension headers
        "hbh_dst_udp": eth6(ipv6(even, VIP6, 0, opt_hdr(60) + opt_hdr(17, 1) + udp)),
        "routing_udp": eth6(ipv6(even, VIP6, 43, opt_hdr(17, 2) + udp)),
        "ah_udp": eth6(ipv6(even, VIP6, 51, ah_hdr(17) + udp)),
        "frag_first": eth6(ipv6(even, VIP6, 44, frag_hdr(17, 0, True) + udp)),
        "frag_later": eth6(ipv6(even, VIP6, 44, frag_hdr(17, 100, True) + udp)),
        "esp": eth6(ipv6(even, VIP6, 50, b"\0" * 24)),
        "no_next": eth6(ipv6(even, VIP6, 59, b"")),
        # odd ones classified as OVS extracts them
        "version4": eth6(ipv6(even, VIP6, 17, udp, version=4)),
        "padding": eth6(ipv6(even, VIP6, 17, udp) + b"\0" * 20),
        "padding_cuts_udp": eth6(ipv6(even, VIP6, 17, udp, plen=6)),
        "udp_short": eth6(ipv6(even, VIP6, 17, udp[:6])),
        "tcp_short": eth6(ipv6(even, VIP6, 6, fr.tcp_syn(40000, 53)[:12])),
        # malformed: misses
        "short_hdr": eth6(ipv6(even, VIP6, 17, udp)[:39]),
        "plen_long": eth6(ipv6(even, VIP6, 17, udp, plen=len(udp) + 1)),
        "trunc_chain": eth6(ipv6(even, VIP6, 0, opt_hdr(17, 1)[:12])),
        "trunc_chain_hdr": eth6(ipv6(even, VIP6, 60, b"\x11\0\0\0")),
        "trunc_frag": eth6(ipv6(even, VIP6, 44, frag_hdr(17, 0, False)[:6])),
    }


def sc_ipv6(prefix: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    with ESwitch(default_eal_args(prefix), none_ports(3)) as sw:
        st = ipv6_setup(sw)
        frames = ipv6_frames()
        out["res"] = {k: classify(sw, "p0", f) for k, f in frames.items()}
        out["sizes"] = {k: len(f) for k, f in frames.items()}
        out["counters"] = sw.query_entries(st["entries"])
        out["stats"] = sw.port_stats("p0")
    return out


def sc_ipv6_rejects(prefix: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    with ESwitch(default_eal_args(prefix), none_ports(3)) as sw:
        st = ipv6_setup(sw)
        root, svc6, svc6p, svc4 = st["root"], st["svc6"], st["svc6p"], st["svc4"]
        out["outside_mask"] = err(lambda: sw.add_entries([svc6.entry(GlueMatch(ipv6_src=2), MAC_A)]))
        out["v6_in_v4_pipe"] = err(lambda: sw.add_entries([svc4.entry(GlueMatch(ipv6_src=1), MAC_A)]))
        out["v4_in_v6_pipe"] = err(lambda: sw.add_entries([svc6.entry(GlueMatch(ipv4_src=1), MAC_A)]))
        out["l3_4_in_v6_port_pipe"] = err(lambda: sw.add_entries([svc6p.entry(GlueMatch(l4_src=1, l3=4),
                                                                                MAC_A)]))
        out["duplicate"] = err(lambda: sw.add_entries([svc6.entry(GlueMatch(ipv6_src=1), MAC_A)]))
        out["families_of_entry"] = err(lambda: sw.add_entries([
            root.entry(GlueMatch(ipv6_dst=VIP6), mask=GlueMatch(ipv4_dst=0xFFFFFFFF), fwd_port="p1")]))
        # a batch with one bad IPv6 entry leaves nothing behind
        out["batch"] = err(lambda: sw.add_entries([
            svc6p.entry(GlueMatch(l4_src=1, l3=6), MAC_A),  # duplicate of the setup's
            root.entry(GlueMatch(eth_type=0x86DD, ipv6_src="2001:db8::1"), priority=40, drop=True)]))
        out["after_batch"] = classify(sw, "p0", udp6_frame("2001:db8::1", "2001:db8:1::1", 1, 1))
    for name, kw in (("mix_fields", {"ipv4_src": 1, "ipv6_src": 1}), ("l3_4_v6", {"l3": 4, "ipv6_dst": 1}),
                     ("l3_6_v4", {"l3": 6, "ipv4_dst": "198.18.0.1"}), ("l3_5", {"l3": 5}),
                     ("too_wide", {"ipv6_src": 1 << 128}), ("bad_str", {"ipv6_src": "2001:db8::zz"}),
                     ("v4_str", {"ipv6_src": "198.18.0.1"}), ("bool", {"ipv6_dst": True})):
        out[name] = err(lambda: GlueMatch(**kw))
    return out


# --- meters (the DoS guard's chain: a service-wide shared meter, then per-bucket meters) ---

EVEN, ODD = "198.18.0.10", "198.18.0.11"
MS = 1000000  # ns


def meter_chain(sw: ESwitch, shared_cir: int, shared_cbs: int) -> Dict[str, Any]:
    """p0's root: UDP/53 to VIP -> "svc" (match-all, the shared meter) -> "drop1" (red: drop;
    else miss to) "buckets" (source's low bit: MAC + its own meter) -> "drop2" (red: drop; else
    miss to p1).  TCP/53 to VIP -> p1 directly (meets no meter)."""
    root = sw.create_root_pipe("p0", nr_entries=8)
    drop2 = sw.create_basic_pipe("p0", "drop2", GlueMatch(meter_color=1), drop=True, miss_port="p1",
                                 nr_entries=2)
    buckets = sw.create_basic_pipe("p0", "buckets", GlueMatch(ipv4_src=1), fwd_pipe=drop2, meter="entry",
                                   nr_entries=4)
    drop1 = sw.create_basic_pipe("p0", "drop1", GlueMatch(meter_color=1), drop=True, miss_pipe=buckets,
                                 nr_entries=2)
    svc = sw.create_basic_pipe("p0", "svc", GlueMatch(), fwd_pipe=drop1, meter="shared", set_mac=False,
                               nr_entries=1)
    shared = sw.create_meter("p0", shared_cir, shared_cbs)
    ents = sw.add_entries([
        svc.entry(GlueMatch(), shared_meter=shared),
        drop1.entry(GlueMatch(meter_color=COLOR_RED)),
        buckets.entry(GlueMatch(ipv4_src=0), MAC_A, meter=(5, 3)),
        buckets.entry(GlueMatch(ipv4_src=1), MAC_B, meter=(1000, 1000)),
        drop2.entry(GlueMatch(meter_color=COLOR_RED)),
        root.entry(GlueMatch(eth_type=0x0800, ip_proto=17, ipv4_dst=VIP, l4_dst=53), fwd_pipe=svc),
        root.entry(GlueMatch(eth_type=0x0800, ip_proto=6, ipv4_dst=VIP, l4_dst=53), fwd_port="p1"),
    ])
    names = ("svc", "drop1", "even", "odd", "drop2")
    return {"pipes": {"svc": svc, "drop1": drop1, "buckets": buckets, "drop2": drop2}, "shared": shared,
            "e": dict(zip(names, ents))}


def send(sw: ESwitch, src: str, n: int) -> List[List[str]]:
    return [classify(sw, "p0", udp_frame(src, VIP, 40000, 53)) for _ in range(n)]


def tally(results: List[List[str]]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for r in results:
        key = r[0] if r[0] != "p1" else "p1:" + r[1]
        out[key] = out.get(key, 0) + 1
    return out


def meter_counts(sw: ESwitch, c: Dict[str, Any]) -> Dict[str, Any]:
    e = c["e"]
    pk = [p for p, _ in sw.query_entries([e[k] for k in ("svc", "drop1", "even", "odd", "drop2")])]
    return {"shared": softdoca_ctl.meter_stats(sw, c["shared"]),
            "even": softdoca_ctl.meter_stats(sw, e["even"]), "odd": softdoca_ctl.meter_stats(sw, e["odd"]),
            "entry_pkts": dict(zip(("svc", "drop1", "even", "odd", "drop2"), pk))}


def sc_meters(prefix: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    with ESwitch(default_eal_args(prefix), none_ports(2)) as sw:
        out["clock_not_manual"] = err(lambda: softdoca_ctl.advance_clock(sw, 1))
        softdoca_ctl.set_manual_clock(sw, 0)
        c = meter_chain(sw, shared_cir=100, shared_cbs=10)
        e = c["e"]
        # t=0: the shared bucket holds 10, even's 3, odd's 1000
        out["burst_even"] = tally(send(sw, EVEN, 5))
        out["burst_odd"] = tally(send(sw, ODD, 5))
        out["shared_empty"] = tally(send(sw, ODD, 3))
        out["after_burst"] = meter_counts(sw, c)
        r = softdoca_ctl.classify_meters(sw, "p0", udp_frame(EVEN, VIP, 40000, 53))
        out["trace_even_red"] = [r[0], r[2], r[3]]
        r = softdoca_ctl.classify_meters(sw, "p0", tcp_frame(EVEN, VIP, 40000, 53))
        out["trace_no_meter"] = [r[0], r[2], r[3]]
        # refill: 100 ms at 100/s = 10 for the shared (its cap), 0.5 for even (< 1 token)
        softdoca_ctl.advance_clock(sw, 100 * MS)
        out["half_token"] = tally(send(sw, EVEN, 1))
        softdoca_ctl.advance_clock(sw, 100 * MS)
        out["one_token"] = tally(send(sw, EVEN, 1))
        # cap: 10 s later the shared bucket holds cbs (10), not 1000
        softdoca_ctl.advance_clock(sw, 10000 * MS)
        out["capped"] = tally(send(sw, ODD, 20))
        # modify in place: 50 ms at the old rate (5 tokens), then 1000/s with cbs 50 for 10 ms (+10)
        softdoca_ctl.advance_clock(sw, 50 * MS)
        sw.modify_meter(c["shared"], 1000, 50)
        softdoca_ctl.advance_clock(sw, 10 * MS)
        out["after_modify"] = tally(send(sw, ODD, 20))
        before = meter_counts(sw, c)
        # even's own meter: cbs 3 -> 4, in place (counters kept)
        sw.update_entry_meters([(e["even"], (50, 4))])
        softdoca_ctl.advance_clock(sw, 10000 * MS)
        out["after_update"] = tally(send(sw, EVEN, 6))
        out["counts_before_update"] = before
        out["counts_after_update"] = meter_counts(sw, c)
        # life cycle and refusals
        out["destroy_used"] = err(lambda: sw.destroy_meter(c["shared"]))
        spare = sw.create_meter("p0", 10, 10, unit="bytes")
        out["destroy_unused"] = err(lambda: sw.destroy_meter(spare))
        out["use_destroyed"] = err(lambda: c["pipes"]["svc"].entry(GlueMatch(ipv4_src=1), shared_meter=spare))
        out["destroy_pipe_in_chain"] = err(lambda: sw.destroy_pipe(c["pipes"]["drop2"]))
        buckets, drop1 = c["pipes"]["buckets"], c["pipes"]["drop1"]
        out["bad"] = {
            "cbs0": err(lambda: buckets.entry(GlueMatch(ipv4_src=0), MAC_A, meter=(5, 0))),
            "cir0": err(lambda: sw.create_meter("p0", 0, 5)),
            "meter_on_plain": err(lambda: drop1.entry(GlueMatch(meter_color=COLOR_GREEN), meter=(5, 5))),
            "shared_on_entry_pipe": err(lambda: buckets.entry(GlueMatch(), MAC_A, shared_meter=c["shared"])),
            "no_meter": err(lambda: buckets.entry(GlueMatch(ipv4_src=0), MAC_A)),
            "mac_on_drop": err(lambda: drop1.entry(GlueMatch(meter_color=COLOR_RED), MAC_A)),
            "two_fwds": err(lambda: sw.create_basic_pipe("p0", "x", GlueMatch(), "p1", 2, drop=True)),
            "meter_kind": err(lambda: sw.create_basic_pipe("p0", "x", GlueMatch(), "p1", 2, meter="bucket")),
            "update_no_own": err(lambda: sw.update_entry_meters([(e["svc"], (5, 5))])),
            "color_value": err(lambda: sw.add_entries([drop1.entry(GlueMatch(meter_color=3))])),
        }
        # removing the entry that uses the shared meter frees it for destroy
        sw.remove_entries([e["svc"]])
        out["destroy_after_remove"] = err(lambda: sw.destroy_meter(c["shared"]))
    return out


def sc_meter_budgets(prefix: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    with ESwitch(default_eal_args(prefix), none_ports(2), meters=2, shared_meters=1) as sw:
        m1 = sw.create_meter("p0", 10, 10)
        out["second_shared"] = err(lambda: sw.create_meter("p0", 10, 10))
        pipe = sw.create_basic_pipe("p0", "b", GlueMatch(ipv4_src=3), "p1", 8, meter="entry")
        specs = [pipe.entry(GlueMatch(ipv4_src=i), MAC_A, meter=(10, 10)) for i in range(3)]
        out["third_entry_meter"] = err(lambda: sw.add_entries(specs))
        out["two_fit_after"] = len(sw.add_entries(specs[:2]))
        sw.destroy_meter(m1)
        out["shared_reused"] = err(lambda: sw.create_meter("p0", 20, 20))
    return out


SCENARIOS = {
    "semantics": sc_semantics,
    "rejects": sc_rejects,
    "counters": sc_counters,
    "update_remove": sc_update_remove,
    "close_with_entries": sc_close_with_entries,
    "fault": sc_fault,
    "switch": sc_switch,
    "reps": sc_reps,
    "reps_refused": sc_reps_refused,
    "info": sc_info,
    "serve": sc_serve,
    "idle_backoff": sc_idle_backoff,
    "ipv6": sc_ipv6,
    "ipv6_rejects": sc_ipv6_rejects,
    "meters": sc_meters,
    "meter_budgets": sc_meter_budgets,
}


def main() -> int:
    name = sys.argv[1]
    kwargs = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    try:
        result = SCENARIOS[name](**kwargs)
    except Exception:
        traceback.print_exc()
        return 1
    if result is not None:
        print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

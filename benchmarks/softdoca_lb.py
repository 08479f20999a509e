#!/usr/bin/env python3
"""XenoFlow's eSwitch plane on softdoca, programmed directly through dpdk_glue: the
entries eswitchd installs for the paper's service (root control pipe on p0: IPv4 UDP
to VIP:port -> the service's basic pipe; basic pipe: low source bits -> backend MAC,
forward to p1), with no controller and no OVS behind the representors.

The "softdoca" contender runs this as a child process inside the DPU namespace (the
DPDK EAL can be initialised once per process):

    ip netns exec NS python softdoca_lb.py --config '{"vip": ..., "port": 53,
        "bits": 1, "macs": [...], "prefix": "xb-sd", "busy_poll": false}'

With "loop": true it installs nothing and runs the forwarder as a plain DPDK loop
instead (the "dpdk-loop" contender): every frame from one port goes out the other
with its destination MAC set to the first backend's, no parsing, no lookup.

It prints {"ready": true} once the entries are in, then answers one JSON line per
stdin line: "stats" (per-entry counters, port stats), "insert" (with "defer": true in the
config the entries are not added at start but on this command, timed with
CLOCK_MONOTONIC), "quit".
"""
from __future__ import annotations

import argparse
import json
import sys

import pkgpath  # noqa: E402,F401  (before the package: where it comes from)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    cfg = json.loads(ap.parse_args().config)
    from dpdk_glue import ESwitch, GlueMatch, PortSpec, default_eal_args, softdoca_ctl

    ports = [PortSpec("p0", 0, iface=cfg.get("in_dev", "dpu-p0"), rep_iface="rep-p0", pair="p1"),
             PortSpec("p1", 1, iface=cfg.get("out_dev", "dpu-p1"), rep_iface="rep-p1", pair="p0")]
    bits = int(cfg["bits"])
    macs = cfg["macs"]
    with ESwitch(default_eal_args(cfg.get("prefix", "xb-sd")), ports, mode="vnf") as sw:
        if cfg.get("busy_poll"):
            softdoca_ctl.set_busy_poll(sw, True)
        root = sw.create_root_pipe("p0")
        svc = sw.create_basic_pipe("p0", name="dns", mask=GlueMatch(ipv4_src=(1 << bits) - 1),
                                   fwd_port="p1", nr_entries=max(1, 1 << bits))
        vip = GlueMatch(eth_type=0x0800, ipv4_dst=cfg["vip"], ip_proto=17, l4_dst=int(cfg["port"]))
        specs = [root.entry(match=vip, mask=vip.full_mask(), priority=10, fwd_pipe=svc)]
        specs += [svc.entry(match=GlueMatch(ipv4_src=b), dst_mac=macs[b % len(macs)])
                  for b in range(1 << bits)]
        import time
        loop = bool(cfg.get("loop"))
        if loop:
            softdoca_ctl.bench_bypass(sw, True, macs[0])
        es = [] if cfg.get("defer") or loop else sw.add_entries(specs)
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "quit":
                break
            if cmd == "insert":       # the deferred entries, in one batch, timed
                t0 = time.monotonic_ns()
                es = sw.add_entries(specs)
                t1 = time.monotonic_ns()
                print(json.dumps({"t0_ns": t0, "t1_ns": t1, "entries": len(es)}), flush=True)
                continue
            if cmd == "stats":
                q = sw.query_entries(es) if es else [(None,)]
                print(json.dumps({"root": q[0][0], "buckets": [x[0] for x in q[1:]],
                                  "p0": sw.port_stats("p0"), "fwd": softdoca_ctl.forwarder_stats(sw)}),
                      flush=True)
            else:
                print(json.dumps({"error": "unknown command %r" % cmd}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

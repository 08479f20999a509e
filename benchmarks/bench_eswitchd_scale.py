#!/usr/bin/env python3
"""The controller <-> eswitchd path at scale: services of 2^16 bucket entries each.

Runs eswitchd (softdoca, ports without packet I/O) in a child process and drives it from
this one through the controller's client, as the runtime does:

  install   one service's 65 536 buckets (+ pipe + dispatch) from empty: client encode,
            the round trip, and eswitchd's own time (decode, validate, glue)
  update    one backend of 8 taken out: ~8 192 bucket updates in place
  poll      the controller's steady-state counters poll (client call + EswitchTotals)
  drift     the controller's drift check (reconcile_eswitch) when nothing moved
  rss       eswitchd's resident memory with --services services of 2^16 entries

Pipes and entries are built here, not by the planner, so the figures are the path's own.

    python benchmarks/bench_eswitchd_scale.py [--services 8] [--bits 16]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
import pkgpath  # noqa: E402,F401  (before the package: where it comes from)

from xenoflow_ovs.intent import config as config_mod  # noqa: E402
from xenoflow_ovs.intent.plan import Change, Entry, Pipe  # noqa: E402

NBE = 8


def make_cfg(tmp: str, services: int) -> config_mod.Config:
    """Service s comes in on p<2s> and leaves by p<2s+1>: softdoca gives a port actions
    memory for about 2^17 rewriting entries, as the glue sizes it."""
    data = {"dpu": {"name": "bench", "state_dir": os.path.join(tmp, "state"),
                    "eswitch": {"driver": "softdoca", "socket": os.path.join(tmp, "es.sock"),
                                "eal_args": ["--no-huge", "-m", "1024", "--no-pci", "-l", "0",
                                             "--file-prefix", "xf-bench-%d" % os.getpid(),
                                             "--log-level", "lib.eal:warning"]},
                    "ports": {"p%d" % i: {"id": i, "iface": "bench%d" % i, "rep_iface": "benchr%d" % i}
                              for i in range(2 * services)}},
            "ovs": {"bridges": {"br1": {"ports": ["p0", "p1"]}}},
            # eswitchd keeps no policy: the config needs a service, the daemon ignores it
            "services": [{"name": "cfg", "vip": "198.18.0.53", "vip_mac": "02:00:c6:12:00:35", "port": 53,
                          "ingress": "p0", "egress": "p1",
                          "backends": [{"name": "b", "ip": "198.18.0.2", "mac": "02:00:c6:12:00:02"}]}]}
    return config_mod.from_data(data, base_dir=tmp)


def serve(tmp: str, services: int) -> None:
    """The child: eswitchd on ports without packet I/O (softdoca's forwarder stays idle)."""
    import dpdk_glue
    from xenoflow_ovs.eswitch import daemon

    class Driver(daemon.GlueDriver):
        def __init__(self, cfg: config_mod.Config) -> None:
            self.glue = dpdk_glue
            self.cfg = cfg
            ports = [dpdk_glue.PortSpec(name=p.name, id=p.id, driver="none", pair="p%d" % (p.id ^ 1))
                     for p in cfg.ports]
            self.sw = dpdk_glue.ESwitch(eal_args=list(cfg.eswitch.eal_args), ports=ports, mode="vnf")
            self.roots: Dict[str, Any] = {}

        def open(self) -> None:
            self.sw.open()
    cfg = make_cfg(tmp, services)
    daemon.serve(cfg, driver=Driver(cfg))


def service(s: int, bits: int, out_of: Tuple[int, ...] = ()) -> Tuple[Pipe, List[Entry]]:
    name, port, egress = "s%d" % s, "p%d" % (2 * s), "p%d" % (2 * s + 1)
    mask = (1 << bits) - 1
    pipe = Pipe(port=port, name="%s.ipv4_src%d.%s" % (name, bits, egress), mask=(("ipv4_src", mask),),
                fwd_port=egress, nr_entries=1 << bits, owner=name)
    live = [b for b in range(NBE) if b not in out_of]
    entries = []
    for i in range(1 << bits):
        b = i % NBE if i % NBE not in out_of else live[i % len(live)]
        entries.append(Entry(port=port, pipe=pipe.name, match=(("ipv4_src", i, mask),), kind="bucket",
                             owner=name, fwd=("port", egress), dst_mac="02:00:%02x:00:00:%02x" % (s, b),
                             backend="%s-b%d" % (name, b), bucket=i))
    dispatch = Entry(port=port, pipe="root", kind="dispatch", owner=name, fwd=("pipe", pipe.name),
                     match=(("eth_type", 0x800, 0xFFFF), ("ipv4_dst", 0xC6120100 + s, 0xFFFFFFFF)),
                     priority=100)
    return pipe, entries + [dispatch]


def rss_kb(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--services", type=int, default=8)
    ap.add_argument("--bits", type=int, default=16)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.services)
        return 0

    from xenoflow_ovs.controller.runtime import EswitchTotals
    from xenoflow_ovs.eswitch import wire
    from xenoflow_ovs.eswitch.client import EswitchClient
    tmp = tempfile.mkdtemp(prefix="xfesb-")
    cfg = make_cfg(tmp, args.services)
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", tmp,
                             "--services", str(args.services)],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "es.log"), "w"))
    sock = cfg.path(cfg.eswitch.socket)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(sock):
            assert proc.poll() is None and time.monotonic() < deadline, \
                open(os.path.join(tmp, "es.log")).read()
            time.sleep(0.05)
        client = EswitchClient(sock, timeout=120)
        print("eswitchd rss at start: %d MB" % (rss_kb(proc.pid) // 1024))

        # install from empty, one service
        pipe, entries = service(0, args.bits)
        changes = [Change("eswitch", "add_pipe", pipe)] + [Change("eswitch", "add", e) for e in entries]
        t0 = time.perf_counter()
        if hasattr(wire, "changes_to_wire"):
            req = wire.changes_to_wire(changes, runs="runs" in client.features())
        else:   # the per-change form of the first protocol
            req = [wire.change_to_wire(c) for c in changes]
        t1 = time.perf_counter()
        c0 = cpu_s(proc.pid)
        client.call("apply", changes=req, counted=False)
        t2 = time.perf_counter()
        print("install %d entries: encode %.3f s, call %.3f s (eswitchd cpu %.3f s), total %.3f s"
              % (len(entries), t1 - t0, t2 - t1, cpu_s(proc.pid) - c0, t2 - t0))

        # one backend of 8 out: its buckets updated in place
        _, moved = service(0, args.bits, out_of=(0,))
        old = {e.key: e for e in entries}
        ups = [Change("eswitch", "update", e, old[e.key]) for e in moved if old[e.key] != e]
        t0 = time.perf_counter()
        c0 = cpu_s(proc.pid)
        client.apply(ups, **apply_args(client))
        t1 = time.perf_counter()
        print("update %d buckets: %.3f s (eswitchd cpu %.3f s)" % (len(ups), t1 - t0, cpu_s(proc.pid) - c0))

        for s in range(1, args.services):
            p, es = service(s, args.bits)
            client.apply([Change("eswitch", "add_pipe", p)] + [Change("eswitch", "add", e) for e in es],
                         **apply_args(client))
        n = args.services * ((1 << args.bits) + 1)
        print("eswitchd rss with %d entries: %d MB" % (n, rss_kb(proc.pid) // 1024))

        # the steady-state poll, as the controller does it
        tot = EswitchTotals()
        for label, fn in (("poll", lambda: tot.update(client.counters(**poll_args(client)))),):
            fn()
            t0, c0, p0 = time.perf_counter(), cpu_s(proc.pid), time.process_time()
            for _ in range(3):
                fn()
            print("%s at %d entries: %.3f s wall, controller cpu %.3f s, eswitchd cpu %.3f s (per poll)"
                  % (label, n, (time.perf_counter() - t0) / 3, (time.process_time() - p0) / 3,
                     (cpu_s(proc.pid) - c0) / 3))
        if hasattr(client, "table_version"):
            t0, p0 = time.perf_counter(), time.process_time()
            for _ in range(10):
                client.table_version()
            print("drift check (table version) at %d entries: %.4f s wall, controller cpu %.4f s"
                  % (n, (time.perf_counter() - t0) / 10, (time.process_time() - p0) / 10))
        t0, p0 = time.perf_counter(), time.process_time()
        client.installed()
        print("list at %d entries: %.3f s wall, controller cpu %.3f s"
              % (n, time.perf_counter() - t0, time.process_time() - p0))
        client.close()
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def apply_args(client: Any) -> Dict[str, Any]:
    import inspect
    return {"counted": False} if "counted" in inspect.signature(client.apply).parameters else {}


def poll_args(client: Any) -> Dict[str, Any]:
    import inspect
    return {"entries": False} if "entries" in inspect.signature(client.counters).parameters else {}


if __name__ == "__main__":
    sys.exit(main())

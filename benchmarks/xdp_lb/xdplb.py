#!/usr/bin/env python3
"""Build, attach, configure and read the XDP balancer (xdp_lb.c), its veth
helper (xdp_pass.c) and the receiver-side counter (xdp_sink.c).

Standard tools only: clang builds the objects, ``ip link set dev X xdpdrv obj
F sec xdp`` (inside the namespace) attaches them, ``bpftool`` writes and reads
the maps by id (map ids are global, so nothing is pinned and everything goes
away with the program or its veth). The devmap entry (egress ifindex) is
written from inside the namespace, where the ifindex means the right device.

CLI (as root):
  xdplb.py build
  xdplb.py attach --ns NS --in dpu-p0 --out dpu-p1 --vip 198.19.0.53 --port 53 \\
          --bits 1 --backend 02:00:c6:12:00:02 --backend 02:00:c6:12:00:03 \\
          [--peer-ns tor --peer t-p1]
  xdplb.py stats  --ns NS --in dpu-p0        (per-bucket counters, JSON)
  xdplb.py detach --ns NS --in dpu-p0 [--peer-ns tor --peer t-p1]
  xdplb.py sink-attach|sink-read|sink-detach --ns NS --dev eth0

Veth note (verified here, kernel 6.18): a frame that XDP_REDIRECTs into a veth
is dropped (counted in the veth's tx_dropped / xdp_tx_err) unless the veth's
*peer* has NAPI on, which native XDP on the peer turns on; ``attach`` therefore
puts xdp_pass on the peer of the egress veth when --peer is given.
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.join(os.path.dirname(HERE), "build")
CLANG_FLAGS = ["-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu"]
PROGS = ("xdp_lb", "xdp_pass", "xdp_sink")


def _run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=60)
    if check and p.returncode != 0:
        raise RuntimeError("%s failed (rc=%d): %s" % (" ".join(map(str, argv)), p.returncode,
                                                      p.stderr.strip() or p.stdout.strip()))
    return p


def _ns(ns: Optional[str], argv: Sequence[str]) -> List[str]:
    return (["ip", "netns", "exec", ns] if ns else []) + list(argv)


def build(force: bool = False) -> Dict[str, str]:
    """Compile the three programs into benchmarks/build/ (only when stale)."""
    os.makedirs(BUILD, exist_ok=True)
    out = {}
    for name in PROGS:
        src = os.path.join(HERE, name + ".c")
        obj = os.path.join(BUILD, name + ".o")
        if force or not os.path.exists(obj) or os.path.getmtime(obj) < os.path.getmtime(src):
            _run(["clang"] + CLANG_FLAGS + ["-c", src, "-o", obj])
        out[name] = obj
    return out


# --- attach / detach ---------------------------------------------------------------

def attach(ns: Optional[str], dev: str, obj: str, mode: str = "xdpdrv") -> int:
    """Attach `obj` (section xdp) to `dev` in `ns`; return the program id."""
    _run(_ns(ns, ["ip", "link", "set", "dev", dev, mode, "obj", obj, "sec", "xdp"]))
    pid = prog_id(ns, dev)
    if pid is None:
        raise RuntimeError("no XDP program on %s/%s after attach" % (ns, dev))
    return pid


def detach(ns: Optional[str], dev: str) -> None:
    """Remove any XDP program from `dev` (no error if the device is gone)."""
    for mode in ("xdpdrv", "xdpgeneric"):
        _run(_ns(ns, ["ip", "link", "set", "dev", dev, mode, "off"]), check=False)


def prog_id(ns: Optional[str], dev: str) -> Optional[int]:
    p = _run(_ns(ns, ["ip", "-j", "-d", "link", "show", "dev", dev]), check=False)
    if p.returncode != 0:
        return None
    info = json.loads(p.stdout)[0]
    xdp = info.get("xdp") or {}
    prog = xdp.get("prog") or {}
    if "id" in prog:
        return int(prog["id"])
    for att in xdp.get("attached", []):
        if "prog" in att and "id" in att["prog"]:
            return int(att["prog"]["id"])
        if "id" in att:
            return int(att["id"])
    return None


def maps_of(pid: int) -> Dict[str, int]:
    """{map name: map id} of program `pid`."""
    prog = json.loads(_run(["bpftool", "-j", "prog", "show", "id", str(pid)]).stdout)
    out = {}
    for mid in prog.get("map_ids", []):
        m = json.loads(_run(["bpftool", "-j", "map", "show", "id", str(mid)]).stdout)
        out[m["name"]] = mid
    return out


def _bytes(b: bytes) -> List[str]:
    return [str(x) for x in b]


def map_update(mid: int, key: bytes, value: bytes, ns: Optional[str] = None) -> None:
    _run(_ns(ns, ["bpftool", "map", "update", "id", str(mid), "key"] + _bytes(key)
             + ["value"] + _bytes(value)))


def percpu_sums(mid: int) -> Dict[int, int]:
    """{key: sum over CPUs} of a per-CPU array of u64 (key u32)."""
    data = json.loads(_run(["bpftool", "-j", "map", "dump", "id", str(mid)]).stdout)
    out = {}
    for e in data:
        if "formatted" in e:
            e = e["formatted"]
        key = e["key"]
        if isinstance(key, list):
            key = struct.unpack("<I", bytes(int(x, 16) for x in key))[0]
        total = 0
        for v in e.get("values", []):
            val = v["value"]
            if isinstance(val, list):
                val = struct.unpack("<Q", bytes(int(x, 16) for x in val))[0]
            total += int(val)
        out[int(key)] = total
    return out


def ifindex(ns: Optional[str], dev: str) -> int:
    return int(json.loads(_run(_ns(ns, ["ip", "-j", "link", "show", "dev", dev])).stdout)[0]["ifindex"])


# --- the balancer ------------------------------------------------------------------

class XdpLb:
    """The balancer on `ns`/`in_dev`, redirecting out `out_dev`.

    `backends` is a list of MACs; bucket b (0..2^bits-1) goes to backends[b % n]
    unless `table` (one MAC per bucket) is given."""

    def __init__(self, ns: Optional[str], in_dev: str, out_dev: str, vip: str, port: int,
                 bits: int, backends: Sequence[str], table: Optional[Sequence[str]] = None,
                 peer_ns: Optional[str] = None, peer: Optional[str] = None,
                 mode: str = "xdpdrv") -> None:
        if not 0 <= bits <= 8:
            raise ValueError("bits must be 0..8")
        self.ns, self.in_dev, self.out_dev = ns, in_dev, out_dev
        self.vip, self.port, self.bits = vip, int(port), int(bits)
        nb = 1 << self.bits
        self.table = list(table) if table else [backends[b % len(backends)] for b in range(nb)]
        if len(self.table) != nb:
            raise ValueError("table needs %d entries" % nb)
        self.peer_ns, self.peer, self.mode = peer_ns, peer, mode
        self.maps: Dict[str, int] = {}
        self.prog: Optional[int] = None
        self.peer_prog: Optional[int] = None

    def attach(self) -> "XdpLb":
        objs = build()
        if self.peer:
            self.peer_prog = attach(self.peer_ns, self.peer, objs["xdp_pass"], self.mode)
        self.prog = attach(self.ns, self.in_dev, objs["xdp_lb"], self.mode)
        self.maps = maps_of(self.prog)
        self.configure()
        return self

    def configure(self, enable: bool = True) -> None:
        from xenoflow_ovs.lab.frames import mac_bytes  # here: the build/stats CLI needs no package

        m = self.maps
        for b, mac in enumerate(self.table):
            map_update(m["xlb_backends"], struct.pack("<I", b), mac_bytes(mac) + b"\x01\x00")
        map_update(m["xlb_tx"], struct.pack("<I", 0),
                   struct.pack("<I", ifindex(self.ns, self.out_dev)), ns=self.ns)
        if enable:
            self.enable()
        else:
            self.disable()

    def enable(self) -> None:
        """Write the service config (VIP, port, bits): from now on it balances."""
        import socket
        cfg = socket.inet_aton(self.vip) + struct.pack("!H", self.port) + struct.pack("<H", self.bits)
        map_update(self.maps["xlb_cfg"], struct.pack("<I", 0), cfg)

    def disable(self) -> None:
        """VIP 0.0.0.0: every packet passes."""
        map_update(self.maps["xlb_cfg"], struct.pack("<I", 0), b"\0" * 8)

    def buckets(self) -> Dict[int, int]:
        sums = percpu_sums(self.maps["xlb_buckets"])
        return {b: sums.get(b, 0) for b in range(1 << self.bits)}

    def stats(self) -> Dict[str, int]:
        s = percpu_sums(self.maps["xlb_stats"])
        return {"redirected": s.get(1, 0), "no_backend": s.get(2, 0)}

    def detach(self) -> None:
        detach(self.ns, self.in_dev)
        if self.peer:
            detach(self.peer_ns, self.peer)
        self.prog = self.peer_prog = None


class XdpSink:
    """xdp_sink on `ns`/`dev`: counts and drops the benchmark's marked packets."""

    def __init__(self, ns: Optional[str], dev: str, mode: str = "xdpdrv") -> None:
        self.ns, self.dev, self.mode = ns, dev, mode
        self.prog: Optional[int] = None
        self.mid: Optional[int] = None

    def attach(self) -> "XdpSink":
        self.prog = attach(self.ns, self.dev, build()["xdp_sink"], self.mode)
        self.mid = maps_of(self.prog)["xsink_stats"]
        return self

    def read(self) -> Dict[str, int]:
        s = percpu_sums(self.mid)
        return {"packets": s.get(0, 0), "bytes": s.get(1, 0)}

    def detach(self) -> None:
        detach(self.ns, self.dev)
        self.prog = self.mid = None


def _from_attached(ns: Optional[str], dev: str) -> Dict[str, int]:
    pid = prog_id(ns, dev)
    if pid is None:
        raise SystemExit("no XDP program on %s" % dev)
    return maps_of(pid)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="XDP balancer loader")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build")
    a = sub.add_parser("attach")
    for p in (a, sub.add_parser("stats"), sub.add_parser("detach")):
        p.add_argument("--ns", default=None)
        p.add_argument("--in", dest="in_dev", required=True)
        p.add_argument("--peer-ns", default=None)
        p.add_argument("--peer", default=None)
    a.add_argument("--out", dest="out_dev", required=True)
    a.add_argument("--vip", required=True)
    a.add_argument("--port", type=int, default=53)
    a.add_argument("--bits", type=int, default=1)
    a.add_argument("--backend", action="append", required=True)
    a.add_argument("--mode", default="xdpdrv", choices=["xdpdrv", "xdpgeneric"])
    for n in ("sink-attach", "sink-read", "sink-detach"):
        p = sub.add_parser(n)
        p.add_argument("--ns", default=None)
        p.add_argument("--dev", required=True)
    o = ap.parse_args(argv)
    if o.cmd == "build":
        print(json.dumps(build(force=True)))
    elif o.cmd == "attach":
        lb = XdpLb(o.ns, o.in_dev, o.out_dev, o.vip, o.port, o.bits, o.backend,
                   peer_ns=o.peer_ns, peer=o.peer, mode=o.mode).attach()
        print(json.dumps({"prog": lb.prog, "peer_prog": lb.peer_prog, "maps": lb.maps}))
    elif o.cmd == "stats":
        m = _from_attached(o.ns, o.in_dev)
        b = percpu_sums(m["xlb_buckets"])
        s = percpu_sums(m["xlb_stats"])
        print(json.dumps({"buckets": {k: v for k, v in b.items() if v},
                          "redirected": s.get(1, 0), "no_backend": s.get(2, 0)}))
    elif o.cmd == "detach":
        detach(o.ns, o.in_dev)
        if o.peer:
            detach(o.peer_ns, o.peer)
    elif o.cmd == "sink-attach":
        s = XdpSink(o.ns, o.dev).attach()
        print(json.dumps({"prog": s.prog, "map": s.mid}))
    elif o.cmd == "sink-read":
        m = _from_attached(o.ns, o.dev)
        s = percpu_sums(m["xsink_stats"])
        print(json.dumps({"packets": s.get(0, 0), "bytes": s.get(1, 0)}))
    elif o.cmd == "sink-detach":
        detach(o.ns, o.dev)
    return 0


if __name__ == "__main__":
    sys.exit(main())

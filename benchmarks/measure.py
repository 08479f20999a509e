"""Measurement primitives shared by the suites: the C pacer, the receiver-side
counters (xdp_sink on every backend) and the sequential RTT probe.

The pacer and probe run inside the lab's namespaces (``ip netns exec``); the
pacer is compiled here with gcc (no binaries are committed).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.join(HERE, "build")

from lab_min import LabSpec  # noqa: E402
from xdp_lb import xdplb  # noqa: E402

from xenoflow_ovs.lab import netns as nsh  # noqa: E402

PACER_SRC = os.path.join(HERE, "tools", "pacer.c")
PROBE = os.path.join(HERE, "tools", "rtt_probe.py")
PACER = os.path.join(BUILD, "pacer")
IDLE_POLL = False        # run.py: /dev/cpu_dma_latency held at 0 for the run


def build_tools() -> None:
    os.makedirs(BUILD, exist_ok=True)
    if not os.path.exists(PACER) or os.path.getmtime(PACER) < os.path.getmtime(PACER_SRC):
        subprocess.run(["gcc", "-O2", "-Wall", "-o", PACER, PACER_SRC], check=True)
    xdplb.build()


def pacer_argv(dst: str, port: int, rate: float, duration: float, size: int = 22,
               srcs: Optional[List[str]] = None, dns: bool = False) -> List[str]:
    argv = [PACER, "--dst", dst, "--port", str(port), "--rate", str(int(rate)),
            "--duration", "%.3f" % duration, "--size", str(size)]
    if srcs:
        argv += ["--src", ",".join(srcs)]
    if dns:
        argv.append("--dns")
    return argv


def run_pacer(ns: str, *a, **kw) -> Dict:
    p = nsh.run_in_ns(ns, pacer_argv(*a, **kw), timeout=kw.get("duration", 60) + 60)
    return json.loads(p.stdout)


def start_pacer(ns: str, *a, **kw) -> subprocess.Popen:
    return nsh.popen_in_ns(ns, pacer_argv(*a, **kw), stdout=subprocess.PIPE)


def finish_pacer(p: subprocess.Popen, timeout: float = 120) -> Dict:
    out, _ = p.communicate(timeout=timeout)
    return json.loads(out)


def rtt_probe(ns: str, server: str, port: int, src: str, count: int = 2000, warmup: int = 50,
              samples: Optional[str] = None, timeout: float = 0.5) -> Dict:
    argv = [sys.executable, PROBE, "--server", server, "--port", str(port), "--src", src,
            "--count", str(count), "--warmup", str(warmup), "--timeout", str(timeout)]
    if samples:
        argv += ["--samples", samples]
    p = nsh.run_in_ns(ns, argv, timeout=60 + count * (timeout + 0.01))
    return json.loads(p.stdout)


class Receivers:
    """xdp_sink on every backend's interface: delivered packets per backend."""

    def __init__(self, lab: LabSpec) -> None:
        self.lab = lab
        self.sinks = {b.name: xdplb.XdpSink(b.ns, b.dev) for b in lab.backends}

    def attach(self) -> "Receivers":
        for s in self.sinks.values():
            s.attach()
        return self

    def read(self) -> Dict[str, int]:
        return {n: s.read()["packets"] for n, s in self.sinks.items()}

    def detach(self) -> None:
        for s in self.sinks.values():
            s.detach()


def rx_packets(ns: str, dev: str) -> int:
    """The interface's rx packet counter (for traffic the sink does not count: real DNS)."""
    p = nsh.run_in_ns(ns, ["ip", "-j", "-s", "link", "show", "dev", dev])
    return int(json.loads(p.stdout)[0]["stats64"]["rx"]["packets"])


def delta(after: Dict[str, int], before: Dict[str, int]) -> Dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after}


def machine() -> Dict[str, str]:
    """Machine facts for the report (from /proc and uname)."""
    out = {"uname": " ".join(os.uname()), "cpus": str(os.cpu_count())}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                out["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                out["mem"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        out["os"] = [line.split("=", 1)[1].strip().strip('"') for line in open("/etc/os-release")
                     if line.startswith("PRETTY_NAME=")][0]
    except (OSError, IndexError):
        pass
    out["time_utc"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    return out

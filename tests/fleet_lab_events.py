"""DPU events under a steady load in the fleet lab, shared by tests/lab/test_fleet_lab.py and
benchmarks/bench_fleet_events.py.

Each event runs while fips1 sends sequence-numbered DNS queries from many sources at a
fixed rate (lab_harness's load generator); the records give the loss window, which
clients changed backend, and the events' times give how long the DPU took to be
announced again once it came back (only after its planes check consistent).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional

import fleet_events as fe
import lab_harness as lh

from xenoflow_ovs.lab import netns as nsh

NFT_TABLE = "xf_silent"
NFT_CUT = "xf_cut"


class FleetRun:
    """The running fleet lab (xenoflow_ovs.lab.fleet_lab.FleetLab) seen by the events."""

    def __init__(self, lab: Any):
        self.lab = lab
        self.run_dir = lab.run_dir
        self.vip = lab.vip()
        self.svc = SimpleNamespace(vip=self.vip)    # what lab_harness.Load reads
        self.loads: List[Any] = []
        self.router = lab.topo.router.netns
        self.by_name = {d.spec.name: d for d in lab.dpus}
        self.hop_of = {a: dpu for a, _, dpu in lab.neighbors()}

    def db(self) -> str:
        return ",".join(r for r in _unix_remotes(self.lab))

    def sources(self, n: int) -> List[str]:
        ns = next(iter(self.lab.topo.clients))
        return list(self.lab.topo.clients[ns][:n])

    def client_ns(self) -> str:
        return next(iter(self.lab.topo.clients))

    def nexthops(self) -> List[str]:
        return [self.hop_of.get(h, h) for h in self.lab.vip_nexthops(self.vip)]

    def status(self, dpu: str) -> Optional[Dict[str, Any]]:
        return self.by_name[dpu].api("/status")

    def announced(self, dpu: str) -> bool:
        return dpu in self.nexthops()

    def wait_nexthops(self, want: List[str], timeout: float = 30.0) -> float:
        t0 = time.monotonic()
        lh.wait_until(lambda: sorted(self.nexthops()) == sorted(want), timeout, 0.02,
                      "the router's nexthops for the VIP to be %s (are %s)" % (want, self.nexthops()))
        return time.monotonic() - t0

    def load(self, rate: float, duration: float, n_sources: int = 64) -> Any:
        ld = lh.Load(self, self.client_ns(), self.sources(n_sources), rate, duration, grace=1.5)
        self.loads.append(ld)
        return ld.start()

    def wire_peer(self, dpu: str, port: str) -> Any:
        """The far end of the DPU's eSwitch port (the router's or the switch's interface)."""
        return next(p.wire_peer for p in self.by_name[dpu].spec.eswitch_ports if p.name == port)

    # -- event actions
    def kill_eswitchd(self, dpu: str) -> None:
        d = self.by_name[dpu]
        rec = d.state.process("eswitchd")
        os.kill(rec["pid"], signal.SIGKILL)

    def restart_eswitchd(self, dpu: str) -> None:
        d = self.by_name[dpu]
        d.state.drop_process("eswitchd")
        d._dpdk_runtime_cleanup()
        d.start_eswitchd()

    def silence(self, dpu: str, on: bool) -> None:
        """Drop everything between the router and the DPU's uplink (both ways, at the
        router): the link stays up, only BFD can tell."""
        ifname = self.wire_peer(dpu, "p0").ifname
        if on:
            chain = " chain %s { type filter hook %s priority -10; policy accept; %s }\n"
            rules = ("table inet %s {\n" % NFT_TABLE
                     + chain % ("xf_fwd", "forward", 'iifname "%s" drop; oifname "%s" drop;'
                                % (ifname, ifname))
                     + chain % ("xf_in", "input", 'iifname "%s" drop;' % ifname)
                     + chain % ("xf_out", "output", 'oifname "%s" drop;' % ifname) + "}\n")
            _nft(self.router, rules)
        else:
            nsh.run_in_ns(self.router, ["nft", "delete", "table", "inet", NFT_TABLE], check=False)

    def drain_dpu(self, dpu: str, undo: bool = False) -> subprocess.CompletedProcess:
        import sys

        from xenoflow_ovs.lab.pyenv import subprocess_env
        argv = [sys.executable, "-m", "xenoflow_ovs.cli", "fleet", "drain-dpu", dpu, "--db", self.db()]
        if undo:
            argv.append("--undo")
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                              timeout=90, env=subprocess_env())

    def cut_backends(self, dpu: str, on: bool) -> None:
        """Everything the DPU sends towards the backends' segment is lost (its egress port
        on the switch drops it): its probes fail, and so would its queries."""
        peer = self.wire_peer(dpu, "p1")
        ns, ifname = peer.netns, peer.ifname
        if on:
            _nft(ns, "table netdev %s { chain xf_in { type filter hook ingress device \"%s\" priority -10; "
                 "policy drop; }\n}\n" % (NFT_CUT, ifname))
        else:
            nsh.run_in_ns(ns, ["nft", "delete", "table", "netdev", NFT_CUT], check=False)


def _nft(ns: str, rules: str) -> None:
    p = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules, universal_newlines=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.returncode == 0, p.stderr


def _unix_remotes(lab: Any) -> List[str]:
    from xenoflow_ovs.lab.fleet_lab import _remotes_unix
    return _remotes_unix(lab.run_dir, lab.topo)


def run_event(fr: FleetRun, kind: str, dpu: str = "dpu1", rate: float = 2000.0,
              before: float = 3.0, hold: float = 4.0, after: float = 12.0) -> Dict[str, Any]:
    """One event under load: the loss window, the clients that changed backend, and the time
    from the DPU coming back to its being announced again."""
    both = sorted(fr.by_name)
    fr.wait_nexthops(both, 60)
    ld = fr.load(rate, before + hold + after)
    time.sleep(before)
    t_event = time.time()
    out: Dict[str, Any] = {"event": kind, "dpu": dpu, "rate": rate}
    undo: Callable[[], None]
    if kind == "eswitchd_killed":
        fr.kill_eswitchd(dpu)
        undo = lambda: fr.restart_eswitchd(dpu)        # noqa: E731
    elif kind == "silent_failure":
        fr.silence(dpu, True)
        undo = lambda: fr.silence(dpu, False)          # noqa: E731
    elif kind == "planned_drain":
        p = fr.drain_dpu(dpu)
        out["drain_output"] = (p.stdout + p.stderr).strip()
        out["drain_rc"] = p.returncode
        undo = lambda: fr.drain_dpu(dpu, undo=True)    # noqa: E731
    elif kind == "backends_out":
        fr.cut_backends(dpu, True)
        undo = lambda: fr.cut_backends(dpu, False)     # noqa: E731
    else:
        raise ValueError(kind)
    try:
        out["withdrawn_in"] = fr.wait_nexthops([d for d in both if d != dpu], 30)
    except AssertionError as exc:
        out["withdrawn_in"] = None
        out["error"] = str(exc)
    time.sleep(max(0.0, t_event + hold - time.time()))
    t_back, m_back = time.time(), time.monotonic()
    undo()
    try:
        fr.wait_nexthops(both, 60)
        out["announced_again_in"] = time.monotonic() - m_back
        st = fr.status(dpu) or {}
        out["verdict_when_back"] = st.get("verdict")
    except AssertionError as exc:
        out["announced_again_in"] = None
        out.setdefault("error", str(exc))
    res = ld.wait()
    recs = res.records
    out["sent"], out["lost"] = res.sent, res.lost
    out["loss_window"] = fe.loss_window(recs, rate)
    share, changed = fe.changed_share(recs, t_event, settle=1.5, window=1.5)
    out["changed_share"] = share
    share_back, _ = fe.changed_share(recs, t_back, settle=4.0, window=1.5)
    out["changed_share_back"] = share_back
    out["t_event"], out["t_back"] = t_event, t_back
    return out


def bfd_down_events(fr: FleetRun) -> Dict[str, int]:
    """How often the router's BFD sessions went down, per DPU (false failovers = the ones no
    event caused), from `show bfd peers counters json`."""
    frr = fr.lab.router_frr()
    text = frr.vtysh("show bfd peers counters json")
    out: Dict[str, int] = {}
    for p in json.loads(text or "[]"):
        out[fr.hop_of.get(p.get("peer"), p.get("peer"))] = int(p.get("session-down") or 0)
    return out

"""Child process of test_capacity_enforce.py: eswitchd's driver and state (GlueDriver,
EswitchState) over softdoca, with ports that do no packet I/O, started from a config the
way eswitchd starts them (port specs, declared capacity, actions memory).

``python capacity_child.py <scenario> '<json kwargs>'`` prints ``RESULT <json>`` last.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import sys
import traceback
from typing import Any, Dict, List, Optional

import yaml

from dpdk_glue import ESwitch, GlueError, PortSpec, default_eal_args
from xenoflow_ovs.eswitch.daemon import EswitchState, GlueDriver
from xenoflow_ovs.intent import config, eswitch_ports
from xenoflow_ovs.intent import plan as plan_mod

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(ROOT, "topologies", "paper", "xenoflow.yaml")


def make_cfg(n: int, bits: int, capacity: Optional[Dict[str, int]] = None) -> config.Config:
    """The paper's testbed with n services of 2^bits buckets entering at p0, each IPv4 and UDP
    as the paper ran it (one pipe and one dispatch entry per service)."""
    with open(PAPER) as f:
        d = yaml.safe_load(f)
    base = d["services"][0]
    base.pop("vip6", None)
    base.pop("protocols", None)
    base["protocol"] = "udp"
    d["services"] = []
    for i in range(n):
        s = copy.deepcopy(base)
        s.update(name="svc%d" % i, vip="198.18.0.%d" % (100 + i), vip_mac="02:00:c6:12:01:%02x" % i,
                 policy={"kind": "src-ip-bits", "bits": bits})
        d["services"].append(s)
    if capacity:
        d["dpu"]["eswitch"]["capacity"] = capacity
    return config.parse(yaml.safe_dump(d, sort_keys=False))


def open_driver(cfg: config.Config, prefix: str) -> GlueDriver:
    """GlueDriver as eswitchd makes it, its ports without packet I/O."""
    cfg = dataclasses.replace(cfg, eswitch=dataclasses.replace(cfg.eswitch,
                                                               eal_args=tuple(default_eal_args(prefix))))
    drv = GlueDriver(cfg)
    specs = [PortSpec(**dict(kw, driver="none", iface=None, rep_iface=None))
             for kw in eswitch_ports.port_specs(cfg)]
    drv.sw = ESwitch(eal_args=list(cfg.eswitch.eal_args), ports=specs, mode=cfg.eswitch.mode)
    drv.open()
    return drv


def install(cfg: config.Config) -> List[plan_mod.Change]:
    """The eSwitch changes that install cfg's plan from empty: pipes, buckets, root."""
    p = plan_mod.plan(cfg)
    return ([plan_mod.Change("eswitch", "add_pipe", pipe) for pipe in p.pipes]
            + [plan_mod.Change("eswitch", "add", e)
               for e in sorted(p.entries, key=lambda e: e.pipe == "root")])


def move(a: config.Config, b: config.Config) -> List[plan_mod.Change]:
    return [c for c in plan_mod.diff(plan_mod.plan(a), plan_mod.plan(b)) if c.plane == "eswitch"]


def attempt(state: EswitchState, changes: List[plan_mod.Change]) -> Dict[str, Any]:
    """Apply; what it did, or the DOCA error it was refused with."""
    try:
        return {"done": state.apply(changes)["applied"]}   # the counts per op, without the versions
    except GlueError as e:
        return {"doca_error": e.doca_error, "call": e.call}


def snapshot(state: EswitchState) -> List[Any]:
    listing = state.listing()
    return sorted(json.dumps(x, sort_keys=True) for x in listing["pipes"] + listing["entries"])


def refusal(state: EswitchState, changes: List[plan_mod.Change]) -> Dict[str, Any]:
    """Apply a change that must fail; say whether it left everything as it was."""
    before = snapshot(state)
    out = attempt(state, changes)
    out["unchanged"] = snapshot(state) == before
    return out


def sc_limits(prefix: str) -> Dict[str, Any]:
    """Declared capacity 8 entries a pipe, 3 pipes a port: 2^3 buckets fit; 2^4 is refused at
    the 9th entry; a second reshaped service's pipe is refused at the 4th pipe; each refusal
    leaves nothing behind, and a change that fits still applies after."""
    out: Dict[str, Any] = {}
    cap = {"entries_per_pipe": 8, "pipes": 3}
    c3 = make_cfg(1, 3, cap)
    drv = open_driver(c3, prefix)
    try:
        state = EswitchState(drv)
        out["install"] = attempt(state, install(c3))
        out["entries"] = refusal(state, move(c3, make_cfg(1, 4, cap)))
        two = make_cfg(2, 3, cap)
        out["second_service"] = attempt(state, move(c3, two))
        # root + 2 service pipes = 3: reshaping one needs a 4th pipe for a moment
        out["pipes"] = refusal(state, move(two, make_cfg(2, 2, cap)))
        reweighted = make_cfg(2, 3, cap)
        reweighted = dataclasses.replace(reweighted, services=tuple(
            dataclasses.replace(s, backends=(dataclasses.replace(s.backends[0], weight=3), s.backends[1]))
            for s in reweighted.services))
        out["fits_after"] = attempt(state, move(two, reweighted))
        out["entries_installed"] = len(state.listing()["entries"])
    finally:
        drv.close()
    return out


def sc_actions(prefix: str, start_bits: int, then_bits: int, n: int = 1) -> Dict[str, Any]:
    """eswitchd started for n services of 2^start_bits buckets (its actions memory sized
    from them) installs them; then a reload to 2^then_bits."""
    out: Dict[str, Any] = {}
    c0 = make_cfg(n, start_bits)
    out["action_entries"] = {s["name"]: s["action_entries"] for s in eswitch_ports.port_specs(c0)}
    drv = open_driver(c0, prefix)
    try:
        state = EswitchState(drv)
        out["install"] = attempt(state, install(c0))
        if then_bits != start_bits:
            out["reload"] = refusal(state, move(c0, make_cfg(n, then_bits)))
    finally:
        drv.close()
    return out


SCENARIOS = {"limits": sc_limits, "actions": sc_actions}


def main() -> int:
    name, kwargs = sys.argv[1], json.loads(sys.argv[2])
    try:
        result = SCENARIOS[name](**kwargs)
    except Exception:
        traceback.print_exc()
        return 1
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the intent needs of the eSwitch and of OVS, against the limits known to bite.

Pure: `needs(cfg)` counts, per port that holds pipes, the pipes and entries the plan puts
there (and what a make-before-break change adds for a moment); `warnings(cfg, flows)`
compares them with the operator's declared eSwitch capacity (dpu.eswitch.capacity),
eswitchd's own root pipe size and the OpenFlow rule count above which OVS is no longer
comfortable; `action_entries(cfg)` sizes each port's actions memory from the same counts.
`xenoflow check-config` prints the warnings; eswitchd passes the sizes to the glue.

The limits and where each comes from are in docs/bluefield.md ("Limits").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Mapping, Optional, Tuple

from . import eswitch_ports

if TYPE_CHECKING:  # config imports eswitch_ports; keep this module import-light too
    from .config import Config

# eswitchd creates each port's root control pipe with this many entries (its dispatch and
# route entries); in switch mode the glue makes one root per e-switch, GLUE_MAX_PORTS times
# as large, of which every port's root is a view.
ROOT_ENTRIES = 1024
GLUE_MAX_PORTS = 16
# OpenFlow rules on one bridge above which we warn: past it a bundle install from empty,
# a dump-flows and ovs-vswitchd's memory (~1 KiB a rule) grow past what the controller's
# budgets (seconds, tens of MB) assume. Our threshold, not an OVS limit.
OVS_FLOWS_PER_BRIDGE = 200_000
# Actions memory: entries with actions a port is sized for, at least (a port with no service
# pipe still gets room for a few), and at most (2^24 x 128 B = 2 GiB, the largest power of
# two doca_flow_port_cfg_set_actions_mem_size's uint32_t takes).
ACTION_ENTRIES_FLOOR = 1024
ACTION_ENTRIES_MAX = 1 << 24


@dataclass(frozen=True)
class PortNeed:
    """What the plan puts on one port's pipes (in switch mode: the e-switch manager's)."""
    port: str
    pipe_entries: Tuple[Tuple[str, int], ...]   # (service, entries with actions of one of its pipes)
    root_entries: int                           # dispatch entries + mirrored routes' entries
    root_limit: int                             # eswitchd's root pipe size here

    @property
    def pipes(self) -> int:
        """The root pipe and one basic pipe per service, in steady state."""
        return 1 + len(self.pipe_entries)

    @property
    def pipes_peak(self) -> int:
        """During a change of shape (bits, policy field, egress) the new pipe is made before
        the old goes: every service reshaped in one change doubles its pipe for a moment."""
        return 1 + 2 * len(self.pipe_entries)

    @property
    def root_entries_peak(self) -> int:
        """A root entry moved to new pipes (a change of shape or limits) has its successor
        installed beside it before it goes: one entry more for a moment (moves go one by one)."""
        return self.root_entries + 1

    @property
    def action_entries(self) -> int:
        """Entries with actions the plan can need here: each service's buckets twice (old
        and new pipe of a make-before-break change), and the root's entries."""
        return 2 * sum(n for _, n in self.pipe_entries) + self.root_entries


def owners(cfg: "Config") -> Dict[str, str]:
    """Port -> the port whose pipes hold its entries: itself in vnf mode; in switch mode the
    switch manager of its e-switch (the first device port of that e-switch brought up)."""
    if cfg.eswitch.mode != "switch":
        return {p.name: p.name for p in cfg.ports}
    esw = eswitch_ports.eswitch_of(cfg.ports, cfg.eswitch.multiport)
    manager: Dict[int, str] = {}
    for p in eswitch_ports.bring_up_order(cfg.ports):
        if eswitch_ports.is_device(p) and p.name in esw:
            manager.setdefault(esw[p.name], p.name)
    return {name: manager.get(n, name) for name, n in esw.items()}


def needs(cfg: "Config") -> Dict[str, PortNeed]:
    """Per port that holds pipes (every port in vnf mode, the managers in switch mode)."""
    owner = owners(cfg)
    switch = cfg.eswitch.mode == "switch"
    pipes: Dict[str, List[Tuple[str, int]]] = {o: [] for o in owner.values()}
    root: Dict[str, int] = {o: 0 for o in owner.values()}
    for svc in cfg.services:
        o = owner.get(svc.ingress, svc.ingress)
        # a basic pipe per address family, a dispatch entry per listener (family x transport)
        pipes.setdefault(o, []).extend((svc.name, svc.policy.buckets) for _ in svc.families)
        # a metered service's drop stages (and service meter pipe) per family: pipes whose
        # entries drop or only meter, with no actions memory (counted as 0 action entries)
        stages = {"service": 1, "bucket": 1, "bucket+service": 3}.get(svc.limits.kind, 0)
        pipes[o].extend((svc.name, 0) for _ in range(stages * len(svc.families)))
        root[o] = root.get(o, 0) + len(svc.listeners)
    if cfg.eswitch.mirror_routes:
        for route in cfg.routes:
            o = owner.get(route.src_port, route.src_port)
            root[o] = root.get(o, 0) + len(route.families)
    limit = ROOT_ENTRIES * GLUE_MAX_PORTS if switch else ROOT_ENTRIES
    return {o: PortNeed(port=o, pipe_entries=tuple(pipes.get(o, ())), root_entries=root[o],
                        root_limit=limit) for o in root}


def pow2_at_least(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def action_entries(cfg: "Config") -> Dict[str, int]:
    """Per port: how many entries with actions its actions memory is sized for -- what the
    plan can need there, rounded up to a power of two, within [FLOOR, MAX]."""
    need = {o: n.action_entries for o, n in needs(cfg).items()}
    floor = ACTION_ENTRIES_FLOOR
    if cfg.fleet is not None and cfg.eswitch.capacity.entries_per_pipe:
        # a fleet DPU opens its ports before the store tells it the services: it is sized
        # for what it declares it can hold (a pipe's entries, twice during a change)
        floor = max(floor, 2 * cfg.eswitch.capacity.entries_per_pipe)
    return {p.name: min(ACTION_ENTRIES_MAX, pow2_at_least(max(floor, need.get(p.name, 0))))
            for p in cfg.ports}


def _declared(key: str) -> str:
    return "declared in dpu.eswitch.capacity.%s" % key


def eswitch_warnings(cfg: "Config") -> List[str]:
    if not cfg.has_eswitch:
        return []
    cap = cfg.eswitch.capacity
    out: List[str] = []
    for o, n in sorted(needs(cfg).items()):
        where = "port %r" % o + (" (switch manager of its e-switch)" if cfg.eswitch.mode == "switch" else "")
        if cap.entries_per_pipe is not None:
            for svc, entries in n.pipe_entries:
                if entries > cap.entries_per_pipe:
                    out.append("service %r: its pipe on %s holds %d entries (2^bits), past the limit of "
                               "%d entries per pipe %s" % (svc, where, entries, cap.entries_per_pipe,
                                                           _declared("entries_per_pipe")))
            if n.root_entries > cap.entries_per_pipe:
                out.append("%s: its root pipe holds %d entries (dispatch and routes), past the limit of "
                           "%d entries per pipe %s" % (where, n.root_entries, cap.entries_per_pipe,
                                                       _declared("entries_per_pipe")))
        if n.root_entries > n.root_limit:
            out.append("%s: its root pipe needs %d entries (dispatch and routes), past the %d eswitchd "
                       "creates it with (ROOT_ENTRIES, xenoflow_ovs/intent/capacity.py)"
                       % (where, n.root_entries, n.root_limit))
        elif n.root_entries_peak > n.root_limit:
            out.append("%s: its root pipe is full (%d entries): moving a root entry to new pipes (a change "
                       "of shape or limits) installs its successor beside it first and needs one entry more"
                       % (where, n.root_entries))
        if cap.pipes is not None:
            if n.pipes > cap.pipes:
                out.append("%s: needs %d pipes (1 root + %d services'), past the limit of %d pipes %s"
                           % (where, n.pipes, len(n.pipe_entries), cap.pipes, _declared("pipes")))
            elif n.pipes_peak > cap.pipes:
                out.append("%s: a change of shape of its services' pipes (bits, policy, egress) makes the "
                           "new pipes before removing the old: up to %d pipes, past the limit of %d pipes %s"
                           % (where, n.pipes_peak, cap.pipes, _declared("pipes")))
    return out


def ovs_warnings(flows: Mapping[str, int]) -> List[str]:
    """`flows`: OpenFlow rules the plan puts on each bridge."""
    return ["bridge %r: %d OpenFlow rules, past %d, above which installs, dumps and ovs-vswitchd's "
            "memory outgrow the controller's budgets (xenoflow's threshold, docs/bluefield.md#limits)"
            % (br, n, OVS_FLOWS_PER_BRIDGE) for br, n in sorted(flows.items()) if n > OVS_FLOWS_PER_BRIDGE]


def warnings(cfg: "Config", flows: Optional[Mapping[str, int]] = None) -> List[str]:
    """Everything check-config warns about capacity, one line each."""
    return eswitch_warnings(cfg) + ovs_warnings(flows or {})

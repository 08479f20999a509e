"""Plan flows <-> OpenFlow 1.3 messages, and the reconcile of a flow dump. Pure.

Nothing here talks to a switch: `Rules` builds messages with `datapath=None`
from the ofproto/parser modules it is given (Ryu's or os-ken's, which agree on
OF 1.3), and the app's one send path sets the datapath and sends them.

Ownership is by cookie (plan.COOKIE_BASE under plan.COOKIE_MASK): reconcile
never deletes, modifies or overwrites a flow whose cookie is not ours.

Comparing what a switch reports with what the plan wants goes through one
normaliser, `canon_match`/`canon_actions`, applied to both sides (the desired
flow is first turned into the very OFPMatch/instructions we would send), so
port names, value spelling (MAC/IP strings vs ints), full or zero masks, field
order and Nicira field aliases cannot make equal flows look different.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import netaddr

from ..intent import plan as plan_mod
from ..intent import render
from ..intent.plan import Change, Flow

ALL_ONES64 = 0xFFFFFFFFFFFFFFFF

# Field widths, to recognise an all-ones mask (OVS reports it as "no mask").
FIELD_BITS = {
    "in_port": 32, "eth_dst": 48, "eth_src": 48, "eth_type": 16, "vlan_vid": 13,
    "arp_op": 16, "arp_spa": 32, "arp_tpa": 32, "arp_sha": 48, "arp_tha": 48,
    "ip_proto": 8, "ipv4_src": 32, "ipv4_dst": 32,
    "udp_src": 16, "udp_dst": 16, "tcp_src": 16, "tcp_dst": 16,
}
MAC_FIELDS = ("eth_dst", "eth_src", "arp_sha", "arp_tha")
IPV4_FIELDS = ("ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa")
OFPP_IN_PORT, OFPP_NORMAL = 0xFFFFFFF8, 0xFFFFFFFA   # OF 1.3 reserved ports
CanonMatch = Tuple[Tuple[str, int, Optional[int]], ...]
CanonActions = Tuple[Tuple[Any, ...], ...]
Key = Tuple[int, int, CanonMatch]  # (table, priority, match): a flow's identity in OF 1.3


class UnresolvedPort(LookupError):
    """A flow names a port the switch does not (yet) have."""


# ---------------------------------------------------------------- normalisation


def field_name(name: str) -> str:
    """OXM name of a field: Ryu/os-ken decode Nicira-class (NXM_OF_*) fields as
    '<name>_nxm'; OVS may report a move's fields in either class."""
    return name[:-4] if name.endswith("_nxm") else name


def _num(v: Any) -> int:
    if isinstance(v, (bytes, bytearray)):
        return int.from_bytes(v, "big")
    if isinstance(v, str):
        if ":" in v:
            return int(netaddr.EUI(v))
        if "." in v:
            return int(netaddr.IPAddress(v))
        return int(v, 0)
    return int(v)


def canon_field(name: str, value: Any) -> Optional[Tuple[str, int, Optional[int]]]:
    """(field, value, mask) with ints; mask None when exact; None when the mask is 0."""
    name = field_name(name)
    if isinstance(value, tuple):
        val, mask = _num(value[0]), _num(value[1])
        bits = FIELD_BITS.get(name)
        if mask == 0:
            return None
        if bits is not None and mask == (1 << bits) - 1:
            return (name, val, None)
        return (name, val & mask, mask)
    return (name, _num(value), None)


def canon_match(match: Any) -> CanonMatch:
    """Canonical form of an OFPMatch (parsed from a switch or built by us)."""
    out = []
    for name, value in match.items():
        c = canon_field(name, value)
        if c is not None:
            out.append(c)
    return tuple(sorted(out, key=lambda t: t[0]))


def canon_actions(instructions: Sequence[Any], ofp: Any) -> CanonActions:
    out: List[Tuple[Any, ...]] = []
    for inst in instructions:
        actions = getattr(inst, "actions", None)
        if actions is None or inst.type != ofp.OFPIT_APPLY_ACTIONS:
            out.append(("instruction", inst.type, repr(getattr(inst, "to_jsondict", lambda: inst)())))
            continue
        for a in actions:
            out.append(_canon_action(a, ofp))
    return tuple(out)


def _canon_action(a: Any, ofp: Any) -> Tuple[Any, ...]:
    name = type(a).__name__
    if name == "OFPActionOutput":
        # max_len only means something for output to the controller
        return ("output", a.port) + ((a.max_len,) if a.port == ofp.OFPP_CONTROLLER else ())
    if name == "OFPActionSetField":
        c = canon_field(a.key, a.value)
        return ("set_field", c[0], c[1]) if c else ("set_field", a.key)
    if name == "NXActionRegMove":
        return ("move", field_name(a.src_field), field_name(a.dst_field), a.n_bits,
                a.src_ofs, a.dst_ofs)
    js = a.to_jsondict() if hasattr(a, "to_jsondict") else {name: repr(a)}
    return ("action", repr(sorted(js.items())))


# ---------------------------------------------------------------- messages


@dataclass(frozen=True)
class Installed:
    """One flow as a switch reported it (an OFPFlowStats), normalised."""
    bridge: str
    table: int
    priority: int
    cookie: int
    match: Any                    # the parsed OFPMatch (reused for strict deletes)
    canon_match: CanonMatch
    canon_actions: CanonActions
    packets: int = 0
    bytes: int = 0
    duration: float = 0.0
    text: str = field(default="", compare=False)

    @property
    def key(self) -> Key:
        return (self.table, self.priority, self.canon_match)

    @property
    def ours(self) -> bool:
        return plan_mod.is_ours(self.cookie)


class Rules:
    """Builds OF 1.3 messages from plan flows with a given ofproto + parser pair."""

    def __init__(self, ofp: Any, parser: Any):
        self.ofp, self.parser = ofp, parser

    @classmethod
    def default(cls) -> "Rules":
        from . import compat
        return cls(compat.ofproto_v1_3, compat.ofproto_v1_3_parser)

    # -- pieces

    def port_no(self, name: str, ports: Mapping[str, int]) -> int:
        if name == "IN_PORT":
            return self.ofp.OFPP_IN_PORT
        try:
            return ports[name]
        except KeyError:
            raise UnresolvedPort(name)

    def match(self, flow: Flow, ports: Mapping[str, int]) -> Any:
        fields = {}
        for name, value in flow.match:
            fields[name] = self.port_no(value, ports) if name == "in_port" else value
        return self.parser.OFPMatch(**fields)

    def actions(self, flow: Flow, ports: Mapping[str, int]) -> List[Any]:
        p, ofp = self.parser, self.ofp
        out = []
        for a in flow.actions:
            if a[0] == "output":
                out.append(p.OFPActionOutput(self.port_no(a[1], ports), 0))
            elif a[0] == "normal":
                out.append(p.OFPActionOutput(ofp.OFPP_NORMAL, 0))
            elif a[0] == "set_field":
                out.append(p.OFPActionSetField(**{a[1]: a[2]}))
            elif a[0] == "move":
                out.append(p.NXActionRegMove(src_field=a[1], dst_field=a[2],
                                             n_bits=FIELD_BITS[a[1]]))
            else:
                raise ValueError("unknown action %r in %s" % (a, render.to_ofctl(flow)))
        return out

    def instructions(self, flow: Flow, ports: Mapping[str, int]) -> List[Any]:
        acts = self.actions(flow, ports)
        # A drop is no instruction at all (what a switch reports back for it).
        return [self.parser.OFPInstructionActions(self.ofp.OFPIT_APPLY_ACTIONS, acts)] if acts else []

    def key(self, flow: Flow, ports: Mapping[str, int]) -> Key:
        return (flow.table, flow.priority, canon_match(self.match(flow, ports)))

    def desired(self, flow: Flow, ports: Mapping[str, int]) -> Tuple[Key, CanonActions]:
        return self.key(flow, ports), canon_actions(self.instructions(flow, ports), self.ofp)

    # -- messages (datapath=None: the send path fills it in)

    def _flow_mod(self, command: int, table: int, priority: int, match: Any, cookie: int,
                  cookie_mask: int, instructions: Sequence[Any] = (), flags: int = 0) -> Any:
        ofp = self.ofp
        return self.parser.OFPFlowMod(
            datapath=None, cookie=cookie, cookie_mask=cookie_mask, table_id=table,
            command=command, idle_timeout=0, hard_timeout=0, priority=priority,
            buffer_id=ofp.OFP_NO_BUFFER, out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
            flags=flags, match=match, instructions=list(instructions))

    def add(self, flow: Flow, ports: Mapping[str, int]) -> Any:
        """OFPFC_ADD: installs, or atomically replaces the flow with the same match
        and priority (used when the cookie changes: MODIFY cannot change it)."""
        # SEND_FLOW_REM: a deleted flow reports its final counts (counter bookkeeping).
        return self._flow_mod(self.ofp.OFPFC_ADD, flow.table, flow.priority,
                              self.match(flow, ports), flow.cookie, 0,
                              self.instructions(flow, ports), self.ofp.OFPFF_SEND_FLOW_REM)

    def modify(self, flow: Flow, ports: Mapping[str, int]) -> Any:
        """OFPFC_MODIFY_STRICT restricted to this exact cookie: new actions, same
        counters and duration."""
        return self._flow_mod(self.ofp.OFPFC_MODIFY_STRICT, flow.table, flow.priority,
                              self.match(flow, ports), flow.cookie, ALL_ONES64,
                              self.instructions(flow, ports))

    def delete(self, item: Any, ports: Mapping[str, int]) -> Any:
        """OFPFC_DELETE_STRICT of one flow, only if its cookie is ours."""
        if isinstance(item, Installed):
            match = self.parser.OFPMatch(**dict(item.match.items()))
        else:
            match = self.match(item, ports)
        return self._flow_mod(self.ofp.OFPFC_DELETE_STRICT, item.table, item.priority, match,
                              plan_mod.COOKIE_BASE, plan_mod.COOKIE_MASK)

    def barrier(self) -> Any:
        return self.parser.OFPBarrierRequest(None)

    def flow_stats_request(self, cookie: int = 0, cookie_mask: int = 0) -> Any:
        ofp = self.ofp
        return self.parser.OFPFlowStatsRequest(
            None, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, cookie, cookie_mask,
            self.parser.OFPMatch())

    def installed(self, bridge: str, stat: Any) -> Installed:
        return Installed(bridge=bridge, table=stat.table_id, priority=stat.priority,
                         cookie=stat.cookie, match=stat.match,
                         canon_match=canon_match(stat.match),
                         canon_actions=canon_actions(stat.instructions, self.ofp),
                         packets=stat.packet_count, bytes=stat.byte_count,
                         duration=stat.duration_sec + stat.duration_nsec / 1e9,
                         text=describe_installed(stat))

    # -- the send path

    def change_key(self, ch: Change, ports: Mapping[str, int]) -> Key:
        if isinstance(ch.item, Installed):
            return ch.item.key
        return self.key(ch.item, ports)

    def batch(self, changes: Iterable[Change], ports: Mapping[str, int]) -> List[Any]:
        """The messages for one bridge's OVS changes: adds and modifies in the given
        order, then deletes in the given order (make-before-break), without
        duplicates, a delete dropped when the same flow is (re)installed in the
        batch, and a final barrier. Raises UnresolvedPort."""
        installs: Dict[Key, Change] = {}
        deletes: Dict[Key, Change] = {}
        for ch in changes:
            if ch.plane != "ovs":
                continue
            k = self.change_key(ch, ports)
            if ch.op == "delete":
                deletes.setdefault(k, ch)
            elif ch.op in ("add", "modify"):
                installs.pop(k, None)   # the later intent for the same flow wins
                installs[k] = ch
            else:
                raise ValueError("unknown OVS change %r" % ch.op)
        msgs = []
        for ch in installs.values():
            old_cookie = getattr(ch.old, "cookie", None)
            if ch.op == "modify" and old_cookie == ch.item.cookie:
                msgs.append(self.modify(ch.item, ports))
            else:
                msgs.append(self.add(ch.item, ports))
        for k, ch in deletes.items():
            if k not in installs:
                msgs.append(self.delete(ch.item, ports))
        if msgs:
            msgs.append(self.barrier())
        return msgs


def split_by_bridge(changes: Iterable[Change]) -> Dict[str, List[Change]]:
    out: Dict[str, List[Change]] = {}
    for ch in changes:
        if ch.plane == "ovs":
            out.setdefault(ch.item.bridge, []).append(ch)
    return out


def phases(changes: Sequence[Change]) -> List[Tuple[str, List[Change]]]:
    """Cut a plan.diff into consecutive runs by plane, in diff order:
    [("ovs", adds/modifies), ("eswitch", ...), ("ovs", deletes)] (runs may be absent)."""
    out: List[Tuple[str, List[Change]]] = []
    for ch in changes:
        if out and out[-1][0] == ch.plane:
            out[-1][1].append(ch)
        else:
            out.append((ch.plane, [ch]))
    return out


# ---------------------------------------------------------------- reconcile


@dataclass
class Reconcile:
    changes: List[Change]
    conflicts: List[Tuple[Flow, Installed]]   # a foreign flow sits where ours should
    unresolved: List[Tuple[Flow, str]]        # flows waiting for a port
    ours: int = 0
    foreign: int = 0

    def counts(self) -> Dict[str, int]:
        c = {"add": 0, "modify": 0, "delete": 0}
        for ch in self.changes:
            c[ch.op] += 1
        c["conflict"] = len(self.conflicts)
        c["unresolved"] = len(self.unresolved)
        return c


def reconcile(rules: Rules, desired: Sequence[Flow], installed: Sequence[Installed],
              ports: Mapping[str, int]) -> Reconcile:
    """Changes that make a bridge's flows of OUR cookie equal the desired ones:
    missing -> add; same match/priority but other actions or cookie -> modify;
    ours but not desired -> delete. Foreign flows are never touched: one that sits
    at a desired flow's match and priority is reported as a conflict, not replaced.
    While a desired flow cannot be resolved (a port is missing), nothing is deleted
    (the unresolved flow's installed copy could not be told from a stale one)."""
    want: Dict[Key, Tuple[Flow, CanonActions]] = {}
    unresolved: List[Tuple[Flow, str]] = []
    for f in desired:
        try:
            k, acts = rules.desired(f, ports)
        except UnresolvedPort as exc:
            unresolved.append((f, exc.args[0]))
            continue
        want[k] = (f, acts)
    ours = {i.key: i for i in installed if i.ours}
    foreign = {i.key: i for i in installed if not i.ours}
    changes: List[Change] = []
    conflicts: List[Tuple[Flow, Installed]] = []
    for k, (f, acts) in want.items():
        have = ours.get(k)
        if have is None:
            if k in foreign:
                conflicts.append((f, foreign[k]))
            else:
                changes.append(Change("ovs", "add", f))
        elif have.canon_actions != acts or have.cookie != f.cookie:
            changes.append(Change("ovs", "modify", f, have))
    if not unresolved:
        changes += [Change("ovs", "delete", i) for k, i in ours.items() if k not in want]
    return Reconcile(changes=changes, conflicts=conflicts, unresolved=unresolved,
                     ours=len(ours), foreign=len(foreign))


def _plain(name: str, v: int) -> Any:
    """A canonical int back in the plan's spelling (MAC / dotted quad / int)."""
    if name in MAC_FIELDS:
        return ":".join("%02x" % (v >> s & 0xFF) for s in range(40, -8, -8))
    if name in IPV4_FIELDS:
        return str(netaddr.IPAddress(v))
    return v


def to_plan_flow(inst: Installed, port_names: Mapping[int, str],
                 attribution: Optional[Any] = None) -> Flow:
    """An installed flow as a plan Flow (ports by name), so that it compares with the
    plan's flows by key and actions (consistency.check). `attribution(cookie,
    actions) -> (kind, owner, backend)` names it; else the cookie's kind bits do."""
    fields: Dict[str, Any] = {}
    for name, v, m in inst.canon_match:
        if name == "in_port" and m is None:
            fields[name] = port_names.get(v, str(v))
        else:
            fields[name] = _plain(name, v) if m is None else (_plain(name, v), _plain(name, m))
    order = [f for f in plan_mod.FIELD_ORDER if f in fields]
    order += sorted(f for f in fields if f not in plan_mod.FIELD_ORDER)
    actions: List[Tuple[Any, ...]] = []
    for a in inst.canon_actions:
        if a[0] == "output" and a[1] == OFPP_NORMAL:
            actions.append(("normal",))
        elif a[0] == "output":
            actions.append(("output", "IN_PORT" if a[1] == OFPP_IN_PORT
                            else port_names.get(a[1], str(a[1]))))
        elif a[0] == "set_field" and len(a) == 3:
            actions.append(("set_field", a[1], _plain(a[1], a[2])))
        elif a[0] == "move":
            actions.append(("move", a[1], a[2]))
        else:
            actions.append(("unknown",) + tuple(a))
    attr = attribution(inst.cookie, inst.canon_actions) if attribution else None
    if attr is None:
        attr = (plan_mod.kind_of_cookie(inst.cookie) or "table_miss", "%#x" % inst.cookie, None)
    return Flow(inst.bridge, inst.priority, tuple((f, fields[f]) for f in order), tuple(actions),
                attr[0], attr[1], backend=attr[2], table=inst.table)


def describe_installed(stat: Any) -> str:
    m = ",".join("%s=%s" % (k, v if not isinstance(v, tuple) else "%s/%s" % v)
                 for k, v in stat.match.items())
    return "cookie=%#x,table=%d,priority=%d%s" % (stat.cookie, stat.table_id, stat.priority,
                                                 "," + m if m else "")


def describe_change(ch: Change) -> str:
    if isinstance(ch.item, Installed):
        return "%s %s: %s" % (ch.op, ch.item.bridge, ch.item.text)
    return "%s %s: %s" % (ch.op, ch.item.bridge, render.to_ofctl(ch.item))

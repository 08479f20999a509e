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

import base64
import ipaddress
import socket
import struct
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

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
    "ipv6_src": 128, "ipv6_dst": 128, "icmpv6_type": 8, "icmpv6_code": 8,
    "ipv6_nd_target": 128, "ipv6_nd_sll": 48, "ipv6_nd_tll": 48,
    "nd_reserved": 32, "nd_options_type": 8,
}
MAC_FIELDS = ("eth_dst", "eth_src", "arp_sha", "arp_tha", "ipv6_nd_sll", "ipv6_nd_tll")
IPV4_FIELDS = ("ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa")
IPV6_FIELDS = frozenset(("ipv6_src", "ipv6_dst", "ipv6_nd_target"))
# OVS's ND extension fields (nd.py): OXM class 0x1000 (Ericsson), field number and
# bytes. The frameworks know them only as their generic 'field_<class << 7 | field>'
# with a base64 value, which they encode and decode as OVS does.
ERIC_CLASS = 0x1000
ERIC_FIELDS = {"nd_reserved": (1, 4), "nd_options_type": (2, 1)}
_ERIC_BY_FW = {"field_%d" % (ERIC_CLASS << 7 | num): name for name, (num, _) in ERIC_FIELDS.items()}
_FW_BY_ERIC = {name: fw for fw, name in _ERIC_BY_FW.items()}
OFPP_IN_PORT, OFPP_NORMAL = 0xFFFFFFF8, 0xFFFFFFFA   # OF 1.3 reserved ports
CanonMatch = Tuple[Tuple[str, int, Optional[int]], ...]
CanonActions = Tuple[Tuple[Any, ...], ...]
Key = Tuple[int, int, CanonMatch]  # (table, priority, match): a flow's identity in OF 1.3
# a meter change's op -> its OFPMeterMod command
METER_OPS = {"add_meter": "add", "modify_meter": "modify", "delete_meter": "delete"}


class UnresolvedPort(LookupError):
    """A flow names a port the switch does not (yet) have."""


# ---------------------------------------------------------------- normalisation


def field_name(name: str) -> str:
    """OXM name of a field: Ryu/os-ken decode Nicira-class (NXM_OF_*) fields as
    '<name>_nxm'; OVS may report a move's fields in either class. The ND extension
    fields come back under their generic names."""
    if name.endswith("_nxm"):
        return name[:-4]
    return _ERIC_BY_FW.get(name, name)


def _num(v: Any) -> int:
    if isinstance(v, int):
        return v
    if isinstance(v, (bytes, bytearray)):
        return int.from_bytes(v, "big")
    if isinstance(v, str):
        if ":" in v:
            if len(v) == 17:         # the plan's spelling: six colon-separated octets
                return int(v.replace(":", ""), 16)
            return int(netaddr.EUI(v))
        if "." in v:
            if v.count(".") == 3:    # a dotted quad: the C parser, not netaddr (hot at 2^16 flows)
                try:
                    return int.from_bytes(socket.inet_aton(v), "big")
                except OSError:
                    pass
            return int(netaddr.IPAddress(v))
        return int(v, 0)
    return int(v)


_CANON: Dict[Tuple[str, Any], Any] = {}    # canon_field of plain values: the plan repeats
_CANON_MAX = 1 << 14                       # most (ports, VIPs, MACs); bounded, for bucket values


def canon_field(name: str, value: Any) -> Optional[Tuple[str, int, Optional[int]]]:
    """(field, value, mask) with ints; mask None when exact; None when the mask is 0."""
    try:
        return _CANON[(name, value)]
    except KeyError:
        pass
    except TypeError:          # unhashable (a framework's list): not cached
        return _canon_field(name, value)
    c = _canon_field(name, value)
    if len(_CANON) >= _CANON_MAX:
        _CANON.clear()
    _CANON[(name, value)] = c
    return c


def _num6(v: Any) -> int:
    """An IPv6 address in any spelling (text, bytes, int) as an int."""
    if isinstance(v, str):
        return int.from_bytes(socket.inet_pton(socket.AF_INET6, v), "big")
    return _num(v)


def _num_eric(v: Any) -> int:
    """An ND extension field's value: an int (the plan), or the frameworks' base64."""
    if isinstance(v, str):
        return int.from_bytes(base64.b64decode(v), "big")
    return _num(v)


# Fields whose values a string spells otherwise than _num reads it (an IPv6 address
# can have 17 characters and colons, like a MAC).
_NUM_BY_FIELD = dict({f: _num6 for f in IPV6_FIELDS}, **{f: _num_eric for f in ERIC_FIELDS})


def _canon_field(name: str, value: Any) -> Optional[Tuple[str, int, Optional[int]]]:
    name = field_name(name)
    num = _NUM_BY_FIELD.get(name, _num)
    if isinstance(value, tuple):
        val, mask = num(value[0]), num(value[1])
        bits = FIELD_BITS.get(name)
        if mask == 0:
            return None
        if bits is not None and mask == (1 << bits) - 1:
            return (name, val, None)
        return (name, val & mask, mask)
    return (name, num(value), None)


def canon_match(match: Any) -> CanonMatch:
    """Canonical form of an OFPMatch (parsed from a switch or built by us)."""
    out = []
    for name, value in match.items():
        c = canon_field(name, value)
        if c is not None:
            out.append(c)
    return tuple(sorted(out, key=lambda t: t[0]))


def canon_actions(instructions: Sequence[Any], ofp: Any) -> CanonActions:
    """The instructions as one tuple: ("meter", id) first (OF 1.3 runs the meter before
    the actions, and OVS reports it first), then the applied actions, then goto_table."""
    meters: List[Tuple[Any, ...]] = []
    out: List[Tuple[Any, ...]] = []
    for inst in instructions:
        actions = getattr(inst, "actions", None)
        if inst.type == ofp.OFPIT_METER:
            meters.append(("meter", inst.meter_id))
            continue
        if inst.type == ofp.OFPIT_GOTO_TABLE:
            out.append(("goto_table", inst.table_id))
            continue
        if actions is None or inst.type != ofp.OFPIT_APPLY_ACTIONS:
            out.append(("instruction", inst.type, repr(getattr(inst, "to_jsondict", lambda: inst)())))
            continue
        for a in actions:
            out.append(_canon_action(a, ofp))
    return tuple(meters + out)


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


class Installed(NamedTuple):
    """One flow as a switch reported it (an OFPFlowStats), normalised. A tuple: a dump
    of 2^16 flows holds 2^16 of these (a third of a dataclass's memory)."""
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

    @property
    def text(self) -> str:
        """For the log; rendered when asked (a dump of 2^16 flows is rarely logged)."""
        m = ",".join("%s=%s" % (n, _plain(n, v) if mask is None
                                else "%s/%s" % (_plain(n, v), _plain(n, mask)))
                     for n, v, mask in self.canon_match)
        return "cookie=%#x,table=%d,priority=%d%s" % (self.cookie, self.table, self.priority,
                                                     "," + m if m else "")

    @property
    def key(self) -> Key:
        return (self.table, self.priority, self.canon_match)

    @property
    def ours(self) -> bool:
        return plan_mod.is_ours(self.cookie)


class MeterConfig(NamedTuple):
    """A meter as a switch reports it: its one drop band's rate and burst (None when it
    is not one drop band) and its flags."""
    pps: Optional[int]
    burst: Optional[int]
    flags: int


class InstalledMeter(NamedTuple):
    """A meter on a bridge that no plan meter stands for (what reconcile deletes)."""
    where: str
    meter_id: int
    pps: Optional[int] = None
    burst: Optional[int] = None


def meter_key(m: Any) -> Key:
    """A meter's place among a batch's keys (flows' keys start with a table number)."""
    return ("meter", m.meter_id)  # type: ignore[return-value]


class Rules:
    """Builds OF 1.3 messages from plan flows with a given ofproto + parser pair."""

    def __init__(self, ofp: Any, parser: Any):
        self.ofp, self.parser = ofp, parser

    @classmethod
    def default(cls) -> "Rules":
        """With the running framework; its flow stats replies then carry RawFlowStats."""
        from . import compat
        install_raw_flow_stats(compat.ofproto_v1_3_parser)
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
                out.append(p.OFPActionSetField(**dict((_set_field_arg(a[1], a[2]),))))
            elif a[0] == "move":
                out.append(p.NXActionRegMove(src_field=a[1], dst_field=a[2],
                                             n_bits=FIELD_BITS[a[1]]))
            elif a[0] in ("goto_table", "meter"):
                continue      # instructions of their own (instructions())
            else:
                raise ValueError("unknown action %r in %s" % (a, render.to_ofctl(flow)))
        return out

    def instructions(self, flow: Flow, ports: Mapping[str, int]) -> List[Any]:
        acts = self.actions(flow, ports)
        # the meter first: the order OF 1.3 runs instructions in (and OVS reports them)
        out = [self.parser.OFPInstructionMeter(a[1]) for a in flow.actions if a[0] == "meter"]
        # A drop is no instruction at all (what a switch reports back for it).
        if acts:
            out.append(self.parser.OFPInstructionActions(self.ofp.OFPIT_APPLY_ACTIONS, acts))
        # goto_table: after the actions (OF 1.3 runs apply-actions first, in any order given)
        out += [self.parser.OFPInstructionGotoTable(a[1]) for a in flow.actions if a[0] == "goto_table"]
        return out

    def key(self, flow: Flow, ports: Mapping[str, int]) -> Key:
        """The flow's identity as a switch would report it. Straight from the plan's
        values (the same normaliser as for a dump, without building the OFPMatch:
        a test holds both ways equal), as it is computed for every flow sent."""
        out = []
        for name, value in flow.match:
            c = canon_field(name, self.port_no(value, ports) if name == "in_port" else value)
            if c is not None:
                out.append(c)
        return (flow.table, flow.priority, tuple(sorted(out, key=lambda t: t[0])))

    def desired(self, flow: Flow, ports: Mapping[str, int]) -> Tuple[Key, CanonActions]:
        return self.key(flow, ports), self.canon_plan_actions(flow, ports)

    def canon_plan_actions(self, flow: Flow, ports: Mapping[str, int]) -> CanonActions:
        """canon_actions(self.instructions(flow)) without building the instructions."""
        out: List[Tuple[Any, ...]] = []
        for a in flow.actions:
            if a[0] == "output":
                out.append(("output", self.port_no(a[1], ports)))
            elif a[0] == "normal":
                out.append(("output", self.ofp.OFPP_NORMAL))
            elif a[0] == "set_field":
                c = canon_field(a[1], a[2])
                out.append(("set_field", c[0], c[1]) if c else ("set_field", a[1]))
            elif a[0] == "move":
                out.append(("move", a[1], a[2], FIELD_BITS[a[1]], 0, 0))
            elif a[0] in ("goto_table", "meter"):
                continue
            else:
                raise ValueError("unknown action %r in %s" % (a, render.to_ofctl(flow)))
        # a switch reports the meter first and the goto instruction after the apply-actions
        meters = [("meter", a[1]) for a in flow.actions if a[0] == "meter"]
        out += [("goto_table", a[1]) for a in flow.actions if a[0] == "goto_table"]
        return tuple(meters + out)

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
        if isinstance(item, Installed) and item.match is None:
            match = self.parser.OFPMatch(**{f: (_plain(f, v) if m is None
                                                else (_plain(f, v), _plain(f, m)))
                                             for f, v, m in item.canon_match})
        elif isinstance(item, Installed):
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

    # -- roles

    def role_request(self, role: str, generation_id: int) -> Any:
        ofp = self.ofp
        code = {"equal": ofp.OFPCR_ROLE_EQUAL, "master": ofp.OFPCR_ROLE_MASTER,
                "slave": ofp.OFPCR_ROLE_SLAVE}[role]
        return self.parser.OFPRoleRequest(None, code, generation_id)

    def role_name(self, code: int) -> str:
        ofp = self.ofp
        return {ofp.OFPCR_ROLE_EQUAL: "equal", ofp.OFPCR_ROLE_MASTER: "master",
                ofp.OFPCR_ROLE_SLAVE: "slave", ofp.OFPCR_ROLE_NOCHANGE: "nochange"}.get(code, str(code))

    def is_slave_error(self, err_type: int, code: int) -> bool:
        """OFPET_BAD_REQUEST/OFPBRC_IS_SLAVE: a write this connection may not make."""
        return err_type == self.ofp.OFPET_BAD_REQUEST and code == self.ofp.OFPBRC_IS_SLAVE

    # -- meters (no cookie: ours by id, plan.is_our_meter)

    def meter_flags(self) -> int:
        ofp = self.ofp
        return ofp.OFPMF_PKTPS | ofp.OFPMF_BURST | ofp.OFPMF_STATS

    def meter_mod(self, command: str, m: Any) -> Any:
        """OFPMeterMod of a plan meter (or an InstalledMeter, to delete): command add |
        modify (one drop band: m.pps packets/s, m.burst packets) | delete."""
        ofp, p = self.ofp, self.parser
        if command == "delete":
            return p.OFPMeterMod(None, command=ofp.OFPMC_DELETE, flags=0, meter_id=m.meter_id,
                                 bands=[])
        cmd = {"add": ofp.OFPMC_ADD, "modify": ofp.OFPMC_MODIFY}[command]
        return p.OFPMeterMod(None, command=cmd, flags=self.meter_flags(), meter_id=m.meter_id,
                             bands=[p.OFPMeterBandDrop(rate=m.pps, burst_size=m.burst)])

    def meter_config_request(self) -> Any:
        return self.parser.OFPMeterConfigStatsRequest(None, 0, self.ofp.OFPM_ALL)

    def meter_stats_request(self) -> Any:
        return self.parser.OFPMeterStatsRequest(None, 0, self.ofp.OFPM_ALL)

    def meter_configs(self, body: Iterable[Any]) -> Dict[int, "MeterConfig"]:
        """A meter config reply's body: {meter id: MeterConfig}. A meter that is not one
        drop band reads as pps/burst None (unequal to any plan meter: modified)."""
        out = {}
        for st in body:
            bands = list(st.bands or ())
            if len(bands) == 1 and bands[0].type == self.ofp.OFPMBT_DROP:
                out[st.meter_id] = MeterConfig(bands[0].rate, bands[0].burst_size, st.flags)
            else:
                out[st.meter_id] = MeterConfig(None, None, st.flags)
        return out

    def meter_counts(self, body: Iterable[Any]) -> Dict[int, Tuple[int, int, int]]:
        """A meter stats reply's body: {meter id: (packets in, bytes in, packets its
        bands dropped)}."""
        return {st.meter_id: (st.packet_in_count, st.byte_in_count,
                              sum(b.packet_band_count for b in st.band_stats or ()))
                for st in body}

    def installed(self, bridge: str, stat: Any) -> Installed:
        """A flow stats entry, normalised: from its bytes when it is a RawFlowStats (the
        framework's objects are never built for a plain flow), else from its objects."""
        raw = getattr(stat, "raw", None)
        cm = ca = None
        if raw is not None:
            cm, ca = _raw_canon(raw, self.ofp)
        if cm is None:
            cm = canon_match(stat.match)
        if ca is None:
            ca = canon_actions(stat.instructions, self.ofp)
        return Installed(bridge=bridge, table=stat.table_id, priority=stat.priority,
                         cookie=stat.cookie, match=None if raw is not None else stat.match,
                         canon_match=cm, canon_actions=ca,
                         packets=stat.packet_count, bytes=stat.byte_count,
                         duration=stat.duration_sec + stat.duration_nsec / 1e9)

    # -- the send path

    def change_key(self, ch: Change, ports: Mapping[str, int]) -> Key:
        if ch.op in METER_OPS:
            return meter_key(ch.item)
        if isinstance(ch.item, Installed):
            return ch.item.key
        return self.key(ch.item, ports)

    def ops(self, changes: Iterable[Change], ports: Mapping[str, int],
            held: Optional[List[Tuple[Change, str]]] = None) -> List[Tuple[str, Any, Any]]:
        """One bridge's OVS changes as the (op, item, key) to send, op add | modify |
        delete | barrier: adds and modifies in the given order, then deletes in the given
        order (make-before-break), without duplicates, a delete dropped when the same flow
        is (re)installed in the batch, and a final barrier. Meters alike, around the flows:
        theirs adds and modifies first (a flow naming a missing meter is refused), their
        deletes last (deleting a meter deletes the flows that use it). A change naming a
        port the switch lacks raises UnresolvedPort, or with `held` is left out and listed
        there."""
        installs: Dict[Key, Change] = {}
        deletes: Dict[Key, Change] = {}
        m_installs: Dict[Key, Change] = {}
        m_deletes: Dict[Key, Change] = {}
        for ch in changes:
            if ch.plane != "ovs":
                continue
            try:
                k = self.change_key(ch, ports)
            except UnresolvedPort as exc:
                if held is None:
                    raise
                held.append((ch, exc.args[0]))
                continue
            if ch.op == "delete":
                deletes.setdefault(k, ch)
            elif ch.op in ("add", "modify"):
                installs.pop(k, None)   # the later intent for the same flow wins
                installs[k] = ch
            elif ch.op == "delete_meter":
                m_deletes.setdefault(k, ch)
            elif ch.op in METER_OPS:
                m_installs.pop(k, None)
                m_installs[k] = ch
            else:
                raise ValueError("unknown OVS change %r" % ch.op)
        out: List[Tuple[str, Any, Any]] = [(ch.op, ch.item, k) for k, ch in m_installs.items()]
        for k, ch in installs.items():
            old_cookie = getattr(ch.old, "cookie", None)
            same = ch.op == "modify" and old_cookie == ch.item.cookie
            out.append(("modify" if same else "add", ch.item, k))
        out += [("delete", ch.item, k) for k, ch in deletes.items() if k not in installs]
        out += [("delete_meter", ch.item, k) for k, ch in m_deletes.items() if k not in m_installs]
        if out:
            out.append(("barrier", None, None))
        return out

    def message(self, op: str, item: Any, ports: Mapping[str, int]) -> Any:
        if op == "barrier":
            return self.barrier()
        if op in METER_OPS:
            return self.meter_mod(METER_OPS[op], item)
        return {"add": self.add, "modify": self.modify, "delete": self.delete}[op](item, ports)

    def batch(self, changes: Iterable[Change], ports: Mapping[str, int],
              held: Optional[List[Tuple[Change, str]]] = None) -> List[Any]:
        """`ops` as the framework's message objects (datapath None)."""
        return [self.message(op, item, ports) for op, item, _ in self.ops(changes, ports, held)]

    def wire(self, changes: Iterable[Change], ports: Mapping[str, int],
             held: Optional[List[Tuple[Change, str]]] = None) -> List[bytes]:
        """`ops` as encoded OpenFlow 1.3 messages, xid 0 (the send path writes it at
        bytes 4..8). What the send path uses: the framework's message objects cost
        ~0.5 ms a flow to build and serialize, many seconds for 2^16 buckets."""
        acts: Dict[Any, Optional[bytes]] = {}    # a batch's flows share a few action lists
        return [self.encode(op, item, ports, k, acts) for op, item, k in self.ops(changes, ports, held)]

    def encode(self, op: str, item: Any, ports: Mapping[str, int], key: Optional[Key] = None,
               acts_cache: Optional[Dict[Any, Optional[bytes]]] = None) -> bytes:
        """The bytes `message(op, item)` serializes to (a test holds them equal);
        encoded here for the fields and actions a plan uses, else by the framework.
        `key`: the item's, when known; `acts_cache`: actions encoded with these ports."""
        ofp = self.ofp
        if op == "barrier":
            return struct.pack("!BBHI", ofp.OFP_VERSION, ofp.OFPT_BARRIER_REQUEST, 8, 0)
        if key is None:
            key = self.change_key(Change("ovs", op, item), ports)
        if op in METER_OPS:      # few: the framework's way
            return self.serialized(self.message(op, item, ports))
        match = _encode_oxm(key[2])
        insts: Optional[bytes] = b""
        if op != "delete":
            if acts_cache is None:
                insts = _encode_instructions(item.actions, self, ports)
            else:
                try:
                    insts = acts_cache[item.actions]
                except KeyError:
                    insts = acts_cache[item.actions] = _encode_instructions(item.actions, self, ports)
        if match is None or insts is None:    # something the fast path does not know
            return self.serialized(self.message(op, item, ports))
        if op == "delete":
            command, cookie, mask, flags = (ofp.OFPFC_DELETE_STRICT, plan_mod.COOKIE_BASE,
                                            plan_mod.COOKIE_MASK, 0)
        elif op == "modify":
            command, cookie, mask, flags = ofp.OFPFC_MODIFY_STRICT, item.cookie, ALL_ONES64, 0
        else:
            command, cookie, mask, flags = (ofp.OFPFC_ADD, item.cookie, 0,
                                            ofp.OFPFF_SEND_FLOW_REM)
        length = 48 + len(match) + len(insts)
        head = struct.pack("!BBHIQQBBHHHIIIH2x", ofp.OFP_VERSION, ofp.OFPT_FLOW_MOD, length, 0,
                           cookie, mask, item.table, command, 0, 0, item.priority,
                           ofp.OFP_NO_BUFFER, ofp.OFPP_ANY, ofp.OFPG_ANY, flags)
        return head + match + insts

    def serialized(self, msg: Any) -> bytes:
        """A framework message's bytes, xid 0."""
        msg.datapath = _Stub(self.ofp, self.parser)
        msg.set_xid(0)
        msg.serialize()
        return bytes(msg.buf)

    def aggregate_request(self, cookie: int = 0, cookie_mask: int = 0) -> Any:
        """Packets, bytes and flows of the flows under cookie/cookie_mask, all tables."""
        ofp = self.ofp
        return self.parser.OFPAggregateStatsRequest(
            None, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, cookie, cookie_mask,
            self.parser.OFPMatch())


# ---------------------------------------------------------------- flow stats from bytes


_FLOW_STATS_0 = struct.Struct("!HBxIIHHHH4xQQQ")     # ofp_flow_stats up to its match


class RawFlowStats:
    """A flow stats entry that keeps its bytes and parses its match and instructions
    only when asked (`match`, `instructions`: the framework's objects, as OFPFlowStats
    has them). The framework spells every MAC and address of a dump as text on the way
    (~0.3 ms a flow: many seconds for 2^16 buckets, during which the connection is not
    served); `Rules.installed` reads `raw` itself. `install_raw_flow_stats` makes the
    framework build these for flow stats replies."""

    __slots__ = ("length", "table_id", "duration_sec", "duration_nsec", "priority",
                 "idle_timeout", "hard_timeout", "flags", "cookie", "packet_count",
                 "byte_count", "raw", "_parsed")
    framework: Any = None          # the framework's OFPFlowStats (set by install_raw_flow_stats)

    @classmethod
    def parser(cls, buf: Any, offset: int) -> "RawFlowStats":
        st = cls()
        (st.length, st.table_id, st.duration_sec, st.duration_nsec, st.priority,
         st.idle_timeout, st.hard_timeout, st.flags, st.cookie, st.packet_count,
         st.byte_count) = _FLOW_STATS_0.unpack_from(buf, offset)
        st.raw = bytes(buf[offset:offset + st.length])
        st._parsed = None
        return st

    def _full(self) -> Any:
        if self._parsed is None:
            self._parsed = self.framework.parser(self.raw, 0)
        return self._parsed

    def __getattr__(self, name: str) -> Any:
        """Anything else an OFPFlowStats has (to_jsondict, ...), for the other apps of the
        process (ofctl_rest reads flow stats too): from the parsed entry."""
        if name.startswith("_") or name == "raw":
            raise AttributeError(name)
        return getattr(self._full(), name)

    @property
    def match(self) -> Any:
        return self._full().match

    @property
    def instructions(self) -> Any:
        return self._full().instructions


def install_raw_flow_stats(parser: Any) -> None:
    """Flow stats replies of this framework's OF 1.3 parser carry RawFlowStats, for
    every app of the process: another app in the same manager (ofctl_rest) reads them
    as the framework's OFPFlowStats, parsed when it asks. Idempotent."""
    reply = parser.OFPFlowStatsReply
    if reply.cls_stats_body_cls is not RawFlowStats:
        RawFlowStats.framework = reply.cls_stats_body_cls
        reply.cls_stats_body_cls = RawFlowStats


OXM_BY_NUM = {num: (name, n) for name, (num, n) in {
    "in_port": (0, 4), "eth_dst": (3, 6), "eth_src": (4, 6), "eth_type": (5, 2),
    "vlan_vid": (6, 2), "ip_proto": (10, 1), "ipv4_src": (11, 4), "ipv4_dst": (12, 4),
    "tcp_src": (13, 2), "tcp_dst": (14, 2), "udp_src": (15, 2), "udp_dst": (16, 2),
    "arp_op": (21, 2), "arp_spa": (22, 4), "arp_tpa": (23, 4), "arp_sha": (24, 6),
    "arp_tha": (25, 6), "ipv6_src": (26, 16), "ipv6_dst": (27, 16), "icmpv6_type": (29, 1),
    "icmpv6_code": (30, 1), "ipv6_nd_target": (31, 16), "ipv6_nd_sll": (32, 6),
    "ipv6_nd_tll": (33, 6)}.items()}
ERIC_BY_NUM = {num: (name, n) for name, (num, n) in ERIC_FIELDS.items()}
_OXM_CLASSES = {0x8000: OXM_BY_NUM, ERIC_CLASS: ERIC_BY_NUM}
_HDR = struct.Struct("!HBB")
_HH = struct.Struct("!HH")
_U32 = struct.Struct("!I")


_TLV: Dict[bytes, Any] = {}       # one OXM TLV's bytes -> its canonical field (they repeat)
_UNKNOWN = ("?",)


def _tlv(tlv: bytes) -> Any:
    cls_, fh, _ = _HDR.unpack_from(tlv, 0)
    known = _OXM_CLASSES.get(cls_)
    f = known.get(fh >> 1) if known is not None else None
    if f is None:
        return _UNKNOWN
    name, width = f
    v = int.from_bytes(tlv[4:4 + width], "big")
    if not fh & 1:
        return (name, v, None)
    m = int.from_bytes(tlv[4 + width:4 + 2 * width], "big")
    if m == (1 << 8 * width) - 1 and FIELD_BITS.get(name, 8 * width) == 8 * width:
        return (name, v, None)
    return (name, v & m, m) if m else None


def _raw_oxm(buf: bytes, at: int, end: int) -> Optional[List[Tuple[str, int, Optional[int]]]]:
    """Canonical fields of the OXM TLVs in buf[at:end]; None if one is not a basic
    field of OXM_BY_NUM."""
    out = []
    while at + 4 <= end:
        tlv = buf[at:at + 4 + buf[at + 3]]
        at += len(tlv)
        c = _TLV.get(tlv)
        if c is None:
            c = _tlv(tlv)
            if len(_TLV) >= _CANON_MAX:
                _TLV.clear()
            _TLV[tlv] = c
        if c is _UNKNOWN:
            return None
        if c is not None:
            out.append(c)
    return out


def _raw_canon(raw: bytes, ofp: Any) -> Tuple[Optional[CanonMatch], Optional[CanonActions]]:
    """canon_match and canon_actions of a flow stats entry's bytes; None for a part
    that holds something else than what a plan sends (the framework parses that)."""
    mlen = _HH.unpack_from(raw, 48)[1]
    fields = _raw_oxm(raw, 52, 48 + mlen)
    cm = None if fields is None else tuple(sorted(fields, key=lambda t: t[0]))
    at = 48 + mlen + (-mlen % 8)
    insts = raw[at:]
    ca = _ACTS.get(insts)         # a table's flows share a few action lists: one tuple each
    if ca is None:
        ca = _raw_actions(raw, at, ofp)
        if ca is not None:
            if len(_ACTS) >= _CANON_MAX:
                _ACTS.clear()
            _ACTS[insts] = ca
    return cm, ca


_ACTS: Dict[bytes, CanonActions] = {}


def _raw_actions(raw: bytes, at: int, ofp: Any) -> Optional[CanonActions]:
    meters: List[Tuple[Any, ...]] = []
    acts: List[Tuple[Any, ...]] = []
    while at + 8 <= len(raw):
        itype, ilen = _HH.unpack_from(raw, at)
        if itype == ofp.OFPIT_METER and ilen == 8:       # type, len, meter_id
            meters.append(("meter", _U32.unpack_from(raw, at + 4)[0]))
            at += 8
            continue
        if itype == ofp.OFPIT_GOTO_TABLE and ilen == 8:
            acts.append(("goto_table", raw[at + 4]))
            at += 8
            continue
        if itype != ofp.OFPIT_APPLY_ACTIONS or ilen < 8:
            return None
        a, end = at + 8, at + ilen
        while a + 4 <= end:
            atype, alen = _HH.unpack_from(raw, a)
            if atype == ofp.OFPAT_OUTPUT:
                port, max_len = struct.unpack_from("!IH", raw, a + 4)
                acts.append(("output", port) + ((max_len,) if port == ofp.OFPP_CONTROLLER else ()))
            elif atype == ofp.OFPAT_SET_FIELD:
                one = _raw_oxm(raw, a + 4, a + 8 + raw[a + 7])
                if not one or one[0][2] is not None:
                    return None
                acts.append(("set_field", one[0][0], one[0][1]))
            else:
                return None
            if alen < 4:
                return None
            a += alen
        at = end
    return tuple(meters + acts)


class _Stub:
    """What a message needs of a datapath to serialize itself."""

    def __init__(self, ofp: Any, parser: Any):
        self.ofproto, self.ofproto_parser = ofp, parser


# OXM basic-class fields the plan uses: (field number, bytes)
OXM_FIELDS = {
    "in_port": (0, 4), "eth_dst": (3, 6), "eth_src": (4, 6), "eth_type": (5, 2),
    "vlan_vid": (6, 2), "ip_proto": (10, 1), "ipv4_src": (11, 4), "ipv4_dst": (12, 4),
    "tcp_src": (13, 2), "tcp_dst": (14, 2), "udp_src": (15, 2), "udp_dst": (16, 2),
    "arp_op": (21, 2), "arp_spa": (22, 4), "arp_tpa": (23, 4), "arp_sha": (24, 6),
    "arp_tha": (25, 6), "ipv6_src": (26, 16), "ipv6_dst": (27, 16), "icmpv6_type": (29, 1),
    "icmpv6_code": (30, 1), "ipv6_nd_target": (31, 16), "ipv6_nd_sll": (32, 6),
    "ipv6_nd_tll": (33, 6),
}


_OXM: Dict[Tuple[str, int, Optional[int]], bytes] = {}   # as _CANON: most fields repeat


def _oxm(name: str, value: int, mask: Optional[int]) -> bytes:
    try:
        return _OXM[(name, value, mask)]
    except KeyError:
        pass
    if len(_OXM) >= _CANON_MAX:
        _OXM.clear()
    b = _OXM[(name, value, mask)] = _oxm_uncached(name, value, mask)
    return b


def _oxm_uncached(name: str, value: int, mask: Optional[int]) -> bytes:
    num, n = OXM_FIELDS[name]
    if mask is None:
        return struct.pack("!HBB", 0x8000, num << 1, n) + value.to_bytes(n, "big")
    return (struct.pack("!HBB", 0x8000, num << 1 | 1, 2 * n) + (value & mask).to_bytes(n, "big")
            + mask.to_bytes(n, "big"))


def _oxm_order(f: Tuple[str, int, Optional[int]]) -> int:
    return OXM_FIELDS[f[0]][0]


def _encode_oxm(fields: Sequence[Tuple[str, int, Optional[int]]]) -> Optional[bytes]:
    """An ofp_match (OXM, padded to 8), fields in OXM number order as the framework
    sends them; None when a field is not one of OXM_FIELDS."""
    if any(f[0] not in OXM_FIELDS for f in fields):
        return None
    body = b"".join([_oxm(*f) for f in sorted(fields, key=_oxm_order)])
    length = 4 + len(body)
    return struct.pack("!HH", 1, length) + body + b"\0" * (-length % 8)


def _encode_actions(actions: Sequence[Any], rules: Rules, ports: Mapping[str, int]) -> Optional[bytes]:
    """Apply-actions of a plan flow; None when one is not output/normal/set_field."""
    ofp = rules.ofp
    out = []
    for a in actions:
        if a[0] in ("output", "normal"):
            port = ofp.OFPP_NORMAL if a[0] == "normal" else rules.port_no(a[1], ports)
            out.append(struct.pack("!HHIH6x", ofp.OFPAT_OUTPUT, 16, port, 0))
        elif a[0] == "set_field" and field_name(a[1]) in OXM_FIELDS:
            c = canon_field(a[1], a[2])
            if c is None:
                return None
            oxm = _oxm(c[0], c[1], None)
            length = 4 + len(oxm)
            out.append(struct.pack("!HH", ofp.OFPAT_SET_FIELD, length + (-length % 8)) + oxm
                       + b"\0" * (-length % 8))
        else:
            return None
    return b"".join(out)


def _encode_instructions(actions: Sequence[Any], rules: Rules,
                         ports: Mapping[str, int]) -> Optional[bytes]:
    """A plan flow's instructions as `Rules.instructions` builds them: meter, apply-actions
    (none for a drop), goto_table; None when an action is not one _encode_actions knows."""
    ofp = rules.ofp
    acts = _encode_actions([a for a in actions if a[0] not in ("meter", "goto_table")], rules, ports)
    if acts is None:
        return None
    out = [struct.pack("!HHI", ofp.OFPIT_METER, 8, a[1]) for a in actions if a[0] == "meter"]
    if acts:
        out.append(struct.pack("!HH4x", ofp.OFPIT_APPLY_ACTIONS, 8 + len(acts)) + acts)
    out += [struct.pack("!HHB3x", ofp.OFPIT_GOTO_TABLE, 8, a[1]) for a in actions if a[0] == "goto_table"]
    return b"".join(out)


def _set_field_arg(name: str, value: Any) -> Tuple[str, Any]:
    """OFPActionSetField's keyword and value: an ND extension field under its generic
    name, its value as the base64 of its bytes."""
    fw = _FW_BY_ERIC.get(name)
    if fw is None:
        return name, value
    n = ERIC_FIELDS[name][1]
    return fw, base64.b64encode(_num(value).to_bytes(n, "big")).decode("ascii")


def split_by_bridge(changes: Iterable[Change]) -> Dict[str, List[Change]]:
    out: Dict[str, List[Change]] = {}
    for ch in changes:
        if ch.plane == "ovs":
            out.setdefault(change_bridge(ch), []).append(ch)
    return out


def change_bridge(ch: Change) -> str:
    """The bridge an OVS change is for (a meter names it `where`)."""
    return ch.item.where if ch.op in METER_OPS else ch.item.bridge


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


def reconcile(rules: Rules, desired: Iterable[Flow], installed: Sequence[Installed],
              ports: Mapping[str, int]) -> Reconcile:
    """Changes that make a bridge's flows of OUR cookie equal the desired ones:
    missing -> add; same match/priority but other actions or cookie -> modify;
    ours but not desired -> delete. Foreign flows are never touched: one that sits
    at a desired flow's match and priority is reported as a conflict, not replaced.
    While a desired flow cannot be resolved (a port is missing), nothing is deleted
    (the unresolved flow's installed copy could not be told from a stale one).
    `desired` is walked once (a generator will do: no copy of a 2^16-flow plan is
    held); a key desired twice counts once."""
    unresolved: List[Tuple[Flow, str]] = []
    ours = {i.key: i for i in installed if i.ours}
    foreign = {i.key: i for i in installed if not i.ours}
    n_ours = len(ours)
    changes: List[Change] = []
    conflicts: List[Tuple[Flow, Installed]] = []
    wanted: set = set()
    for f in desired:
        try:
            k, acts = rules.desired(f, ports)
        except UnresolvedPort as exc:
            unresolved.append((f, exc.args[0]))
            continue
        if k in wanted:
            continue
        wanted.add(k)
        have = ours.pop(k, None)
        if have is None:
            if k in foreign:
                conflicts.append((f, foreign[k]))
            else:
                changes.append(Change("ovs", "add", f))
        elif have.canon_actions != acts or have.cookie != f.cookie:
            changes.append(Change("ovs", "modify", f, have))
    if not unresolved:     # what is left of ours is desired by none
        changes += [Change("ovs", "delete", i) for i in ours.values()]
    return Reconcile(changes=changes, conflicts=conflicts, unresolved=unresolved,
                     ours=n_ours, foreign=len(foreign))


def reconcile_meters(rules: Rules, bridge: str, desired: Iterable[Any],
                     installed: Mapping[int, MeterConfig]) -> List[Change]:
    """Changes that make a bridge's meters of OUR ids (plan.is_our_meter) the desired
    ones: missing -> add_meter; other rate, burst or flags -> modify_meter (in place: the
    flows using it stay); ours but desired by none -> delete_meter. Meters of other ids
    are never touched."""
    flags = rules.meter_flags()
    changes: List[Change] = []
    wanted = set()
    for m in desired:
        wanted.add(m.meter_id)
        have = installed.get(m.meter_id)
        if have is None:
            changes.append(Change("ovs", "add_meter", m))
        elif have != (m.pps, m.burst, flags):
            changes.append(Change("ovs", "modify_meter", m,
                                  InstalledMeter(bridge, m.meter_id, have.pps, have.burst)))
    changes += [Change("ovs", "delete_meter", InstalledMeter(bridge, mid, c.pps, c.burst))
                for mid, c in sorted(installed.items())
                if plan_mod.is_our_meter(mid) and mid not in wanted]
    return changes


def _plain(name: str, v: int) -> Any:
    """A canonical int back in the plan's spelling (MAC / dotted quad / int)."""
    if name in MAC_FIELDS:
        return ":".join("%02x" % (v >> s & 0xFF) for s in range(40, -8, -8))
    if name in IPV4_FIELDS:
        return str(netaddr.IPAddress(v))
    if name in IPV6_FIELDS:
        return ipaddress.IPv6Address(v).compressed
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
        elif a[0] in ("goto_table", "meter"):
            actions.append(a)
        else:
            actions.append(("unknown",) + tuple(a))
    attr = attribution(inst.cookie, inst.canon_actions) if attribution else None
    if attr is None:
        attr = (plan_mod.kind_of_cookie(inst.cookie) or "table_miss", "%#x" % inst.cookie, None)
    return Flow(inst.bridge, inst.priority, tuple((f, fields[f]) for f in order), tuple(actions),
                attr[0], attr[1], backend=attr[2], table=inst.table)


def describe_change(ch: Change) -> str:
    if ch.op == "delete_meter":
        return "%s %s: meter=%d" % (ch.op, ch.item.where, ch.item.meter_id)
    if ch.op in METER_OPS:
        return "%s %s: %s" % (ch.op, ch.item.where, render.meter_to_ofctl(ch.item))
    if isinstance(ch.item, Installed):
        return "%s %s: %s" % (ch.op, ch.item.bridge, ch.item.text)
    return "%s %s: %s" % (ch.op, ch.item.bridge, render.to_ofctl(ch.item))

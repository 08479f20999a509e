"""An in-memory OpenFlow 1.3 table model, for packet-fate questions. Pure.

Entries are held in the canonical form of `ofrules` (ints, sorted fields), so a
table can be filled from plan flows (`from_flows`) or from the very FlowMods the
controller sends (`apply_flowmod`, OF 1.3 add / modify / delete semantics with
cookie filters), and a packet's fate is the same question either way:
`Network.fate(bridge, packet)` follows priority, match and actions (set_field,
move, output, IN_PORT, NORMAL, drop) across patch ports into the peer bridge.

Scope: table 0, apply-actions only, no groups/meters; NORMAL is reported, not
simulated (it is the table miss: what no rule claims).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from xenoflow_ovs.controller import ofrules
from xenoflow_ovs.intent.plan import Flow


@dataclass
class Entry:
    table: int
    priority: int
    match: ofrules.CanonMatch
    actions: ofrules.CanonActions
    cookie: int = 0
    packets: int = 0
    bytes: int = 0
    flags: int = 0
    raw_match: Any = None            # the parsed OFPMatch / instructions, when built from
    raw_instructions: Any = None     # a FlowMod (a fake switch reports them back)
    owner: Optional[Flow] = None     # the plan flow, when built from one

    @property
    def key(self) -> ofrules.Key:
        return (self.table, self.priority, self.match)

    def matches(self, pkt: Mapping[str, int]) -> bool:
        for name, value, mask in self.match:
            if name not in pkt:
                return False
            if mask is None:
                if pkt[name] != value:
                    return False
            elif pkt[name] & mask != value:
                return False
        return True


def packet(**fields: Any) -> Dict[str, int]:
    """A packet as canonical ints: packet(in_port=1, eth_type=0x800, ipv4_src="198.18.0.7").
    Untagged unless vlan_vid is given (OXM: OFPVID_NONE = 0; a tag is 0x1000 | vid)."""
    fields.setdefault("vlan_vid", 0)
    return {k: ofrules.canon_field(k, v)[1] for k, v in fields.items()}


def _covers(general: ofrules.CanonMatch, specific: ofrules.CanonMatch) -> bool:
    """Non-strict OF match: every field of `general` is in `specific`, same value/mask."""
    spec = {f: (v, m) for f, v, m in specific}
    return all(spec.get(f) == (v, m) for f, v, m in general)


class Table:
    def __init__(self) -> None:
        self.entries: Dict[ofrules.Key, Entry] = {}

    @classmethod
    def from_flows(cls, flows: Iterable[Flow], rules: ofrules.Rules,
                   ports: Mapping[str, int]) -> "Table":
        t = cls()
        for f in flows:
            key, acts = rules.desired(f, ports)
            t.entries[key] = Entry(f.table, f.priority, key[2], acts, f.cookie, owner=f,
                                   flags=rules.ofp.OFPFF_SEND_FLOW_REM,
                                   raw_match=rules.match(f, ports),
                                   raw_instructions=rules.instructions(f, ports))
        return t

    def lookup(self, pkt: Mapping[str, int], table: int = 0) -> Optional[Entry]:
        best = None
        for e in self.entries.values():
            if e.table == table and e.matches(pkt) and (best is None or e.priority > best.priority):
                best = e
        return best

    def apply_flowmod(self, msg: Any, ofp: Any) -> List[Entry]:
        """Apply an OFPFlowMod (parsed from the wire or as built); returns the
        entries removed (for FlowRemoved)."""
        match = ofrules.canon_match(msg.match)
        key = (msg.table_id, msg.priority, match)
        acts = ofrules.canon_actions(msg.instructions, ofp)

        def cookie_ok(e: Entry) -> bool:
            return e.cookie & msg.cookie_mask == msg.cookie & msg.cookie_mask

        if msg.command == ofp.OFPFC_ADD:
            old = self.entries.get(key)
            new = Entry(msg.table_id, msg.priority, match, acts, msg.cookie, flags=msg.flags,
                        raw_match=msg.match, raw_instructions=msg.instructions)
            if old is not None and not msg.flags & ofp.OFPFF_RESET_COUNTS:
                new.packets, new.bytes = old.packets, old.bytes   # what OVS does
            self.entries[key] = new
            return []
        if msg.command in (ofp.OFPFC_MODIFY, ofp.OFPFC_MODIFY_STRICT):
            strict = msg.command == ofp.OFPFC_MODIFY_STRICT
            for e in self.entries.values():
                if (e.key == key if strict else _covers(match, e.match)) and cookie_ok(e):
                    e.actions, e.raw_instructions = acts, msg.instructions
            return []
        if msg.command in (ofp.OFPFC_DELETE, ofp.OFPFC_DELETE_STRICT):
            strict = msg.command == ofp.OFPFC_DELETE_STRICT
            gone = [e for e in self.entries.values()
                    if (e.key == key if strict else
                        (msg.table_id == ofp.OFPTT_ALL or e.table == msg.table_id)
                        and _covers(match, e.match)) and cookie_ok(e)]
            for e in gone:
                del self.entries[e.key]
            return gone
        raise ValueError("unsupported flow-mod command %d" % msg.command)


@dataclass
class Fate:
    bridge: str
    port: str                  # output port name, "NORMAL" or "DROP"
    packet: Dict[str, int]
    hops: List[Tuple[str, Entry]] = field(default_factory=list)

    @property
    def eth_dst(self) -> str:
        v = self.packet["eth_dst"]
        return ":".join("%02x" % (v >> s & 0xFF) for s in range(40, -8, -8))


class Network:
    """Bridges (each a Table with its port numbers) joined by patch port pairs."""

    def __init__(self) -> None:
        self.tables: Dict[str, Table] = {}
        self.ports: Dict[str, Dict[str, int]] = {}
        self.peer: Dict[Tuple[str, str], Tuple[str, str]] = {}   # (bridge, patch) -> (bridge, patch)

    def add_bridge(self, name: str, table: Table, ports: Mapping[str, int]) -> None:
        self.tables[name] = table
        self.ports[name] = dict(ports)

    def patch(self, a: str, port_a: str, b: str, port_b: str) -> None:
        self.peer[(a, port_a)] = (b, port_b)
        self.peer[(b, port_b)] = (a, port_a)

    def fate(self, bridge: str, pkt: Mapping[str, Any], in_port: str, max_hops: int = 8) -> Fate:
        names = {no: n for n, no in self.ports[bridge].items()}
        p = dict(pkt)
        p["in_port"] = self.ports[bridge][in_port]
        hops: List[Tuple[str, Entry]] = []
        for _ in range(max_hops):
            entry = self.tables[bridge].lookup(p)
            if entry is None:
                return Fate(bridge, "DROP", p, hops)   # OF 1.3 table miss without a rule
            entry.packets += 1
            hops.append((bridge, entry))
            out = None
            for a in entry.actions:
                if a[0] == "set_field":
                    p[a[1]] = a[2]
                elif a[0] == "move":
                    if a[1] in p:
                        p[a[2]] = p[a[1]]
                elif a[0] == "output":
                    out = a[1]
                    break   # our plans output once, last
                else:
                    raise ValueError("oftable does not model %r" % (a,))
            if out is None:
                return Fate(bridge, "DROP", p, hops)
            if out == 0xFFFFFFF8:          # OFPP_IN_PORT
                return Fate(bridge, names[p["in_port"]], p, hops)
            if out == 0xFFFFFFFA:          # OFPP_NORMAL
                return Fate(bridge, "NORMAL", p, hops)
            name = names.get(out, str(out))
            if (bridge, name) not in self.peer:
                return Fate(bridge, name, p, hops)
            bridge, port = self.peer[(bridge, name)]
            names = {no: n for n, no in self.ports[bridge].items()}
            p["in_port"] = self.ports[bridge][port]
        raise RuntimeError("packet loops between bridges: %s" % [(b, e.key) for b, e in hops])


def network_from_plan(cfg: Any, flows: Sequence[Flow], rules: ofrules.Rules,
                      ports: Optional[Mapping[str, Mapping[str, int]]] = None) -> Network:
    """A Network of the config's bridges holding `flows`; port numbers as ovsdb.py
    requests them unless given."""
    from xenoflow_ovs.controller import ovsdb
    net = Network()
    for spec in ovsdb.desired(cfg):
        bports = dict(ports[spec.name]) if ports else {
            i.name: i.ofport_request for i in spec.ifaces}
        net.add_bridge(spec.name, Table.from_flows([f for f in flows if f.bridge == spec.name],
                                                   rules, bports), bports)
    for a, b in cfg.patches:
        net.patch(a, cfg.patch_port(a, b), b, cfg.patch_port(b, a))
    return net


# ---------------------------------------------------------------- a fake switch


class FakeDatapath:
    """A switch for app tests (no mocks): every message is serialized and FlowMods
    are parsed back from the wire (so a bad field fails here, as on OVS), applied
    to a Table; stats and barrier requests are answered at once through
    `deliver(handler_name, msg)` (normally the app's handler methods)."""

    LOCAL = 0xFFFFFFFE

    def __init__(self, dpid: int, bridge: str, ports: Mapping[str, int], ofp: Any, parser: Any,
                 deliver: Any = None):
        self.id = dpid
        self.ofproto, self.ofproto_parser = ofp, parser
        self.bridge = bridge
        self.ports = {}
        for name, no in list(ports.items()) + [(bridge, self.LOCAL)]:
            self.ports[no] = parser.OFPPort(no, "02:00:00:00:00:%02x" % (no & 0xFF),
                                            name.encode(), 0, 0, 0, 0, 0, 0, 0, 0)
        self.table = Table()
        self.sent: List[Any] = []
        self.xid = 0
        self.deliver = deliver
        self.connected = True
        self.refuse: Any = None      # refuse(flow_mod) -> True: answer an error, apply nothing

    def set_xid(self, msg: Any) -> int:
        self.xid += 1
        msg.set_xid(self.xid)
        return self.xid

    def _parse(self, msg: Any) -> Any:
        import importlib
        mod = importlib.import_module(self.ofproto_parser.__name__.rsplit(".", 1)[0]
                                      + ".ofproto_parser")
        buf = bytes(msg.buf)
        version, msg_type, msg_len, xid = mod.header(buf)
        return mod.msg(self, version, msg_type, msg_len, xid, buf)

    def send_msg(self, msg: Any) -> None:
        assert self.connected, "send on a closed connection"
        if msg.xid is None:
            self.set_xid(msg)
        msg.serialize()
        ofp, parser = self.ofproto, self.ofproto_parser
        if isinstance(msg, parser.OFPFlowMod):
            msg = self._parse(msg)
            self.sent.append(msg)
            if self.refuse is not None and self.refuse(msg):
                err = parser.OFPErrorMsg(self, ofp.OFPET_FLOW_MOD_FAILED, ofp.OFPFMFC_UNKNOWN,
                                         bytes(msg.buf[:64]))
                err.xid = msg.xid
                if self.deliver:
                    self.deliver("error_msg", err)
                return
            for e in self.table.apply_flowmod(msg, ofp):
                if e.flags & ofp.OFPFF_SEND_FLOW_REM and self.deliver:
                    rem = parser.OFPFlowRemoved(self, e.cookie, e.priority, ofp.OFPRR_DELETE,
                                                e.table, 1, 0, 0, 0, e.packets, e.bytes,
                                                e.raw_match)
                    self.deliver("flow_removed", rem)
            return
        self.sent.append(msg)
        if isinstance(msg, parser.OFPFlowStatsRequest):
            reply = parser.OFPFlowStatsReply(self)
            reply.xid, reply.flags = msg.xid, 0
            reply.body = [self.stats(e) for e in self.table.entries.values()]
            if self.deliver:
                self.deliver("flow_stats_reply", reply)
        elif isinstance(msg, parser.OFPBarrierRequest):
            reply = parser.OFPBarrierReply(self)
            reply.xid = msg.xid
            if self.deliver:
                self.deliver("barrier_reply", reply)

    def stats(self, e: Entry) -> Any:
        p = self.ofproto_parser
        match = e.raw_match if e.raw_match is not None else _match_of(p, e.match)
        return p.OFPFlowStats(e.table, 1, 0, e.priority, 0, 0, e.flags, e.cookie, e.packets,
                              e.bytes, match, list(e.raw_instructions or []))

    def flow_mods(self) -> List[Any]:
        return [m for m in self.sent if isinstance(m, self.ofproto_parser.OFPFlowMod)]

    def clear_sent(self) -> None:
        self.sent = []


def _match_of(parser: Any, canon: ofrules.CanonMatch) -> Any:
    plain = ofrules._plain
    return parser.OFPMatch(**{f: (plain(f, v) if m is None else (plain(f, v), plain(f, m)))
                              for f, v, m in canon})


def installed_from(table: Table, bridge: str, rules: ofrules.Rules, parser: Any) -> List[Any]:
    """The table as `ofrules.Installed` rows, the way the app sees a dump."""
    fake = FakeDatapath(0, bridge, {}, rules.ofp, parser)
    fake.table = table
    return [rules.installed(bridge, fake.stats(e)) for e in table.entries.values()]

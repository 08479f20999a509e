"""The OVS bridges as the controller holds them, one `Bridge` per datapath.

A Bridge owns what the app sends to its switch and what comes back: the send
path (ordered, deduplicated batches, each closed by a barrier whose reply
settles it, with the batch's first OpenFlow error), its flow dump (multipart
replies collected into one list of `ofrules.Installed`), the counting of that
dump and the reconcile of OUR cookie's flows to the plan in force (add missing,
modify changed, delete stale ours; never flush, never touch a foreign flow).
`Bridges` holds every bridge of the config with the OVS counters and their
attribution. Both are used from the app's event thread only, except
`apply_and_wait` (the runtime's OVS half), which waits from another thread.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from ..intent import config as config_mod
from ..intent import plan as plan_mod
from ..intent import render
from ..intent.plan import Change
from . import counters as counters_mod
from . import ofrules
from . import ovsdb as ovsdb_mod

log = logging.getLogger("xenoflow.app")

Done = Callable[[Optional[str]], None]       # a batch settled: its first error, or None


def switch_ports(dp: Any, local: bool = False) -> Dict[str, Any]:
    """{port name: number} from the switch's own port list (kept current by the
    framework's port-status handling); with local=True: {"LOCAL": bridge name}."""
    ofp = dp.ofproto
    out: Dict[str, Any] = {}
    for port in list(getattr(dp, "ports", {}).values()):
        name = port.name.decode() if isinstance(port.name, bytes) else str(port.name)
        name = name.rstrip("\0")
        if port.port_no == ofp.OFPP_LOCAL:
            if local:
                return {"LOCAL": name}
            continue
        out[name] = port.port_no
    return {} if local else out


class Bridge:
    def __init__(self, name: str, dpid: int, rules: ofrules.Rules):
        self.name = name
        self.dpid = dpid                     # the one ovsdb.py asks OVS to use
        self.rules = rules
        self.dp: Any = None
        self.connected = False
        self.synced = False                  # first reconcile after (re)connect done
        self.in_sync = False
        self.ports: Dict[str, int] = {}
        self.ours = 0
        self.foreign = 0
        self.sent_seq = 0                    # bumped by every send: a dump asked for
        self.dump_seq: Optional[int] = None  # before it is stale for repairs
        self.dump_xid: Optional[int] = None
        self.dump_parts: List[Any] = []
        self.dump: Optional[List[ofrules.Installed]] = None   # the last complete one
        self.last_dump: Optional[float] = None
        self.barriers: Dict[int, Done] = {}  # barrier xid -> done
        self.batch_of: Dict[int, int] = {}   # xid of a sent flow-mod -> its batch's barrier xid
        self.errors: Dict[int, str] = {}     # barrier xid -> first error of that batch
        self.warned: set = set()

    # -- connection

    def attach(self, dp: Any) -> None:
        """The switch is ready (MAIN state): take it, read its ports, dump its flows."""
        if self.dp is not None and self.dp is not dp:
            log.info("%s: new connection replaces the old one", self.name)
        self.dp, self.connected, self.synced = dp, True, False
        self.settle("connection replaced")
        self.ports = switch_ports(dp)
        log.info("%s: ready (dpid %016x, ports %s), dumping flows", self.name, dp.id, self.ports)
        self.request_dump()

    def detach(self) -> None:
        self.dp, self.connected, self.synced = None, False, False
        self.dump_xid = None
        log.warning("%s: switch disconnected (flows stay in OVS)", self.name)
        # batches in flight are not confirmed; the reconcile on the next connect
        # brings the bridge to the plan in force anyway
        self.settle(None)

    def settle(self, error: Optional[str]) -> None:
        for done in list(self.barriers.values()):
            done(error)
        self.barriers.clear()
        self.batch_of.clear()
        self.errors.clear()

    # -- the send path

    def send(self, changes: Sequence[Change], on_done: Optional[Done] = None) -> int:
        """Send this bridge's OVS changes (ordered, deduplicated, barrier last).
        `on_done(error)` runs when the barrier is answered (at once when nothing is
        sent); error is the first OpenFlow error of the batch, else None.
        Changes naming a port the switch lacks are held back (reconcile retries)."""
        msgs = self._messages(changes) if self.dp is not None else []
        if not msgs:
            if on_done:
                on_done(None)
            return 0
        self.sent_seq += 1
        barrier = msgs[-1]
        barrier.datapath = self.dp
        self.dp.set_xid(barrier)   # known before anything is sent: the reply may come at once
        self.barriers[barrier.xid] = on_done or (lambda error: None)
        for msg in msgs:
            msg.datapath = self.dp
            if msg is not barrier:
                self.dp.set_xid(msg)
                self.batch_of[msg.xid] = barrier.xid
            self.dp.send_msg(msg)
        return len(msgs) - 1

    def _messages(self, changes: Sequence[Change]) -> List[Any]:
        ports = switch_ports(self.dp)
        sendable = []
        for ch in changes:
            try:
                self.rules.change_key(ch, ports)
                sendable.append(ch)
            except ofrules.UnresolvedPort as exc:
                log.warning("%s: port %s missing, held back: %s", self.name, exc.args[0],
                            ofrules.describe_change(ch))
        return self.rules.batch(sendable, ports)

    def barrier_replied(self, xid: int) -> None:
        done = self.barriers.pop(xid, None)
        for k in [k for k, b in self.batch_of.items() if b == xid]:
            del self.batch_of[k]
        error = self.errors.pop(xid, None)
        if done:
            done(error)

    def refused(self, xid: int, text: str) -> None:
        """An OpenFlow error for a message we sent: it fails that message's batch."""
        if xid in self.batch_of:
            self.errors.setdefault(self.batch_of[xid], text)

    # -- dump, count, reconcile

    def request_dump(self) -> None:
        msg = self.rules.flow_stats_request()
        msg.datapath = self.dp
        self.dp.set_xid(msg)
        self.dump_xid, self.dump_seq, self.dump_parts = msg.xid, self.sent_seq, []
        self.dp.send_msg(msg)

    def dump_reply(self, msg: Any) -> Optional[List[ofrules.Installed]]:
        """One part of a flow stats reply; the whole dump once its last part is in."""
        if self.dump_xid is None or msg.xid != self.dump_xid:
            return None
        self.dump_parts.extend(msg.body)
        if msg.flags & msg.datapath.ofproto.OFPMPF_REPLY_MORE:
            return None
        parts, self.dump_parts, self.dump_xid = self.dump_parts, [], None
        self.dump = [self.rules.installed(self.name, s) for s in parts]
        self.last_dump = time.time()
        return self.dump

    def dump_predates_sends(self) -> bool:
        """Changes were sent after this dump was asked for: it may not show them."""
        return self.dump_seq != self.sent_seq

    def count(self, installed: Sequence[ofrules.Installed], counters: counters_mod.Counters,
              attribution: counters_mod.Attribution) -> None:
        samples = []
        for i in installed:
            if i.ours:
                samples.append(((self.name,) + i.key, attribution(i.cookie, i.canon_actions),
                                i.packets, i.bytes))
        counters.poll(self.name, samples)
        self.ours = len(samples)
        self.foreign = len(installed) - len(samples)

    def reconcile(self, flows: Sequence[plan_mod.Flow],
                  installed: Sequence[ofrules.Installed]) -> ofrules.Reconcile:
        """Bring our flows on the switch to `flows` (the plan in force for this bridge)."""
        self.ports = switch_ports(self.dp)
        r = ofrules.reconcile(self.rules, flows, installed, self.ports)
        for flow, other in r.conflicts:
            self._warn_once(("conflict",) + other.key,
                            "%s: a foreign flow (%s) holds the place of ours, left alone: %s"
                            % (self.name, other.text, render.to_ofctl(flow)))
        for flow, port in r.unresolved:
            self._warn_once(("unresolved", flow.key),
                            "%s: port %s not on the switch yet, flow waits: %s"
                            % (self.name, port, render.to_ofctl(flow)))
        verb, say = ("repaired", log.warning) if self.synced else ("synced", log.info)
        for ch in r.changes:
            say("%s: %s", verb, ofrules.describe_change(ch))
        self.send(r.changes)
        self.synced = True
        self.in_sync = not (r.changes or r.conflicts or r.unresolved)
        return r

    def _warn_once(self, key: Any, text: str) -> None:
        if key not in self.warned:
            self.warned.add(key)
            log.warning(text)

    def flows(self, attribution: counters_mod.Attribution) -> Optional[List[plan_mod.Flow]]:
        """Our flows as last dumped, as plan Flows; None unless connected and dumped."""
        dump = self.dump
        if not self.connected or dump is None:
            return None
        names = {no: n for n, no in self.ports.items()}
        return [ofrules.to_plan_flow(i, names, attribution) for i in dump if i.ours]

    def report(self) -> Dict[str, Any]:
        return {"connected": self.connected, "dpid": "%016x" % self.dpid,
                "flows": self.ours, "foreign_flows": self.foreign, "in_sync": self.in_sync,
                "last_dump": self.last_dump, "ports": dict(sorted(self.ports.items()))}


class Bridges:
    """Every bridge of the config, by name, with the OVS counters and their attribution."""

    def __init__(self, rules: ofrules.Rules, metrics: Any = None):
        self.rules = rules
        self.metrics = metrics
        self.counters = counters_mod.Counters()
        self.attribution = counters_mod.Attribution()
        self.repairs = 0
        self.last_reconcile: Optional[Dict[str, Any]] = None
        self._by_name: Dict[str, Bridge] = {}
        self._seen: Tuple[Any, Any] = (None, None)

    def __getitem__(self, name: str) -> Bridge:
        return self._by_name[name]

    def __len__(self) -> int:
        return len(self._by_name)

    def __iter__(self) -> Iterator[Bridge]:
        return iter(list(self._by_name.values()))

    def get(self, name: str) -> Optional[Bridge]:
        return self._by_name.get(name)

    def items(self) -> List[Tuple[str, Bridge]]:
        return sorted(self._by_name.items())

    def follow(self, cfg: config_mod.Config, plan: plan_mod.Plan) -> None:
        """Bridges and counter attribution follow the runtime's config and plan in force."""
        if self._seen[0] is not cfg:
            for br in cfg.bridges:
                if br.name not in self._by_name:
                    self._by_name[br.name] = Bridge(br.name, ovsdb_mod.datapath_id(br.name),
                                                    self.rules)
            for name in [n for n in self._by_name if all(b.name != n for b in cfg.bridges)]:
                del self._by_name[name]   # no longer ours: left as it is, no more reconcile
        if self._seen != (cfg, plan):
            macs = {(s.name, b.name): b.mac for s in cfg.services for b in s.backends}
            self.attribution.learn(plan.flows, macs)
            self._seen = (cfg, plan)

    # -- which bridge

    def of_datapath(self, dp: Any) -> Optional[Bridge]:
        for b in self:
            if b.dp is dp:
                return b
        return None

    def by_dpid(self, dpid: int) -> Optional[Bridge]:
        for b in self:
            if b.dpid == dpid:
                return b
        return None

    def identify(self, dp: Any) -> Optional[Bridge]:
        """By datapath id, else by the name of the switch's LOCAL port."""
        b = self.by_dpid(dp.id)
        if b is None:
            local = switch_ports(dp, local=True).get("LOCAL")
            b = self.get(local) if local else None
        return b

    # -- what a dump brings

    def dumped(self, b: Bridge, installed: Sequence[ofrules.Installed], plan: plan_mod.Plan,
               may_reconcile: bool) -> None:
        """Count a complete dump and, unless a transition owns the order of changes now
        (`may_reconcile` False) or the dump predates our last sends, reconcile."""
        b.count(installed, self.counters, self.attribution)
        if not may_reconcile or b.dump_predates_sends():
            return
        verb = "repaired" if b.synced else "synced"
        r = b.reconcile(plan.bridge_flows(b.name), installed)
        if verb == "repaired":
            self.repairs += len(r.changes)
            if self.metrics is not None:
                self.metrics.reconciled("ovs", "repair", len(r.changes))
        if r.changes or r.conflicts or r.unresolved or self.last_reconcile is None:
            self.last_reconcile = {"time": time.time(), "bridge": b.name, "kind": verb,
                                   "actions": r.counts()}

    def flow_removed(self, b: Bridge, msg: Any) -> None:
        """A flow of ours was removed: its final counts (OFPFlowRemoved)."""
        fid = (b.name, msg.table_id, msg.priority, ofrules.canon_match(msg.match))
        self.counters.removed(fid, msg.packet_count, msg.byte_count)

    def installed_flows(self) -> Optional[Dict[str, List[plan_mod.Flow]]]:
        """Our flows as last dumped from every bridge, as plan Flows (for
        consistency.check); None while some bridge is not connected or not dumped."""
        out: Dict[str, List[plan_mod.Flow]] = {}
        for name, b in self.items():
            flows = b.flows(self.attribution)
            if flows is None:
                return None
            out[name] = flows
        return out

    def stale_since(self, at: float) -> List[str]:
        """Connected bridges whose last dump is older than `at`."""
        return [b.name for b in self if b.connected and (b.last_dump or 0) < at]


def apply_and_wait(bridges: Bridges, changes: List[Change], run_in_app: Callable[[Callable[[], None]], None],
                   make_event: Callable[[], Any], timeout: float) -> None:
    """The runtime's OVS half: send these changes to every bridge (in order,
    deduplicated, barrier last; the sending runs in the app's event thread through
    `run_in_app`) and return once every barrier is answered. Call it from any thread
    but the app's event thread (it waits for replies handled there); under Ryu, from
    a hub (green) thread. A bridge that is not connected is skipped: it is reconciled
    to the plan in force when it connects."""
    by_bridge = ofrules.split_by_bridge(changes)
    if not by_bridge:
        return
    done = make_event()
    pending = {"n": len(by_bridge)}
    skipped: List[str] = []
    errors: List[str] = []

    def one_done(error: Optional[str] = None) -> None:
        if error:
            errors.append(error)
        pending["n"] -= 1
        if pending["n"] <= 0:
            done.set()

    def send() -> None:
        for name, chs in by_bridge.items():
            b = bridges.get(name)
            if b is None or b.dp is None:
                skipped.append(name)
                one_done()
            else:
                b.send(chs, one_done)
    run_in_app(send)
    if not done.wait(timeout):
        raise TimeoutError("no barrier reply within %.0f s: the OVS changes are not "
                           "confirmed" % timeout)
    if errors:
        raise RuntimeError("the switch refused: %s" % "; ".join(errors))
    if skipped:
        log.warning("bridges %s not connected: their changes wait for the reconcile on connect",
                    ", ".join(sorted(skipped)))

"""The OVS bridges as the controller holds them, one `Bridge` per datapath.

A Bridge owns what the app sends to its switch and what comes back: the send
path (ordered, deduplicated batches, each closed by a barrier whose reply
settles it, with the batch's first OpenFlow error), its polls (aggregates per rule
kind, and a full flow dump when counters.DumpPolicy says so: multipart replies
collected into one list of `ofrules.Installed`), the counting of a full dump and
the reconcile of OUR cookie's flows to the plan in force (add missing, modify
changed, delete stale ours; never flush, never touch a foreign flow). Meters alike:
on a bridge with planned meters read with every full dump (asked just before it, so
answered first: a flow is never added before its meter), else once per connection
after the first dump and again at a dump after our sends;
reconciled by id (meters carry no cookie: ours are the ids plan.is_our_meter names);
their stats read at every poll of a bridge with meters.
`Bridges` holds every bridge of the config with the OVS counters and their
attribution. Both are used from the app's event thread only, except
`apply_and_wait` (the runtime's OVS half), which waits from another thread.

Roles (controller.openflow.role): a master or slave asks for its role at every
connection, before the first dump (a switch takes messages in order, so nothing
is written before the role holds). A bridge is read-only while the role is
slave, after the switch refused the request (another controller holds a newer
generation id) or after a write came back "is slave" (another controller took
master): the dump, counters and reconcile's findings go on, no flow or meter is
written, and the status says why. A new connection or a changed role asks again.
"""

from __future__ import annotations

import logging
import struct
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ..intent import config as config_mod
from ..intent import plan as plan_mod
from ..intent import render
from ..intent.plan import Change
from . import counters as counters_mod
from . import ofrules
from . import ovsdb as ovsdb_mod

log = logging.getLogger("xenoflow.app")

Done = Callable[[Optional[str]], None]       # a batch settled: its first error, or None
SEND_CHUNK = 1 << 18          # bytes of encoded flow-mods handed to the framework at once
LOG_CHANGES = 20              # changes of one reconcile logged one by one, then a count
BIG_BATCH = 1000              # a batch of more messages logs the time to its barrier
DUMP_STALE = 30.0             # s: a dump or aggregate round unanswered this long is asked again


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
    def __init__(self, name: str, dpid: int, rules: ofrules.Rules, interval: float = 1.0,
                 policy: Optional[Dict[str, Any]] = None):
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
        self.dump_asked = 0.0                # monotonic time the dump in flight was asked
        self._derived: Dict[str, Any] = {}   # what is computed once per dump (flows, index)
        self.last_dump: Optional[float] = None
        self.policy = counters_mod.DumpPolicy(interval, **(policy or {}))
        self.agg_xids: Dict[int, Optional[str]] = {}   # aggregate request xid -> kind (None: all)
        self.agg: Dict[Optional[str], Tuple[int, int, int]] = {}
        self.agg_asked = 0.0
        self.asked_at = 0.0                  # time.time() of the last request (dump or aggregates)
        self.last_agg: Optional[float] = None
        self.urgent = False                  # this aggregate round decides a dump at once
        self.counted_at: Optional[float] = None   # counters exact as of (time.time())
        self.pending: Dict[str, Tuple[int, int]] = {}  # per kind, beyond the last full dump
        self.dumps: Dict[str, int] = {}      # full dumps by reason (status)
        self.barriers: Dict[int, Done] = {}  # barrier xid -> done
        self.batch_of: Dict[int, int] = {}   # xid of a sent flow-mod -> its batch's barrier xid
        self.errors: Dict[int, str] = {}     # barrier xid -> first error of that batch
        self.warned: set = set()
        self.metered = False                 # the plan in force has meters here (stats polled)
        self.meter_xids: Dict[int, str] = {}     # meter request xid -> "config" | "stats"
        self.meter_parts: Dict[int, List[Any]] = {}
        self.meter_asked: Dict[str, float] = {}  # kind -> monotonic time asked
        self.meter_seq: Optional[int] = None     # sent_seq when the meter config was asked
        self.meters: Optional[Dict[int, ofrules.MeterConfig]] = None   # every meter, last read
        self.meter_counts: Dict[int, Tuple[int, int, int]] = {}   # ours: packets, bytes, drops
        self.meters_in_sync = True
        self.role = config_mod.OpenflowRole()   # what the config asks for
        self.role_state: Optional[str] = None   # equal | asked | master | slave | refused
        self.role_xid: Optional[int] = None
        self.generation_id: Optional[int] = None   # as the switch's reply gave it
        self.read_only: Optional[str] = None    # why this bridge is not written, if it is not
        self.unwritten = 0                      # changes the last write held back (read-only)

    # -- connection

    def attach(self, dp: Any) -> None:
        """The switch is ready (MAIN state): take it, read its ports, dump its flows."""
        if self.dp is not None and self.dp is not dp:
            log.info("%s: new connection replaces the old one", self.name)
        self.dp, self.connected, self.synced = dp, True, False
        self.settle("connection replaced")
        self.ports = switch_ports(dp)
        self.agg_xids = {}
        log.info("%s: ready (dpid %016x, ports %s), dumping flows", self.name, dp.id, self.ports)
        self.meters, self.meter_counts = None, {}
        self.read_only, self.role_state = None, "equal"
        self.ask_role()
        self.request_dump("connect")

    # -- role

    @property
    def may_write(self) -> bool:
        return self.role.writes and self.read_only is None

    def ask_role(self) -> None:
        """OFPT_ROLE_REQUEST for a master or slave role (equal: OpenFlow's default, nothing to ask)."""
        if self.dp is None or self.role.role == "equal":
            return
        msg = self.rules.role_request(self.role.role, self.role.generation_id or 0)
        msg.datapath = self.dp
        self.dp.set_xid(msg)
        self.role_xid, self.role_state = msg.xid, "asked"
        log.info("%s: asking for role %s (generation id %d)", self.name, self.role.role,
                 self.role.generation_id or 0)
        self.dp.send_msg(msg)

    def set_role(self, role: config_mod.OpenflowRole) -> None:
        """The config's role; a changed one is asked at once and may lift read_only."""
        if role == self.role:
            return
        self.role = role
        if self.dp is not None:
            self.read_only, self.role_state = None, "equal"
            self.ask_role()

    def role_replied(self, msg: Any) -> bool:
        if msg.xid != self.role_xid:
            return False
        self.role_state = self.rules.role_name(msg.role)
        self.generation_id = msg.generation_id
        log.info("%s: role %s (generation id %d)", self.name, self.role_state, msg.generation_id)
        return True

    def detach(self) -> None:
        self.dp, self.connected, self.synced = None, False, False
        self.dump_xid = None
        self.agg_xids = {}
        self.meter_xids, self.meter_parts, self.meter_asked = {}, {}, {}
        self.policy.need("connect")
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
        Changes naming a port the switch lacks are held back (reconcile retries).
        A read-only bridge sends nothing and settles at once: the next dump shows what
        the switch holds, and the check judges it."""
        dp = self.dp
        if changes and dp is not None and not self.may_write:
            # every dump's reconcile comes here again with the same difference: keep its size,
            # not a running sum, and log at debug (why is logged once, by _read_only)
            self.unwritten = len(changes)
            log.debug("%s: read-only (%s): %d change(s) not written", self.name,
                      self.read_only or "role slave", len(changes))
            changes = ()
        if dp is None:
            msgs: List[Any] = []
        elif callable(getattr(dp, "send", None)):
            msgs = self._messages(changes, self.rules.wire)
        else:                      # a datapath without a raw send: message objects
            msgs = self._messages(changes, self.rules.batch)
        if not msgs:
            if on_done:
                on_done(None)
            return 0
        self.sent_seq += 1
        self.policy.need("sent")   # verify them: the next poll reads a full dump
        if len(msgs) > BIG_BATCH:
            on_done = self._timed(len(msgs) - 1, on_done)
        if isinstance(msgs[0], bytes):
            return self._send_wire(msgs, on_done)
        barrier = msgs[-1]
        barrier.datapath = dp
        dp.set_xid(barrier)   # known before anything is sent: the reply may come at once
        self.barriers[barrier.xid] = on_done or (lambda error: None)
        for msg in msgs:
            msg.datapath = dp
            if msg is not barrier:
                dp.set_xid(msg)
                self.batch_of[msg.xid] = barrier.xid
            dp.send_msg(msg)
        return len(msgs) - 1

    def _timed(self, n: int, on_done: Optional[Done]) -> Done:
        """A big batch says how long the switch took to confirm it."""
        t0 = time.monotonic()

        def done(error: Optional[str]) -> None:
            log.info("%s: %d flow-mod(s) confirmed by the barrier in %.2f s%s", self.name, n,
                     time.monotonic() - t0, " (%s)" % error if error else "")
            if on_done:
                on_done(error)
        return done

    def _send_wire(self, bufs: List[bytes], on_done: Optional[Done]) -> int:
        """Encoded messages (the last a barrier), xids given here as the framework's
        set_xid would, handed over in chunks (one queue slot and socket write for
        thousands of flow-mods)."""
        dp = self.dp
        mask = dp.ofproto.MAX_XID
        first = dp.xid + 1
        barrier_xid = (first + len(bufs) - 1) & mask
        dp.xid = barrier_xid
        self.barriers[barrier_xid] = on_done or (lambda error: None)
        chunk = bytearray()
        for i, buf in enumerate(bufs):
            xid = (first + i) & mask
            if xid != barrier_xid:
                self.batch_of[xid] = barrier_xid
            at = len(chunk)
            chunk += buf
            struct.pack_into("!I", chunk, at + 4, xid)
            if len(chunk) >= SEND_CHUNK:
                dp.send(bytes(chunk))
                chunk = bytearray()
        if chunk:
            dp.send(bytes(chunk))
        return len(bufs) - 1

    def _messages(self, changes: Sequence[Change], build: Callable[..., List[Any]]) -> List[Any]:
        held: List[Tuple[Change, str]] = []
        msgs = build(changes, switch_ports(self.dp), held)
        for ch, port in held:
            log.warning("%s: port %s missing, held back: %s", self.name, port,
                        ofrules.describe_change(ch))
        return msgs

    def barrier_replied(self, xid: int) -> None:
        done = self.barriers.pop(xid, None)
        if self.barriers:
            for k in [k for k, b in self.batch_of.items() if b == xid]:
                del self.batch_of[k]
        else:                  # the usual case: one batch at a time, no scan of 2^16 xids
            self.batch_of.clear()
        error = self.errors.pop(xid, None)
        if done:
            done(error)

    def refused(self, xid: int, text: str, is_slave: bool = False) -> bool:
        """An OpenFlow error: for a message we sent, it fails that message's batch (True);
        another app's message is none of ours (False). A refused role request, or a write
        refused because this connection is a slave, makes the bridge read-only."""
        if xid == self.role_xid and self.role_state == "asked":
            self.role_state = "refused"
            self._read_only("the switch refused role %s with generation id %d (%s): another "
                            "controller holds a newer one" % (self.role.role, self.role.generation_id or 0,
                                                              text))
            return True
        if xid not in self.batch_of:
            return xid == self.dump_xid or xid in self.agg_xids or xid in self.meter_xids
        self.errors.setdefault(self.batch_of[xid], text)
        if is_slave and self.role.writes:
            self.role_state = "slave"
            self._read_only("another controller is master: writes refused (%s)" % text)
        return True

    def _read_only(self, why: str) -> None:
        if self.read_only is None:
            log.error("%s: read-only from now on: %s", self.name, why)
        self.read_only = why

    # -- dump, count, reconcile

    def poll(self, now: float) -> Optional[str]:
        """Every interval: a full dump if the policy wants one now, else the aggregates
        (counters.DumpPolicy). Returns the full dump's reason, if one was asked for."""
        if self.dp is None:
            return None
        if self.metered:           # its own question: meter stats are no flow counters
            self.request_meters("stats", now)
        if self.dump_xid is not None and now - self.dump_asked < DUMP_STALE:
            return None           # a dump in flight (2^16 flows take a while): not another
        if self.agg_xids:
            if now - self.agg_asked < DUMP_STALE:
                return None
            self.agg_xids = {}
            self.policy.need("aggregates unanswered")
        reason = self.policy.at_poll(now)
        if reason is not None:
            self.request_dump(reason, now)
            return reason
        self.request_aggregates(now)
        return None

    def request_meters(self, kind: str, now: Optional[float] = None) -> None:
        """Ask for every meter's config or stats, unless that question is in flight (and
        not stale)."""
        now = time.monotonic() if now is None else now
        if kind in self.meter_xids.values() and now - self.meter_asked.get(kind, 0.0) < DUMP_STALE:
            return
        for xid in [x for x, k in self.meter_xids.items() if k == kind]:
            del self.meter_xids[xid]
            self.meter_parts.pop(xid, None)
        msg = self.rules.meter_config_request() if kind == "config" else self.rules.meter_stats_request()
        msg.datapath = self.dp
        self.dp.set_xid(msg)
        self.meter_xids[msg.xid], self.meter_asked[kind] = kind, now
        if kind == "config":
            self.meter_seq = self.sent_seq
        self.dp.send_msg(msg)

    def meter_reply(self, msg: Any) -> Optional[Tuple[str, List[Any]]]:
        """One part of a meter config or stats reply; (kind, every entry) once its last
        part is in (then also kept: `meters`, `meter_counts`)."""
        kind = self.meter_xids.get(msg.xid)
        if kind is None:
            return None
        parts = self.meter_parts.setdefault(msg.xid, [])
        parts.extend(msg.body)
        if msg.flags & msg.datapath.ofproto.OFPMPF_REPLY_MORE:
            return None
        del self.meter_xids[msg.xid], self.meter_parts[msg.xid]
        if kind == "config":
            self.meters = self.rules.meter_configs(parts)
        else:
            self.meter_counts = {k: v for k, v in self.rules.meter_counts(parts).items()
                                 if plan_mod.is_our_meter(k)}
        return kind, parts

    def meters_predate_sends(self) -> bool:
        """Changes were sent after the meter config was asked for: it may not show them."""
        return self.meter_seq != self.sent_seq

    def reconcile_meters(self, meters: Iterable[Any]) -> List[Change]:
        """Bring our meters on the switch to `meters` (the plan in force for this bridge),
        from the last meter config read; foreign ids untouched."""
        changes = ofrules.reconcile_meters(self.rules, self.name, meters, self.meters or {})
        say = (log.warning if self.synced else log.info) if self.may_write else log.debug
        for ch in changes[:LOG_CHANGES]:
            say("%s: %s", "repaired" if self.synced else "synced", ofrules.describe_change(ch))
        if len(changes) > LOG_CHANGES:
            say("%s: and %d more meter change(s)", self.name, len(changes) - LOG_CHANGES)
        self.send(changes)
        self.meters_in_sync = not changes
        return changes

    def request_dump(self, reason: str = "asked", now: Optional[float] = None) -> None:
        # with meters planned here, the meters first: their reply comes first, and a
        # reconcile adds a missing meter before the flow reconcile of this dump's reply
        # could add a flow that uses it. Without, they are read again only when our sends
        # made the last read stale (the last limit removed: its meters deleted), or the
        # check would go on finding meters that are gone.
        if self.metered or (self.meters is not None and self.meters_predate_sends()):
            self.request_meters("config", now)
        msg = self.rules.flow_stats_request()
        msg.datapath = self.dp
        self.dp.set_xid(msg)
        self.dump_xid, self.dump_seq, self.dump_parts = msg.xid, self.sent_seq, []
        self.dump_asked = time.monotonic() if now is None else now
        self.asked_at = time.time()
        self.dumps[reason] = self.dumps.get(reason, 0) + 1
        self.policy.asked()       # what wanted a dump is served by this one; later wants stay
        self.dp.send_msg(msg)

    def request_aggregates(self, now: float, urgent: bool = False) -> None:
        """One aggregate request per rule kind of ours and one for all flows. `urgent`:
        counts that moved are read in full at once, not at the traffic pace."""
        self.agg_xids, self.agg, self.agg_asked, self.urgent = {}, {}, now, urgent
        self.asked_at = time.time()
        msgs = []
        for kind in list(plan_mod.KINDS) + [None]:
            ck, mask = counters_mod.kind_filter(kind) if kind else (0, 0)
            msg = self.rules.aggregate_request(ck, mask)
            msg.datapath = self.dp
            self.dp.set_xid(msg)
            self.agg_xids[msg.xid] = kind
            msgs.append(msg)
        for msg in msgs:          # every xid known first: a reply may come at once
            self.dp.send_msg(msg)

    def aggregate_reply(self, msg: Any) -> Optional[Tuple[counters_mod.KindSums, int]]:
        """One aggregate reply; (ours per kind, all flows) once the poll's last is in."""
        if msg.xid not in self.agg_xids:
            return None
        body = msg.body
        if isinstance(body, list):    # one OFPAggregateStats (a list in some framework versions)
            body = body[0]
        self.agg[self.agg_xids.pop(msg.xid)] = (body.packet_count, body.byte_count,
                                                body.flow_count)
        if self.agg_xids:
            return None
        total = self.agg.pop(None, (0, 0, 0))[2]
        sums = {k: v for k, v in self.agg.items() if k is not None and (v[2] or v[0] or v[1])}
        return sums, total

    def dump_reply(self, msg: Any) -> Optional[List[ofrules.Installed]]:
        """One part of a flow stats reply; the whole dump once its last part is in. Each
        part is normalised as it comes (the framework's objects of a 2^16-flow dump do
        not all live at once)."""
        if self.dump_xid is None or msg.xid != self.dump_xid:
            return None
        self.dump_parts.extend([self.rules.installed(self.name, s) for s in msg.body])
        if msg.flags & msg.datapath.ofproto.OFPMPF_REPLY_MORE:
            return None
        self.dump, self.dump_parts, self.dump_xid = self.dump_parts, [], None
        self._derived = {}
        if self.meters is None and not self.meter_xids:
            # no meters planned here: read once per connection (after the first dump: no
            # flow waits for it), so ours left by an older plan are deleted
            self.request_meters("config")
        self.last_dump = time.time()
        return self.dump

    def dump_entry(self, key: ofrules.Key) -> Optional[ofrules.Installed]:
        """The flow of the last dump at this key (an index built on first use per dump)."""
        index = self._derived.get("index")
        if index is None:
            index = self._derived["index"] = {i.key: i for i in self.dump or ()}
        return index.get(key)

    def dump_predates_sends(self) -> bool:
        """Changes were sent after this dump was asked for: it may not show them."""
        return self.dump_seq != self.sent_seq

    def count(self, installed: Sequence[ofrules.Installed], counters: counters_mod.Counters,
              attribution: counters_mod.Attribution, planned: int = 0,
              now: Optional[float] = None) -> None:
        samples = []
        for i in installed:
            if i.ours:
                # attribution only for flows that counted (2^16 idle buckets: none)
                attr = attribution(i.cookie, i.canon_actions) if i.packets or i.bytes else None
                samples.append(((self.name,) + i.key, attr, i.packets, i.bytes))
        counters.poll(self.name, samples)
        self.ours = len(samples)
        self.foreign = len(installed) - len(samples)
        self.policy.dumped(counters_mod.kind_sums((i.cookie, i.packets, i.bytes)
                                                  for i in installed if i.ours),
                           self.foreign, planned, time.monotonic() if now is None else now)
        self.pending = {}
        self.counted_at = self.last_dump

    def aggregated(self, sums: counters_mod.KindSums, total: int, planned: int,
                   now: float) -> Optional[str]:
        """A poll's aggregates are in: flows and pending counts for the status, and a full
        dump asked for at once if the policy says so (its reason returned)."""
        self.ours = sum(t[2] for t in sums.values())
        self.foreign = total - self.ours
        self.pending = self.policy.pending(sums)
        self.last_agg = time.time()
        reason = self.policy.on_aggregates(sums, total, planned, now)
        # an urgent read (a flow about to move) waits for no poll: a dump owed for another
        # reason (our last sends) is taken now, or the read would wait for the next poll
        if reason is None and self.urgent and (self.pending or self.policy.reasons):
            reason = "read"
        if reason is None and not self.pending and not self.policy.reasons:
            self.counted_at = self.asked_at   # nothing moved since the last full dump
        if reason is not None and self.dp is not None and self.dump_xid is None:
            self.request_dump(reason, now)
        self.urgent = False
        return reason

    def reconcile(self, flows: Iterable[plan_mod.Flow],
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
        if not self.may_write:
            verb, say = "differs from the plan (read-only)", log.debug
        for ch in r.changes[:LOG_CHANGES]:
            say("%s: %s", verb, ofrules.describe_change(ch))
        if len(r.changes) > LOG_CHANGES:
            c = r.counts()
            say("%s: %s: and %d more (%d add, %d modify, %d delete in all)", verb, self.name,
                len(r.changes) - LOG_CHANGES, c["add"], c["modify"], c["delete"])
        self.send(r.changes)
        self.synced = True
        self.in_sync = not (r.changes or r.conflicts or r.unresolved)
        return r

    def _warn_once(self, key: Any, text: str) -> None:
        if key not in self.warned:
            self.warned.add(key)
            log.warning(text)

    def flows(self, attribution: counters_mod.Attribution) -> Optional[List[plan_mod.Flow]]:
        """Our flows as last dumped, as plan Flows; None unless connected and dumped.
        Built when asked, not kept (a check: the fingerprint uses `digest`)."""
        dump = self.dump
        if not self.connected or dump is None:
            return None
        names = {no: n for n, no in self.ports.items()}
        return [ofrules.to_plan_flow(i, names, attribution) for i in dump if i.ours]

    def digest(self) -> Optional[Tuple[int, int, Tuple[Tuple[str, int], ...]]]:
        """What tells one dump of our flows from another, for a verdict's fingerprint:
        count, an order-free sum of their hashes (key, actions, cookie), the ports;
        computed once per dump; None unless connected and dumped."""
        if not self.connected or self.dump is None:
            return None
        got = self._derived.get("digest")
        if got is None:
            n = h = 0
            for i in self.dump:
                if i.ours:
                    n += 1
                    h = (h + hash((i.key, i.canon_actions, i.cookie))) & 0xFFFFFFFFFFFFFFFF
            got = self._derived["digest"] = (n, h)
        return got + (tuple(sorted(self.ports.items())),)

    def report(self) -> Dict[str, Any]:
        ours = [m for m in self.meters or () if plan_mod.is_our_meter(m)]
        return {"connected": self.connected, "dpid": "%016x" % self.dpid,
                "role": {"asked": self.role.role, "state": self.role_state,
                         "generation_id": self.generation_id, "writes": self.may_write,
                         "read_only": self.read_only or ("role slave" if not self.role.writes else None),
                         "unwritten_changes": self.unwritten},
                "flows": self.ours, "foreign_flows": self.foreign, "in_sync": self.in_sync,
                "meters": len(ours), "foreign_meters": len(self.meters or ()) - len(ours),
                "meters_in_sync": self.meters_in_sync,
                "last_dump": self.last_dump, "last_aggregates": self.last_agg, "counted_at": self.counted_at,
                "full_dumps": dict(sorted(self.dumps.items())),
                "ports": dict(sorted(self.ports.items()))}


class Bridges:
    """Every bridge of the config, by name, with the OVS counters and their attribution."""

    def __init__(self, rules: ofrules.Rules, metrics: Any = None, interval: float = 1.0,
                 policy: Optional[Dict[str, Any]] = None):
        self.rules = rules
        self.metrics = metrics
        self.interval = interval
        self.policy = policy or {}           # DumpPolicy's knobs (the app's environment)
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
                                                    self.rules, self.interval, self.policy)
                self._by_name[br.name].set_role(cfg.role)
            for name in [n for n in self._by_name if all(b.name != n for b in cfg.bridges)]:
                del self._by_name[name]   # no longer ours: left as it is, no more reconcile
        if self._seen != (cfg, plan):
            for b in self:
                b.metered = any(True for _ in plan.meters(b.name))
            macs = {(s.name, b.name): b.mac for s in cfg.services for b in s.backends}
            self.attribution.learn(plan.cookies(), macs)
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

    def poll(self, now: float) -> None:
        """Every interval, every connected bridge: aggregates or a full dump."""
        for b in self:
            if b.connected and b.dp is not None:
                b.poll(now)

    def aggregated(self, b: Bridge, sums: counters_mod.KindSums, total: int,
                   plan: plan_mod.Plan, now: float) -> Optional[str]:
        return b.aggregated(sums, total, plan.flow_count(b.name), now)

    def pending(self) -> Dict[str, Tuple[int, int]]:
        """Per kind, over every bridge: packets and bytes beyond the last full dumps."""
        out: Dict[str, Tuple[int, int]] = {}
        for b in self:
            for k, (p, n) in b.pending.items():
                q, m = out.get(k, (0, 0))
                out[k] = (q + p, m + n)
        return out

    def dumped(self, b: Bridge, installed: Sequence[ofrules.Installed], plan: plan_mod.Plan,
               may_reconcile: bool, now: Optional[float] = None) -> None:
        """Count a complete dump and, unless a transition owns the order of changes now
        (`may_reconcile` False) or the dump predates our last sends (then the next poll
        dumps again), reconcile."""
        b.count(installed, self.counters, self.attribution, plan.flow_count(b.name), now)
        if not may_reconcile or b.dump_predates_sends():
            return        # the sends meanwhile asked for the next dump (policy "sent")
        verb = "repaired" if b.synced else "synced"
        r = b.reconcile(plan.iter_flows(b.name), installed)
        if verb == "repaired" and b.may_write:
            self.repairs += len(r.changes)
            if self.metrics is not None:
                self.metrics.reconciled("ovs", "repair", len(r.changes))
        if r.changes or r.conflicts or r.unresolved or self.last_reconcile is None:
            self.last_reconcile = {"time": time.time(), "bridge": b.name, "kind": verb,
                                   "actions": r.counts()}

    def meter_reply(self, b: Bridge, msg: Any, plan: plan_mod.Plan, may_reconcile: bool) -> None:
        """A meter config or stats reply (part); a complete config is reconciled to the
        plan's meters unless a transition owns the order of changes or our sends since
        make it stale (the next dump asks again)."""
        got = b.meter_reply(msg)
        if got is None or got[0] != "config":
            return
        if may_reconcile and not b.meters_predate_sends():
            b.reconcile_meters(plan.meters(b.name))

    def meter_drops(self, bridge: str) -> Dict[int, int]:
        """{meter id: packets its drop band dropped} of our meters on this bridge, as last
        read (the poll of a bridge with meters asks every interval); empty when unknown."""
        b = self.get(bridge)
        return {} if b is None else {k: v[2] for k, v in b.meter_counts.items()}

    def flow_removed(self, b: Bridge, msg: Any) -> None:
        """A flow of ours was removed: its final counts (OFPFlowRemoved)."""
        key = (msg.table_id, msg.priority, ofrules.canon_match(msg.match))
        fid = (b.name,) + key
        attr = None
        if not self.counters.known(fid) and (msg.packet_count or msg.byte_count):
            # idle at the last full dump (not remembered): its actions from that dump
            i = b.dump_entry(key)
            attr = self.attribution(i.cookie, i.canon_actions) if i is not None else None
        self.counters.removed(fid, msg.packet_count, msg.byte_count, attr)
        b.policy.need("flow removed")

    def dump_digests(self) -> Optional[Dict[str, Any]]:
        """Every bridge's dump digest; None while some bridge is not connected or dumped."""
        out: Dict[str, Any] = {}
        for name, b in self.items():
            d = b.digest()
            if d is None:
                return None
            out[name] = d
        return out

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

    def stale_since(self, at: float, counted: bool = False) -> List[str]:
        """Connected bridges whose last dump is older than `at` (`counted`: whose
        counters were last known exact before `at`)."""
        return [b.name for b in self if b.connected
                and ((b.counted_at if counted else b.last_dump) or 0) < at]


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

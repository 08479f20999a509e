"""The OpenFlow controller app: a thin Ryu / os-ken app (faucet style).

Handlers look up the bridge of the event's datapath, call pure code
(`plan`, `ofrules`, `counters`) and send what it returns through one send path.
All state is changed in the app's event thread; the worker thread only talks to
OVSDB and posts a poll event every interval, so the core needs no locks
(faucet's "periodic work as events"). Other threads read `state()`, a snapshot.

Life of a bridge:
  worker   -> OVSDB: bridge, ports, patches, controller, datapath-id (ovsdb.py)
  switch   -> connects; MAIN state: identify the bridge (datapath-id, else its
              LOCAL port's name), read its port numbers, dump its flows
  dump     -> reconcile our cookie only: add missing, modify changed, delete
              stale ours; never flush, never touch a foreign flow
  poll     -> every `XENOFLOW_POLL_INTERVAL` s (1): dump again = counters + drift
              repair ("repaired: ...")
The intent lives in `self.runtime` (runtime.Runtime: config, drains, health,
the plan in force); every change goes through it, make-before-break across both
planes, with this app's `ovs_apply` as its OVS half.
Run:  XENOFLOW_CONFIG=FILE ryu-manager xenoflow_ovs.app      (Ryu 4.34)
      xenoflow controller -c FILE                           (os-ken 4, launcher.py)
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from . import compat
from ..api import server as api_mod
from ..intent import config as config_mod
from . import counters as counters_mod
from . import facade as facade_mod
from . import health as health_mod
from ..api import metrics as metrics_mod
from . import ofrules
from . import ovsdb as ovsdb_mod
from ..intent import plan as plan_mod
from ..api import handlers as routes_mod
from . import runtime as runtime_mod
from .compat import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, ofp_event, set_ev_cls
from ..intent.plan import Change

ENV_CONFIG = "XENOFLOW_CONFIG"
ENV_STATE = "XENOFLOW_STATE"                 # state file path (default: <config dir>/run/<dpu>-controller.json)
ENV_POLL = "XENOFLOW_POLL_INTERVAL"          # seconds between flow dumps (default 1)
ENV_KILL = "XENOFLOW_KILL_ON_EXCEPTION"      # "0": a failing handler is logged, not fatal
ENV_API = "XENOFLOW_API"                     # "0": no HTTP API (unit tests build many apps)
ENV_ENSURE = "XENOFLOW_ENSURE_INTERVAL"      # re-check OVSDB this often, s (default 30; and
ENSURE_EVERY = 30.0                          # at once after a reconnection)
ESWITCH_EVERY = 5                            # polls between eSwitch drift repairs


# ---------------------------------------------------------------- events


class EventPoll(compat.event.EventBase):
    """Posted by the worker every interval: dump flows of every connected bridge."""


class EventCall(compat.event.EventBase):
    """Run `fn()` in the event thread (apply_config's phases)."""

    def __init__(self, fn: Callable[[], None]):
        super().__init__()
        self.fn = fn


def guarded(fn: Callable) -> Callable:
    """Log a failing handler loudly (os-ken/Ryu would log and carry on quietly) and,
    unless disabled (tests, XENOFLOW_KILL_ON_EXCEPTION=0), end the process: a
    restarted controller reconciles, a half-working one drifts unseen (faucet's
    kill_on_exception)."""
    @functools.wraps(fn)
    def wrapper(self: "XenoFlowApp", ev: Any) -> Any:
        try:
            return fn(self, ev)
        except Exception:
            self.handler_errors += 1
            self.logger.exception("handler %s failed on %s", fn.__name__, type(ev).__name__)
            if self.kill_on_exception:
                self.logger.critical("exiting (kill on exception): a restart reconciles")
                os.kill(os.getpid(), signal.SIGTERM)
    return wrapper


# ---------------------------------------------------------------- per bridge


class BridgeState:
    def __init__(self, name: str, dpid: int):
        self.name = name
        self.dpid = dpid                     # the one ovsdb.py asks OVS to use
        self.dp: Any = None
        self.connected = False
        self.synced = False                  # first reconcile after (re)connect done
        self.ports: Dict[str, int] = {}
        self.ours = 0
        self.foreign = 0
        self.sent_seq = 0                    # bumped by every send: a dump asked for
        self.dump_seq: Optional[int] = None  # before it is stale for repairs
        self.dump_xid: Optional[int] = None
        self.dump_parts: List[Any] = []
        self.barriers: Dict[int, Callable[[Optional[str]], None]] = {}   # barrier xid -> done
        self.batch_of: Dict[int, int] = {}   # xid of a sent flow-mod -> its batch's barrier xid
        self.errors: Dict[int, str] = {}     # barrier xid -> first error of that batch
        self.warned: set = set()
        self.last_dump: Optional[float] = None
        self.in_sync = False

    def report(self) -> Dict[str, Any]:
        return {"connected": self.connected, "dpid": "%016x" % self.dpid,
                "flows": self.ours, "foreign_flows": self.foreign, "in_sync": self.in_sync,
                "last_dump": self.last_dump, "ports": dict(sorted(self.ports.items()))}


# ---------------------------------------------------------------- the app


class AppRuntime(runtime_mod.Runtime):
    """The runtime, and whether it has adopted the eSwitch yet. While a transition
    runs (`transitions` > 0) the plan in force (`current`) is the OLD one, so the
    app's own reconcile waits rather than "repair" the new flows away."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.started = False

    def start(self) -> Dict[str, int]:
        out = super().start()
        self.started = True
        return out

    def plan_in_force(self) -> plan_mod.Plan:
        # before start() has adopted the eSwitch, OVS is still brought to the intent
        return self.current if self.started else self.desired()


class XenoFlowApp(compat.BaseApp):
    OFP_VERSIONS = [compat.ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any):
        cfg = kwargs.pop("xenoflow_cfg", None)
        path = kwargs.pop("xenoflow_config", None) or os.environ.get(ENV_CONFIG)
        eswitch = kwargs.pop("xenoflow_eswitch", None)
        super().__init__(*args, **kwargs)
        self.logger = logging.getLogger("xenoflow.app")
        if cfg is None:
            if not path:
                raise RuntimeError("no config: set %s (ryu-manager) or use `xenoflow controller "
                                   "-c FILE`" % ENV_CONFIG)
            cfg = config_mod.load(path)
        self.config_path = path
        self.rules = ofrules.Rules.default()
        self.interval = float(os.environ.get(ENV_POLL, "1") or 1)
        self.ensure_every = float(os.environ.get(ENV_ENSURE, "") or ENSURE_EVERY)
        self.barrier_timeout = 10.0
        self.kill_on_exception = os.environ.get(ENV_KILL, "1") != "0"
        if eswitch is None:
            eswitch = make_eswitch(cfg)
        self.facade = facade_mod.Facade(self, sleep=compat.hub.sleep)
        self.metrics = metrics_mod.Metrics(cfg.dpu_name, self.facade.status)
        self.facade.metrics = self.metrics
        self.runtime = AppRuntime(cfg, self.ovs_apply, eswitch=eswitch, metrics=self.metrics,
                                  lock=compat.make_lock())
        self.api: Optional[api_mod.Api] = None
        self.health = health_mod.Monitor(list(cfg.services), self._health_changed,
                                         sleep=compat.hub.sleep, spawn=compat.hub.spawn)
        self.ovsdb: Optional[ovsdb_mod.Ovsdb] = None
        self.counters = counters_mod.Counters()
        self.attribution = counters_mod.Attribution()
        self.packet_ins = 0
        self.handler_errors = 0
        self.of_errors = 0
        self.repairs = 0
        self.last_reconcile: Optional[Dict[str, Any]] = None
        # written by the worker, read by the event thread: keys fixed from the start
        self.ovsdb_status: Dict[str, Any] = {"connected": False, "last_error": None,
                                              "last_ensure": None, "last_changes": None}
        self.runtime_error: Optional[str] = None
        self._stop = compat.make_event()
        self._snapshot: Dict[str, Any] = {}
        self._installed: Dict[str, List[ofrules.Installed]] = {}
        self._seen: Any = (None, None)
        self.bridges: Dict[str, BridgeState] = {}
        self.dispatch: Optional[Callable[[Any], None]] = None   # tests: run events inline
        self.state_path = os.environ.get(ENV_STATE) or cfg.path(
            os.path.join("run", "%s-controller.json" % cfg.dpu_name))
        self._follow_runtime()
        self._refresh()

    @property
    def cfg(self) -> config_mod.Config:
        return self.runtime.cfg

    @property
    def eswitch(self) -> Any:
        """The eSwitch client (eswitch.EswitchClient) or None: the runtime drives it."""
        return self.runtime.eswitch

    def desired_plan(self) -> plan_mod.Plan:
        return self.runtime.plan_in_force()

    def _follow_runtime(self) -> None:
        """Bridges and counter attribution follow the runtime's config and plan."""
        cfg, plan = self.runtime.cfg, self.desired_plan()
        if self._seen[0] is not cfg:
            for br in cfg.bridges:
                if br.name not in self.bridges:
                    self.bridges[br.name] = BridgeState(br.name, ovsdb_mod.datapath_id(br.name))
            for name in [n for n in self.bridges if all(b.name != n for b in cfg.bridges)]:
                del self.bridges[name]   # no longer ours: left as it is, no more reconcile
        if self._seen != (cfg, plan):
            macs = {(s.name, b.name): b.mac for s in cfg.services for b in s.backends}
            self.attribution.learn(plan.flows, macs)
            self._seen = (cfg, plan)

    # -- lifecycle

    def start(self) -> Any:
        t = super().start()
        self.threads.append(compat.hub.spawn(self._worker))
        self._start_api()
        self.health.start()
        try:
            signal.signal(signal.SIGHUP, lambda signum, frame: compat.hub.spawn(self._sighup))
        except ValueError:  # not the main thread (tests): reload through the API instead
            pass
        self.logger.info("XenoFlow controller (%s) for %s: %d bridge(s), %d flow(s) planned, "
                         "eswitch %s, poll every %.1f s, state in %s", compat.RUNTIME,
                         self.cfg.dpu_name, len(self.bridges), len(self.desired_plan().flows),
                         self.cfg.eswitch.driver, self.interval, self.state_path)
        return t

    def stop(self) -> None:
        self._stop.set()
        self.health.stop()
        if self.api is not None:
            self.api.stop()
        super().stop()
        self._write_state()

    def _start_api(self) -> None:
        if os.environ.get(ENV_API) == "0":
            return
        cfg, a = self.cfg, self.cfg.api
        self.api = api_mod.Api(a.host, a.port, cfg.path(a.socket) if a.socket else None,
                               token=api_mod.read_token(cfg.path(a.token_file) if a.token_file else None),
                               spawn=compat.hub.spawn)
        routes_mod.install(self.api, self.facade)
        self.api.start()

    def _sighup(self) -> None:
        try:
            out = self.facade.reload_from_file()
            self.logger.info("SIGHUP reload applied: %s", out)
        except Exception as exc:  # a bad file keeps the running state
            self.logger.error("SIGHUP reload rejected, running state kept: %s", exc)

    def _health_changed(self, service: str, backend: str, up: bool, why: str) -> None:
        """From the health monitor's thread: take the backend out of (or back into) both
        planes, make-before-break, through the runtime."""
        try:
            self.runtime.set_health(service, backend, up, why)
        except Exception as exc:
            self.logger.error("health %s/%s -> %s not applied: %s", service, backend,
                              "up" if up else "down", exc)

    def _post(self, ev: Any) -> None:
        if self.dispatch is not None:
            self.dispatch(ev)
        else:
            self.send_event(self.name, ev)

    def _worker(self) -> None:
        """OVSDB upkeep, the runtime's start (eSwitch adoption) and the poll clock.
        Never touches the app's state directly: it posts events."""
        last_ensure, n = 0.0, 0
        while not self._stop.is_set():
            try:
                last_ensure = self.ovsdb_tick(last_ensure)
            except Exception as exc:  # ovsdb-server down: keep polling OpenFlow, retry later
                if self.ovsdb_status["last_error"] != str(exc):
                    self.logger.warning("ovsdb: %s (will retry)", exc)
                self.ovsdb_status.update(connected=False, last_error=str(exc))
                last_ensure = 0.0
            self.runtime_tick(n)
            self._post(EventPoll())
            n += 1
            self._stop.wait(self.interval)

    def runtime_tick(self, n: int) -> None:
        """Start the runtime (adopt the eSwitch) until it succeeds; then repair eSwitch
        drift every ESWITCH_EVERY polls, never during a transition."""
        rt = self.runtime
        try:
            if not rt.started:
                done = rt.start()
                self.runtime_error = None
                self.logger.info("runtime started: %s", done)
            elif rt.eswitch is not None and n % ESWITCH_EVERY == 0 and not rt.transitions:
                rt.reconcile_eswitch()
                self.runtime_error = None
            if rt.started:
                rt.poll_eswitch()
        except Exception as exc:   # eswitchd not up (yet): OVS carries everything meanwhile
            if self.runtime_error != str(exc):
                self.logger.warning("eSwitch: %s (will retry)", exc)
            self.runtime_error = str(exc)

    def ovsdb_tick(self, last_ensure: float) -> float:
        cfg = self.cfg
        if self.ovsdb is None:
            db = ovsdb_mod.Ovsdb(cfg.path(cfg.ovs_db), timeout=5.0, lock=compat.make_lock())
            db.connect()            # the first time, wait (bounded) for the replica
            self.ovsdb = db
        if not self.ovsdb.is_connected():
            # down (restarting?): the IDL session reconnects by itself; do not block
            # the poll clock meanwhile; reconnected() asks for an ensure once back
            self.ovsdb_status["connected"] = False
            return last_ensure
        now = time.time()
        if self.ovsdb.reconnected() or now - last_ensure >= self.ensure_every:
            changed = self.ovsdb.ensure(ovsdb_mod.desired(cfg))
            self.ovsdb_status.update(connected=True, last_error=None, last_ensure=now,
                                     last_changes=len(changed))
            return now
        self.ovsdb_status["connected"] = True
        return last_ensure

    # -- connection handlers

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def switch_features(self, ev: Any) -> None:
        dp = ev.msg.datapath
        bs = self._bridge_by_dpid(dp.id)
        self.logger.info("switch %016x connected%s", dp.id,
                         " (%s)" % bs.name if bs else ": datapath id not ours yet, "
                         "will identify it by its LOCAL port")

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    def state_change(self, ev: Any) -> None:
        dp = ev.datapath
        if ev.state == MAIN_DISPATCHER:
            bs = self._identify(dp)
            if bs is None:
                self.logger.warning("switch %016x is none of our bridges: left alone", dp.id)
                return
            if bs.dp is not None and bs.dp is not dp:
                self.logger.info("%s: new connection replaces the old one", bs.name)
            bs.dp, bs.connected, bs.synced = dp, True, False
            self._settle(bs, "connection replaced")
            bs.ports = self._ports(dp)
            self.logger.info("%s: ready (dpid %016x, ports %s), dumping flows", bs.name, dp.id,
                             bs.ports)
            self._request_dump(bs)
        elif ev.state == DEAD_DISPATCHER:
            for bs in self.bridges.values():
                if bs.dp is dp:
                    bs.dp, bs.connected, bs.synced = None, False, False
                    bs.dump_xid = None
                    self.logger.warning("%s: switch disconnected (flows stay in OVS)", bs.name)
                    # batches in flight are not confirmed; the reconcile on the next
                    # connect brings the bridge to the plan in force anyway
                    self._settle(bs, None)
        self._refresh()

    def _bridge_by_dpid(self, dpid: int) -> Optional[BridgeState]:
        for bs in self.bridges.values():
            if bs.dpid == dpid:
                return bs
        return None

    def _identify(self, dp: Any) -> Optional[BridgeState]:
        bs = self._bridge_by_dpid(dp.id)
        if bs is None:
            local = self._ports(dp, local=True).get("LOCAL")
            bs = self.bridges.get(local) if local else None
        return bs

    def _ports(self, dp: Any, local: bool = False) -> Dict[str, int]:
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

    def _bridge_of(self, dp: Any) -> Optional[BridgeState]:
        for bs in self.bridges.values():
            if bs.dp is dp:
                return bs
        return None

    # -- the send path

    def _settle(self, bs: BridgeState, error: Optional[str]) -> None:
        for cb in list(bs.barriers.values()):
            cb(error)
        bs.barriers.clear()
        bs.batch_of.clear()
        bs.errors.clear()

    def send_changes(self, bs: BridgeState, changes: Sequence[Change],
                     on_done: Optional[Callable[[Optional[str]], None]] = None) -> int:
        """Send one bridge's OVS changes (ordered, deduplicated, barrier last).
        `on_done(error)` runs when the barrier is answered (at once when nothing is
        sent); error is the first OpenFlow error of the batch, else None.
        Changes naming a port the switch lacks are held back (reconcile retries)."""
        if bs.dp is None:
            if on_done:
                on_done(None)
            return 0
        ports = self._ports(bs.dp)
        sendable = []
        for ch in changes:
            try:
                self.rules.change_key(ch, ports)
                sendable.append(ch)
            except ofrules.UnresolvedPort as exc:
                self.logger.warning("%s: port %s missing, held back: %s", bs.name, exc.args[0],
                                    ofrules.describe_change(ch))
        msgs = self.rules.batch(sendable, ports)
        if not msgs:
            if on_done:
                on_done(None)
            return 0
        bs.sent_seq += 1
        barrier = msgs[-1]
        barrier.datapath = bs.dp
        bs.dp.set_xid(barrier)   # known before anything is sent: the reply may come at once
        bs.barriers[barrier.xid] = on_done or (lambda error: None)
        for msg in msgs:
            msg.datapath = bs.dp
            if msg is not barrier:
                bs.dp.set_xid(msg)
                bs.batch_of[msg.xid] = barrier.xid
            bs.dp.send_msg(msg)
        return len(msgs) - 1

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    @guarded
    def barrier_reply(self, ev: Any) -> None:
        bs = self._bridge_of(ev.msg.datapath)
        if bs is not None:
            xid = ev.msg.xid
            cb = bs.barriers.pop(xid, None)
            for k in [k for k, b in bs.batch_of.items() if b == xid]:
                del bs.batch_of[k]
            error = bs.errors.pop(xid, None)
            if cb:
                cb(error)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @guarded
    def error_msg(self, ev: Any) -> None:
        msg = ev.msg
        bs = self._bridge_of(msg.datapath)
        self.of_errors += 1
        text = "OpenFlow error type=%d code=%d for xid %s" % (msg.type, msg.code, msg.xid)
        self.logger.error("%s: %s: %r", bs.name if bs else "?", text, bytes(msg.data or b"")[:64])
        if bs is not None and msg.xid in bs.batch_of:
            bs.errors.setdefault(bs.batch_of[msg.xid], text)
        self._refresh()

    # -- dump, count, reconcile

    def _request_dump(self, bs: BridgeState) -> None:
        msg = self.rules.flow_stats_request()
        msg.datapath = bs.dp
        bs.dp.set_xid(msg)
        bs.dump_xid, bs.dump_seq, bs.dump_parts = msg.xid, bs.sent_seq, []
        bs.dp.send_msg(msg)

    @set_ev_cls(EventPoll)
    @guarded
    def poll(self, ev: Any) -> None:
        self._follow_runtime()
        for bs in self.bridges.values():
            if bs.connected and bs.dp is not None:
                self._request_dump(bs)
        self._refresh()
        self._write_state()

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    @guarded
    def flow_stats_reply(self, ev: Any) -> None:
        msg = ev.msg
        bs = self._bridge_of(msg.datapath)
        if bs is None or bs.dump_xid is None or msg.xid != bs.dump_xid:
            return
        bs.dump_parts.extend(msg.body)
        if msg.flags & msg.datapath.ofproto.OFPMPF_REPLY_MORE:
            return
        parts, bs.dump_parts, bs.dump_xid = bs.dump_parts, [], None
        installed = [self.rules.installed(bs.name, s) for s in parts]
        bs.last_dump = time.time()
        self._installed[bs.name] = installed
        self._follow_runtime()
        self._count(bs, installed)
        if self.runtime.transitions:
            pass      # a transition owns the order of changes; reconcile after it
        elif bs.dump_seq != bs.sent_seq:
            pass      # we sent changes after asking: this dump predates them
        else:
            self._reconcile(bs, installed)
        self._refresh()

    def _count(self, bs: BridgeState, installed: Sequence[ofrules.Installed]) -> None:
        samples = []
        for i in installed:
            if i.ours:
                samples.append(((bs.name,) + i.key, self.attribution(i.cookie, i.canon_actions),
                                i.packets, i.bytes))
        self.counters.poll(bs.name, samples)
        bs.ours = len(samples)
        bs.foreign = len(installed) - len(samples)

    def _reconcile(self, bs: BridgeState, installed: Sequence[ofrules.Installed]) -> None:
        ports = self._ports(bs.dp)
        bs.ports = ports
        r = ofrules.reconcile(self.rules, self.desired_plan().bridge_flows(bs.name), installed,
                              ports)
        for flow, other in r.conflicts:
            self._warn_once(bs, ("conflict",) + other.key,
                            "%s: a foreign flow (%s) holds the place of ours, left alone: %s"
                            % (bs.name, other.text, plan_mod.to_ofctl(flow)))
        for flow, port in r.unresolved:
            self._warn_once(bs, ("unresolved", flow.key),
                            "%s: port %s not on the switch yet, flow waits: %s"
                            % (bs.name, port, plan_mod.to_ofctl(flow)))
        verb = "repaired" if bs.synced else "synced"
        for ch in r.changes:
            (self.logger.warning if bs.synced else self.logger.info)(
                "%s: %s", verb, ofrules.describe_change(ch))
        if bs.synced:
            self.repairs += len(r.changes)
            if self.metrics is not None:
                self.metrics.reconciled("ovs", "repair", len(r.changes))
        self.send_changes(bs, r.changes)
        bs.synced = True
        bs.in_sync = not (r.changes or r.conflicts or r.unresolved)
        counts = r.counts()
        if r.changes or r.conflicts or r.unresolved or self.last_reconcile is None:
            self.last_reconcile = {"time": time.time(), "bridge": bs.name, "kind": verb,
                                   "actions": counts}

    def _warn_once(self, bs: BridgeState, key: Any, text: str) -> None:
        if key not in bs.warned:
            bs.warned.add(key)
            self.logger.warning(text)

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    @guarded
    def flow_removed(self, ev: Any) -> None:
        msg = ev.msg
        bs = self._bridge_of(msg.datapath)
        if bs is None or not plan_mod.is_ours(msg.cookie):
            return
        fid = (bs.name, msg.table_id, msg.priority, ofrules.canon_match(msg.match))
        self.counters.removed(fid, msg.packet_count, msg.byte_count)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def packet_in(self, ev: Any) -> None:
        # The plan sends nothing to the controller: a packet-in is a finding.
        self.packet_ins += 1
        if self.packet_ins <= 10:
            bs = self._bridge_of(ev.msg.datapath)
            self.logger.warning("%s: unexpected packet-in (reason %s, %d bytes)",
                                bs.name if bs else "?", ev.msg.reason, len(ev.msg.data or b""))

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @guarded
    def port_status(self, ev: Any) -> None:
        bs = self._bridge_of(ev.msg.datapath)
        desc = ev.msg.desc
        name = desc.name.decode() if isinstance(desc.name, bytes) else desc.name
        self.logger.info("%s: port %s (%s) %s", bs.name if bs else "?", name, desc.port_no,
                         {0: "added", 1: "deleted", 2: "modified"}.get(ev.msg.reason, "?"))
        # the next poll's reconcile picks up the new numbers

    # -- the OVS half of every transition, and reload

    @set_ev_cls(EventCall)
    @guarded
    def call(self, ev: Any) -> None:
        ev.fn()

    def ovs_apply(self, changes: List[Change]) -> None:
        """runtime.Runtime's OVS side: send these changes to every bridge (in order,
        deduplicated, barrier last) and return once every barrier is answered.
        Call it from any thread but the app's event thread (it waits for replies
        handled there); under Ryu, from a hub (green) thread. A bridge that is not
        connected is skipped: it is reconciled to the plan in force when it connects."""
        by_bridge = ofrules.split_by_bridge(changes)
        if not by_bridge:
            return
        done = compat.make_event()
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
            for br, chs in by_bridge.items():
                bs = self.bridges.get(br)
                if bs is None or bs.dp is None:
                    skipped.append(br)
                    one_done()
                else:
                    self.send_changes(bs, chs, one_done)
        self._post(EventCall(send))
        if not done.wait(self.barrier_timeout):
            raise TimeoutError("no barrier reply within %.0f s: the OVS changes are not "
                               "confirmed" % self.barrier_timeout)
        if errors:
            raise RuntimeError("the switch refused: %s" % "; ".join(errors))
        if skipped:
            self.logger.warning("bridges %s not connected: their changes wait for the "
                                "reconcile on connect", ", ".join(sorted(skipped)))

    def apply_config(self, new_cfg: config_mod.Config, why: str = "reload") -> Dict[str, Any]:
        """Move to a new config: OVSDB first (new bridges, ports, patches), then the
        runtime's transition, make-before-break across both planes (OVS adds and
        modifies, the eSwitch, OVS deletes; the OVS half undone if the eSwitch
        refuses). Same threading rule as ovs_apply."""
        if self.ovsdb is not None:
            self.ovsdb.ensure(ovsdb_mod.desired(new_cfg))
        out = self.runtime.reload(new_cfg, why=why)
        self.health.set_services(list(new_cfg.services))
        self._post(EventCall(self._follow_runtime))
        return out

    def reload_from_file(self) -> Dict[str, Any]:
        if not self.config_path:
            raise runtime_mod.Conflict("the controller was not started from a config file")
        return self.apply_config(config_mod.load(self.config_path), why="reload")

    def installed_flows(self) -> Optional[Dict[str, List[plan_mod.Flow]]]:
        """Our flows as last dumped from every bridge, as plan Flows (for
        consistency.check); None while some bridge is not connected or not dumped."""
        out: Dict[str, List[plan_mod.Flow]] = {}
        for name, bs in list(self.bridges.items()):
            dump = self._installed.get(name)
            if not bs.connected or dump is None:
                return None
            names = {no: n for n, no in bs.ports.items()}
            out[name] = [ofrules.to_plan_flow(i, names, self.attribution) for i in dump if i.ours]
        return out

    # -- state

    def _refresh(self) -> None:
        cfg = self.cfg
        view = self.counters.view(cfg.has_eswitch)
        plan = self.desired_plan()
        services: Dict[str, Dict[str, Dict[str, int]]] = {}
        for svc in cfg.services:
            seen = view["services"].get(svc.name, {})
            services[svc.name] = {b.name: {"ovs_packets": seen.get(b.name, {}).get("packets", 0),
                                           "ovs_bytes": seen.get(b.name, {}).get("bytes", 0)}
                                  for b in svc.backends}
        routes = {r.label: {"ovs_packets": view["routes"].get(r.label, {}).get("packets", 0),
                            "ovs_bytes": view["routes"].get(r.label, {}).get("bytes", 0)}
                  for r in cfg.routes}
        bridges = {}
        for n, b in sorted(self.bridges.items()):
            bridges[n] = b.report()
            bridges[n]["planned"] = len(plan.bridge_flows(n))
        e = cfg.eswitch
        self._snapshot = json.loads(json.dumps({
            "dpu": cfg.dpu_name, "runtime": compat.RUNTIME, "time": time.time(), "pid": os.getpid(),
            "eswitch": {"driver": e.driver, "mode": e.mode, "mirror_routes": e.mirror_routes,
                        "error": self.runtime_error},
            "bridges": bridges, "services": services, "routes": routes,
            "fallback_packets": view["fallback"], "miss_other_packets": view["miss_other"],
            "packet_ins": self.packet_ins, "repairs": self.repairs,
            "last_reconcile": self.last_reconcile,
            "last_transition": dict(self.runtime.last_transition),
            "ovsdb": dict(self.ovsdb_status), "handler_errors": self.handler_errors,
            "of_errors": self.of_errors,
        }, default=str))

    def state(self) -> Dict[str, Any]:
        """A snapshot, safe from any thread (the shape of GET /status without the
        eSwitch counters and the verdict): per bridge connected / flows (ours, as
        dumped) / planned / in_sync / ports; per service and backend ovs_packets and
        ovs_bytes; per route; fallback_packets (None without an eSwitch),
        miss_other_packets, packet_ins, repairs, last_reconcile (actions by kind)."""
        return json.loads(json.dumps(self._snapshot))

    def _write_state(self) -> None:
        if not self.state_path:
            return
        try:
            os.makedirs(os.path.dirname(self.state_path), exist_ok=True)
            tmp = self.state_path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self._snapshot, f, indent=1, sort_keys=True)
            os.replace(tmp, self.state_path)
        except OSError as exc:
            self.logger.warning("cannot write state file %s: %s", self.state_path, exc)


def make_eswitch(cfg: config_mod.Config) -> Any:
    """The eswitchd client when the config has an eSwitch (it connects lazily)."""
    if not cfg.has_eswitch:
        return None
    from ..eswitch.client import EswitchClient
    return EswitchClient(cfg.path(cfg.eswitch.socket), lock=compat.make_lock())

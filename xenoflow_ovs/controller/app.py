"""The OpenFlow controller app: a thin Ryu / os-ken app (faucet style).

Its handlers look up the bridge of the event's datapath and call the bridge
object (bridge.py: send path, dumps, counting, reconcile) or pure code. All
OpenFlow state is changed in the app's event thread; other threads post events
(`EventPoll`, `EventCall`), so the core needs no locks (faucet's "periodic work
as events"), and read the status (status.py), a snapshot.

Life of a bridge:
  worker   -> OVSDB: bridge, ports, patches, controller, datapath-id (worker.py)
  switch   -> connects; MAIN state: identify the bridge (datapath-id, else its
              LOCAL port's name), read its port numbers, dump its flows
  dump     -> reconcile our cookie only: add missing, modify changed, delete
              stale ours; never flush, never touch a foreign flow
  poll     -> every `XENOFLOW_POLL_INTERVAL` s (1): aggregates per rule kind (cheap),
              a full dump when they moved, after our sends, on demand and as a
              periodic audit (counters.DumpPolicy) = counters + drift repair
              ("repaired: ...")
The intent lives in `self.runtime` (runtime.Runtime: config, drains, health, the
plan in force); every change goes through it, make-before-break across both
planes, with `bridge.apply_and_wait` as its OVS half. The API, health checks,
SIGHUP and reload are in management.py; the state file in statefile.py.
Run:  XENOFLOW_CONFIG=FILE ryu-manager xenoflow_ovs.app      (Ryu 4.34)
      xenoflow controller -c FILE                           (os-ken 4, launcher.py)
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from .. import instance, logsetup, sdnotify
from .. import overlay as overlay_mod
from ..api import metrics as metrics_mod
from ..exitcodes import EXIT_ERROR
from ..intent import config as config_mod
from ..intent import plan as plan_mod
from ..intent.plan import Change
from . import alarms as alarms_mod
from . import bridge as bridge_mod
from . import compat, ofrules, statefile
from . import counters as counters_mod
from . import management as management_mod
from . import runtime as runtime_mod
from . import status as status_mod
from . import worker as worker_mod
from .compat import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, ofp_event, set_ev_cls

ENV_CONFIG = "XENOFLOW_CONFIG"
ENV_POLL = "XENOFLOW_POLL_INTERVAL"          # seconds between polls (default 1)
ENV_KILL = "XENOFLOW_KILL_ON_EXCEPTION"      # "0": a failing handler is logged, not fatal
ENV_AUDIT = "XENOFLOW_AUDIT_RATE"            # flows/s of the periodic full dump (counters.AUDIT_RATE)
ENV_FULL = "XENOFLOW_FULL_DUMP_FLOWS"        # bridges up to this many flows: a full dump every poll
ENV_ENSURE = "XENOFLOW_ENSURE_INTERVAL"      # re-check OVSDB this often, s (default 30; and
                                             # at once after a reconnection)
BARRIER_TIMEOUT = 10.0
BARRIER_PER_CHANGE = 0.001    # s: a large batch (a 2^16-bucket drain: ~16 000 flow-mods) gets more


class EventPoll(compat.event.EventBase):
    """Posted by the worker every interval: dump flows of every connected bridge."""


class EventCall(compat.event.EventBase):
    """Run `fn()` in the event thread (the runtime's OVS half, reload)."""

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


def load_config(path: Optional[str]) -> config_mod.Config:
    if not path:
        raise RuntimeError("no config: set %s (ryu-manager) or use `xenoflow controller "
                           "-c FILE`" % ENV_CONFIG)
    return config_mod.load(path)


def make_eswitch(cfg: config_mod.Config, session: Optional[Dict[str, Any]] = None) -> Any:
    """The eswitchd client when the config has an eSwitch (it connects lazily; with a
    session, each connection claims the eSwitch first: eswitch/session.py)."""
    if not cfg.has_eswitch:
        return None
    from ..eswitch.client import EswitchClient
    return EswitchClient(cfg.path(cfg.eswitch.socket), lock=compat.make_lock(), session=session)


def start_process(path: Optional[str], launched: bool) -> Tuple[config_mod.Config, Dict[str, Any]]:
    """What a controller process does before it builds anything: read the config, take the
    DPU's controller lock, and (unless `xenoflow controller` has done it already) check the
    API ports and wait for eswitchd; then its session generation toward eswitchd.
    Every failure is one line and exit 2 (ryu-manager runs this in the app's constructor)."""
    try:
        cfg = load_config(path)
        if not launched:
            instance.acquire(cfg, "controller")
            instance.controller_checks(cfg, listen_openflow=False)   # Ryu's listener is its own
            wait_for_eswitchd(cfg)
        gen = instance.next_generation(cfg)
    except config_mod.ConfigError as exc:
        for line in exc.lines():
            logging.getLogger("xenoflow.app").error("%s", line)
        raise SystemExit(EXIT_ERROR)
    except (instance.StartupError, RuntimeError, OSError) as exc:
        logging.getLogger("xenoflow.app").error("%s", exc)
        raise SystemExit(EXIT_ERROR)
    return cfg, {"generation": gen, "who": "controller pid %d" % os.getpid()}


def start_fleet(cfg: config_mod.Config) -> Tuple[config_mod.Config, Any]:
    """The services from the fleet's store (or the intent applied before): exit 2 without."""
    from ..fleet import follower as follower_mod
    try:
        return follower_mod.bootstrap(cfg)
    except (follower_mod.FleetStartError, config_mod.ConfigError) as exc:
        logging.getLogger("xenoflow.app").error("%s", str(exc).replace("\n", "; "))
        raise SystemExit(EXIT_ERROR)


def wait_for_eswitchd(cfg: config_mod.Config) -> None:
    """Up to dpu.eswitch.connect_timeout s for eswitchd's hello (a read: no claim)."""
    if not cfg.has_eswitch:
        return
    from ..eswitch.client import EswitchClient

    def hello() -> Any:
        c = EswitchClient(cfg.path(cfg.eswitch.socket), timeout=2.0)
        try:
            return c.hello()
        finally:
            c.close()
    if instance.wait_eswitchd(cfg, hello, cfg.eswitch.connect_timeout) is None:
        logging.getLogger("xenoflow.app").warning(
            "eswitchd not answering at %s: starting with OVS alone (dpu.eswitch.connect_timeout 0)",
            cfg.path(cfg.eswitch.socket))


def barrier_timeout(changes: int) -> float:
    """How long a batch's barriers may take: OVS confirms ~10 000 flow-mods a second here,
    and a check running meanwhile delays the replies' handling."""
    return BARRIER_TIMEOUT + BARRIER_PER_CHANGE * changes


def planes_programmed(view: Dict[str, Any], started: bool) -> bool:
    """Both planes hold the intent: the eSwitch adopted and brought to the plan (or there is
    none), every bridge connected, dumped and in sync, its meters too. systemd's READY=1 waits
    for it."""
    bridges = view.get("bridges") or {}
    return started and bool(bridges) and all(
        b.get("connected") and b.get("in_sync") and b.get("flows") == b.get("planned")
        and b.get("meters_in_sync", True) for b in bridges.values())


def _interrupt_in(main: Any) -> Callable[[int, Any], None]:
    """ryu-manager's SIGTERM handler: a KeyboardInterrupt where ryu-manager waits for its
    apps (the main green thread), as Ctrl-C would. Python runs the handler in whichever
    green thread happens to run: raised there (an API handler, the worker) it would only
    end that one, so it is thrown into the main one through the hub."""
    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)    # one stop is enough
        import greenlet
        if greenlet.getcurrent() is main:
            raise KeyboardInterrupt("SIGTERM")
        from eventlet import hubs
        hubs.get_hub().schedule_call_global(0, main.throw, KeyboardInterrupt("SIGTERM"))
    return handler


class XenoFlowApp(compat.BaseApp):
    OFP_VERSIONS = [compat.ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any):
        cfg = kwargs.pop("xenoflow_cfg", None)
        path = kwargs.pop("xenoflow_config", None) or os.environ.get(ENV_CONFIG)
        eswitch = kwargs.pop("xenoflow_eswitch", None)
        # a process of its own (ryu-manager, our launcher), not a test building apps
        self.standalone = cfg is None
        session = None
        self.fleet: Any = kwargs.pop("xenoflow_fleet", None)
        if self.standalone:
            if not logsetup.configured():      # ryu-manager: our format, levels from env
                logsetup.from_env("controller")
            cfg, session = start_process(path, launched=instance.held("controller"))
            if cfg.fleet is not None:          # the services come from the fleet's store
                cfg, self.fleet = start_fleet(cfg)
        super().__init__(*args, **kwargs)
        self.logger = logging.getLogger("xenoflow.app")
        self.kill_on_exception = os.environ.get(ENV_KILL, "1") != "0"
        self.packet_ins = self.handler_errors = self.of_errors = 0
        self.dispatch: Optional[Callable[[Any], None]] = None   # tests: run events inline
        self.status = status_mod.Status(self, compat.RUNTIME, sleep=compat.hub.sleep)
        self.metrics = metrics_mod.Metrics(cfg.dpu_name, self.status.snapshot)
        self.alarms = alarms_mod.Alarms()
        self.ready = False       # READY=1 sent (both planes programmed once)
        self.ready_at: Optional[float] = None
        self.runtime = runtime_mod.Runtime(cfg, self.ovs_apply,
                                           eswitch=eswitch if eswitch is not None
                                           else make_eswitch(cfg, session),
                                           metrics=self.metrics, lock=compat.make_lock())
        # what the rate limits dropped, in both planes (counters.Drops): eswitchd's drop
        # stages through its counters, OVS's meters through their stats replies
        self.limited = counters_mod.Drops()
        self.meter_names = counters_mod.MeterNames()
        self.runtime.es_totals = counters_mod.MeteredTotals(self.limited)
        if self.standalone and self.fleet is None:
            # a controller process: the operator's durable edits are its intent too (in a
            # fleet they are the store's)
            try:
                overlay_mod.attach(self.runtime)
            except overlay_mod.OverlayError as exc:
                self.logger.error("%s", exc)
                raise SystemExit(EXIT_ERROR)
        self.rules = ofrules.Rules.default()
        interval = float(os.environ.get(ENV_POLL, "1") or 1)
        self.bridges = bridge_mod.Bridges(self.rules, self.metrics, interval, policy={
            k: conv(os.environ[env]) for k, env, conv in (("audit_rate", ENV_AUDIT, float),
                                                          ("full_every_poll", ENV_FULL, int))
            if os.environ.get(env)})
        # a flow about to move to another backend is counted first, for the one it had
        # (aggregates first: a full dump only where counts moved since the last one)
        self.runtime.ovs_read = lambda: counters_mod.read_now(self.bridges, self.run_in_app,
                                                              compat.hub.sleep, full=False)
        # GET /check compares the installed flows themselves: a full dump
        self.read_flows = lambda: counters_mod.read_now(self.bridges, self.run_in_app,
                                                        compat.hub.sleep)
        self.worker = worker_mod.Worker(
            self.runtime, self.status, lambda: self._post(EventPoll()),
            interval=interval,
            ensure_every=float(os.environ.get(ENV_ENSURE, "") or worker_mod.ENSURE_EVERY),
            alarms=self.alarms)
        self.management = management_mod.Management(self, path)
        if self.fleet is not None:
            self.fleet.attach(self.runtime, self.management.health, self.status.verdict,
                              lambda: self.run_in_app(self.follow_runtime), self.packets_per_backend)
        self.announcer = self._announcer(cfg) if self.fleet is not None else None
        self.state_file = statefile.StateFile(statefile.default_path(cfg))
        self.follow_runtime()
        self.status.refresh()

    # -- lifecycle

    def start(self) -> Any:
        t = super().start()
        if self.standalone and compat.RUNTIME == "ryu":
            # ryu-manager stops cleanly (app_mgr.close: our last state, our socket removed)
            # on Ctrl-C only; systemd and `kill` send SIGTERM
            import greenlet
            try:
                signal.signal(signal.SIGTERM, _interrupt_in(greenlet.getcurrent()))
            except ValueError:   # not the main thread
                pass
        self.threads.append(compat.hub.spawn(self.worker.run))
        if self.fleet is not None:
            self.threads.append(compat.hub.spawn(self.fleet.run))
        if self.announcer is not None:
            self.threads.append(compat.hub.spawn(self.announcer.run))
        self.management.start()
        cfg = self.runtime.cfg
        self.logger.info("XenoFlow controller (%s) for %s: %d bridge(s), %d flow(s) planned, "
                         "eswitch %s, poll every %.1f s, state in %s", compat.RUNTIME,
                         cfg.dpu_name, len(self.bridges), self.runtime.in_force.flow_count(),
                         cfg.eswitch.driver, self.worker.interval, self.state_file.path)
        return t

    def stop(self) -> None:
        if self.standalone:
            sdnotify.stopping()
        self.worker.stop()
        if self.announcer is not None:
            self.announcer.stop()     # bgpd keeps announcing: a controller restart never withdraws
        if self.fleet is not None:
            self.fleet.stop()
        self.management.stop()
        super().stop()
        self.state_file.write(self.status.app_view())

    def _announcer(self, cfg: config_mod.Config) -> Any:
        """The BGP announcer when the config has fleet.bgp (fleet/announcer.py)."""
        speaker = self.fleet.file_cfg.bgp_speaker()
        if speaker is None:
            return None
        from ..fleet import announce
        from ..fleet.announcer import Announcer
        from ..fleet.frr import Frr
        bad_since: Dict[str, Optional[float]] = {"at": None, "suspect": None}

        def inputs() -> announce.Inputs:
            rt, f, verdict = self.runtime, self.fleet, self.status.verdict()
            now = time.monotonic()
            bad_since["at"] = None if verdict in announce.GOOD_VERDICTS else (bad_since["at"] or now)
            out: Dict[str, set] = {}
            for m in (rt.drained, rt.down):
                for s, n in m.items():
                    out.setdefault(s, set()).update(n)
            # this DPU's own probes: a backend it cannot reach is out here even while the fleet
            # agrees it is up (a broken egress path withdraws this DPU, not the backend)
            monitor = self.management.health
            suspect = bool(getattr(monitor, "path_suspect", False))
            bad_since["suspect"] = (bad_since["suspect"] or now) if suspect else None
            # every probe failing at once keeps the backends' states (the probe path is
            # suspect): for the announcement it means nothing is reachable from here, once
            # it has lasted the hold-down
            cut_off = suspect and now - (bad_since["suspect"] or now) >= announce.SUSPECT_HOLD
            for (s, b), h in list(getattr(monitor, "states", {}).items()):
                if not h.up or cut_off:
                    out.setdefault(s, set()).add(b)
            return announce.Inputs(
                # a verdict from before both planes were read again after a (re)start says
                # nothing about them: only a check since then counts
                started=bool(rt.started and self.status.checked_since(self.ready_at)), verdict=verdict,
                bad_for=0.0 if bad_since["at"] is None else now - bad_since["at"], stale=f.stale,
                drained=f.dpu_drained, rejected=f.state == "rejected",
                in_service=announce.vip_prefixes(rt.cfg.services, out))

        def vip_packets() -> int:
            return sum(self.packets_per_backend().values())

        bgp = speaker[0]
        frr = Frr(bgp.pathspace)        # None: the system's FRR (frr.service)
        a = Announcer(self.fleet.file_cfg, frr, inputs, vip_packets, sleep=compat.hub.sleep)
        self.fleet.announcer = a
        return a

    def packets_per_backend(self) -> Dict[str, int]:
        """{"service/backend": packets counted by both planes}: a fleet DPU's row shows them."""
        out = {}
        for svc, backends in (self.status.snapshot().get("services") or {}).items():
            for name, c in backends.items():
                out["%s/%s" % (svc, name)] = sum(int(c.get(k) or 0)
                                                 for k in ("ovs_packets", "eswitch_packets"))
        return out

    def _post(self, ev: Any) -> None:
        if self.dispatch is not None:
            self.dispatch(ev)
        else:
            self.send_event(self.name, ev)

    def run_in_app(self, fn: Callable[[], None]) -> None:
        """Run `fn` in the event thread."""
        self._post(EventCall(fn))

    def notify_ready(self) -> None:
        """READY=1 to systemd (Type=notify) the first time both planes hold the intent."""
        if self.ready or not planes_programmed(self.status.app_view(), self.runtime.started):
            return
        self.ready = True
        self.ready_at = time.monotonic()
        self.logger.info("both planes programmed: ready")
        if self.standalone:
            sdnotify.ready("both planes programmed")

    def follow_runtime(self) -> None:
        self.bridges.follow(self.runtime.cfg, self.runtime.in_force)

    def ovs_apply(self, changes: List[Change]) -> None:
        """The runtime's OVS half (bridge.apply_and_wait)."""
        bridge_mod.apply_and_wait(self.bridges, changes, self.run_in_app, compat.make_event,
                                  barrier_timeout(len(changes)))

    # -- connection handlers

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def switch_features(self, ev: Any) -> None:
        dp = ev.msg.datapath
        b = self.bridges.by_dpid(dp.id)
        self.logger.info("switch %016x connected%s", dp.id,
                         " (%s)" % b.name if b else ": datapath id not ours yet, "
                         "will identify it by its LOCAL port")

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    def state_change(self, ev: Any) -> None:
        dp = ev.datapath
        if ev.state == MAIN_DISPATCHER:
            b = self.bridges.identify(dp)
            if b is None:
                self.logger.warning("switch %016x is none of our bridges: left alone", dp.id)
                return
            b.attach(dp)
        elif ev.state == DEAD_DISPATCHER:
            for b in self.bridges:
                if b.dp is dp:
                    b.detach()
        self.status.refresh()

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @guarded
    def port_status(self, ev: Any) -> None:
        b = self.bridges.of_datapath(ev.msg.datapath)
        desc = ev.msg.desc
        name = desc.name.decode() if isinstance(desc.name, bytes) else desc.name
        self.logger.info("%s: port %s (%s) %s", b.name if b else "?", name, desc.port_no,
                         {0: "added", 1: "deleted", 2: "modified"}.get(ev.msg.reason, "?"))
        # the next poll's reconcile picks up the new numbers

    # -- the send path

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    @guarded
    def barrier_reply(self, ev: Any) -> None:
        b = self.bridges.of_datapath(ev.msg.datapath)
        if b is not None:
            b.barrier_replied(ev.msg.xid)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @guarded
    def error_msg(self, ev: Any) -> None:
        msg = ev.msg
        b = self.bridges.of_datapath(msg.datapath)
        text = "OpenFlow error type=%d code=%d for xid %s" % (msg.type, msg.code, msg.xid)
        ours = b is not None and b.refused(msg.xid, text, self.rules.is_slave_error(msg.type, msg.code))
        if b is not None and not ours:
            # another app's message (ryu-manager delivers every event to every app)
            self.logger.debug("%s: %s (not ours)", b.name, text)
            return
        self.of_errors += 1
        self.logger.error("%s: %s: %r", b.name if b else "?", text, bytes(msg.data or b"")[:64])
        self.status.refresh()

    @set_ev_cls(ofp_event.EventOFPRoleReply, MAIN_DISPATCHER)
    @guarded
    def role_reply(self, ev: Any) -> None:
        b = self.bridges.of_datapath(ev.msg.datapath)
        if b is not None and b.role_replied(ev.msg):
            self.status.refresh()

    @set_ev_cls(EventCall)
    @guarded
    def call(self, ev: Any) -> None:
        ev.fn()

    # -- dump, count, reconcile

    @set_ev_cls(EventPoll)
    @guarded
    def poll(self, ev: Any) -> None:
        self.follow_runtime()
        self.bridges.poll(time.monotonic())
        self.status.refresh()
        self.state_file.write(self.status.app_view())
        self.notify_ready()

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    @guarded
    def flow_stats_reply(self, ev: Any) -> None:
        b = self.bridges.of_datapath(ev.msg.datapath)
        installed = b.dump_reply(ev.msg) if b is not None else None
        if installed is None:
            return
        self.follow_runtime()
        repairs = self.bridges.repairs
        # a running transition owns the order of changes: reconcile after it
        self.bridges.dumped(b, installed, self.runtime.in_force,
                            may_reconcile=not self.runtime.transitions)
        if self.bridges.repairs > repairs:    # per bridge: flows repaired again and again
            self.alarms.repaired(["bridge %s flows" % b.name], time.time())
        self.status.refresh()
        self.notify_ready()     # the dump that shows our flows, not the next poll, says so

    @set_ev_cls(ofp_event.EventOFPAggregateStatsReply, MAIN_DISPATCHER)
    @guarded
    def aggregate_stats_reply(self, ev: Any) -> None:
        b = self.bridges.of_datapath(ev.msg.datapath)
        got = b.aggregate_reply(ev.msg) if b is not None else None
        if got is None:
            return
        self.follow_runtime()
        self.bridges.aggregated(b, got[0], got[1], self.runtime.in_force, time.monotonic())
        self.status.refresh()

    @set_ev_cls(ofp_event.EventOFPMeterConfigStatsReply, MAIN_DISPATCHER)
    @set_ev_cls(ofp_event.EventOFPMeterStatsReply, MAIN_DISPATCHER)
    @guarded
    def meter_reply(self, ev: Any) -> None:
        b = self.bridges.of_datapath(ev.msg.datapath)
        if b is None:
            return
        self.follow_runtime()
        # a running transition owns the order of changes: reconcile after it
        self.bridges.meter_reply(b, ev.msg, self.runtime.in_force,
                                 may_reconcile=not self.runtime.transitions)
        if isinstance(ev, ofp_event.EventOFPMeterStatsReply):
            names = self.meter_names.learn(self.runtime.cfg)
            self.limited.poll(("ovs", b.name),
                              counters_mod.meter_drop_samples(self.bridges.meter_drops(b.name), names))

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    @guarded
    def flow_removed(self, ev: Any) -> None:
        b = self.bridges.of_datapath(ev.msg.datapath)
        if b is not None and plan_mod.is_ours(ev.msg.cookie):
            self.bridges.flow_removed(b, ev.msg)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def packet_in(self, ev: Any) -> None:
        # The plan sends nothing to the controller: a packet-in is a finding.
        self.packet_ins += 1
        if self.packet_ins <= 10:
            b = self.bridges.of_datapath(ev.msg.datapath)
            self.logger.warning("%s: unexpected packet-in (reason %s, %d bytes)",
                                b.name if b else "?", ev.msg.reason, len(ev.msg.data or b""))

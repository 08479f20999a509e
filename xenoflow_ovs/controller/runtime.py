"""The running intent, and every change to it applied to both planes in order.

One object holds what the controller is asked to do (the config, plus backends
drained by an operator or down by health checks) and what it last installed. A
transition renders the new plan and applies the diff:

    OVS adds/modifies (sync, barrier)  ->  eSwitch changes (eswitchd, all-or-nothing)
                                       ->  OVS deletes

If eswitchd refuses, the OVS half is reverted and the old state keeps serving:
the intent is never applied half. The OVS side is a callable given by the app,
so this module holds no OpenFlow and is tested without a switch.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from ..eswitch.client import EswitchClient, EswitchError
from ..intent import buckets, render
from ..intent import config as config_mod
from ..intent import plan as plan_mod
from ..intent.plan import Change, Plan

log = logging.getLogger("xenoflow.runtime")

OvsApply = Callable[[List[Change]], None]


class TransitionError(Exception):
    """A change was refused or failed; nothing of it stays installed."""


class Conflict(TransitionError):
    """The request makes no sense in the current state (HTTP 409)."""


def _invert_ovs(changes: List[Change]) -> List[Change]:
    out = []
    for c in reversed(changes):
        if c.op == "add":
            out.append(Change("ovs", "delete", c.item))
        elif c.op == "modify":
            out.append(Change("ovs", "modify", c.old, c.item))
        elif c.op == "delete":
            out.append(Change("ovs", "add", c.item))
    return out


class Runtime:
    def __init__(self, cfg: config_mod.Config, ovs_apply: OvsApply,
                 eswitch: Optional[EswitchClient] = None, metrics: Any = None, lock: Any = None):
        self.cfg = cfg
        self.ovs_apply = ovs_apply
        self.eswitch = eswitch
        self.metrics = metrics
        self.drained: Dict[str, Set[str]] = {}
        self.down: Dict[str, Set[str]] = {}
        self.started = False                 # start() has adopted the eSwitch
        self._applied: Plan = Plan((), (), ())
        self._rendered: Plan = self._applied
        # (boot, version) of eswitchd's table as our own applies or listings left it: a
        # reconcile lists the eSwitch only when the version moved behind our back
        self.es_table: Optional[Tuple[str, int]] = None
        # Not reentrant on purpose: under Ryu the app passes a green lock (threading
        # is not patched there). Public methods lock; the _underscored ones assume it.
        self.lock = lock if lock is not None else threading.Lock()
        self.last_transition: Dict[str, Any] = {}
        self.es_totals = EswitchTotals()
        # > 0 while a transition runs: the app's own reconcile must wait, since the plan
        # in force is still the old one until the transition ends.
        self.transitions = 0
        # The operator's durable edits (xenoflow_ovs/overlay.Overlay), or None: drains and
        # API edits are then lost at restart (unit tests, tools that plan only).
        self.overlay: Any = None
        # In a fleet, the follower of the store (fleet/follower.py): edits go there.
        self.fleet: Any = None
        # Reads OVS's flow counters now (the app dumps every bridge and waits for the
        # replies), or None: called before a transition modifies a service flow to another
        # backend, so what the flow counted until then stays with the backend it had.
        self.ovs_read: Optional[Callable[[], None]] = None

    # -- what we want ----------------------------------------------------------------

    def exclude(self, drained: Optional[Dict[str, Set[str]]] = None,
                down: Optional[Dict[str, Set[str]]] = None) -> Dict[str, Set[str]]:
        out: Dict[str, Set[str]] = {}
        for m in (self.drained if drained is None else drained, self.down if down is None else down):
            for svc, names in m.items():
                out.setdefault(svc, set()).update(names)
        return out

    def desired(self, cfg: Optional[config_mod.Config] = None, **kw: Any) -> Plan:
        """The plan of the current intent (or of the one given)."""
        # The plan in force (before start: the last one rendered) lends the parts of
        # services this rendering leaves unchanged: re-planning an unchanged intent is cheap.
        p = plan_mod.plan(cfg or self.cfg, exclude=self.exclude(**kw),
                          reuse=self._applied if self.started else self._rendered)
        self._rendered = p
        return p

    @property
    def in_force(self) -> Plan:
        """The plan both planes are programmed to: what the last transition (or start)
        applied. Until start() has adopted the eSwitch, OVS alone is brought to the
        intent, so the plan in force is the desired one."""
        return self._applied if self.started else self.desired()

    @in_force.setter
    def in_force(self, plan: Plan) -> None:
        self._applied = plan

    def in_service(self, service: str, backend: str) -> bool:
        return backend not in self.exclude().get(service, set())

    def use_overlay(self, overlay: Any) -> None:
        """Put the operator's overlay on top of the config, before start(): its edits and
        drains become the intent, and every accepted edit from now on is written to it."""
        with self.lock:
            self.cfg, drained = overlay.apply(self.cfg)
            self.drained = {s: set(n) for s, n in drained.items()}
            self.overlay = overlay

    def _remember(self, edit: Dict[str, Any], summary: Dict[str, Any]) -> None:
        if self.overlay is None:
            return
        error = self.overlay.remember(edit)
        if error:
            summary["overlay_error"] = error

    # -- applying --------------------------------------------------------------------

    def start(self) -> Dict[str, int]:
        """First sync after (re)start: adopt what eswitchd holds (no flush, no duplicates).
        OVS is adopted per bridge by the app when each bridge connects."""
        with self.lock:
            clock = _Phases()
            target = self.desired()
            clock.lap("plan")
            done = {"eswitch": 0}
            if self.eswitch is not None and self.cfg.has_eswitch:
                pipes, entries = self.eswitch.installed()
                self.es_table = getattr(self.eswitch, "listed", None)
                clock.lap("list")
                changes = plan_mod.adoption_changes(pipes, entries, target,
                                                        getattr(self.eswitch, "listed_meters", ()))
                clock.lap("diff")
                if changes:
                    self._eswitch_apply(changes)
                    clock.lap("apply")
                    log.info("eSwitch adopted %d entr(ies), changed %d in %.3f s (%s)", len(entries),
                             len(changes), clock.total, clock.describe())
                done["eswitch"] = len(changes)
                done["adopted"] = len(entries)
            self._applied, self.started = target, True
            return done

    def _eswitch_apply(self, changes: List[Change]) -> None:
        assert self.eswitch is not None
        totals = self._es_totals_kept()
        if self.started and not totals and any(c.op in ("update", "remove") for c in changes):
            # An older eswitchd keeps no totals. An entry's counter goes with the entry: read
            # it before the entry changes backend or goes away, so what it counted so far
            # stays with the backend that got it (docs/design.md, counters across changes).
            try:
                self.es_totals.update(self.eswitch.counters())
            except EswitchError:
                pass
        t0 = time.monotonic()
        known = self._es_table()
        self.es_table = None            # unknown until eswitchd says what this apply made
        reply = self.eswitch.apply(changes, counted=False) if totals else self.eswitch.apply(changes)
        # eswitchd's table is still what we know only if nothing moved it between what we
        # last saw and this apply (another client's write: a repair must look)
        if known is not None and (reply.get("boot"), reply.get("version_before")) == known:
            self.es_table = (known[0], int(reply["version"]))
        counted = reply.get("counted")
        if counted:  # an older eswitchd read each changed entry under its lock, right before
            self.es_totals.settle(counted)
        if self.metrics is not None:
            self.metrics.installed(time.monotonic() - t0)
            for c in changes:
                self.metrics.reconciled("eswitch", c.op)

    def _es_totals_kept(self) -> bool:
        """eswitchd keeps totals per backend (it says so in its hello); stand-ins of the
        client in tests, and older eswitchds, do not."""
        features = getattr(self.eswitch, "features", None)
        return features is not None and "totals" in features()

    def _es_table(self) -> Optional[Tuple[str, int]]:
        """eswitchd's (boot, table version) as our own applies left it, None when unknown
        (before the first repair, after a failed apply, or an eswitchd without versions)."""
        return self.es_table

    def transition(self, cfg: Optional[config_mod.Config] = None,
                   drained: Optional[Dict[str, Set[str]]] = None,
                   down: Optional[Dict[str, Set[str]]] = None, why: str = "") -> Dict[str, Any]:
        with self.lock:
            return self._transition(cfg, drained, down, why)

    def _transition(self, cfg: Optional[config_mod.Config] = None,
                    drained: Optional[Dict[str, Set[str]]] = None,
                    down: Optional[Dict[str, Set[str]]] = None, why: str = "") -> Dict[str, Any]:
        self.transitions += 1
        try:
            return self._apply_transition(cfg, drained, down, why)
        finally:
            self.transitions -= 1

    def _apply_transition(self, cfg: Optional[config_mod.Config],
                          drained: Optional[Dict[str, Set[str]]],
                          down: Optional[Dict[str, Set[str]]], why: str) -> Dict[str, Any]:
        new_cfg = cfg or self.cfg
        clock = _Phases()
        target = self.desired(new_cfg, drained=drained, down=down)
        clock.lap("plan")
        changes = plan_mod.diff(self._applied, target)
        clock.lap("diff")
        first = [c for c in changes if c.plane == "ovs" and c.op != "delete"]
        middle = [c for c in changes if c.plane == "eswitch"]
        last = [c for c in changes if c.plane == "ovs" and c.op == "delete"]
        if middle and (self.eswitch is None or not new_cfg.has_eswitch):
            if self.cfg.has_eswitch != new_cfg.has_eswitch:
                raise Conflict("switching dpu.eswitch.driver needs a controller restart")
            middle = []
        if self.ovs_read is not None and any(_moves_backend(c) for c in first):
            try:
                self.ovs_read()
            except Exception:  # counting must not stop a drain: the next poll counts instead
                log.exception("could not read OVS counters before the change")
            clock.lap("ovs_read")
        try:
            self.ovs_apply(first)
        except Exception as exc:
            self._revert_ovs(first)
            raise TransitionError("OVS refused the change (%s); nothing changed" % exc)
        clock.lap("ovs")
        if middle:
            try:
                self._eswitch_apply(middle)
            except EswitchError as exc:
                self._revert_ovs(first)
                detail = " (%s in %s)" % (exc.doca_error, exc.call) if exc.doca_error else ""
                raise TransitionError("eSwitch refused the change: %s%s; both planes kept the "
                                      "previous state" % (exc, detail))
            clock.lap("eswitch")
        self.ovs_apply(last)
        clock.lap("ovs_deletes")
        moved = plan_mod.moved_buckets(self._applied, target)
        self.cfg, self._applied = new_cfg, target
        if drained is not None:
            self.drained = drained
        if down is not None:
            self.down = down
        summary: Dict[str, Any] = {"why": why, "ovs": len(first) + len(last), "eswitch": len(middle),
                                   "moved_buckets": moved, "at": time.time(), "seconds": clock.laps}
        if cfg is not None:  # a new config (edit, reload): weights its buckets cannot realise
            summary["warnings"] = buckets.weight_warnings_of(new_cfg)
        self.last_transition = summary
        if changes:
            log.info("applied %s: %d OVS and %d eSwitch change(s) in %.3f s (%s)", why or "change",
                     summary["ovs"], summary["eswitch"], clock.total, clock.describe())
        if self.metrics is not None:
            for c in first + last:
                self.metrics.reconciled("ovs", c.op)
        return summary

    def _revert_ovs(self, applied: List[Change]) -> None:
        try:
            self.ovs_apply(_invert_ovs(applied))
        except Exception:  # the app's reconcile repairs whatever is left
            log.exception("could not revert OVS; the next reconcile repairs it")

    # -- operations ------------------------------------------------------------------

    def _backend(self, service: str, backend: str) -> None:
        try:
            self.cfg.service(service).backend(backend)
        except KeyError:
            raise LookupError("no backend %r in service %r" % (backend, service))

    def drain(self, service: str, backend: str, on: bool = True) -> Dict[str, Any]:
        with self.lock:
            self._backend(service, backend)
            drained = {k: set(v) for k, v in self.drained.items()}
            if on:
                svc = self.cfg.service(service)
                left = [b.name for b in svc.backends if b.weight > 0 and b.name != backend
                        and self.in_service(service, b.name)]
                if not left:
                    raise Conflict("cannot drain %s: it is the last backend in service of %s"
                                   % (backend, service))
                drained.setdefault(service, set()).add(backend)
            else:
                drained.get(service, set()).discard(backend)
            out = self._transition(drained=drained, why="%s %s/%s" % (
                "drain" if on else "undrain", service, backend))
            self._remember({"op": "drain" if on else "undrain", "service": service,
                            "backend": backend}, out)
            return out

    def set_health(self, service: str, backend: str, up: bool, why: str = "") -> Dict[str, Any]:
        with self.lock:
            down = {k: set(v) for k, v in self.down.items()}
            if up:
                down.get(service, set()).discard(backend)
            else:
                down.setdefault(service, set()).add(backend)
            return self._transition(down=down, why="health %s/%s %s%s" % (
                service, backend, "up" if up else "down", ": " + why if why else ""))

    def edit(self, mutate: Callable[[Dict[str, Any]], None], why: str,
             remember: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Apply an edit of the running config (API): validated like a file, then a
        transition; once applied, `remember` (an overlay edit) makes it durable."""
        with self.lock:
            data = config_mod.to_data(self.cfg)
            mutate(data)
            new_cfg = config_mod.from_data(data, base_dir=self.cfg.base_dir, source="<api>")
            out = self._reload(new_cfg, why=why)
            if remember is not None:
                self._remember(remember, out)
            return out

    def reload(self, new_cfg: config_mod.Config, why: str = "reload") -> Dict[str, Any]:
        """Move to a new config file's content, with the operator's overlay on top."""
        with self.lock:
            if self.overlay is None:
                return self._reload(new_cfg, why)
            # The overlay loses the edits of backends the file dropped only once the new
            # config is in force: a refused reload keeps both.
            with_overlay, drained, kept, dropped = self.overlay.preview(new_cfg)
            out = self._reload(with_overlay, why, drained=drained)
            self.overlay.commit(kept, dropped)
            out["overlay_dropped"] = self.overlay.names(dropped)
            return out

    def _reload(self, new_cfg: config_mod.Config, why: str,
                drained: Optional[Dict[str, Set[str]]] = None) -> Dict[str, Any]:
        # Drains and health states of backends that no longer exist are forgotten.
        keep = {s.name: {b.name for b in s.backends} for s in new_cfg.services}
        drained = {s: set(n) & keep.get(s, set())
                   for s, n in (self.drained if drained is None else drained).items()}
        down = {s: n & keep.get(s, set()) for s, n in self.down.items()}
        return self._transition(new_cfg, drained=drained, down=down, why=why)

    def reconcile_eswitch(self) -> List[str]:
        """Repair eSwitch drift (an entry removed or changed behind our back). The table is
        listed and compared with the plan only when eswitchd's table version is not the
        one our own applies left (every write moves it, from any client): at 2^16 entries
        a service, the listing and the comparison cost seconds, the version one round trip."""
        if self.eswitch is None or not self.cfg.has_eswitch:
            return []
        with self.lock:
            version = getattr(self.eswitch, "table_version", None)
            now = version() if version is not None else None
            if now is not None and now == self._es_table():
                return []
            pipes, entries = self.eswitch.installed()
            self.es_table = getattr(self.eswitch, "listed", None)
            changes = plan_mod.adoption_changes(pipes, entries, self._applied,
                                                getattr(self.eswitch, "listed_meters", ()))
            if not changes:
                return []
            self._eswitch_apply(changes)
            said = ["%s %s" % (c.op, _described(c.item)) for c in changes]
            for s in said:
                log.warning("repaired eSwitch drift: %s", s)
            if self.metrics is not None:
                self.metrics.reconciled("eswitch", "repair", len(changes))
            return said

    def poll_eswitch(self) -> bool:
        """Read eswitchd's counters into the running totals; False if it is unreachable.
        An eswitchd that keeps totals sends one per backend and route, not every entry."""
        if self.eswitch is None or not self.cfg.has_eswitch:
            return False
        try:
            c = self.eswitch.counters(entries=False) if self._es_totals_kept() else self.eswitch.counters()
        except EswitchError:
            return False
        with self.lock:
            self.es_totals.update(c)
        return True


class _Phases:
    """Seconds per phase of a transition: where a slow change spends its time."""

    def __init__(self) -> None:
        self.start = self.last = time.monotonic()
        self.laps: Dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self.last, 4)
        self.last = now

    @property
    def total(self) -> float:
        return self.last - self.start

    def describe(self) -> str:
        return ", ".join("%s %.3f" % kv for kv in self.laps.items())


def _moves_backend(c: Change) -> bool:
    """An OVS service flow modified in place to another backend: it keeps its counts (a
    deleted flow reports its own in OFPFlowRemoved)."""
    return (c.op == "modify" and getattr(c.item, "kind", "") == "service"
            and getattr(c.old, "backend", None) != c.item.backend)


class EswitchTotals:
    """Per-backend and per-route eSwitch totals that survive bucket moves, entry re-adds
    and eswitchd restarts.

    eswitchd keeps totals per (kind, owner, backend) itself, exact across moves (it reads
    an entry under its lock right before the entry changes backend or goes away): each
    poll credits what every total gained since the last one. A total that went down, or
    another `boot`, is a restarted eswitchd, whose totals start from zero again.

    An older eswitchd sends every entry instead: then what every entry gained since the
    last poll goes to the backend it names now, and `settle` credits the entries read
    right before a change (its apply reply) to the backend they named until then."""

    def __init__(self) -> None:
        self.last: Dict[Any, Tuple[int, int]] = {}
        self.backends: Dict[Tuple[str, str], List[int]] = {}
        self.ports: Dict[str, Any] = {}
        self.routes: Dict[str, List[int]] = {}
        self.polled_at: Optional[float] = None
        self.boot: Optional[str] = None

    def settle(self, counted: List[Dict[str, Any]]) -> None:
        """Entries read right before they changed (eswitchd's apply reply): what each
        gained since the last poll goes to the backend it named until then."""
        for e in counted:
            ent = e["entry"]
            key = (ent["port"], ent["pipe"], tuple(map(tuple, ent["match"])))
            pkts, byts = int(e["pkts"]), int(e["bytes"])
            lp, lb = self.last.get(key, (0, 0))
            dp, db = (pkts - lp, byts - lb) if pkts >= lp else (pkts, byts)
            self.last[key] = (pkts, byts)
            self._credit(ent["kind"], ent["owner"], ent.get("backend"), dp, db)

    def _credit(self, kind: str, owner: str, backend: Optional[str], dp: int, db: int) -> None:
        if kind == "bucket" and backend:
            t = self.backends.setdefault((owner, backend), [0, 0])
        elif kind == "route":
            t = self.routes.setdefault(owner, [0, 0])
        else:
            return
        t[0] += dp
        t[1] += db

    def update(self, counters: Dict[str, Any]) -> None:
        if "totals" in counters:
            self._update_totals(counters)
        else:
            self._update_entries(counters)
        self.ports = dict(counters.get("ports", {}))
        self.polled_at = time.time()

    def _update_totals(self, counters: Dict[str, Any]) -> None:
        boot = (counters.get("table") or {}).get("boot")
        last = self.last if boot == self.boot else {}
        seen = {}
        for t in counters["totals"]:
            key = ("total", t["kind"], t["owner"], t.get("backend"))
            pkts, byts = int(t["pkts"]), int(t["bytes"])
            lp, lb = last.get(key, (0, 0))
            dp, db = (pkts - lp, byts - lb) if pkts >= lp else (pkts, byts)  # restarted: from 0
            seen[key] = (pkts, byts)
            self._credit(t["kind"], t["owner"], t.get("backend"), dp, db)
        self.last, self.boot = seen, boot

    def _update_entries(self, counters: Dict[str, Any]) -> None:
        seen = {}
        for e in counters.get("entries", []):
            ent = e["entry"]
            key = (ent["port"], ent["pipe"], tuple(map(tuple, ent["match"])))
            pkts, byts = int(e["pkts"]), int(e["bytes"])
            lp, lb = self.last.get(key, (0, 0))
            dp, db = (pkts - lp, byts - lb) if pkts >= lp else (pkts, byts)  # re-added: from 0
            seen[key] = (pkts, byts)
            self._credit(ent["kind"], ent["owner"], ent.get("backend"), dp, db)
        self.last, self.boot = seen, None


def _described(item: Any) -> str:
    if isinstance(item, plan_mod.Entry):
        return render.describe_entry(item)
    if isinstance(item, plan_mod.Meter):
        return "meter %d (%d pps, burst %d)" % (item.meter_id, item.pps, item.burst)
    return "pipe " + item.name

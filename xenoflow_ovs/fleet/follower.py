"""A controller in a fleet: it follows the store and reports to it.

At start (`bootstrap`), the services come from the store (bounded by
fleet.connect_timeout), else from the intent this DPU last applied (its cache in the
state directory: fail static), else the controller does not start. Then one loop,
woken by every change of the replica and at least every heartbeat:

  store version moved  -> the DPU's config = its file + the store's services; applied
                          through the runtime's one transition path (make-before-break,
                          all or nothing, both planes); the row says `applied_version`,
                          or `rejected` with the error while the last good one stays
  heartbeat            -> this DPU's probe results, stamped with the fleet's health
                          sequence; the agreement rule's verdicts written when they
                          differ from the stored ones (fleet/agreement.py)
  store unreachable    -> nothing changes: forwarding goes on with the last applied
                          version; the DPU is stale until it catches up. Meanwhile its own
                          probes apply locally (a backend they see down leaves this
                          DPU's tables); back in touch, the agreed states replace them.

API and CLI edits in fleet mode are store transactions (`edit`), answered once this
DPU applied the version they committed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from .. import statedir
from ..controller import compat
from ..intent import config as config_mod
from . import agreement, edits, model
from .store import Store, StoreError, absolute_remotes

log = logging.getLogger("xenoflow.fleet")

CACHE = "fleet-intent.json"
EDIT_WAIT = 30.0     # s an API edit waits for this DPU to apply what it committed


class FleetStartError(Exception):
    """No intent to start with (one line)."""


# ---------------------------------------------------------------- the cache (fail static)


def store_remotes(cfg: config_mod.Config) -> List[str]:
    """fleet.remotes, a relative unix:PATH taken relative to the config file's directory."""
    assert cfg.fleet is not None
    return absolute_remotes(cfg.fleet.remotes, cfg.base_dir)


def cache_path(cfg: config_mod.Config) -> str:
    return os.path.join(statedir.path(cfg), CACHE)


def write_cache(path: str, intent: model.Intent) -> None:
    doc = {"version": intent.version, "services": intent.services,
           "drained": {s: sorted(n) for s, n in intent.drained.items()},
           "down": {s: sorted(n) for s, n in intent.down.items()}}
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_cache(path: str) -> Optional[model.Intent]:
    try:
        with open(path) as f:
            doc = json.load(f)
        return model.Intent(int(doc["version"]), list(doc["services"]),
                            {s: set(n) for s, n in doc.get("drained", {}).items()},
                            {s: set(n) for s, n in doc.get("down", {}).items()})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: unreadable cached intent (%s): ignored", path, exc)
        return None


# ---------------------------------------------------------------- start


def bootstrap(file_cfg: config_mod.Config) -> Tuple[config_mod.Config, "Follower"]:
    """The config to start with (the file's local part + services) and the follower."""
    assert file_cfg.fleet is not None
    local = model.local_data(file_cfg)
    cache = cache_path(file_cfg)
    store: Optional[Store] = Store(store_remotes(file_cfg), timeout=max(0.5, file_cfg.fleet.connect_timeout))
    intent: Optional[model.Intent] = None
    source, error = "store", None
    try:
        assert store is not None
        store.connect()
        snap = store.snapshot()
        if snap["services"]:
            intent = model.intent_of(snap)
        else:
            error = "the store holds no services yet (`xenoflow fleet import FILE`)"
    except StoreError as exc:
        error = str(exc)
        if store is not None:
            store.close()
        store = None
    cfg = None
    if intent is not None:
        try:
            cfg = model.compose(local, intent.services, base_dir=file_cfg.base_dir)
        except config_mod.ConfigError as exc:
            error = "the store's version %d does not fit this DPU: %s" % (intent.version,
                                                                          "; ".join(exc.lines()))
            log.error("%s", error)
            intent = None
    rejected = error if intent is None and store is not None else None
    if intent is None:
        intent = read_cache(cache)
        source = "cache"
        if intent is None:
            raise FleetStartError("no intent to start with: %s, and no intent applied before in %s"
                                  % (error, cache))
        cfg = model.compose(local, intent.services, base_dir=file_cfg.base_dir)
        log.warning("fleet: starting from the intent applied before (version %d, %s): %s",
                    intent.version, cache, error)
    assert cfg is not None
    f = Follower(file_cfg, store, intent, cache, source=source)
    if rejected:
        f.state, f.error = "rejected", rejected
    return cfg, f


# ---------------------------------------------------------------- the loop


class Follower:
    def __init__(self, file_cfg: config_mod.Config, store: Optional[Store], intent: model.Intent,
                 cache: str, source: str = "store"):
        assert file_cfg.fleet is not None
        self.file_cfg = file_cfg
        self.fleet = file_cfg.fleet
        self.local = model.local_data(file_cfg)
        self.store = store
        self.intent = intent
        self.cache = cache
        self.source = source
        self.applied_version = intent.version if source == "store" else -1
        self.state = "starting"
        self.error = ""
        self.rejected_version: Optional[int] = None
        self.store_version: Optional[int] = None
        self.disconnected_since: Optional[float] = None if store is not None else time.time()
        self.local_down: Dict[str, Set[str]] = {}   # our own probes' verdicts, used while cut off
        # the last write to the store failed: a relay may still serve its last copy of a
        # store whose cluster is gone, so a live replica alone does not mean reachable
        self.write_failed: Optional[str] = None
        self.published: Dict[str, Any] = {}
        self._digested: Optional[Tuple[Any, Dict[str, str]]] = None
        self.last_apply: Dict[str, Any] = {}
        self.applies = 0
        self.runtime: Any = None
        self.monitor: Any = None
        self.announcer: Any = None          # fleet/announcer.py, with fleet.bgp
        self.dpu_drained = False            # the operator drained this DPU (as last read)
        self.dpus: Dict[str, Dict[str, Any]] = {}   # every DPU's row, as last read from the store
        self.dpus_read_at: Optional[float] = None
        self.verdict: Callable[[], str] = lambda: "unknown"
        self.counters: Callable[[], Dict[str, int]] = lambda: {}
        self.follow: Callable[[], None] = lambda: None
        self._wake = compat.make_event()
        self._stop = compat.make_event()
        if store is not None:
            store.on_change = self._wake.set

    # -- wiring

    def attach(self, runtime: Any, monitor: Any, verdict: Callable[[], str],
               follow: Callable[[], None], counters: Optional[Callable[[], Dict[str, int]]] = None) -> None:
        """The runtime starts from this intent's drains and agreed health. `counters`: the
        packets per "service/backend" both planes counted (published at each heartbeat)."""
        self.runtime, self.monitor, self.verdict, self.follow = runtime, monitor, verdict, follow
        if counters is not None:
            self.counters = counters
        runtime.drained = {s: set(n) for s, n in self.intent.drained.items()}
        runtime.down = {s: set(n) for s, n in self.intent.down.items()}
        runtime.fleet = self
        monitor.on_change = self.local_health

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self.store is not None:
            self.store.close()

    def reachable(self) -> bool:
        return self.store is not None and self.store.connected() and self.write_failed is None

    @property
    def stale(self) -> bool:
        return (not self.reachable()
                or (self.store_version is not None and self.applied_version != self.store_version
                    and self.rejected_version != self.store_version))

    def view(self) -> Dict[str, Any]:
        return {"dpu": self.file_cfg.dpu_name, "remotes": list(self.fleet.remotes),
                "connected": self.reachable(), "write_failed": self.write_failed,
                "stale": self.stale, "state": self.state, "error": self.error or None,
                "applied_version": self.applied_version, "store_version": self.store_version,
                "rejected_version": self.rejected_version, "source": self.source,
                "disconnected_since": self.disconnected_since, "applies": self.applies,
                "last_apply": dict(self.last_apply),
                "local_down": {s: sorted(n) for s, n in self.local_down.items() if n},
                "drained": self.dpu_drained, "dpus": self.dpus, "dpus_read_at": self.dpus_read_at}

    # -- the loop

    def run(self) -> None:
        last_beat = 0.0
        while not self._stop.is_set():
            self._wake.wait(min(self.fleet.heartbeat, 1.0))
            self._wake.clear()
            if self._stop.is_set():
                break
            if self.state == "starting" and self.runtime is not None and self.runtime.started:
                self.state = "ok"          # the intent started with is in force (adopted)
                if self.source == "store":
                    self._keep(self.intent)
            try:
                if not self._reachable():
                    continue
                assert self.store is not None
                now = time.monotonic()
                beat = now - last_beat >= self.fleet.heartbeat
                # most wake-ups are other DPUs' heartbeats: the whole store is read only
                # when the intent moved, at our own heartbeat, or to drop local verdicts
                if (beat or self.store.version() != self.store_version
                        or (any(self.local_down.values()) and self.reachable())):
                    snap = self.store.snapshot()
                    self._follow(snap)
                self._publish()
                if beat:
                    last_beat = now
                    self._beat(snap)
                # writable again only once a heartbeat's writes went through: a round that
                # wrote nothing proves nothing (the session may just not have noticed yet)
                if self.write_failed is not None and beat:
                    log.warning("fleet store writable again")
                    self.write_failed = None
            except StoreError as exc:
                if self.write_failed is None:
                    log.warning("fleet store: %s: stale until a write goes through", exc)
                    self.write_failed = str(exc)
            except Exception:   # one bad round must not stop following the store
                log.exception("fleet: round failed")

    def _reachable(self) -> bool:
        if self.store is None:
            try:
                store = Store(store_remotes(self.file_cfg), timeout=max(0.5, self.fleet.connect_timeout),
                              on_change=self._wake.set)
                store.connect()
            except StoreError:
                self._stop.wait(1.0)
                return False
            self.store = store
        if self.store.connected():
            if self.disconnected_since is not None:
                log.warning("fleet store back after %.1f s: catching up",
                            time.time() - self.disconnected_since)
                self.disconnected_since = None
            return True
        if self.disconnected_since is None:
            self.disconnected_since = time.time()
            log.warning("fleet store unreachable (%s): forwarding goes on with version %d (stale)",
                        self.store.remote, self.applied_version)
        return False

    def _follow(self, snap: Dict[str, Any]) -> None:
        v = int(snap["version"])
        self.store_version = v
        self.dpus = {name: {k: d[k] for k in DPU_VIEW_KEYS} for name, d in model.dpu_rows(snap).items()}
        self.dpus_read_at = time.time()
        drained = self.file_cfg.dpu_name in (snap.get("drained_dpus") or ())
        if drained != self.dpu_drained:
            log.warning("fleet: this DPU is %s", "drained: its VIPs are withdrawn" if drained
                        else "back in the fleet: its VIPs are announced once it forwards them")
            self.dpu_drained = drained
        if not snap["services"]:
            return                     # an empty store: nothing imported yet, keep what runs
        if v == self.rejected_version:
            return
        # local verdicts go once the store takes writes again (a relay may serve a copy
        # while the cluster behind it is gone: then they stay)
        if v != self.applied_version or (any(self.local_down.values()) and self.reachable()):
            self._apply(model.intent_of(snap))

    def _apply(self, intent: model.Intent) -> None:
        rt = self.runtime
        t0 = time.monotonic()
        local = {} if self.reachable() else self.local_down
        try:
            cfg = model.compose(self.local, intent.services, base_dir=self.file_cfg.base_dir)
            out = rt.transition(cfg, drained=intent.drained, down=_union(intent.down, local),
                                why="fleet version %d" % intent.version)
        except Exception as exc:    # ConfigError, TransitionError, Conflict: keep the last good one
            self.state, self.rejected_version = "rejected", intent.version
            self.error = str(exc).replace("\n", "; ")
            log.error("fleet version %d rejected, version %d stays: %s", intent.version,
                      self.applied_version, self.error)
            return
        self.intent, self.applied_version, self.source = intent, intent.version, "store"
        self.local_down = {s: set(n) for s, n in local.items()}
        self.state, self.error, self.rejected_version = "ok", "", None
        self.applies += 1
        self.last_apply = {"version": intent.version, "seconds": round(time.monotonic() - t0, 4),
                           "ovs": out.get("ovs"), "eswitch": out.get("eswitch"),
                           "moved_buckets": out.get("moved_buckets")}
        if self.monitor is not None:
            self.monitor.set_services(list(cfg.services))
        self.follow()
        self._keep(intent)

    def _keep(self, intent: model.Intent) -> None:
        """The intent in force, for a restart without the store."""
        try:
            write_cache(self.cache, intent)
        except OSError as exc:
            log.error("cannot write %s: %s (a restart without the store would start older)",
                      self.cache, exc)

    def _beat(self, snap: Dict[str, Any]) -> None:
        assert self.store is not None
        obs: Dict[str, str] = {}
        if self.monitor is not None and not getattr(self.monitor, "path_suspect", False):
            obs = agreement.observations({k: h.up for k, h in list(self.monitor.states.items())})
        self.store.observe(self.file_cfg.dpu_name, obs)
        counted = self.counters()
        if counted != self.published.get("counters"):
            self.store.publish(self.file_cfg.dpu_name, counters=counted)
            self.published["counters"] = counted
        if agreement.decide(snap):         # decided again on a fresh read in the transaction
            self.store.change(edits.agree_health(), "agreed health")

    def _digests(self) -> Dict[str, str]:
        """Per service, the digest of the tables in force (computed once per plan)."""
        rt = self.runtime
        if rt is None or not rt.started or self.applied_version < 0:
            return {}
        plan = rt.in_force
        if self._digested is None or self._digested[0] is not plan:
            self._digested = (plan, model.digests(rt.cfg, dict(plan.tables)))
        return self._digested[1]

    def _row(self) -> Dict[str, Any]:
        rt = self.runtime
        digests = self._digests()
        cfg = self.file_cfg
        cap = {k: getattr(cfg.eswitch.capacity, k) for k in ("entries_per_pipe", "pipes")
               if getattr(cfg.eswitch.capacity, k) is not None}
        return {"facts": model.facts_of(cfg), "driver": cfg.eswitch.driver,
                "ports": sorted(p.name for p in cfg.ports), "capacity": cap,
                "applied_version": max(0, self.applied_version) if rt is not None and rt.started else 0,
                "state": self.state if rt is not None and rt.started else "starting",
                "rejected_version": [self.rejected_version] if self.rejected_version is not None else [],
                "error": self.error, "stale": self.stale, "verdict": self.verdict(),
                "digests": digests, **(self.announcer.row() if self.announcer is not None else {})}

    def _publish(self) -> None:
        row = self._row()
        changed = {k: v for k, v in row.items() if self.published.get(k) != v}
        if not changed or self.store is None:
            return
        self.store.publish(self.file_cfg.dpu_name, **changed)
        self.published.update(changed)

    # -- from the API and the health monitor

    def local_health(self, service: str, backend: str, up: bool, why: str) -> None:
        """The monitor's verdict: an observation for the fleet, applied here only while the
        store is out of reach."""
        if self.reachable():
            self._wake.set()
            return
        down = self.local_down.setdefault(service, set())
        (down.discard if up else down.add)(backend)
        try:
            self.runtime.transition(down=_union(self.intent.down, self.local_down),
                                    why="local health %s/%s %s (store unreachable)" % (
                                        service, backend, "up" if up else "down"))
        except Exception as exc:
            log.error("local health %s/%s not applied: %s", service, backend, exc)

    def edit(self, mutate: Any, why: str) -> Dict[str, Any]:
        """Commit an edit to the store and wait until this DPU applied it."""
        if not self.reachable():
            raise StoreError("the fleet store is unreachable (%s): edits need it"
                             % ", ".join(self.fleet.remotes))
        t0 = time.monotonic()
        version = self.store.change(mutate, why)
        self._wake.set()
        deadline = t0 + EDIT_WAIT
        while time.monotonic() < deadline:
            if self.applied_version >= version or self.rejected_version == version:
                break
            compat.hub.sleep(0.005)
        return {"why": why, "version": version, "applied": self.applied_version >= version,
                "state": self.state, "error": self.error or None,
                "applied_in": round(time.monotonic() - t0, 4)}

    def with_local(self, file_cfg: config_mod.Config) -> config_mod.Config:
        """A reloaded local file with the services in force: the config to move to."""
        self.file_cfg = file_cfg
        self.local = model.local_data(file_cfg)
        return model.compose(self.local, self.intent.services, base_dir=file_cfg.base_dir)


# what a DPU's status shows of every DPU (`xenoflow fleet status` shows the rest)
DPU_VIEW_KEYS = ("applied_version", "state", "stale", "verdict", "announced", "announce_why", "error",
                 "drained", "heard", "bgp")


def _union(a: Dict[str, Set[str]], b: Dict[str, Set[str]]) -> Dict[str, Set[str]]:
    out = {s: set(n) for s, n in a.items()}
    for s, n in b.items():
        out.setdefault(s, set()).update(n)
    return out

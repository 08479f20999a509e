"""The status of a running controller, built in one place.

Two views, one builder:
- `Status.app_view()`: the controller's own part (bridges, OVS counters,
  reconciles, OVSDB, errors), rebuilt by the app's event thread after every
  change (`refresh`) and written to the state file;
- `Status.snapshot()`: `GET /status` (openapi.yaml, schema `Status`; also what
  the metrics and `xenoflow status` read), that view plus the intent (drained,
  healthy, in service), eswitchd's counters and the verdict of the LAST
  COMPLETED check. It never waits: the verdict is refreshed off the scrape path
  by the worker (`refresh_verdict`, before every poll, when what a check compares
  has changed) and by every `GET /check`.
`build()` is the pure step from the app view to the `GET /status` shape.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Dict, List, Optional, Tuple

from ..eswitch.client import EswitchError
from ..intent import consistency
from ..intent import plan as plan_mod

log = logging.getLogger("xenoflow.status")

UNCHECKED = "drift"      # the verdict until a check has completed: nothing confirmed yet


def _copy(data: Dict[str, Any]) -> Dict[str, Any]:
    return json.loads(json.dumps(data, default=str))


LIMITED_BUCKET_ROWS = 64   # per service: the buckets that dropped most, at most this many rows
LIMIT_KEYS = ("pps", "burst", "per_bucket_pps", "per_bucket_burst")
SCOPES = ("service", "bucket")


def limits_view(cfg: Any, drops: Dict[str, Dict[str, Any]], rows: int = LIMITED_BUCKET_ROWS
                ) -> Dict[str, Any]:
    """Per service with limits (or with drops counted under earlier ones): its limits as
    configured (None: not set), the packets they dropped per plane and scope (eswitch None
    without an eSwitch), and the buckets that dropped any, most first, at most `rows`
    (`buckets_left_out` counts the rest)."""
    planes = ("eswitch", "ovs") if cfg.has_eswitch else ("ovs",)
    out: Dict[str, Any] = {}
    limits = {svc.name: svc.limits for svc in cfg.services}
    sizes = {svc.name: svc.policy.buckets for svc in cfg.services}
    dropped = set(n for n, seen in drops.items()
                  if any(v for sc in seen.get("scopes", {}).values() for v in sc.values()))
    for name in sorted(set(n for n, lim in limits.items() if lim.kind) | dropped):
        lim = limits.get(name)
        seen = drops.get(name, {"scopes": {}, "buckets": {}})
        counted: Dict[str, Any] = {p: {sc: seen["scopes"].get(p, {}).get(sc, 0) for sc in SCOPES}
                                   for p in planes}
        if not cfg.has_eswitch:
            counted["eswitch"] = None
        buckets = [dict({p: n.get(p, 0) for p in planes}, bucket=b) for b, n in seen["buckets"].items()
                   if any(n.get(p, 0) for p in planes)]
        buckets.sort(key=lambda r: (-sum(r.get(p, 0) for p in planes), r["bucket"]))
        out[name] = dict({k: getattr(lim, k) if lim is not None else None for k in LIMIT_KEYS},
                         bucket_count=sizes.get(name), limited_packets=counted, buckets=buckets[:rows],
                         buckets_left_out=max(0, len(buckets) - rows))
    return out


def build(rt: Any, view: Dict[str, Any], verdict: str, monitor: Any = None,
          alarms: Optional[List[Dict[str, Any]]] = None, limited: Any = None) -> Dict[str, Any]:
    """`GET /status` from the app view, the runtime `rt` (config, drains, health,
    eswitchd's totals), the health monitor (or None), a verdict and the rate-limited
    packets (counters.Drops, or None: none counted)."""
    cfg = rt.cfg
    st = _copy(view)
    tot = rt.es_totals
    es = dict(st.get("eswitch") or {})
    es["connected"] = bool(cfg.has_eswitch and rt.started and tot.polled_at is not None)
    es["polled_at"] = tot.polled_at if cfg.has_eswitch else None
    es["miss_packets"] = ({p: s.get("miss_pkts") for p, s in tot.ports.items()}
                          if cfg.has_eswitch else None)
    st["eswitch"] = es
    for svc in cfg.services:
        backends = st.setdefault("services", {}).setdefault(svc.name, {})
        for b in svc.backends:
            c = backends.setdefault(b.name, {"ovs_packets": 0, "ovs_bytes": 0})
            if cfg.has_eswitch:
                c["eswitch_packets"], c["eswitch_bytes"] = tot.backends.get((svc.name, b.name), (0, 0))
            else:
                c["eswitch_packets"] = c["eswitch_bytes"] = None
            c["drained"] = b.name in rt.drained.get(svc.name, set())
            c["healthy"] = b.name not in rt.down.get(svc.name, set())
            c["in_service"] = rt.in_service(svc.name, b.name)
    for label, c in (st.get("routes") or {}).items():
        if cfg.has_eswitch:
            c["eswitch_packets"], c["eswitch_bytes"] = tot.routes.get(label, (0, 0))
    st["limits"] = limits_view(cfg, limited.view() if limited is not None else {})
    if monitor is not None:
        probed = getattr(monitor, "probed", {})
        st["health"] = {"%s/%s" % k: {"up": h.up, "last": monitor.last.get(k),
                                      "ok": probed.get(k, (None, None))[0],
                                      "seconds": probed.get(k, (None, None))[1]}
                        for k, h in list(monitor.states.items())}
    overlay = getattr(rt, "overlay", None)
    if overlay is not None:  # {path, edits, dropped}: the operator's durable edits (overlay.py)
        st["overlay"] = overlay.view()
    fleet = getattr(rt, "fleet", None)
    if fleet is not None:    # the store this DPU follows, and how far (fleet/follower.py)
        st["fleet"] = fleet.view()
        if getattr(fleet, "announcer", None) is not None:
            st["fleet"]["bgp"] = fleet.announcer.view()
    # [{"kind": "repeated_repair" | "fenced", "what", "count", "since"}] (controller/alarms.py)
    st["alarms"] = list(alarms or [])
    st["verdict"] = verdict
    return st


class Status:
    """Reads the app's parts: `runtime`, `bridges` (bridge.Bridges), `worker`
    (OVSDB state, eSwitch error), `management.health`, and its event counts."""

    def __init__(self, app: Any, framework: str, sleep: Any = time.sleep, fresh_timeout: float = 5.0):
        self.app = app
        self.framework = framework    # compat.RUNTIME: osken | ryu
        self.sleep = sleep            # the framework's (green under Ryu)
        self.fresh_timeout = fresh_timeout
        self._view: Dict[str, Any] = {}
        self._last_check: Optional[Dict[str, Any]] = None
        self.checked_at: Optional[float] = None     # monotonic time the last check was kept
        self._last_fingerprint: Any = None

    # -- the app view (event thread)

    def refresh(self) -> None:
        app = self.app
        rt, bridges = app.runtime, app.bridges
        cfg = rt.cfg
        counted = bridges.counters.view(cfg.has_eswitch, bridges.pending())

        def ovs(seen: Dict[str, Any]) -> Dict[str, int]:
            return {"ovs_packets": seen.get("packets", 0), "ovs_bytes": seen.get("bytes", 0)}
        services = {svc.name: {b.name: ovs(counted["services"].get(svc.name, {}).get(b.name, {}))
                               for b in svc.backends} for svc in cfg.services}
        routes = {r.label: ovs(counted["routes"].get(r.label, {})) for r in cfg.routes}
        plan = rt.in_force
        reports = {}
        for name, b in bridges.items():
            reports[name] = dict(b.report(), planned=plan.flow_count(name))
        e = cfg.eswitch
        self._view = _copy({
            "dpu": cfg.dpu_name, "runtime": self.framework, "time": time.time(), "pid": os.getpid(),
            "eswitch": {"driver": e.driver, "mode": e.mode, "mirror_routes": e.mirror_routes,
                        "error": app.worker.runtime_error},
            "bridges": reports, "services": services, "routes": routes,
            "fallback_packets": counted["fallback"], "miss_other_packets": counted["miss_other"],
            "packet_ins": app.packet_ins, "repairs": bridges.repairs,
            "last_reconcile": bridges.last_reconcile,
            "last_transition": dict(rt.last_transition),
            "ovsdb": dict(app.worker.ovsdb_status), "handler_errors": app.handler_errors,
            "of_errors": app.of_errors,
        })

    def app_view(self) -> Dict[str, Any]:
        """A copy, safe from any thread (the shape of GET /status without the eSwitch
        counters, the intent and the verdict): per bridge connected / flows (ours, as
        dumped) / planned / in_sync / ports; per service and backend ovs_packets and
        ovs_bytes; per route; fallback_packets (None without an eSwitch),
        miss_other_packets, packet_ins, repairs, last_reconcile (actions by kind)."""
        return _copy(self._view)

    # -- GET /status

    def checked_since(self, t: Optional[float]) -> bool:
        """A check has been kept since monotonic time `t` (None: never)."""
        return t is not None and self.checked_at is not None and self.checked_at >= t

    def verdict(self) -> str:
        last = self._last_check
        return last["verdict"] if last is not None else UNCHECKED

    def snapshot(self) -> Dict[str, Any]:
        return build(self.app.runtime, self._view, self.verdict(), self.app.management.health,
                     self.alarms(), getattr(self.app, "limited", None))

    def alarms(self) -> List[Dict[str, Any]]:
        alarms = getattr(self.app, "alarms", None)
        return alarms.active(time.time()) if alarms is not None else []

    # -- the check

    def _stale(self) -> List[str]:
        """Bridges whose last dump predates the last transition. OVS is read from the
        app's periodic flow dumps: right after a transition the last dump may show the
        new flows as missing. Replies arrive in order, so a dump handled after the
        transition's barriers sees its flows."""
        at = (self.app.runtime.last_transition or {}).get("at")
        return self.app.bridges.stale_since(at) if at else []

    def _inputs(self, flows: bool = True) -> Tuple[Any, ...]:
        """What a check compares: the config and the plan in force, our flows as last
        dumped, eswitchd's pipes and entries (or why it did not answer), the counters,
        and eswitchd's table version.
        flows=False: what the fingerprint needs only: each bridge's dump digest in place
        of the flows (built as plan Flows only for a check), and eswitchd's table version
        in place of its listing (pipes and entries None) when it reports one: at 2^16
        entries a service a listing costs seconds, the version one round trip."""
        rt = self.app.runtime
        cfg = rt.cfg
        pipes: Optional[List[Any]] = []
        entries: Optional[List[Any]] = []
        unreachable, version = None, None
        if cfg.has_eswitch and rt.eswitch is not None:
            try:
                # asked before a listing: a write in between makes the fingerprint stale
                # (one more check), never newer than what was compared
                ask = getattr(rt.eswitch, "table_version", None)
                version = ask() if ask is not None else None
                if flows or version is None:
                    pipes, entries = rt.eswitch.installed()
                else:
                    pipes, entries = None, None
            except EswitchError as exc:
                pipes, entries, unreachable = [], [], str(exc)
        counted = {"fallback": self._view.get("fallback_packets"),
                   "miss_other": self._view.get("miss_other_packets")}
        dumped = (self.app.bridges.installed_flows() if flows
                  else self.app.bridges.dump_digests())
        # the shared meters of the same listing (None: not listed now, or an older eswitchd)
        listed = pipes is not None and not unreachable
        es_meters = getattr(rt.eswitch, "listed_meters", None) if listed else None
        meters = (self._ovs_meters(), es_meters)
        return (cfg, rt.in_force, dumped, pipes, entries, unreachable, counted, version, meters)

    def _ovs_meters(self) -> Optional[Dict[str, Dict[int, Tuple[Any, Any]]]]:
        """Our meters per bridge as last read ({id: (pps, burst)}); None while a connected
        bridge's have not been read (then meters are not compared)."""
        out: Dict[str, Dict[int, Tuple[Any, Any]]] = {}
        if not hasattr(self.app.bridges, "items"):   # a stand-in without bridges of its own
            return None
        for name, b in self.app.bridges.items():
            read = getattr(b, "meters", None)
            if read is None:
                if b.connected:
                    return None
                continue
            out[name] = {mid: (m.pps, m.burst) for mid, m in read.items() if plan_mod.is_our_meter(mid)}
        return out

    def _fingerprint(self, inputs: Tuple[Any, ...]) -> Tuple[Any, ...]:
        """The inputs that can change a verdict: everything but the packet counts,
        of which only whether any packet fell back matters. The dumped flows by their
        digests (bridge.Bridge.digest: once per dump), not per poll; eswitchd's table by
        its version when it has one."""
        cfg, plan, _, pipes, entries, unreachable, counted, version, meters = inputs
        table = version if version is not None else (frozenset(pipes or ()), frozenset(entries or ()))
        ovs_meters = None if meters[0] is None else tuple(sorted((br, tuple(sorted(m.items())))
                                                                 for br, m in meters[0].items()))
        return (cfg, plan, self.app.bridges.dump_digests(), table, unreachable,
                bool(counted["fallback"]), ovs_meters)

    def _compare(self, inputs: Tuple[Any, ...], verdict_only: bool = False) -> Dict[str, Any]:
        cfg, plan, flows, pipes, entries, unreachable, counted, _, meters = inputs
        rep = consistency.check(cfg, plan, flows, pipes, entries, counted, verdict_only=verdict_only,
                                pause=lambda: self.sleep(0), ovs_meters=meters[0], es_meters=meters[1])
        if unreachable:
            rep["drift"].append({"plane": "eswitch", "where": "*", "what": "unreachable",
                                 "expected": "eswitchd answering", "found": unreachable})
            rep["verdict"], rep["consistent"] = "drift", False
        return rep

    def _marker(self) -> Tuple[Any, ...]:
        rt = self.app.runtime
        return rt.transitions, (rt.last_transition or {}).get("at")

    def _keep(self, rep: Dict[str, Any], fingerprint: Any, marker: Tuple[Any, ...]) -> None:
        """Keep a check as the last one unless a transition ran while it did (the
        planes and the plan in force did not match meanwhile)."""
        if marker[0] == 0 and marker == self._marker():
            self._last_check, self._last_fingerprint = rep, fingerprint
            self.checked_at = time.monotonic()

    def check(self) -> Dict[str, Any]:
        """`GET /check`: reads a fresh full dump of every bridge (the polls mostly read
        aggregates; the app's read_flows, counters.read_now), waits (up to
        fresh_timeout) for flow dumps taken after the last transition, then compares
        both planes with the plan in force."""
        read = getattr(self.app, "read_flows", None)
        if callable(read):
            read()
        deadline = time.monotonic() + self.fresh_timeout
        while self._stale() and time.monotonic() < deadline:
            self.sleep(0.05)
        marker = self._marker()
        inputs = self._inputs()
        rep = self._compare(inputs)
        self._keep(rep, self._fingerprint(inputs), marker)
        return dict(rep, alarms=self.alarms())   # not part of the kept verdict: always current

    def refresh_verdict(self) -> None:
        """The worker's: a check without waiting, and only when its inputs changed
        (a check is costly with big bucket tables). Skipped while a transition runs or
        its flows are not dumped yet (up to fresh_timeout): the last verdict stands."""
        rt = self.app.runtime
        at = (rt.last_transition or {}).get("at") or 0
        if rt.transitions or (self._stale() and time.time() - at < self.fresh_timeout):
            return
        marker = self._marker()
        try:
            cheap = self._inputs(flows=False)
            fingerprint = self._fingerprint(cheap)
            if self._last_check is not None and fingerprint == self._last_fingerprint:
                return
            inputs = self._inputs() if cheap[3] is None else (
                cheap[:2] + (self.app.bridges.installed_flows(),) + cheap[3:])
            rep = self._compare(inputs, verdict_only=True)   # only the verdict is kept
        except Exception:  # the status must answer even when the check cannot
            log.exception("check failed")
            rep, fingerprint = {"verdict": "drift"}, None
        self._keep(rep, fingerprint, marker)

"""Traffic counters from OVS flow statistics. Pure, but for `read_now` at the end (asks the
bridges for a dump and waits for it).

A flow's counters live only as long as the flow: a replaced or deleted rule
takes its counts with it, and a re-added one starts from zero. So the totals
here are sums of *deltas*: each poll adds what every flow gained since the last
poll; a count that went down means the flow was reset, and counts from zero; a
removed flow reports its final counts (OFPFlowRemoved) and adds its last delta.
Totals therefore only grow, across replacements, reloads and drift repairs.

A flow is identified by (bridge, table, priority, canonical match), not by its
cookie: OVS carries counts over when an ADD replaces a flow of the same match.
Attribution (which service/backend, route or miss class a flow counts for) is
decided from each dump: a bucket that moves to another backend by MODIFY keeps
the flow and its counts, and from then on counts for the new backend.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from ..intent import plan as plan_mod
from .runtime import EswitchTotals

FlowId = Tuple[Any, ...]                        # (bridge, table, priority, canon match)
Attr = Tuple[str, str, Optional[str]]           # (kind, owner, backend)
METER_KIND = "service_meter"                    # the attribution of a service's meter-table rule


class Attribution:
    """Maps an installed flow of ours to (kind, owner, backend).

    Owners are known by cookie from every plan this controller has rendered (so a
    stale flow of an older config still gets its name); the backend of a service
    flow is the one whose MAC the flow writes into eth_dst."""

    def __init__(self) -> None:
        self.owner_by_cookie: Dict[int, Tuple[str, str]] = {}
        self.backend_by_mac: Dict[Tuple[str, int], str] = {}

    def learn(self, cookies: Iterable[Tuple[int, str, str]], macs: Mapping[Tuple[str, str], str]) -> None:
        """`cookies`: (cookie, kind, owner), one per owner and kind (plan.cookies(): not
        per flow, so learning a plan of 2^16 buckets is cheap); `macs`: (service,
        backend) -> MAC, from the config."""
        for ck, kind, owner in cookies:
            self.owner_by_cookie[ck] = (kind, owner)
        for (svc, be), mac in macs.items():
            self.backend_by_mac[(svc, int(mac.replace(":", ""), 16))] = be

    def __call__(self, cookie: int, canon_actions: Iterable[Tuple[Any, ...]]) -> Optional[Attr]:
        kind = plan_mod.kind_of_cookie(cookie)
        if kind is None:
            return None
        _, owner = self.owner_by_cookie.get(cookie, (kind, "%#x" % (cookie & 0xFFFFFFFF)))
        backend, sets_mac, metered = None, False, False
        for a in canon_actions:
            if a[0] == "set_field" and a[1] == "eth_dst" and len(a) > 2:
                backend, sets_mac = self.backend_by_mac.get((owner, a[2])), True
            metered = metered or a[0] == "meter"
        if kind == "service" and metered and not sets_mac:
            # the service meter's table (plan.METER_TABLE): packets its bucket rule counted
            # already; neither a backend's nor fallback a second time
            return (METER_KIND, owner, None)
        return (kind, owner, backend)


class Counters:
    def __init__(self) -> None:
        self._last: Dict[FlowId, Tuple[int, int, Optional[Attr]]] = {}
        self._totals: Dict[Attr, list] = {}

    def _add(self, fid: FlowId, attr: Optional[Attr], packets: int, nbytes: int) -> None:
        lp, lb, _ = self._last.get(fid, (0, 0, None))
        if packets < lp or nbytes < lb:
            dp, db = packets, nbytes      # the flow was reset (re-added): it counts from zero
        else:
            dp, db = packets - lp, nbytes - lb
        if packets or nbytes:
            self._last[fid] = (packets, nbytes, attr)
        else:
            # a flow that never counted is what an unknown one is (its next counts are all
            # new): not remembered, so 2^16 idle buckets cost no memory here
            self._last.pop(fid, None)
        if attr is not None and (dp or db or attr not in self._totals):
            t = self._totals.setdefault(attr, [0, 0])
            t[0] += dp
            t[1] += db

    def poll(self, bridge: str, samples: Iterable[Tuple[FlowId, Optional[Attr], int, int]]) -> None:
        """A complete dump of `bridge`: (flow id, attribution, packets, bytes) per flow.
        Flows of the bridge that are gone were removed; their last delta is only
        known if a FlowRemoved reported it (then `removed` already forgot them)."""
        seen = set()
        for fid, attr, packets, nbytes in samples:
            self._add(fid, attr, packets, nbytes)
            seen.add(fid)
        for fid in [f for f in self._last if f[0] == bridge and f not in seen]:
            del self._last[fid]

    def removed(self, fid: FlowId, packets: int, nbytes: int, attr: Optional[Attr] = None) -> None:
        """A flow was removed with these final counts (OFPFlowRemoved, which carries
        no actions: the attribution of its last poll is used unless given)."""
        if attr is None:
            attr = self._last.get(fid, (0, 0, None))[2]
        self._add(fid, attr, packets, nbytes)
        self._last.pop(fid, None)

    def known(self, fid: FlowId) -> bool:
        return fid in self._last

    def totals(self) -> Dict[Attr, Tuple[int, int]]:
        return {a: (t[0], t[1]) for a, t in self._totals.items()}

    def view(self, has_eswitch: bool, pending: Optional[Mapping[str, Tuple[int, int]]] = None
             ) -> Dict[str, Any]:
        """The report: per service and backend, per route, fallback, miss_other.

        fallback = packets on the service and route rules (plan.FALLBACK_KINDS) while
        an eSwitch is configured; None (not applicable) when OVS alone balances.
        `pending`: per kind, what the aggregates show beyond the last full dumps (not
        attributed to a flow yet): in fallback and miss_other at once, in the per
        backend and route counts once a full dump has read them."""
        services: Dict[str, Dict[str, Dict[str, int]]] = {}
        routes: Dict[str, Dict[str, int]] = {}
        fallback, miss_other = 0, 0
        for (kind, owner, backend), (p, b) in sorted(self._totals.items(),
                                                    key=lambda kv: tuple(map(str, kv[0]))):
            if kind == "service":
                be = services.setdefault(owner, {}).setdefault(backend or "?", {"packets": 0,
                                                                                "bytes": 0})
                be["packets"] += p
                be["bytes"] += b
            elif kind == "route":
                r = routes.setdefault(owner, {"packets": 0, "bytes": 0})
                r["packets"] += p
                r["bytes"] += b
            if kind in plan_mod.FALLBACK_KINDS:
                fallback += p
            elif kind in plan_mod.MISS_OTHER_KINDS:
                miss_other += p
        for kind, (p, _) in (pending or {}).items():
            if kind in plan_mod.FALLBACK_KINDS:
                fallback += p
            elif kind in plan_mod.MISS_OTHER_KINDS:
                miss_other += p
        return {"services": services, "routes": routes,
                "fallback": fallback if has_eswitch else None, "miss_other": miss_other}


# ---------------------------------------------------------------- adaptive polling
#
# Every poll reads each bridge's aggregates per rule kind (packets, bytes, flows: a few
# small messages); a full per-flow dump (costly: ~50 us a flow in the framework's parser)
# only when needed. The counters stay exact: they are only ever fed by full dumps, as
# per-flow deltas against the previous full dump. Between two full dumps nothing is lost:
# a flow's counts only grow, so aggregates equal to the sums of the last full dump (with
# the same number of flows) mean that no flow gained anything; when they differ, the next
# full dump takes the whole gain, per flow, from the previous full dump's values. Nothing
# is counted from the aggregates themselves but the `pending` part of fallback and
# miss_other, which the next full dump replaces by the same packets, counted per flow.

FULL_EVERY_POLL = 2000   # a bridge with no more flows than this is dumped in full every poll
AUDIT_RATE = 250.0       # flows/s: otherwise an audit dump every max(interval, flows / AUDIT_RATE) s
TRAFFIC_RATE = 2000.0    # flows/s: and traffic's per-flow counts every max(interval, flows / TRAFFIC_RATE) s

KindSums = Dict[str, Tuple[int, int, int]]          # kind -> (packets, bytes, flows)


def kind_sums(flows: Iterable[Tuple[int, int, int]]) -> KindSums:
    """Per kind of ours, from (cookie, packets, bytes) per flow."""
    out: Dict[str, List[int]] = {}
    for ck, packets, nbytes in flows:
        kind = plan_mod.kind_of_cookie(ck)
        if kind is not None:
            t = out.setdefault(kind, [0, 0, 0])
            t[0] += packets
            t[1] += nbytes
            t[2] += 1
    return {k: (t[0], t[1], t[2]) for k, t in out.items()}


def kind_filter(kind: str) -> Tuple[int, int]:
    """(cookie, cookie_mask) selecting the flows of one rule kind of ours."""
    return (plan_mod.COOKIE_BASE | (plan_mod.KINDS.index(kind) + 1) << 32,
            plan_mod.COOKIE_MASK | 0xFF << 32)


class DumpPolicy:
    """When one bridge needs a full dump. Pure: the caller passes the clock.

    Full dump now: first contact; after our own sends (to verify them) and on demand
    (`need`); after a FlowRemoved; when the aggregates show our flows or the foreign
    ones changed in number since the last full dump, or our count differs from the
    plan's (unless the last full dump saw that very mismatch under that plan: its
    reconcile acted already). Full dump later: when packets moved (traffic: the per
    backend counts need the per flow ones), at most every max(interval, flows /
    TRAFFIC_RATE) s; an audit (catches a flow modified in place, which moves no count)
    every max(interval, flows / AUDIT_RATE) s; a small bridge every poll."""

    def __init__(self, interval: float, audit_rate: float = AUDIT_RATE,
                 traffic_rate: float = TRAFFIC_RATE, full_every_poll: int = FULL_EVERY_POLL):
        self.interval = interval
        self.audit_rate, self.traffic_rate = audit_rate, traffic_rate
        self.full_every_poll = full_every_poll
        self.reasons: set = {"first"}
        self.base: KindSums = {}            # ours per kind at the last full dump
        self.base_foreign = 0
        self.last_full: Optional[float] = None
        self.seen_mismatch: Any = None      # (planned, ours) the last full dump saw

    def need(self, reason: str) -> None:
        self.reasons.add(reason)

    def asked(self) -> None:
        """A full dump was asked for: it serves the reasons so far (those that come
        while it is in flight, such as our own sends, ask for the next one)."""
        self.reasons.clear()

    def dumped(self, sums: KindSums, foreign: int, planned: int, now: float) -> None:
        self.base, self.base_foreign, self.last_full = dict(sums), foreign, now
        self.seen_mismatch = (planned, sum(t[2] for t in sums.values()))

    def _flows(self) -> int:
        return sum(t[2] for t in self.base.values()) + self.base_foreign

    def period(self, rate: float) -> float:
        return max(self.interval, self._flows() / rate)

    def at_poll(self, now: float) -> Optional[str]:
        """At a poll, before asking for aggregates: the reason for a full dump instead."""
        if self.reasons:
            return sorted(self.reasons)[0]
        if self._flows() <= self.full_every_poll:
            return "small"
        if self.last_full is None or now - self.last_full >= self.period(self.audit_rate):
            return "audit"
        return None

    def on_aggregates(self, agg: KindSums, total_flows: int, planned: int, now: float) -> Optional[str]:
        """The aggregates of a poll are in: the reason for a full dump now, if any."""
        ours = sum(t[2] for t in agg.values())
        if ours != sum(t[2] for t in self.base.values()):
            return "count"
        if ours != planned and (planned, ours) != self.seen_mismatch:
            return "plan"
        if total_flows - ours != self.base_foreign:
            return "foreign"
        moved = any(agg.get(k, (0, 0, 0))[:2] != self.base.get(k, (0, 0, 0))[:2]
                    for k in set(agg) | set(self.base))
        if moved and (self.last_full is None
                      or now - self.last_full >= self.period(self.traffic_rate)):
            return "traffic"
        return None

    def pending(self, agg: KindSums) -> Dict[str, Tuple[int, int]]:
        """Per kind, the packets and bytes the aggregates show beyond the last full dump."""
        out = {}
        for k, (p, b, _) in agg.items():
            bp, bb, _ = self.base.get(k, (0, 0, 0))
            if p > bp or b > bb:
                out[k] = (max(0, p - bp), max(0, b - bb))
        return out


def read_now(bridges: Any, run_in_app: Callable[[Callable[[], None]], None],
             sleep: Callable[[float], Any] = time.sleep, timeout: float = 2.0,
             full: bool = True) -> List[str]:
    """Read every connected bridge now and wait (up to `timeout`) until each is in, and so
    counted: with `full`, a full dump (GET /check: the installed flows themselves);
    else the aggregates first, and a full dump only of a bridge whose counts moved since
    its last one (the runtime's `ovs_read`, before a flow is modified to another backend:
    counts that did not move are exact already). OVS answers in the order it was asked,
    so the counts predate the modification; they still lag the datapath by OVS's own
    revalidation (docs/design.md). Call it from any thread but the app's event thread,
    which handles the replies. Returns the bridges not read in time (their gain is
    counted at a later full dump, for the new backend)."""
    at = time.time()

    def ask() -> None:
        for b in bridges:
            if b.connected and b.dp is not None:
                if full:
                    b.request_dump("read")
                else:
                    b.request_aggregates(time.monotonic(), urgent=True)
    run_in_app(ask)
    deadline = time.monotonic() + timeout
    late = bridges.stale_since(at, counted=not full)
    while late and time.monotonic() < deadline:
        sleep(0.005)
        late = bridges.stale_since(at, counted=not full)
    return late


# ---------------------------------------------------------------- rate-limited packets
#
# What the DoS guard dropped, per plane, service and scope ("bucket": the buckets' own
# meters, "service": the service-wide one), and per bucket. Read from the switches as
# running counts (an OVS meter's drop band; the eSwitch's drop-stage entries, or eswitchd's
# totals of them), kept as sums of deltas like the flow counters: they only grow across
# meters re-created, entries re-added and eswitchd restarts. Never fallback, never
# miss_other, never a backend's: a dropped packet was carried by nobody.

SCOPES = ("service", "bucket")
DropSample = Tuple[Any, Tuple[Tuple[Any, ...], ...], int]    # (id, keys to credit, running count)


class Drops:
    """Rate-limited packets, fed from the app's thread (OVS meter stats) and the worker's
    (eswitchd's counters), read from the API's: one short lock."""

    def __init__(self) -> None:
        import threading
        self._lock = threading.Lock()
        self._last: Dict[Any, int] = {}
        self._totals: Dict[Tuple[Any, ...], int] = {}

    def poll(self, source: Any, samples: Iterable[DropSample]) -> None:
        """Running counts of `source`'s counters. A count that went down was reset (a meter
        re-created, an entry re-added) and counts from zero. Counters not in a reading are
        kept, not forgotten: a bridge that reconnects reads as empty until its meters are
        read again, and must not count their drops twice."""
        with self._lock:
            for sid, keys, n in samples:
                full = (source, sid)
                last = self._last.get(full, 0)
                delta = n - last if n >= last else n
                if n:
                    self._last[full] = n
                else:
                    self._last.pop(full, None)
                for k in keys:
                    # a bucket row only once it dropped something (2^16 idle buckets: none)
                    if delta or (k[0] == "scope" and k not in self._totals):
                        self._totals[k] = self._totals.get(k, 0) + delta

    def view(self) -> Dict[str, Dict[str, Any]]:
        """{service: {"scopes": {plane: {scope: packets}}, "buckets": {bucket: {plane: packets}}}}."""
        with self._lock:
            items = list(self._totals.items())
        out: Dict[str, Dict[str, Any]] = {}
        for key, n in items:
            what, plane, svc, where = key
            s = out.setdefault(svc, {"scopes": {}, "buckets": {}})
            if what == "scope":
                s["scopes"].setdefault(plane, {})[where] = n
            else:
                s["buckets"].setdefault(where, {})[plane] = n
        return out


def _drop_keys(plane: str, svc: str, scope: str, bucket: Optional[int], sums: bool = True
               ) -> Tuple[Tuple[Any, ...], ...]:
    keys: List[Tuple[Any, ...]] = [("scope", plane, svc, scope)] if sums else []
    if bucket is not None:
        keys.append(("bucket", plane, svc, bucket))
    return tuple(keys)


def meter_drop_samples(drops: Mapping[int, int], service_of_tag: Mapping[int, str]) -> List[DropSample]:
    """OVS: {meter id: band drops} of a bridge as samples. A meter id names its service's
    tag, family and index (plan.meter_id: 0 the service's meter, 1 + b bucket b's); both
    families' meters of bucket b count for bucket b. Ids of no known service are left out."""
    out = []
    for mid, n in drops.items():
        svc = service_of_tag.get(mid >> plan_mod.METER_TAG_SHIFT)
        if svc is None:
            continue
        index = mid & ((1 << 17) - 1)
        bucket = None if index == 0 else index - 1
        out.append((mid, _drop_keys("ovs", svc, "service" if index == 0 else "bucket", bucket), int(n)))
    return out


def eswitch_drop_samples(counters: Mapping[str, Any]) -> List[DropSample]:
    """eswitchd's counters reply as samples. Its totals group a service's drop-stage
    entries by scope (kind "drop", backend "bucket" or "service"; "bucket/<b>" for one
    bucket's, when it groups them per bucket); its entries (when listed) carry each
    drop entry's bucket. Totals give the sums when present; entries then add the bucket
    rows only. An eswitchd restart (another boot) starts its counts from zero: the boot
    is part of each total's id."""
    out: List[DropSample] = []
    totals = counters.get("totals")
    boot = (counters.get("table") or {}).get("boot")
    for t in totals or ():
        if t.get("kind") != "drop":
            continue
        group = str(t.get("backend") or "")
        scope, _, b = group.partition("/")
        if scope not in SCOPES:
            continue
        bucket = int(b) if b.isdigit() else None
        out.append((("total", boot, t["owner"], group), _drop_keys("eswitch", t["owner"], scope, bucket),
                    int(t.get("pkts") or 0)))
    for e in counters.get("entries") or ():
        ent = e.get("entry") or {}
        if ent.get("kind") != "drop":
            continue
        bucket = ent.get("bucket")
        scope = "bucket" if bucket is not None else "service"
        keys = _drop_keys("eswitch", ent["owner"], scope, bucket, sums=totals is None)
        if keys:
            sid = ("entry", ent.get("port"), ent.get("pipe"), tuple(map(tuple, ent.get("match") or ())))
            out.append((sid, keys, int(e.get("pkts") or 0)))
    return out


class MeteredTotals(EswitchTotals):
    """eswitchd's totals per backend and route (runtime.EswitchTotals, which credits no drop
    entry to a backend), and its drop stages' counts into `drops`."""

    def __init__(self, drops: Drops) -> None:
        super().__init__()
        self.drops = drops

    def update(self, counters: Dict[str, Any]) -> None:
        super().update(counters)
        self.drops.poll("eswitch", eswitch_drop_samples(counters))


class MeterNames:
    """Service names by meter tag, from every config this controller has run (a meter of
    an older config, until reconciled away, still gets its service's name)."""

    def __init__(self) -> None:
        self.by_tag: Dict[int, str] = {}
        self._cfg: Any = None

    def learn(self, cfg: Any) -> Dict[int, str]:
        if cfg is not self._cfg:
            self.by_tag.update((tag, name) for name, tag in plan_mod.meter_tags(cfg).items())
            self._cfg = cfg
        return self.by_tag

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

FlowId = Tuple[Any, ...]                        # (bridge, table, priority, canon match)
Attr = Tuple[str, str, Optional[str]]           # (kind, owner, backend)


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
        backend = None
        for a in canon_actions:
            if a[0] == "set_field" and a[1] == "eth_dst" and len(a) > 2:
                backend = self.backend_by_mac.get((owner, a[2]))
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

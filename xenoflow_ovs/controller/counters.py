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

    def learn(self, flows: Iterable[plan_mod.Flow], macs: Mapping[Tuple[str, str], str]) -> None:
        """`macs`: (service, backend) -> MAC, from the config."""
        for f in flows:
            self.owner_by_cookie[f.cookie] = (f.kind, f.owner)
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
        self._last[fid] = (packets, nbytes, attr)
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

    def view(self, has_eswitch: bool) -> Dict[str, Any]:
        """The report: per service and backend, per route, fallback, miss_other.

        fallback = packets on the service and route rules (plan.FALLBACK_KINDS) while
        an eSwitch is configured; None (not applicable) when OVS alone balances."""
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
        return {"services": services, "routes": routes,
                "fallback": fallback if has_eswitch else None, "miss_other": miss_other}


def read_now(bridges: Any, run_in_app: Callable[[Callable[[], None]], None],
             sleep: Callable[[float], Any] = time.sleep, timeout: float = 2.0) -> List[str]:
    """Dump every connected bridge now and wait (up to `timeout`) until each dump is in,
    and so counted: the runtime's `ovs_read`, before a flow is modified to another backend.
    OVS answers in the order it was asked, so the counts predate the modification; they
    still lag the datapath by OVS's own revalidation (docs/design.md). Call it from any
    thread but the app's event thread, which handles the replies. Returns the bridges whose
    dump did not come in time (their gain is counted at the next poll, for the new backend)."""
    at = time.time()
    run_in_app(lambda: [b.request_dump() for b in bridges if b.connected and b.dp is not None])
    deadline = time.monotonic() + timeout
    late = bridges.stale_since(at)
    while late and time.monotonic() < deadline:
        sleep(0.005)
        late = bridges.stale_since(at)
    return late

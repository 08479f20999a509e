"""When a DPU announces its service VIPs over BGP. Pure: the announcer (announcer.py) feeds
it what the controller knows and carries out the answer.

A VIP is announced while this DPU forwards it as the intent says (both planes checked
consistent) and at least one of its backends is in service. Everything else withdraws,
except what this DPU cannot judge:

  starting            nothing checked yet after a (re)start: what bgpd announces stays, so a
                      controller restart alone never withdraws
  stale               cut off from the store: fail static, keep announcing what was
                      announced (a store outage must not withdraw the whole fleet)

A bad verdict withdraws only once it has lasted `hold_down` seconds, so a check that
catches the planes between two steps of an update does not flap the route.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Optional, Tuple

GOOD_VERDICTS = ("consistent", "fallback")   # both planes hold the planned tables
HOLD_DOWN = 1.0
# every probe failing at once, this long: nothing is reachable from here (a false one costs a
# graceful withdraw and re-announce, no lost query: the other DPUs carry the same tables)
SUSPECT_HOLD = 0.5


@dataclass(frozen=True)
class Inputs:
    started: bool                       # the runtime holds the planes and a check has completed
    verdict: str                        # the last consistency verdict
    bad_for: float                      # s the verdict has been bad (0 when good)
    stale: bool                         # cut off from the store (or behind it)
    drained: bool                       # the operator drained this DPU (`fleet drain-dpu`)
    rejected: bool                      # this DPU rejects the store's version
    in_service: Dict[str, int] = field(default_factory=dict)   # VIP prefix -> backends in service


@dataclass(frozen=True)
class Decision:
    want: FrozenSet[str]     # the prefixes to announce
    why: str                 # one line: why (not) announced


def decide(inp: Inputs, current: FrozenSet[str], hold_down: float = HOLD_DOWN) -> Decision:
    if not inp.started:
        return Decision(current, "starting: announcements kept as found")
    if inp.drained:
        return Decision(frozenset(), "drained (fleet drain-dpu)")
    if inp.stale:
        return Decision(current, "stale: fail static, announcements kept")
    if inp.rejected:
        return Decision(frozenset(), "rejects the store's version")
    if inp.verdict not in GOOD_VERDICTS:
        if inp.bad_for < hold_down:
            return Decision(current, "verdict %s for %.1f s: held" % (inp.verdict, inp.bad_for))
        return Decision(frozenset(), "verdict %s" % inp.verdict)
    want = frozenset(p for p, n in inp.in_service.items() if n > 0)
    out = sorted(set(inp.in_service) - want)
    if out and not want:
        return Decision(want, "no backend in service (or reachable from this DPU)")
    return Decision(want, "announced" + ("; no backend in service for %s" % ", ".join(out) if out else ""))


def vip_prefixes(services: Tuple, out_of_service: Dict[str, set]) -> Dict[str, int]:
    """{"VIP/32": backends in service} over the services (config.Service) sharing a VIP."""
    counts: Dict[str, int] = {}
    for svc in services:
        if svc.vip is None:
            continue
        prefix = "%s/32" % svc.vip
        out = out_of_service.get(svc.name, set())
        counts[prefix] = counts.get(prefix, 0) + sum(1 for b in svc.backends if b.name not in out)
    return counts


@dataclass
class Quiet:
    """After a planned withdraw: have the VIP counters stayed flat for `quiet` seconds?
    Gives up (not quiet) after `timeout`. Fed with (time, total packets) samples."""
    quiet: float
    timeout: float
    since: Optional[float] = None        # when the withdraw happened
    last_total: Optional[int] = None
    flat_since: Optional[float] = None

    def start(self, now: float) -> None:
        self.since, self.last_total, self.flat_since = now, None, None

    def feed(self, now: float, total: int) -> Optional[bool]:
        """True once quiet, False once timed out, None while waiting (or not draining)."""
        if self.since is None:
            return None
        if self.last_total is None or total != self.last_total:
            self.last_total, self.flat_since = total, now
        if now - (self.flat_since or now) >= self.quiet:
            return True
        if now - self.since >= self.timeout:
            return False
        return None

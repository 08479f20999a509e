"""The controller's side of BGP: it tells this DPU's FRR which VIPs to announce.

FRR runs beside the controller (systemd's frr.service on a DPU, the lab's daemons here),
with the sessions configured from `fleet.bgp` (`xenoflow fleet frr-config`); bgpd keeps
the `network` statements the announcer adds, so the announcements outlive a controller
restart, and the announcer adopts what it finds. Every round (`period`) it decides with
announce.decide() what should be announced and changes only the difference; every few
rounds it reads back what bgpd holds (a restarted bgpd forgot the announcements) and the
peers' BGP and BFD states, which the DPU's row in the store and the status show.

A planned withdraw (`fleet drain-dpu`) is followed until the VIP counters stay flat for
drain.quiet seconds (bounded by drain.timeout): the row's `quiet` then says the data plane
may go.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, FrozenSet, Optional

from . import announce
from .bgp import BgpError

log = logging.getLogger("xenoflow.fleet.bgp")

PERIOD = 0.25        # s between decisions
READ_EVERY = 2.0     # s between read-backs of bgpd's networks and the peers' states


class Announcer:
    def __init__(self, cfg: Any, frr: Any, inputs: Callable[[], announce.Inputs],
                 vip_packets: Callable[[], int], period: float = PERIOD,
                 sleep: Callable[[float], None] = time.sleep):
        speaker = cfg.bgp_speaker()
        assert speaker is not None
        self.bgp, self.port = speaker
        self.frr = frr
        self.inputs = inputs
        self.vip_packets = vip_packets
        self.period = period
        self.sleep = sleep
        self.current: Optional[FrozenSet[str]] = None     # what bgpd announces (None: not read yet)
        self.decision = announce.Decision(frozenset(), "not started")
        self.peers: Dict[str, Dict[str, Any]] = {}
        self.error: Optional[str] = None
        self.med: Optional[int] = self.bgp.med
        self.quiet = announce.Quiet(self.bgp.drain_quiet, self.bgp.drain_timeout)
        self.quiet_state: Optional[bool] = None
        self.stale_since: Optional[float] = None
        self.changes = 0
        self.vips: list = []
        self._last_read = 0.0
        self._stop = False

    # -- the loop

    def stop(self) -> None:
        self._stop = True

    def run(self) -> None:
        while not self._stop:
            try:
                self.round(time.monotonic())
                if self.error is not None:
                    log.warning("BGP speaker answers again")
                self.error = None
            except BgpError as exc:
                if self.error != str(exc):
                    log.error("BGP speaker (FRR %s): %s", self.frr.pathspace, exc)
                self.error = str(exc)
                self.current = None          # read back what bgpd holds once it answers
            except Exception:   # one bad round must not stop the announcements' upkeep
                log.exception("announcer round failed")
            self.sleep(self.period)

    def round(self, now: float) -> None:
        if self.current is None or now - self._last_read >= READ_EVERY:
            self.current = frozenset(self.frr.networks(self.bgp.asn))
            self.peers = self.frr.peers()
            self._last_read = now
        inp = self.inputs()
        self.vips = sorted(inp.in_service)
        d = announce.decide(inp, self.current)
        if d.why != self.decision.why:
            log.info("announcement: %s (%s)", ", ".join(sorted(d.want)) or "nothing", d.why)
        was = self.current
        for prefix in sorted(d.want - self.current):
            self.frr.announce(self.bgp.asn, prefix)
            self.current = self.current | {prefix}
        for prefix in sorted(self.current - d.want):
            self.frr.withdraw(self.bgp.asn, prefix)
            self.current = self.current - {prefix}
        if self.current != was:
            self.changes += 1
            log.warning("BGP: %s now announced (%s)", ", ".join(sorted(self.current)) or "nothing", d.why)
        self.decision = d
        self._drain(inp, was, now)
        self._stale_med(inp, now)

    def _drain(self, inp: announce.Inputs, was: FrozenSet[str], now: float) -> None:
        if not inp.drained:
            self.quiet.since, self.quiet_state = None, None
            return
        if self.quiet.since is None:
            self.quiet.start(now)
            self.quiet_state = None
        if self.quiet_state is None:
            self.quiet_state = self.quiet.feed(now, self.vip_packets())
            if self.quiet_state is not None:
                log.warning("drained: VIP counters %s", "flat for %.1f s: the data plane may go"
                            % self.quiet.quiet if self.quiet_state else
                            "still moving after %.0f s" % self.quiet.timeout)

    def _stale_med(self, inp: announce.Inputs, now: float) -> None:
        """Past stale_after s cut off, announce with stale_med: routers prefer DPUs that
        follow the store, and still have this one."""
        if self.bgp.stale_med is None:
            return
        self.stale_since = (self.stale_since or now) if inp.stale else None
        want = self.bgp.stale_med if (self.stale_since is not None
                                      and now - self.stale_since >= self.bgp.stale_after) else self.bgp.med
        if want != self.med:
            self.frr.set_med(self.bgp.asn, want)
            self.med = want

    # -- reports

    def row(self) -> Dict[str, Any]:
        """The DPU row's columns in the store."""
        return {"announced": bool(self.current), "announce_why": self.error or self.decision.why,
                "quiet": bool(self.quiet_state),
                "bgp": {p: _peer_text(s) for p, s in sorted(self.peers.items())}}

    def view(self) -> Dict[str, Any]:
        return {"announced": sorted(self.current or ()), "vips": self.vips,
                "why": self.error or self.decision.why,
                "asn": self.bgp.asn, "speaker": str(self.port.ip.ip), "pathspace": self.frr.pathspace,
                "med": self.med, "peers": self.peers, "error": self.error,
                "drain": None if self.quiet.since is None else {
                    "quiet": self.quiet_state, "quiet_seconds": self.bgp.drain_quiet,
                    "timeout": self.bgp.drain_timeout}}


def _peer_text(s: Dict[str, Any]) -> str:
    return "%s, bfd %s" % (s.get("bgp") or "?", s.get("bfd") or "off")

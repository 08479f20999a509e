"""Agreed health: from every DPU's probe results to one stored verdict per backend. Pure.

Each DPU writes what its own probes conclude (after its rise/fall hysteresis) into its
row, stamped with the next number of the store's health sequence (`Fleet.health_seq`,
incremented by the server in every such write). The sequence is the fleet's clock:
an observation is fresh while fewer than `window` rounds of the whole fleet (window x
the number of DPUs writes) have been committed since it was written. No host's clock is
compared with another's.

The rule, applied to the fresh observations of one backend:
  - a strict majority saying "down" takes it out, a strict majority saying "up" puts
    it back, anything else keeps the stored verdict;
  - with two DPUs a strict majority is both of them: one DPU whose probe path broke
    cannot take a backend out for the fleet, and two that agree always can;
  - a single fresh DPU (the others silent: dead, cut off, or probing nothing) decides
    alone, since no one contradicts it;
  - a DPU in state `rejected` still votes: its probes do not depend on its tables.
Every reader computes the same verdicts from the same store contents; whichever DPU sees
a verdict differ from the stored one writes it, verifying what it read, so two writers
cannot both apply one change (the second finds it made and writes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

DEFAULT_WINDOW = 3


@dataclass(frozen=True)
class Verdict:
    service: str
    backend: str
    up: bool
    votes: Tuple[Tuple[str, str], ...]      # (dpu, "up"|"down") of the fresh observers

    @property
    def why(self) -> str:
        return "agreed %s: %s" % ("up" if self.up else "down",
                                  ", ".join("%s %s" % v for v in self.votes))


def fresh(dpus: Dict[str, Dict[str, Any]], health_seq: int, window: int) -> List[str]:
    """The DPUs whose last observation is within `window` fleet rounds of the sequence."""
    writers = [n for n, d in dpus.items() if d.get("observed_seq", 0) > 0]
    span = max(1, window) * max(1, len(writers))
    return sorted(n for n in writers if health_seq - int(dpus[n]["observed_seq"]) < span)


def outcome(votes: List[Tuple[str, str]], current_up: bool) -> bool:
    n = len(votes)
    downs = sum(1 for _, v in votes if v == "down")
    ups = n - downs
    if downs * 2 > n:
        return False
    if ups * 2 > n:
        return True
    return current_up


def decide(snap: Dict[str, Any], window: Optional[int] = None) -> List[Verdict]:
    """The backends whose agreed state should change, with the votes that say so."""
    dpus = snap.get("dpus", {})
    w = window if window is not None else int(snap.get("health_window") or DEFAULT_WINDOW)
    voters = fresh(dpus, int(snap.get("health_seq", 0)), w)
    out = []
    for s in snap.get("services", []):
        for b in s.get("backends", []):
            key = "%s/%s" % (s["name"], b["name"])
            votes = tuple((d, dpus[d]["observations"][key]) for d in voters
                          if key in (dpus[d].get("observations") or {}))
            if not votes:
                continue
            up_now = b.get("health", "up") != "down"
            up = outcome(list(votes), up_now)
            if up != up_now:
                out.append(Verdict(s["name"], b["name"], up, votes))
    return out


def observations(states: Dict[Tuple[str, str], bool]) -> Dict[str, str]:
    """A DPU's probe states as its row's `observations` column."""
    return {"%s/%s" % k: ("up" if up else "down") for k, up in sorted(states.items())}

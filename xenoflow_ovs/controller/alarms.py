"""Alarms: conditions an operator must see in `status`, `check` and /metrics, not in logs.

`repeated_repair`: the same eSwitch entry (or the same bridge's flows) repaired again
and again. One repair is drift put right; `THRESHOLD` repairs of one thing with less than
`WINDOW` s between them means something keeps undoing it (a stale controller writing
its older state, a tool, a faulty driver), and repairing can never end it. The alarm
holds while the repairs go on and clears once `WINDOW` s pass without one.

`fenced`: eswitchd refuses this controller's session because a newer controller owns
the eSwitch: this one writes nothing to it any more.

Pure bookkeeping: callers pass the time.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Iterable, List, Optional

WINDOW = 60.0        # s: repairs of one thing closer than this belong to one streak
THRESHOLD = 3        # repairs in a streak that make an alarm


class Alarms:
    def __init__(self, window: float = WINDOW, threshold: int = THRESHOLD):
        self.window = window
        self.threshold = threshold
        # what -> [first repair of the streak, last repair, count]
        self._streaks: Dict[str, List[float]] = {}
        self._fenced: Optional[Dict[str, Any]] = None
        self._lock = threading.Lock()

    def repaired(self, what: Iterable[str], now: float) -> None:
        with self._lock:
            for w in what:
                s = self._streaks.get(w)
                if s is None or now - s[1] > self.window:
                    self._streaks[w] = [now, now, 1]
                else:
                    s[1], s[2] = now, s[2] + 1

    def fenced(self, why: Optional[str], now: float) -> None:
        """Set (a reason) or clear (None) the fenced alarm."""
        with self._lock:
            if why is None:
                self._fenced = None
            elif self._fenced is None or self._fenced["what"] != why:
                self._fenced = {"kind": "fenced", "what": why, "count": 1, "since": now}

    def active(self, now: float) -> List[Dict[str, Any]]:
        """The status contract: [{"kind", "what", "count", "since"}], oldest first."""
        with self._lock:
            for w in [w for w, s in self._streaks.items() if now - s[1] > self.window]:
                del self._streaks[w]
            out = [{"kind": "repeated_repair", "what": w, "count": int(s[2]), "since": s[0]}
                   for w, s in self._streaks.items() if s[2] >= self.threshold]
            if self._fenced is not None:
                out.append(dict(self._fenced))
        return sorted(out, key=lambda a: (a["since"], a["what"]))


def describe(alarm: Dict[str, Any], now: float) -> str:
    """One line for `xenoflow status` / `xenoflow check`."""
    if alarm.get("kind") == "repeated_repair":
        return "ALARM repeated_repair: %s repaired %d times in %.0f s (something keeps undoing it)" % (
            alarm.get("what"), alarm.get("count", 0), max(0.0, now - float(alarm.get("since") or now)))
    return "ALARM %s: %s" % (alarm.get("kind"), alarm.get("what"))

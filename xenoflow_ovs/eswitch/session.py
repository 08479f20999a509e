"""Which controller session may write to the eSwitch (eswitchd's fence).

A controller opens a session on its connection with a `claim`: its generation (larger for
every controller started later for this DPU: instance.next_generation) and who it is.
One session owns the eSwitch at a time:

- a claim with a generation lower than the highest seen is refused: a controller left
  running after a newer one took over can never write again, whichever reconnects first;
- a claim while another live session owns it is refused unless it asks to take over
  *and* brings a higher generation; the old session's writes are refused from then on;
- the owner's connection closing leaves the eSwitch unowned; the generation stays, so a
  restarted controller (higher generation) or the same one reconnecting (same
  generation) may claim it, an older one may not.

Connections that never claim (operator tools, tests: reads, fault injection, the fault
suite's "entry removed behind our back") are not sessions and are not fenced; every
controller claims. Pure logic: the daemon passes its connections as opaque keys.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Optional


class Refused(Exception):
    """A claim or a write the fence does not allow (the reply carries fenced: true)."""


class Sessions:
    def __init__(self) -> None:
        self.owner: Optional[Any] = None          # the owning connection's key
        self.generation = 0                       # the highest generation ever granted
        self.who = ""
        self.claims: Dict[Any, int] = {}          # connection -> the generation it claimed
        self.lock = threading.Lock()

    def claim(self, conn: Any, generation: int, takeover: bool, who: str = "") -> Dict[str, Any]:
        with self.lock:
            g = int(generation)
            if g < self.generation:
                raise Refused("fenced: generation %d is older than %d (%s) which owns or owned the "
                              "eSwitch: a newer controller took over" % (g, self.generation, self.who))
            live_other = self.owner is not None and self.owner != conn
            if live_other and g == self.generation:
                raise Refused("fenced: generation %d is already the owner's (%s)" % (g, self.who))
            if live_other and not takeover:
                raise Refused("fenced: the eSwitch is owned by %s (generation %d); a controller "
                              "takes over only explicitly with a higher generation"
                              % (self.who, self.generation))
            previous = self.who if live_other else None
            self.owner, self.generation, self.who = conn, g, who or "generation %d" % g
            self.claims[conn] = g
            return {"generation": g, "took_over_from": previous}

    def check_write(self, conn: Any) -> None:
        with self.lock:
            if conn not in self.claims:
                return              # not a session (tools, tests): see the module's text
            if conn != self.owner:
                raise Refused("fenced: this session (generation %d) was superseded by %s "
                              "(generation %d); its writes are refused"
                              % (self.claims[conn], self.who, self.generation))

    def closed(self, conn: Any) -> None:
        with self.lock:
            self.claims.pop(conn, None)
            if self.owner == conn:
                self.owner = None

    def view(self) -> Dict[str, Any]:
        with self.lock:
            return {"owner": self.who if self.owner is not None else None,
                    "generation": self.generation}

"""The controller's clock: one loop, beside the app's event thread, every interval:

  OVSDB    -> bridges, ports, patches, controller, datapath-id as the config says
              (ovsdb.py), every `XENOFLOW_ENSURE_INTERVAL` s and at once after a
              reconnection; ovsdb-server down: retried, OpenFlow goes on meanwhile
  runtime  -> start it (adopt the eSwitch) until that succeeds; then repair eSwitch
              drift every ESWITCH_EVERY polls (never during a transition) and read
              eswitchd's counters; repairs of the same entry again and again, and a
              session eswitchd fences, are alarms (alarms.py)
  verdict  -> a consistency check over the last dumps (status.refresh_verdict), so
              the status and the metrics never wait for one
  poll     -> ask the app's event thread to dump every bridge again (counters, drift)

It never touches the app's OpenFlow state: polls are events the app handles.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, Optional

from .. import memory
from ..eswitch.client import EswitchError
from . import alarms as alarms_mod
from . import compat
from . import ovsdb as ovsdb_mod

log = logging.getLogger("xenoflow.app")

ENSURE_EVERY = 30.0          # s between OVSDB ensures (XENOFLOW_ENSURE_INTERVAL)
ESWITCH_EVERY = 5            # polls between eSwitch drift repairs


class Worker:
    def __init__(self, runtime: Any, status: Any, poll: Callable[[], None], interval: float,
                 ensure_every: float = ENSURE_EVERY, alarms: Optional[alarms_mod.Alarms] = None):
        self.runtime = runtime
        self.alarms = alarms if alarms is not None else alarms_mod.Alarms()
        self.status = status
        self.poll = poll                     # posts the poll event to the app
        self.interval = interval
        self.trimmer = memory.Trimmer()
        self.ensure_every = ensure_every
        self.ovsdb: Optional[ovsdb_mod.Ovsdb] = None
        # written here, read by the event thread: keys fixed from the start
        self.ovsdb_status: Dict[str, Any] = {"connected": False, "last_error": None,
                                              "last_ensure": None, "last_changes": None}
        self.runtime_error: Optional[str] = None
        self._stop = compat.make_event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        last_ensure, n = 0.0, 0
        while not self._stop.is_set():
            try:
                last_ensure = self.ovsdb_tick(last_ensure)
            except Exception as exc:  # ovsdb-server down: keep polling OpenFlow, retry later
                if self.ovsdb_status["last_error"] != str(exc):
                    log.warning("ovsdb: %s (will retry)", exc)
                self.ovsdb_status.update(connected=False, last_error=str(exc))
                last_ensure = 0.0
            self.runtime_tick(n)
            # before the poll: a state written by that poll implies a verdict over the
            # dumps it shows
            self.status.refresh_verdict()
            self.poll()
            self.trimmer.tick()    # a check or a big change leaves freed heap behind
            n += 1
            self._stop.wait(self.interval)

    def runtime_tick(self, n: int) -> None:
        rt = self.runtime
        try:
            if not rt.started:
                done = rt.start()
                self.runtime_error = None
                log.info("runtime started: %s", done)
            elif rt.eswitch is not None and n % ESWITCH_EVERY == 0 and not rt.transitions:
                repaired = rt.reconcile_eswitch()
                self.alarms.repaired(repaired or [], time.time())
                self.runtime_error = None
            if rt.started:
                rt.poll_eswitch()
            self.alarms.fenced(None, time.time())
        except Exception as exc:   # eswitchd not up (yet): OVS carries everything meanwhile
            fenced = isinstance(exc, EswitchError) and exc.fenced
            if self.runtime_error != str(exc):
                if fenced:
                    log.error("eSwitch: %s: this controller writes nothing to it", exc)
                else:
                    log.warning("eSwitch: %s (will retry)", exc)
            if fenced:
                self.alarms.fenced(str(exc), time.time())
            self.runtime_error = str(exc)

    def ovsdb_tick(self, last_ensure: float) -> float:
        cfg = self.runtime.cfg
        if self.ovsdb is None:
            db = ovsdb_mod.Ovsdb(cfg.path(cfg.ovs_db), timeout=5.0, lock=compat.make_lock())
            db.connect()            # the first time, wait (bounded) for the replica
            self.ovsdb = db
        if not self.ovsdb.is_connected():
            # down (restarting?): the IDL session reconnects by itself; do not block
            # the poll clock meanwhile; reconnected() asks for an ensure once back
            self.ovsdb_status["connected"] = False
            return last_ensure
        now = time.time()
        if self.ovsdb.reconnected() or now - last_ensure >= self.ensure_every:
            changed = self.ovsdb.ensure(ovsdb_mod.desired(cfg))
            self.ovsdb_status.update(connected=True, last_error=None, last_ensure=now,
                                     last_changes=len(changed))
            return now
        self.ovsdb_status["connected"] = True
        return last_ensure

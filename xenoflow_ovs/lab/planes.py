"""What a running lab's two planes carry, read from outside the controller: our flows in
OVS (by cookie), eswitchd's entries, and the controller's own state file. `xenoflow lab
up` waits on these until both planes are programmed; `lab status`, the demo and the
benchmarks read them too. Reading only: the controller alone programs the planes."""
from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Dict, Optional

from ..eswitch.client import EswitchClient, EswitchError
from ..intent import plan as plan_mod

CONTROLLER_STATE = "controller-state.json"   # XENOFLOW_STATE of the lab's controller


class NotProgrammed(RuntimeError):
    """The planes did not reach the plan in time, or the controller died meanwhile."""


def _field(line: str, name: str) -> Optional[str]:
    for part in line.replace(",", " ").split():
        if part.startswith(name + "="):
            return part.split("=", 1)[1]
    return None


class PlaneReadings:
    def __init__(self, load_cfg: Callable[[], Any], run_dir: str,
                 controller_pid: Callable[[], Optional[int]]) -> None:
        self.load_cfg = load_cfg                 # the lab's derived config, loaded on demand
        self.run_dir = run_dir
        self.controller_pid = controller_pid     # the PID the lab recorded, None: not started

    def planned(self) -> Any:
        """The plan the lab's controller runs: the derived config with the operator's
        overlay on top (drains, weights, backends kept across restarts), as it replays it."""
        from .. import overlay as overlay_mod
        cfg = self.load_cfg()
        try:
            edits = overlay_mod.read(overlay_mod.path(cfg))
            cfg, drained, _kept, _dropped = overlay_mod.with_state(cfg, edits)
        except overlay_mod.OverlayError:
            drained = {}     # the controller refuses to start on it and says so
        return plan_mod.plan(cfg, exclude=drained)

    def planned_counts(self) -> Dict[str, int]:
        cfg = self.load_cfg()
        p = self.planned()
        return {br.name: p.flow_count(br.name) for br in cfg.bridges}

    def flow_counts(self, ovs: Any) -> Dict[str, int]:
        """Flows with our cookie per bridge (empty when OVS is not up)."""
        out: Dict[str, int] = {}
        try:
            brs = ovs.bridges()
        except Exception:
            return out
        for br in brs:
            n = 0
            for line in ovs.ofctl("dump-flows", br, check=False).splitlines():
                c = _field(line, "cookie")
                if c is not None and plan_mod.is_ours(int(c, 16)):
                    n += 1
            out[br] = n
        return out

    def controller_state(self) -> Optional[Dict[str, Any]]:
        """The running controller's state file, None when there is none or another process
        than the lab's controller wrote it."""
        pid = self.controller_pid()
        if pid is None:
            return None
        try:
            with open(os.path.join(self.run_dir, CONTROLLER_STATE)) as f:
                st = json.load(f)
        except (OSError, ValueError):
            return None
        return st if st.get("pid") == pid else None

    def entry_counts(self) -> Optional[Dict[str, int]]:
        """{"planned": n, "installed": m} of eSwitch entries; None without an eSwitch."""
        cfg = self.load_cfg()
        if not cfg.has_eswitch:
            return None
        planned = self.planned().entry_count()
        try:
            c = EswitchClient(cfg.path(cfg.eswitch.socket), timeout=2)
            installed = len(c.installed()[1])
            c.close()
        except EswitchError:
            installed = 0
        return {"planned": planned, "installed": installed}

    def wait_programmed(self, ovs: Any, controller_alive: Callable[[], bool],
                        timeout: float = 40.0) -> None:
        """Until every bridge carries its planned flows (by cookie), the controller reports
        them in sync, and eswitchd holds its planned entries."""
        want = self.planned_counts()
        deadline = time.monotonic() + timeout
        while True:
            have = self.flow_counts(ovs)
            es = self.entry_counts()
            cs = self.controller_state()
            reported = cs is not None and all((cs.get("bridges") or {}).get(b, {}).get("in_sync")
                                              for b in want)
            if reported and all(have.get(b, 0) >= n for b, n in want.items()) and (
                    es is None or es["installed"] >= es["planned"]):
                return
            if not controller_alive():
                raise NotProgrammed("the controller exited")
            if time.monotonic() > deadline:
                raise NotProgrammed("not programmed after %.0f s (flows: want %s, have %s; eSwitch "
                                    "entries: %s); see %s" % (timeout, want, have, es,
                                                              os.path.join(self.run_dir, "controller.log")))
            time.sleep(0.3)

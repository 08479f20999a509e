"""The paper lab for the scale suite: brought up once (its own run dir), then per point the
controller stopped, both planes emptied (eswitchd restarted, our OVS flows deleted, the
operator's overlay forgotten), the point's config derived, the controller started again and
measured from outside, as an operator would: the API (/status, drain), `xenoflow check`,
OVS's flow counts, /proc."""
from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PAPER = os.path.join(ROOT, "topologies", "paper")
XENOFLOW = os.path.join(os.path.dirname(sys.executable), "xenoflow")
CLK_TCK = os.sysconf("SC_CLK_TCK")


class StepTimeout(RuntimeError):
    """A step of a point did not finish within the point's time."""


def wait_for(cond: Callable[[], Any], deadline: float, what: str, interval: float = 0.05) -> Any:
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise StepTimeout("timed out waiting for %s" % what)
        time.sleep(interval)


def programmed(st: Dict[str, Any], has_eswitch: bool) -> bool:
    """controller/app.py planes_programmed on GET /status: every bridge connected, in sync
    and holding its planned flows; the eSwitch brought to the plan (connected: the runtime
    started, i.e. adopted and programmed it, and polled since)."""
    bridges = st.get("bridges") or {}
    es_ok = not has_eswitch or bool((st.get("eswitch") or {}).get("connected"))
    return es_ok and bool(bridges) and all(
        b.get("connected") and b.get("in_sync") and b.get("flows") == b.get("planned")
        for b in bridges.values())


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (/proc/<pid>/stat fields 14 and 15)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: Optional[int]) -> Optional[float]:
    if not pid:
        return None
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


class ScaleLab:
    """LabCtl on a topology dir of our own (the paper topology beside a config we rewrite
    per point), run dir `run_dir`."""

    def __init__(self, run_dir: str, say: Callable[[str], None]) -> None:
        from xenoflow_ovs.lab.labctl import LabCtl, Progress

        self.say = say
        self.run_dir = run_dir
        self.topo_dir = os.path.join(run_dir + "-topology")
        os.makedirs(self.topo_dir, exist_ok=True)
        shutil.copy(os.path.join(PAPER, "topology.yaml"), os.path.join(self.topo_dir, "topology.yaml"))
        shutil.copy(os.path.join(PAPER, "xenoflow.yaml"), os.path.join(self.topo_dir, "xenoflow.yaml"))
        with open(os.path.join(PAPER, "xenoflow.yaml")) as f:
            self.paper = yaml.safe_load(f)
        args = argparse.Namespace(action="up", topology=os.path.join(self.topo_dir, "topology.yaml"),
                                  run_dir=run_dir, eswitch="softdoca", mirror_routes="on")
        self.ctl = LabCtl(args, Progress(io.StringIO()))
        self.cfg: Any = None

    # -- lab
    def forget_overlay(self) -> None:
        """The operator's durable edits live in the run dir (the lab's state dir) and outlive
        `lab down`: a drain of an earlier run would change what the next one balances."""
        from xenoflow_ovs import overlay as overlay_mod
        try:
            os.unlink(os.path.join(self.run_dir, overlay_mod.FILENAME))
        except FileNotFoundError:
            pass

    def up(self) -> None:
        self.forget_overlay()
        foreign = self.ctl.lab.foreign_namespaces()
        if foreign:
            raise RuntimeError("another lab holds %s: the paper lab's namespace names are fixed"
                               % ", ".join(foreign))
        try:
            self.ctl.up()
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        try:
            self.ctl.down()
        finally:
            self.forget_overlay()
            shutil.rmtree(self.topo_dir, ignore_errors=True)

    def pid(self, name: str) -> Optional[int]:
        rec = self.ctl.state.process(name)
        return rec["pid"] if rec and self.ctl.state.process_alive(name) else None

    # -- per point
    def reset(self, data: Dict[str, Any]) -> None:
        """Controller stopped, eswitchd stopped, our flows gone from OVS, the overlay
        forgotten; the point's config written and derived; eswitchd started (empty)."""
        from xenoflow_ovs import overlay as overlay_mod
        from xenoflow_ovs.lab.labctl import write_derived_config
        ctl = self.ctl
        for name in ("controller", "eswitchd"):
            if ctl.state.process(name):
                ctl.lab.stop_process(name)
        ovs = ctl.ovs()
        for br in ovs.bridges():
            ovs.ofctl("del-flows", br)
        with open(os.path.join(self.topo_dir, "xenoflow.yaml"), "w") as f:
            yaml.safe_dump(data, f, sort_keys=False)
        ctl.cfg_path = write_derived_config(ctl.topo, self.run_dir, ctl.driver, ctl.mirror, ctl.mode)
        ctl.cfg = None
        self.cfg = ctl.load_cfg()
        try:
            os.unlink(overlay_mod.path(self.cfg))
        except FileNotFoundError:
            pass
        ctl.start_eswitchd()

    def start_controller(self) -> None:
        self.ctl.start_controller()

    def api(self, method: str, path: str, timeout: float) -> Any:
        from xenoflow_ovs.api import server as api_mod
        code, body = api_mod.request(method, path, unix_path=self.cfg.path(self.cfg.api.socket),
                                     timeout=max(1.0, timeout))
        if code != 200:
            raise RuntimeError("%s %s: HTTP %d %s" % (method, path, code, str(body)[:300]))
        return body

    def status(self, timeout: float) -> Optional[Dict[str, Any]]:
        try:
            return self.api("GET", "/status", timeout)
        except (OSError, RuntimeError, ValueError):
            return None

    def wait_programmed(self, deadline: float) -> float:
        """Until GET /status says both planes programmed; returns when the API first answered
        (monotonic): the controller's own start-up (imports, config) comes before it."""
        alive = lambda: self.ctl._alive("controller")  # noqa: E731
        answered: List[float] = []

        def done() -> bool:
            if not alive():
                raise RuntimeError("the controller exited: " + _tail(os.path.join(self.run_dir,
                                                                                  "controller.log")))
            st = self.status(deadline - time.monotonic())
            if st is not None and not answered:
                answered.append(time.monotonic())
            return bool(st) and programmed(st, self.cfg.has_eswitch)
        wait_for(done, deadline, "both planes programmed")
        return answered[0]

    def check(self, deadline: float) -> Dict[str, Any]:
        """`xenoflow check` once: seconds, exit code (0 consistent)."""
        t = time.monotonic()
        try:
            p = subprocess.run([XENOFLOW, "check", "-c", self.ctl.cfg_path], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, universal_newlines=True,
                               timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise StepTimeout("`xenoflow check` did not finish within the point's time")
        return {"seconds": time.monotonic() - t, "rc": p.returncode, "out": p.stdout.strip()[-300:]}

    def our_flows(self, ovs: Any) -> Dict[str, int]:
        """Flows with our cookie per bridge, counted by OVS (dump-aggregate: no dump)."""
        from xenoflow_ovs.intent import plan as plan_mod
        out = {}
        for br in ovs.bridges():
            text = ovs.ofctl("dump-aggregate", br, "cookie=0x%x/0x%x" % (plan_mod.COOKIE_BASE,
                                                                         plan_mod.COOKIE_MASK), check=False)
            out[br] = int(text.split("flow_count=")[1].split()[0]) if "flow_count=" in text else 0
        return out

    def restart_ovs(self, want: Dict[str, int], deadline: float) -> Dict[str, Optional[float]]:
        """As run.py's control suite: ovs-vswitchd killed and started on the same database;
        seconds until every bridge carries its planned flows again and until `xenoflow check`
        says consistent."""
        ovs = self.ctl.ovs()
        t0 = time.monotonic()
        ovs.restart_vswitchd()
        self.ctl.start_ovs()
        up = time.monotonic() - t0
        wait_for(lambda: all(self.our_flows(ovs).get(b, 0) >= n for b, n in want.items()), deadline,
                 "the flows back after the OVS restart", interval=0.05)
        flows = time.monotonic() - t0
        wait_for(lambda: self.check(deadline)["rc"] == 0, deadline, "consistent after the OVS restart",
                 interval=0.1)
        return {"ovs_up_s": up, "reconcile_s": flows, "reconcile_consistent_s": time.monotonic() - t0}


def _tail(path: str, n: int = 8) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"

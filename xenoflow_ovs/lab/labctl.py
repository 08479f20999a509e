"""`xenoflow lab up|down|status|demo [--topology paper] [--run-dir D] [--eswitch softdoca|none]
[--eswitch-mode vnf|switch] [--mirror-routes on|off] [--flood]`.

``up``     builds the topology (topologies/<name>/topology.yaml, see topology.py), starts bind9
           on the backends, a private OVS inside the ``dpu`` namespace, eswitchd (softdoca) and
           the controller there too, each as a background process with its log in the run dir,
           and waits until the controller has programmed both planes. Idempotent. What the
           lab needs (root, the tools, os-ken for the controller, the glue for eswitchd) is
           checked before anything is built; an ``up`` that fails removes what it built.
``status`` what is up: namespaces, processes (alive or not), OVS bridges and flow counts,
           eSwitch entries; exit 0 when everything recorded is up, 1 otherwise.
``down``   removes everything recorded in the run dir's state file: processes by PID, OVS
           bridges and its netdev taps, namespaces. Idempotent, also after a crash.
``demo``   up, DNS queries from every client source address, counters per backend (bind9's
           own, the eSwitch entries', OVS's), host traffic fips5 -> p1, the consistency
           verdict, down (a lab that was up before the demo is left up). With ``--flood``
           (``up`` too): the topology's flood variant (flood.yaml: more buckets and a
           per-bucket limit) and, for ``demo``, one source flooding its bucket while the
           others query at a steady rate (flood.py).

The run dir (default ``run/<topology>`` under the repository root, owner-only) holds
``state.json``, the *derived config* ``xenoflow.yaml`` (the topology's config with the
command line's overrides applied and every socket pointed into the run dir: the config
everything in the lab runs with, and the one ``xenoflow status``/``check`` find), the
private OVS (``ovs/``), bind9 work dirs (``bind/<ns>/``) and the logs of eswitchd and the
controller.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import yaml

from ..exitcodes import EXIT_ERROR, EXIT_FOUND, EXIT_OK
from . import netns as nsh
from .planes import CONTROLLER_STATE, NotProgrammed, PlaneReadings
from .pyenv import subprocess_env as _subprocess_env
from .topology import Lab, LabBusy, Topology, load_topology, topology_candidates

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REQUIRED_TOOLS = ("ip", "ethtool", "sysctl", "bridge", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd",
                  "ovs-vsctl", "ovs-ofctl", "named", "named-checkconf", "ping")
FLOOD_CONFIG = "flood.yaml"
DASHBOARD_PORT = 9302    # the host's loopback port of the dashboard relay (the metrics listener's default)


class LabError(RuntimeError):
    pass


# ---------------------------------------------------------------- output


class Progress:
    """One line per step, with the time since the command started."""

    def __init__(self, out: Any = None) -> None:
        self.t0 = time.monotonic()
        self.out = out or sys.stdout

    def __call__(self, msg: str) -> None:
        self.out.write("[%5.1fs] %s\n" % (time.monotonic() - self.t0, msg))
        self.out.flush()


# ---------------------------------------------------------------- where things are


def topology_path(topology: str) -> str:
    """`paper` -> <repo>/topologies/paper/topology.yaml; a directory or a file path also works."""
    if os.path.isfile(topology):
        return os.path.abspath(topology)
    if os.path.isdir(topology):
        return os.path.join(os.path.abspath(topology), "topology.yaml")
    tried = topology_candidates(topology, (REPO_ROOT, os.getcwd()))
    for p in tried:
        if os.path.exists(p):
            return p
    raise LabError("no topology %r (looked for %s)" % (topology, ", ".join(tried)))


def default_run_dir(topo: Topology) -> str:
    base = REPO_ROOT if os.path.isdir(os.path.join(REPO_ROOT, "topologies")) else os.getcwd()
    return os.path.join(base, "run", topo.name)


# ---------------------------------------------------------------- the derived config


def flood_config_path(topo: Topology) -> str:
    """The flood variant's service keys: flood.yaml beside the topology's config."""
    return os.path.join(os.path.dirname(topo.config_path), FLOOD_CONFIG)


def merge_services(data: Dict[str, Any], overlay: Dict[str, Any]) -> Dict[str, Any]:
    """`data` with each service named in overlay["services"] taking the overlay's keys (pure:
    new dicts). A name the config has no service of is an error, not silently ignored."""
    want = dict(overlay.get("services") or {})
    services = []
    for svc in data.get("services") or []:
        extra = want.pop(svc.get("name"), None)
        services.append(dict(svc, **extra) if extra else svc)
    if want:
        raise LabError("the flood variant names services the config lacks: %s" % ", ".join(sorted(want)))
    return dict(data, services=services)


def write_derived_config(topo: Topology, run_dir: str, driver: Optional[str],
                         mirror_routes: Optional[bool], mode: Optional[str] = None,
                         flood: bool = False) -> str:
    """The topology's config with the overrides applied (`flood`: the services' keys of the
    flood variant, flood.yaml) and every socket/db path pointed into the run dir (absolute),
    written to <run dir>/xenoflow.yaml (0600). Returns the path."""
    from ..intent import config as config_mod

    with open(topo.config_path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    if flood:
        path = flood_config_path(topo)
        if not os.path.exists(path):
            raise LabError("topology %s has no flood variant (%s)" % (topo.name, path))
        with open(path, encoding="utf-8") as f:
            data = merge_services(data, yaml.safe_load(f) or {})
    dpu = data.setdefault("dpu", {})
    es = dpu.get("eswitch") or {}
    dpu["eswitch"] = es
    if driver:
        es["driver"] = driver
    if mirror_routes is not None:
        es["mirror_routes"] = bool(mirror_routes)
    if mode is not None:
        es["mode"] = mode
        if mode == "switch":
            # the paper's service forwards p0 -> p1, across the two PFs: one e-switch for both
            es["multiport"] = True
    es["socket"] = os.path.join(run_dir, "eswitchd.sock")
    # the one-instance locks and the operator's durable state of this lab live with it
    dpu["state_dir"] = run_dir
    data.setdefault("ovs", {})["db"] = "unix:" + os.path.join(run_dir, "ovs", "db.sock")
    ctl = data.get("controller") or {}
    data["controller"] = ctl
    api = ctl.get("api") or {}
    ctl["api"] = api
    api["socket"] = os.path.join(run_dir, "api.sock")
    path = os.path.join(run_dir, "xenoflow.yaml")
    text = ("# Derived by `xenoflow lab up` from %s: overrides applied, sockets in the run dir.\n"
            "# The lab's processes run with this file; edit the source config, not this one.\n"
            % topo.config_path) + yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    os.makedirs(run_dir, mode=0o700, exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    cfg = config_mod.load(path)  # raises ConfigError with located messages
    topo.check_against(cfg)
    return path


def preflight(driver: str) -> None:
    """What the lab needs, checked before anything is built: root, the tools, and the
    Python modules of the controller (and of eswitchd) for the Python that runs them."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, veths, OVS)")
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        raise LabError("missing tools: %s (run scripts/install-deps.sh)" % ", ".join(missing))
    mods = ["os_ken.base.app_manager", "xenoflow_ovs.controller.app"]
    if driver != "none":
        mods.append("dpdk_glue")
    problem = import_problems(mods)
    osken = problem.get("os_ken.base.app_manager")
    if osken:
        raise LabError("the controller cannot start: %s (pip install 'xenoflow-ovs[osken]')" % (
            "os-ken is not installed for " + sys.executable if "'os_ken'" in osken
            else "os-ken does not import: " + osken))
    if "xenoflow_ovs.controller.app" in problem:
        raise LabError("the controller cannot start: %s (pip install 'xenoflow-ovs[osken]')"
                       % problem["xenoflow_ovs.controller.app"])
    if "dpdk_glue" in problem:
        raise LabError("eswitchd cannot start: %s; build it (pip install -e .) or run the lab "
                       "with --eswitch none" % problem["dpdk_glue"])


def _tail(path: str, n: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- the lab controller


class LabCtl:
    def __init__(self, args: argparse.Namespace, progress: Optional[Progress] = None,
                 topo: Optional[Topology] = None, run_dir: Optional[str] = None) -> None:
        """`topo`/`run_dir`: given by the fleet lab, which runs one LabCtl per DPU on a
        one-DPU view of its topology (fleet_lab.py); else from the command line."""
        self.args = args
        self.say = progress or Progress()
        self.topo = topo or load_topology(topology_path(getattr(args, "topology", None) or "paper"))
        self.run_dir = os.path.abspath(run_dir or getattr(args, "run_dir", None)
                                       or default_run_dir(self.topo))
        # the driver: command line, else what the running lab was brought up with, else the config
        from .topology import LabState
        st = LabState(self.run_dir)
        self.driver = getattr(args, "eswitch", None) or st.data.get("extra", {}).get("driver")
        mr = getattr(args, "mirror_routes", None)
        self.mirror = None if mr is None else (mr == "on")
        if self.mirror is None and st.data.get("extra", {}).get("mirror_routes") is not None:
            self.mirror = st.data["extra"]["mirror_routes"]
        self.mode = getattr(args, "eswitch_mode", None) or st.data.get("extra", {}).get("mode")
        # the flood variant, once up, stays until `down` (as the other overrides do)
        self.flood = bool(getattr(args, "flood", False) or st.data.get("extra", {}).get("flood"))
        if self.driver is None:
            with open(self.topo.config_path, encoding="utf-8") as f:
                raw = yaml.safe_load(f) or {}
            self.driver = ((raw.get("dpu") or {}).get("eswitch") or {}).get("driver", "softdoca")
        self.lab = Lab(self.topo, self.run_dir, eswitch=self.driver != "none")
        self.cfg_path = os.path.join(self.run_dir, "xenoflow.yaml")
        self.cfg = None
        self._popen: Dict[str, subprocess.Popen] = {}
        self.planes = PlaneReadings(self.load_cfg, self.run_dir, self._controller_pid)

    def _controller_pid(self) -> Optional[int]:
        rec = self.state.process("controller")
        return rec["pid"] if rec else None

    # -- helpers
    @property
    def state(self):
        return self.lab.state

    def _say_operator_state(self, cfg: Any) -> None:
        """The operator's changes kept in the run dir outlive `lab down`: say so when there
        are any, since they change what the lab balances."""
        from .. import overlay as overlay_mod
        from ..intent import overlay as pure
        try:
            edits = overlay_mod.read(overlay_mod.path(cfg))
        except overlay_mod.OverlayError as exc:
            self.say(str(exc))
            return
        if edits:
            self.say("operator state kept from earlier runs: %s (`xenoflow state -c %s clear` with the lab "
                     "down forgets it)" % (", ".join(pure.describe(e) for e in edits),
                                           os.path.relpath(self.cfg_path)))

    def is_up(self) -> bool:
        """Some namespace this run dir made still exists."""
        return any(nsh.ns_exists(ns) for ns in self.state.data["namespaces"])

    def ovs(self):
        from .ovs_instance import OvsInstance
        return OvsInstance(os.path.join(self.run_dir, "ovs"), netns=self.topo.dpu_netns)

    def load_cfg(self):
        from ..intent import config as config_mod
        if self.cfg is None and os.path.exists(self.cfg_path):
            self.cfg = config_mod.load(self.cfg_path)
        return self.cfg

    def _spawn(self, name: str, ns: str, argv: List[str], log: str,
               env: Optional[Dict[str, str]] = None) -> int:
        """Start argv in `ns` in the background, log to `log`, record its PID."""
        logf = open(log, "ab")
        full_env = _subprocess_env()
        full_env.update(env or {})
        try:
            p = nsh.popen_in_ns(ns, argv, env=full_env, stdout=logf, stderr=subprocess.STDOUT,
                                cwd=self.run_dir)
        finally:
            logf.close()
        self._popen[name] = p
        self.state.add_process(name, p.pid, argv, ns, log)
        return p.pid

    def _alive(self, name: str) -> bool:
        p = self._popen.get(name)
        if p is not None and p.poll() is not None:
            return False
        return self.state.process_alive(name)

    # -- up
    def up(self) -> None:
        say = self.say
        preflight(self.driver)
        self.lab.check_free()
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        os.chmod(self.run_dir, 0o700)
        self.state.data["extra"].update(driver=self.driver, mirror_routes=self.mirror, mode=self.mode,
                                        flood=self.flood)
        self.state.save()
        old_text = _read(self.cfg_path)
        self.cfg_path = write_derived_config(self.topo, self.run_dir, self.driver, self.mirror, self.mode,
                                             self.flood)
        self.cfg = None
        cfg = self.load_cfg()
        say("config: %s (eswitch %s, %s mode, routes %smirrored%s)" % (
            os.path.relpath(self.cfg_path), cfg.eswitch.driver, cfg.eswitch.mode,
            "" if cfg.eswitch.mirror_routes else "NOT ",
            ", the flood variant: %s" % FLOOD_CONFIG if self.flood else ""))
        self._say_operator_state(cfg)
        if old_text is not None and old_text != _read(self.cfg_path) and self._alive("controller"):
            # a running lab brought up with other overrides: the controller restarts on the new
            # config (it adopts what is installed and fixes the difference)
            self.lab.stop_process("controller")
            say("config changed: controller stopped, it restarts on the new config")
        self.lab.up()
        say("topology %s: %d namespaces, %d veth pairs (%s wiring), tor bridge with static FDB"
            % (self.topo.name, len(self.topo.namespaces), len(self.topo.veths(self.lab.eswitch)),
               self.lab.wiring))
        self.start_bind9()
        say("bind9 answering on %s" % ", ".join(
            "%s (pid %d)" % (b.netns, self.state.process("bind9-" + b.netns)["pid"]) for b in self.topo.dns))
        ovs = self.start_dpu_daemons()
        how = self.start_controller()
        self.wait_dpu(ovs, how)
        try:
            say("dashboard: %s (the controller's read-only metrics listener, relayed from the DPU's "
                "namespace)" % self.start_dashboard(getattr(self.args, "dashboard_port", None) or 0))
        except LabError as e:      # the lab works without it; say how to get it
            say("dashboard not reachable from the host: %s; `xenoflow lab dashboard --dashboard-port N`" % e)

    def start_dpu_daemons(self):
        """The DPU's private OVS and (with an eSwitch) eswitchd; returns the OVS."""
        say, cfg = self.say, self.load_cfg()
        ovs = self.start_ovs()
        say("private OVS in namespace %s (ovsdb-server %d, ovs-vswitchd %d)" % (
            self.topo.dpu_netns, ovs.pid("ovsdb-server"), ovs.pid("ovs-vswitchd")))
        if cfg.has_eswitch:
            self.start_eswitchd()
            say("eswitchd (%s, %s mode) serving %s" % (cfg.eswitch.driver, cfg.eswitch.mode,
                                                     os.path.relpath(cfg.path(cfg.eswitch.socket))))
        return ovs

    def wait_dpu(self, ovs: Any, how: str) -> None:
        """Until the controller has programmed both planes; then the internal ports get
        their addresses."""
        try:
            self.planes.wait_programmed(ovs, lambda: self._alive("controller"))
        except NotProgrammed as exc:
            raise LabError("%s; its log:\n%s\n" % (
                exc, _tail(os.path.join(self.run_dir, "controller.log"))))
        self.ensure_mgmt_port()
        es = self.planes.entry_counts()
        self.say("both planes programmed (%s): %s%s" % (how, ", ".join(
            "%s %d flows" % (b, n) for b, n in sorted(self.planes.flow_counts(ovs).items())),
            "" if es is None else ", eSwitch %d entries" % es["installed"]))

    def start_bind9(self) -> None:
        from .bind9 import Bind9
        for b in self.topo.dns:
            name = "bind9-" + b.netns
            if self.state.process_alive(name):
                continue
            self.state.drop_process(name)
            bind = Bind9(b.netns, os.path.join(self.run_dir, "bind", b.netns), b.name, b.vip)
            try:
                bind.start()
            finally:
                if bind.proc is not None:
                    self.state.add_process(name, bind.proc.pid, ["named", "-g", "-c", bind.conf],
                                           b.netns, bind.log)
                    self._popen[name] = bind.proc

    def start_ovs(self):
        ovs = self.ovs()
        self.state.data["extra"]["ovs_rundir"] = ovs.rundir   # before it starts: a crash still stops it
        self.state.save()
        if not ovs.running():
            # a half-dead instance (one daemon left) is stopped first, by its pidfiles
            ovs.stop()
            ovs.start()
        for prog in ("ovsdb-server", "ovs-vswitchd"):
            self.state.add_process(prog, ovs.pid(prog), [prog], self.topo.dpu_netns,
                                   ovs.logfile(prog))
        return ovs

    def start_eswitchd(self) -> None:
        cfg = self.load_cfg()
        sock = cfg.path(cfg.eswitch.socket)
        if not self._alive("eswitchd"):
            self.state.drop_process("eswitchd")
            log = os.path.join(self.run_dir, "eswitchd.log")
            self._spawn("eswitchd", self.topo.dpu_netns,
                        [sys.executable, "-m", "xenoflow_ovs.cli", "eswitchd", "-c", self.cfg_path], log)
        from ..eswitch.client import EswitchClient, EswitchError
        deadline = time.monotonic() + 30
        while True:
            if not self._alive("eswitchd"):
                raise LabError("eswitchd exited; its log:\n"
                               + _tail(self.state.process("eswitchd")["log"]) + "\n")
            try:
                c = EswitchClient(sock, timeout=2)
                c.hello()
                c.close()
                return
            except EswitchError:
                pass
            if time.monotonic() > deadline:
                raise LabError("eswitchd does not answer on %s after 30 s" % sock)
            time.sleep(0.2)

    def start_controller(self) -> str:
        if self._alive("controller"):
            return "controller pid %d" % self.state.process("controller")["pid"]
        self.state.drop_process("controller")
        log = os.path.join(self.run_dir, "controller.log")
        pid = self._spawn("controller", self.topo.dpu_netns,
                          [sys.executable, "-m", "xenoflow_ovs.cli", "controller", "-c", self.cfg_path], log,
                          env={"XENOFLOW_STATE": os.path.join(self.run_dir, CONTROLLER_STATE)})
        return "controller pid %d" % pid

    # -- the dashboard, from the host

    def dashboard_url(self) -> Optional[str]:
        """The page's address on the host's loopback while the relay runs, else None."""
        rec = self.state.process("dashboard")
        if rec is None or not self.state.process_alive("dashboard"):
            return None
        port = self.state.data["extra"].get("dashboard_port", DASHBOARD_PORT)
        return "http://127.0.0.1:%d/dashboard/" % port

    def start_dashboard(self, port: int = 0) -> str:
        """Relay the host's 127.0.0.1:`port` to the controller's metrics listener in the DPU's
        namespace (lab/relay.py); returns the page's address. A relay already running on
        another port is replaced."""
        port = port or DASHBOARD_PORT
        if self._alive("dashboard") and self.state.data["extra"].get("dashboard_port") == port:
            return self.dashboard_url() or ""
        if self.state.process("dashboard"):
            self.lab.stop_process("dashboard")
        cfg = self.load_cfg()
        if cfg is None or cfg.metrics.host is None:
            raise LabError("the lab's config has no metrics listener to show")
        log = os.path.join(self.run_dir, "dashboard-relay.log")
        self._spawn("dashboard", None, [sys.executable, "-m", "xenoflow_ovs.lab.relay",
                                        "--listen", "127.0.0.1:%d" % port, "--netns", self.topo.dpu_netns,
                                        "--to", "%s:%d" % (cfg.metrics.host, cfg.metrics.port)], log)
        self.state.data["extra"]["dashboard_port"] = port
        self.state.save()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if not self._alive("dashboard"):
                self.state.drop_process("dashboard")
                raise LabError("the dashboard relay stopped: %s (choose another port with "
                               "--dashboard-port)" % _tail(log, 3).strip())
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return self.dashboard_url() or ""
            except OSError:
                time.sleep(0.1)
        raise LabError("the dashboard relay does not listen on 127.0.0.1:%d after 5 s" % port)

    def ensure_mgmt_port(self) -> None:
        """The internal ports of the config (pf1sf0) carry their lab address and MAC in the
        dpu namespace (idempotent; a no-op when the controller already did it)."""
        cfg = self.load_cfg()
        for br in cfg.bridges:
            for ip in br.internal:
                if not nsh.link_exists(ip.name, self.topo.dpu_netns):
                    continue
                nsh.set_link(ip.name, ns=self.topo.dpu_netns, mac=ip.mac, up=None)
                nsh.add_address(ip.name, str(ip.ip), ns=self.topo.dpu_netns)
                if ip.ip6 is not None:
                    # IPv6 only on this port of the dpu namespace: static, no RA, no DAD
                    nsh.set_if_sysctls(self.topo.dpu_netns, ip.name, [
                        ("ipv6.accept_ra", "0"), ("ipv6.autoconf", "0"), ("ipv6.router_solicitations", "0"),
                        ("ipv6.dad_transmits", "0"), ("ipv6.disable_ipv6", "0")])
                    nsh.add_address(ip.name, str(ip.ip6), ns=self.topo.dpu_netns)
                nsh.run_in_ns(self.topo.dpu_netns, ["ethtool", "-K", ip.name, "tx", "off"], check=False)
                nsh.set_link(ip.name, ns=self.topo.dpu_netns, up=True)

    # -- down
    def down(self) -> List[str]:
        """Stop everything recorded; returns what was removed (for the report)."""
        done = []
        # whoever talks to our eswitchd or API from anywhere (a controller started by hand,
        # in or out of our namespaces) before they can reconnect to the next lab's
        done += self._stop_socket_clients()
        # the controller first (it would reconnect and reprogram), then eswitchd
        for name in ("controller", "eswitchd"):
            if self.state.process(name):
                self.lab.stop_process(name)
                done.append(name)
        ovs_rundir = self.state.data["extra"].get("ovs_rundir")
        if ovs_rundir and os.path.isdir(ovs_rundir):
            from .ovs_instance import OvsInstance
            ovs = OvsInstance(ovs_rundir, netns=self.topo.dpu_netns)
            # only daemons whose command line names our run dir (a stale pidfile's PID may
            # belong to anybody by now)
            if any(_cmdline_has(ovs.pid(prog), ovs_rundir) for prog in ("ovsdb-server", "ovs-vswitchd")):
                ovs.stop()   # del-br (removes the netdev taps), kill by pidfile, leftover taps
                done.append("ovs")
        for prog in ("ovs-vswitchd", "ovsdb-server"):
            if self.state.process(prog):
                self.lab.stop_process(prog)
        for name in list(self.state.data["processes"]):
            self.lab.stop_process(name)
            done.append(name)
        done += self._stop_unrecorded_bind9()
        done += self._stop_unrecorded()
        taps = self.lab.delete_taps()
        if taps:
            done.append("taps " + ",".join(taps))
        nss = [ns for ns in self.state.data["namespaces"] if nsh.ns_exists(ns)]
        self.lab.down()
        if nss:
            done.append("namespaces " + ",".join(nss))
        self._dpdk_runtime_cleanup()
        # the controller's state belongs to this lab instance: a new lab starts clean
        try:
            os.unlink(os.path.join(self.run_dir, CONTROLLER_STATE))
        except FileNotFoundError:
            pass
        return done

    def _owned_namespaces(self) -> List[str]:
        return [ns for ns in self.state.data["namespaces"] if nsh.ns_exists(ns) and self.lab.owns(ns)]

    def _stop_socket_clients(self) -> List[str]:
        """Processes connected to this lab's eswitchd or API unix socket from this or any
        named namespace, by PID (never ourselves or our parents)."""
        from .topology import stop_pid
        cfg = self.load_cfg()
        if cfg is None:
            return []
        paths = [cfg.path(cfg.eswitch.socket)] + ([cfg.path(cfg.api.socket)] if cfg.api.socket else [])
        recorded = {p["pid"] for p in self.state.data["processes"].values()}
        spare = set(nsh.ancestors()) | recorded     # the recorded ones stop in order below
        done = []
        for pid in nsh.unix_socket_clients(paths, [None] + nsh.named_namespaces()):
            if pid not in spare:
                stop_pid(pid)
                done.append("pid %d (%s, attached to the lab's sockets)" % (pid, _comm(pid)))
        return done

    def _stop_unrecorded(self) -> List[str]:
        """Every process still in our namespaces once the recorded ones are stopped: an
        `up` that crashed before recording it, or one started there by hand (`ip netns exec
        dpu xenoflow controller ...`), which would outlive the namespace and keep its links.
        By PID (``ip netns pids``), never ourselves or our parents."""
        from .topology import stop_pid
        spare = set(nsh.ancestors())
        done = []
        for ns in self._owned_namespaces():
            for pid in nsh.ns_pids(ns):
                if pid not in spare:
                    name = _comm(pid)
                    stop_pid(pid)
                    done.append("pid %d (%s, in %s)" % (pid, name, ns))
        return done

    def _stop_unrecorded_bind9(self) -> List[str]:
        """A named started by an `up` that crashed before recording its PID: found by the
        pidfile in our own bind work dir, and stopped only if its command line names our
        config file there."""
        from .topology import proc_start_time, stop_pid
        done = []
        for b in self.topo.dns:
            wd = os.path.join(self.run_dir, "bind", b.netns)
            try:
                with open(os.path.join(wd, "named.pid")) as f:
                    pid = int(f.read().split()[0])
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    argv = f.read().decode(errors="replace").split("\0")
            except (OSError, ValueError, IndexError):
                continue
            if os.path.join(wd, "named.conf") in argv and proc_start_time(pid) is not None:
                stop_pid(pid)
                done.append("bind9-%s (pidfile)" % b.netns)
        return done

    def _dpdk_runtime_cleanup(self) -> None:
        """eswitchd's DPDK runtime dir (/var/run/dpdk/<file-prefix>), by exact name, once
        no eswitchd of ours runs."""
        cfg = self.load_cfg()
        if cfg is None or not cfg.has_eswitch or self.state.process_alive("eswitchd"):
            return
        args = list(cfg.eswitch.eal_args)
        if "--file-prefix" in args and args.index("--file-prefix") + 1 < len(args):
            d = os.path.join("/var/run/dpdk", args[args.index("--file-prefix") + 1])
            if os.path.isdir(d):
                shutil.rmtree(d, ignore_errors=True)

    # -- status
    def status(self) -> Dict[str, Any]:
        st = self.lab.status()
        ovs_rundir = self.state.data["extra"].get("ovs_rundir")
        st["driver"] = self.state.data["extra"].get("driver")
        st["bridges"] = {}
        if ovs_rundir and os.path.isdir(ovs_rundir):
            from .ovs_instance import OvsInstance
            ovs = OvsInstance(ovs_rundir, netns=self.topo.dpu_netns)
            if ovs.running():
                st["bridges"] = self.planes.flow_counts(ovs)
        st["config"] = self.cfg_path if os.path.exists(self.cfg_path) else None
        st["dashboard"] = self.dashboard_url()
        st["eswitch_entries"] = None
        if st["config"] and self.state.process_alive("eswitchd"):
            st["eswitch_entries"] = self.planes.entry_counts()
        return st


_IMPORT_PROBE = """
import importlib, json, sys
out = {}
for mod in sys.argv[1:]:
    try:
        importlib.import_module(mod)
    except ImportError as e:
        out[mod] = "Python module %r is missing" % e.name if e.name else str(e)
    except Exception as e:
        out[mod] = "import %s fails: %s: %s" % (mod, type(e).__name__, e)
print(json.dumps(out))
"""


def import_problems(modules: List[str]) -> Dict[str, str]:
    """{module: what is wrong} for the modules that do not import in the lab's Python
    subprocesses (this interpreter, their environment, not from the current directory)."""
    p = subprocess.run([sys.executable, "-c", _IMPORT_PROBE] + list(modules), env=_subprocess_env(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                       cwd="/", timeout=120)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        err = (p.stderr.strip().splitlines() or ["exit code %d" % p.returncode])[-1]
        return {m: "the import probe failed: %s" % err for m in modules}


def _comm(pid: int) -> str:
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return "?"


def _cmdline_has(pid: Optional[int], text: str) -> bool:
    if not pid:
        return False
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return text in f.read().decode(errors="replace")
    except OSError:
        return False


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


# ---------------------------------------------------------------- demo


class Demo:
    QUERIES_PER_SOURCE = 10

    def __init__(self, ctl: LabCtl) -> None:
        self.ctl = ctl
        self.say = ctl.say

    def expected_backend(self, svc, table, src: str) -> str:
        mask = len(table) - 1
        return table[int(ipaddress.ip_address(src)) & mask]

    def counters(self) -> Dict[str, Any]:
        """bind9 answers, eSwitch entry packets, OVS packets per backend, fallback, miss_other."""
        from .bind9 import Bind9
        cfg = self.ctl.load_cfg()
        out: Dict[str, Any] = {"bind9": {}, "eswitch": {}, "ovs": {}, "fallback": None,
                               "miss_other": 0, "source": "nothing (the controller reports nothing)"}
        for b in self.ctl.topo.dns:
            out["bind9"][b.name] = Bind9(b.netns, os.path.join(self.ctl.run_dir, "bind", b.netns),
                                         b.name, b.vip).queries_answered()
        if cfg.has_eswitch:
            from ..eswitch.client import EswitchClient
            c = EswitchClient(cfg.path(cfg.eswitch.socket))
            res = c.counters()
            c.close()
            routes = {}
            for e in res.get("entries", []):
                ent = e["entry"]
                if ent.get("kind") == "bucket":
                    out["eswitch"][ent["backend"]] = out["eswitch"].get(ent["backend"], 0) + e["pkts"]
                elif ent.get("kind") == "route":
                    routes[ent["owner"]] = routes.get(ent["owner"], 0) + e["pkts"]
            out["eswitch_routes"] = routes
        # OVS per backend and fallback: what the controller counts, from its API (else
        # from the state file it writes)
        rep, source = self.api("/status"), "controller API"
        if rep is None:
            rep, source = self.ctl.planes.controller_state(), "controller state"
        if rep is not None:
            for svc, backends in (rep.get("services") or {}).items():
                for name, c in backends.items():
                    out["ovs"][name] = out["ovs"].get(name, 0) + int(c.get("ovs_packets") or 0)
            out["fallback"] = rep.get("fallback_packets")
            out["miss_other"] = rep.get("miss_other_packets")
            out["time"] = rep.get("time")
            out["source"] = source
        return out

    def settled_counters(self, timeout: float = 6.0) -> Dict[str, Any]:
        """Counters once they stop moving: OVS pushes datapath stats to its rules
        asynchronously (about every 0.5 s, later on a busy machine)."""
        since = time.time()
        time.sleep(0.6)
        last = self.counters()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.6)
            cur = self.counters()
            fresh = cur.get("time") is None or cur["time"] > since + 1.0
            if fresh and _comparable(cur) == _comparable(last):
                return cur
            last = cur
        return last

    def api(self, path: str) -> Optional[Dict[str, Any]]:
        cfg = self.ctl.load_cfg()
        sock = cfg.path(cfg.api.socket) if cfg.api.socket else None
        if not sock or not os.path.exists(sock):
            return None
        from ..api import server as api_mod
        try:
            code, body = api_mod.request("GET", path, unix_path=sock)
        except OSError:
            return None
        return body if code == 200 else None

    def queries(self, ns: str, sources: List[str], server: str, count: int,
                tcp: bool = False) -> Dict[str, Dict]:
        """`count` sequential queries from every source address, in one process in `ns`."""
        snippet = ("import json, sys\n"
                   "from xenoflow_ovs.lab.dnsclient import query_many\n"
                   "a = json.loads(sys.argv[1])\n"
                   "print(json.dumps({s: query_many(a['server'], s, a['count'], timeout=1.0, tcp=a['tcp'])"
                   " for s in a['sources']}))\n")
        arg = json.dumps({"server": server, "sources": sources, "count": count, "tcp": tcp})
        p = nsh.run_in_ns(ns, [sys.executable, "-c", snippet, arg], env=_subprocess_env(),
                          timeout=30 + len(sources) * count * 2)
        return json.loads(p.stdout)

    def listener_queries(self, svc: Any, table: Any, clients: Dict[str, Any], family: int,
                         proto: str) -> Tuple[int, int, int]:
        """One listener (family x transport) queried from the lab's clients of its family:
        (sent, answered, answered by another backend than the table says)."""
        sent = answered = wrong = 0
        for ns, sources in sorted(clients.items()):
            res = self.queries(ns, list(sources), str(svc.vip_of(family)), self.QUERIES_PER_SOURCE,
                               tcp=proto == "tcp")
            for src, r in res.items():
                exp = self.expected_backend(svc, table, src)
                sent += r["count"]
                for ans, n in r["by_answer"].items():
                    answered += n
                    if ans != exp:
                        wrong += n
        return sent, answered, wrong

    def run(self) -> int:
        say = self.say
        ctl = self.ctl
        cfg = ctl.load_cfg()
        p = ctl.planes.planned()     # with the operator's changes, as the controller runs it
        rc = EXIT_OK
        before = self.counters()
        for svc in cfg.services:
            table = p.table(svc.name)
            for family, proto in svc.listeners:
                clients = ctl.topo.clients if family == 4 else ctl.topo.clients6
                sent, answered, wrong = self.listener_queries(svc, table, clients, family, proto)
                say("service %s over IPv%d/%s: %d queries from %d source addresses (%s): %d answered, "
                    "%d by the wrong backend, %d lost" % (
                        svc.name, family, proto.upper(), sent, sum(len(s) for s in clients.values()),
                        ", ".join(sorted(clients)) or "none in this topology", answered, wrong,
                        sent - answered))
                if wrong or answered != sent or not sent:
                    rc = EXIT_FOUND
        after = self.settled_counters()
        d = _delta(before, after)
        say("per backend (deltas; OVS counters from %s):" % after["source"])
        for svc in cfg.services:
            for be in svc.backends:
                es = d["eswitch"].get(be.name) if cfg.has_eswitch else None
                print("          %-6s answered by bind9 %5s | eSwitch entries %5s | OVS %5s" % (
                    be.name, d["bind9"].get(be.name, 0), "n/a" if es is None else es,
                    d["ovs"].get(be.name, 0)))
        print("          fallback packets %s, miss_other packets %s" % (
            "n/a (no eSwitch)" if d["fallback"] is None else d["fallback"], d["miss_other"]))
        # host traffic fips5 -> p1
        host = ctl.topo.host
        if host:
            h0 = self.counters()
            lost = 0
            for tgt in host.get("targets", ()):
                r = nsh.run_in_ns(host["netns"], ["ping", "-n", "-q", "-c", "5", "-i", "0.05", "-W", "1",
                                                  "-I", host["src"], tgt], check=False)
                lost += 0 if r.returncode == 0 else 1
            h1 = self.settled_counters()
            hd = _delta(h0, h1)
            routes = ", ".join("%s %d" % (k, v) for k, v in sorted(hd.get("eswitch_routes", {}).items()))
            trap = "" if cfg.eswitch.mirror_routes or not cfg.has_eswitch else \
                " - the paper's trap: host traffic runs through the Arm's OVS"
            say("host traffic %s -> %s (ping via pf1hpf/p1): %s; eSwitch route entries: %s; "
                "fallback %s (routes %smirrored)%s" % (
                    host["src"], ",".join(host.get("targets", ())),
                    "all answered" if not lost else "%d target(s) unreachable" % lost,
                    routes or "n/a", "n/a" if hd["fallback"] is None else hd["fallback"],
                    "" if cfg.eswitch.mirror_routes else "NOT ", trap))
            if lost:
                rc = EXIT_FOUND
        chk = self.api("/check")
        if chk is not None:
            from ..intent.consistency import format_report
            say("consistency: " + format_report(chk).replace("\n", "\n          "))
            trap = chk.get("verdict") == "fallback" and cfg.has_eswitch and not cfg.eswitch.mirror_routes
            if trap:
                say("fallback found, as expected with routes not mirrored (with "
                    "--mirror-routes on: fallback 0)")
            elif chk.get("verdict") != "consistent":
                rc = max(rc, EXIT_FOUND)
        else:
            say("consistency: `xenoflow check` not available (the controller's API is not running)")
        return rc


def _comparable(c: Dict[str, Any]) -> Any:
    return json.dumps({k: v for k, v in c.items() if k not in ("bind9", "time")}, sort_keys=True)


def _delta(a: Dict[str, Any], b: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k in ("bind9", "eswitch", "ovs", "eswitch_routes"):
        out[k] = {n: v - (a.get(k) or {}).get(n, 0) for n, v in (b.get(k) or {}).items()}
    out["fallback"] = None if b.get("fallback") is None else b["fallback"] - (a.get("fallback") or 0)
    out["miss_other"] = (b.get("miss_other") or 0) - (a.get("miss_other") or 0)
    return out


# ---------------------------------------------------------------- entry point


def _print_status(st: Dict[str, Any]) -> None:
    ns = st["namespaces"]
    up = [n for n, e in ns.items() if e]
    print("lab run dir %s: %s" % (st["run_dir"], "state recorded" if st["state"] else "no state (down)"))
    print("  namespaces: %s" % (", ".join("%s%s" % (n, "" if e else " (missing)") for n, e in ns.items())
                                 if up else "none"))
    if st["foreign_namespaces"]:
        from .topology import run_dirs_in_namespaces
        owners = run_dirs_in_namespaces(st["foreign_namespaces"])
        print("  NOT OURS: %s exist but belong to %s" % (
            ", ".join(st["foreign_namespaces"]),
            "the lab of run dir %s" % ", ".join(owners) if owners else "another lab or to something else"))
    if st.get("driver"):
        print("  eswitch driver: %s (%s wiring)" % (st["driver"], st["wiring"]))
    for name, p in st["processes"].items():
        where = "in %s" % p["netns"] if p["netns"] else "on the host"
        print("  %-13s pid %-7s %s  %s, log %s" % (name, p["pid"], "alive" if p["alive"] else "DEAD",
                                                    where, p["log"]))
    if st["bridges"]:
        print("  OVS bridges: %s" % ", ".join("%s (%d flows)" % kv for kv in sorted(st["bridges"].items())))
    if st.get("eswitch_entries"):
        print("  eSwitch entries: %(installed)d installed, %(planned)d planned" % st["eswitch_entries"])
    if st.get("config"):
        print("  config: %s" % st["config"])
    if st.get("dashboard"):
        print("  dashboard: %s" % st["dashboard"])


def _up(ctl: LabCtl, say: Progress) -> int:
    """`lab up`. A lab that was not up before and fails to come up is removed again (no
    half lab is left behind); LabBusy is raised before anything is touched."""
    was_up = ctl.is_up()
    try:
        ctl.up()
    except LabBusy:
        raise
    except BaseException:
        if not was_up:
            try:
                ctl.down()
            except Exception as e:  # the up's error is the message; this one is a footnote
                print("xenoflow lab up: removing what was built failed too: %s" % e, file=sys.stderr)
        raise
    say("lab up (run dir %s); `xenoflow lab down` removes it" % os.path.relpath(ctl.run_dir))
    return EXIT_OK


def _demo(ctl: LabCtl, say: Progress, demo: Optional[Any] = None) -> int:
    """Up, the demo (`demo()`, default the paper lab's), down unless the lab was up before."""
    t0 = time.monotonic()
    rc = EXIT_ERROR
    # a lab somebody brought up before the demo is theirs: used, and left up
    was_up = ctl.is_up()
    if was_up:
        say("the lab in %s is already up: the demo uses it and leaves it up" % os.path.relpath(ctl.run_dir))
    try:
        ctl.up()
        rc = demo() if demo is not None else Demo(ctl).run()
    finally:
        if not was_up:
            done = ctl.down()
            say("lab down: %s" % (", ".join(done) if done else "nothing was up"))
    say("demo %s in %.0f s" % ("passed" if rc == EXIT_OK else "FAILED", time.monotonic() - t0))
    return rc


def _error_lines(e: Exception) -> List[str]:
    from ..intent.config import ConfigError
    return e.lines() if isinstance(e, ConfigError) else str(e).splitlines() or [type(e).__name__]


def main(args: argparse.Namespace) -> int:
    from ..intent.config import ConfigError
    action = args.action
    say = Progress()
    fleet = None
    try:
        topo = load_topology(topology_path(getattr(args, "topology", None) or "paper"))
        if topo.kind == "fleet":     # dpus: two DPUs behind a BGP router, one intent in a store
            from .fleet_lab import FleetLab
            ctl = fleet = FleetLab(args, say, topo)
        else:
            ctl = LabCtl(args, say, topo=topo)
    except (LabError, ConfigError) as e:
        for line in _error_lines(e):
            print("xenoflow lab: %s" % line, file=sys.stderr)
        return EXIT_ERROR
    try:
        if fleet is not None:
            from .fleet_lab import run
            return run(action, fleet, say)
        if action == "up":
            return _up(ctl, say)
        if action == "down":
            done = ctl.down()
            say("lab down: %s" % (", ".join(done) if done else "nothing was up"))
            return EXIT_OK
        if action == "status":
            st = ctl.status()
            _print_status(st)
            alive = all(p["alive"] for p in st["processes"].values())
            return EXIT_OK if st["state"] and alive and all(st["namespaces"].values()) else EXIT_FOUND
        if action == "dashboard":
            if not ctl.is_up():
                print("xenoflow lab dashboard: the lab is not up (`xenoflow lab up`)", file=sys.stderr)
                return EXIT_ERROR
            print(ctl.start_dashboard(getattr(args, "dashboard_port", None) or 0))
            return EXIT_OK
        if action == "demo" and getattr(args, "flood", False):
            from .flood import FloodDemo
            return _demo(ctl, say, FloodDemo(ctl).run)
        if action == "demo":
            return _demo(ctl, say)
    except LabBusy as e:
        print("xenoflow lab %s: %s" % (action, e), file=sys.stderr)
        return EXIT_ERROR
    except (LabError, ConfigError) as e:
        lines = _error_lines(e)
        print("xenoflow lab %s: %s" % (action, "\n".join(lines)), file=sys.stderr)
        if action == "up" and ctl.is_up():
            print("(what was made is recorded in %s; `xenoflow lab down` removes it)"
                  % os.path.join(ctl.run_dir, "state.json"), file=sys.stderr)
        return EXIT_ERROR
    print("unknown action %r" % action, file=sys.stderr)
    return EXIT_ERROR

"""`xenoflow lab up|down|status|demo --topology fleet`: two DPUs behind a BGP router, one
intent in a Raft store (docs/lab-fleet.md).

The fleet topology (topologies/fleet/topology.yaml) has `dpus:` instead of `dpu:`. This
module builds it with the paper lab's machinery:

  * the namespaces, veths, bridges, routes (topology.Lab) and bind9 on the backends
    (LabCtl.start_bind9), recorded in <run dir>/state.json;
  * the store: three ovsdb-server Raft members (fleet/cluster.py) in the mgmt namespace,
    clients on tcp:<member>:6641 and on unix sockets in <run dir>/store/; the services file
    is imported (`xenoflow fleet import`) when the cluster is created;
  * per DPU, a LabCtl on a one-DPU view of the topology (Topology.dpu_view), with its own
    run dir <run dir>/<dpu>/ and state file: private OVS, eswitchd, the controller, and the
    DPU's FRR speaker (fleet/frr.py, path space from its config's fleet.bgp);
  * the router's FRR (path space from router.pathspace), neighbours: each DPU's bgp0.

The controller decides what its FRR announces (fleet/announcer.py); the lab only waits until
the router has the VIP with a nexthop per DPU.

`down` stops everything by recorded PID or by exact name (FRR path spaces, DPDK file
prefixes, taps, namespaces) and removes the store's files: a new `up` starts a new cluster.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

from ..exitcodes import EXIT_ERROR, EXIT_FOUND, EXIT_OK
from . import netns as nsh
from .labctl import (
    DASHBOARD_PORT,
    Demo,
    LabCtl,
    LabError,
    Progress,
    _cmdline_has,
    _delta,
    _demo,
    preflight,
    write_derived_config,
)
from .planes import PlaneReadings
from .pyenv import subprocess_env
from .topology import DpuSpec, Lab, LabBusy, Topology, stop_pid

FRR_TOOLS = ("vtysh", "/usr/lib/frr/zebra", "/usr/lib/frr/bfdd", "/usr/lib/frr/bgpd")
DPDK_RUN = "/var/run/dpdk"
FRR_RUN = "/var/run/frr"
BGP_WAIT = 60.0          # s for the router's sessions and the VIP's nexthops


def frr_conf_dir(pathspace: str) -> str:
    """FRR's config files of a path space. Not in the run dir: that is owner-only, and the
    daemons read their files as user frr. In FRR's run dir of the path space instead, which
    `down` removes by its exact name with everything else of that FRR."""
    return os.path.join(FRR_RUN, pathspace, "conf")


def _remotes_unix(run_dir: str, topo: Topology) -> List[str]:
    assert topo.store is not None
    return ["unix:" + os.path.join(run_dir, "store", m.name + ".sock") for m in topo.store.members]


# ---------------------------------------------------------------- one DPU of the fleet


class FleetPlanes(PlaneReadings):
    """What a fleet DPU's planes should carry: its config's local part composed with the
    store's services, drains and agreed health, planned by the same pure code as the
    controller's (fleet/model.py, intent/plan.py)."""

    def __init__(self, load_cfg: Any, run_dir: str, controller_pid: Any, remotes: List[str]) -> None:
        super().__init__(load_cfg, run_dir, controller_pid)
        self.remotes = remotes
        self._cache: Tuple[float, Any] = (0.0, None)

    def planned(self) -> Any:
        now = time.monotonic()
        if self._cache[1] is not None and now - self._cache[0] < 1.0:
            return self._cache[1]
        from ..fleet import model
        from ..fleet.store import Store
        from ..intent import plan as plan_mod
        cfg = self.load_cfg()
        store = Store(self.remotes, timeout=5).connect()
        try:
            intent = model.intent_of(store.snapshot())
        finally:
            store.close()
        full = model.compose(model.local_data(cfg), intent.services, base_dir=cfg.base_dir)
        out: Dict[str, set] = {}
        for m in (intent.drained, intent.down):
            for svc, names in m.items():
                out.setdefault(svc, set()).update(names)
        p = plan_mod.plan(full, exclude={k: tuple(sorted(v)) for k, v in out.items()})
        self._cache = (now, p)
        return p


class DpuCtl(LabCtl):
    """One DPU of the fleet: the paper lab's LabCtl on a one-DPU view of the topology, in its
    own run dir, plus the DPU's FRR speaker."""

    def __init__(self, fleet: "FleetLab", spec: DpuSpec) -> None:
        super().__init__(fleet.args, fleet.say, topo=fleet.topo.dpu_view(spec.name),
                         run_dir=os.path.join(fleet.run_dir, spec.name))
        self.spec = spec
        self.planes = FleetPlanes(self.load_cfg, self.run_dir, self._controller_pid,
                                  _remotes_unix(fleet.run_dir, fleet.topo))

    def derive(self) -> Any:
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        os.chmod(self.run_dir, 0o700)
        self.state.data["extra"].update(driver=self.driver)
        self.state.save()
        self.cfg_path = write_derived_config(self.topo, self.run_dir, self.driver, None, None)
        self.cfg = None
        return self.load_cfg()

    # -- FRR
    def frr(self) -> Any:
        from ..fleet.frr import Frr
        ps = self.state.data["extra"].get("frr_pathspace") or self.speaker()[0].pathspace
        if not ps:
            # the controller talks to the FRR its config names; without a path space that is
            # the host's own frr.service, which the lab must not touch
            raise LabError("%s: fleet.bgp.pathspace is required in the lab (one FRR per DPU on one host)"
                           % self.cfg_path)
        return Frr(ps, netns=self.spec.netns, conf_dir=frr_conf_dir(ps))

    def speaker(self) -> Tuple[Any, Any]:
        sp = self.load_cfg().bgp_speaker()
        if sp is None:
            raise LabError("%s: its config has no fleet.bgp (the fleet lab's DPUs speak BGP)" % self.cfg_path)
        return sp

    def start_frr(self) -> Dict[str, int]:
        from ..fleet.bgp import speaker_files
        bgp, port = self.speaker()
        frr = self.frr()
        self.state.data["extra"]["frr_pathspace"] = frr.pathspace   # before start: down finds it
        self.state.save()
        pids = frr.start(speaker_files(bgp, port.ip, self.spec.name))
        for daemon, pid in pids.items():
            self.state.add_process("frr-" + daemon, pid, [daemon, "-N", frr.pathspace], self.spec.netns,
                                   os.path.join(frr.run_dir, daemon + ".log"))
        return pids

    def stop_frr(self) -> List[str]:
        ps = self.state.data["extra"].get("frr_pathspace")
        if not ps:
            return []
        from ..fleet.frr import Frr
        stopped = Frr(ps, netns=self.spec.netns, conf_dir=frr_conf_dir(ps)).stop()
        for d in ("bgpd", "bfdd", "zebra"):
            if self.state.process("frr-" + d):
                self.lab.stop_process("frr-" + d)
        shutil.rmtree(os.path.join(FRR_RUN, ps), ignore_errors=True)
        return ["%s frr %s" % (self.spec.name, ",".join(stopped))] if stopped else []

    def down(self) -> List[str]:
        done = self.stop_frr()
        done += ["%s %s" % (self.spec.name, x) for x in super().down()]
        return done

    def api(self, path: str) -> Optional[Dict[str, Any]]:
        return Demo(self).api(path)


# ---------------------------------------------------------------- the fleet


class FleetLab(LabCtl):
    """The fleet lab. Reuses LabCtl's bind9 and stray handling for the shared namespaces;
    every DPU is a DpuCtl."""

    def __init__(self, args: argparse.Namespace, progress: Optional[Progress], topo: Topology) -> None:
        # not LabCtl.__init__: a fleet has no one config; the DPUs have theirs
        from .labctl import default_run_dir
        from .topology import LabState
        self.args, self.say, self.topo = args, progress or Progress(), topo
        self.run_dir = os.path.abspath(getattr(args, "run_dir", None) or default_run_dir(topo))
        st = LabState(self.run_dir)
        self.driver = getattr(args, "eswitch", None) or st.data.get("extra", {}).get("driver") or "softdoca"
        self.mirror, self.mode = None, None
        if getattr(args, "mirror_routes", None) or getattr(args, "eswitch_mode", None):
            raise LabError("--mirror-routes and --eswitch-mode are the paper lab's; the fleet's DPUs run "
                           "their configs (topologies/fleet/dpuN.yaml)")
        self.lab = Lab(topo, self.run_dir, eswitch=self.driver != "none")
        self.cfg_path = os.path.join(self.run_dir, "no-config")
        self.cfg = None
        self._popen: Dict[str, subprocess.Popen] = {}
        self.planes = None
        self.dpus = [DpuCtl(self, d) for d in topo.dpus]

    def load_cfg(self):
        return None

    def store_dir(self) -> str:
        return os.path.join(self.run_dir, "store")

    def members(self) -> List[Any]:
        from ..fleet import cluster
        assert self.topo.store is not None
        return [cluster.Member(os.path.join(self.store_dir(), m.name + ".db"), self.store_dir(), m.name,
                               netns=self.topo.store.netns) for m in self.topo.store.members]

    def router_frr(self) -> Any:
        from ..fleet.frr import Frr
        assert self.topo.router is not None
        return Frr(self.topo.router.pathspace, netns=self.topo.router.netns,
                   conf_dir=frr_conf_dir(self.topo.router.pathspace))

    # -- up
    def preflight(self) -> None:
        preflight(self.driver)
        missing = [t for t in FRR_TOOLS if (shutil.which(t) if "/" not in t else
                                            (t if os.access(t, os.X_OK) else None)) is None]
        if missing:
            raise LabError("missing FRR: %s (apt-get install frr: zebra, bfdd, bgpd and vtysh)"
                           % ", ".join(missing))

    def up(self) -> None:
        say = self.say
        self.preflight()
        self.lab.check_free()
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        os.chmod(self.run_dir, 0o700)
        self.state.data["extra"].update(driver=self.driver, kind="fleet")
        self.state.save()
        for d in self.dpus:
            cfg = d.derive()
            say("%s config: %s (eswitch %s, %s mode, store %s)" % (
                d.spec.name, os.path.relpath(d.cfg_path), cfg.eswitch.driver, cfg.eswitch.mode,
                ",".join(cfg.fleet.remotes) if cfg.fleet else "none"))
        self.lab.up()
        say("topology %s: %d namespaces, %d veth pairs (%s wiring), bridges %s" % (
            self.topo.name, len(self.topo.namespaces), len(self.topo.veths(self.lab.eswitch)),
            self.lab.wiring, ", ".join("%s/%s" % (b.netns, b.name) for b in self.topo.bridges)))
        self.start_store()
        self.start_bind9()
        say("bind9 answering on %s" % ", ".join(
            "%s (pid %d)" % (b.netns, self.state.process("bind9-" + b.netns)["pid"]) for b in self.topo.dns))
        started = []
        for d in self.dpus:
            ovs = d.start_dpu_daemons()
            pids = d.start_frr()
            say("%s: FRR speaker (path space %s: %s)" % (d.spec.name, d.frr().pathspace, ", ".join(
                "%s %d" % kv for kv in sorted(pids.items()))))
            started.append((d, ovs, d.start_controller()))
        self.start_router()
        for d, ovs, how in started:
            d.wait_dpu(ovs, "%s %s" % (d.spec.name, how))
        self.wait_bgp()
        try:
            say("dashboards: %s (each DPU's read-only metrics listener, relayed from its namespace)"
                % self.start_dashboard(getattr(self.args, "dashboard_port", None) or 0))
        except LabError as e:      # the fleet works without them; say how to get them
            say("dashboards not reachable from the host: %s; `xenoflow lab dashboard --topology fleet "
                "--dashboard-port N`" % e)

    # -- the DPUs' dashboards, from the host
    def start_dashboard(self, port: int = 0) -> str:
        """Each DPU's page relayed to the host's loopback on consecutive ports from `port`
        (default 9302): "dpu1 URL, dpu2 URL"."""
        base = port or DASHBOARD_PORT
        return ", ".join("%s %s" % (d.spec.name, d.start_dashboard(base + i))
                         for i, d in enumerate(self.dpus))

    def dashboard_url(self) -> Optional[str]:
        urls = ["%s %s" % (d.spec.name, d.dashboard_url()) for d in self.dpus if d.dashboard_url()]
        return ", ".join(urls) or None

    def start_store(self) -> None:
        """The Raft members in the store's namespace (a new cluster when there are no member
        files yet, then the services imported); members that are down are started again."""
        from ..fleet import cluster
        spec = self.topo.store
        assert spec is not None
        os.makedirs(self.store_dir(), mode=0o700, exist_ok=True)
        members = self.members()
        raft = ["tcp:%s:%d" % (m.address, spec.raft_port) for m in spec.members]
        new = not os.path.exists(members[0].db)
        if new:
            self.state.data["extra"]["store_imported"] = False
            self.state.save()
            for i, m in enumerate(members):
                if os.path.exists(m.db):
                    os.unlink(m.db)          # a half-made cluster of a crashed up: made again
                if i == 0:
                    cluster.create(m.db, raft[0])
                else:
                    cluster.join(m.db, raft[i], [raft[0]])
        for m, sm in zip(members, spec.members):
            name = "store-" + sm.name
            if m.pid() is None:
                self.state.drop_process(name)
                m.start(["ptcp:%d:%s" % (spec.client_port, sm.address),
                         "punix:" + os.path.join(self.store_dir(), sm.name + ".sock")])
            if not self.state.process_alive(name):
                self.state.add_process(name, m.pid(), [os.path.basename(m.db)], spec.netns, m.log)
        leader = self._wait_leader(members)
        msg = "store: %d Raft members in %s (%s), leader %s" % (
            len(members), spec.netns, ", ".join("%s %s" % (sm.name, sm.address) for sm in spec.members),
            leader)
        if not self.state.data["extra"].get("store_imported"):
            self.import_services()
            self.state.data["extra"]["store_imported"] = True
            self.state.save()
            msg += ", services of %s imported" % self.topo.services_path
        self.say(msg)

    def _wait_leader(self, members: List[Any], timeout: float = 30.0) -> str:
        from ..fleet import cluster
        deadline = time.monotonic() + timeout
        while True:
            for m in members:
                try:
                    if m.pid() is not None and m.status().get("Role") == "leader":
                        return m.name
                except cluster.ClusterError:
                    pass
            if time.monotonic() > deadline:
                raise LabError("the store's cluster elected no leader within %.0f s; logs in %s"
                               % (timeout, self.store_dir()))
            time.sleep(0.1)

    def import_services(self) -> None:
        argv = [sys.executable, "-m", "xenoflow_ovs.cli", "fleet", "import", self.topo.services_path or "",
                "--db", ",".join(_remotes_unix(self.run_dir, self.topo))]
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                           env=subprocess_env(), timeout=120, cwd="/")
        if p.returncode != 0:
            raise LabError("fleet import %s failed:\n%s" % (self.topo.services_path, p.stdout.strip()))

    def neighbors(self) -> List[Tuple[str, int, str]]:
        """(address, asn, dpu) of every DPU's speaker."""
        out = []
        for d in self.dpus:
            bgp, port = d.speaker()
            out.append((str(port.ip.ip), bgp.asn, d.spec.name))
        return out

    def start_router(self) -> None:
        from ..fleet.bgp import router_files
        r = self.topo.router
        assert r is not None
        bfd = self.dpus[0].speaker()[0]
        frr = self.router_frr()
        self.state.data["extra"]["router_pathspace"] = frr.pathspace
        self.state.save()
        files = router_files(r.asn, r.router_id, [(a, n) for a, n, _ in self.neighbors()],
                             bfd_interval_ms=bfd.bfd_interval_ms, bfd_multiplier=bfd.bfd_multiplier,
                             keepalive=bfd.keepalive, hold=bfd.hold, hostname=r.netns)
        pids = frr.start(files)
        for daemon, pid in pids.items():
            self.state.add_process("frr-%s-%s" % (r.netns, daemon), pid, [daemon, "-N", frr.pathspace],
                                   r.netns, os.path.join(frr.run_dir, daemon + ".log"))
        self.say("%s: FRR (AS %d, path space %s), neighbours %s" % (
            r.netns, r.asn, frr.pathspace, ", ".join("%s (%s)" % (a, dpu) for a, _, dpu in self.neighbors())))

    # -- BGP, seen from the router
    def router_peers(self) -> Dict[str, Dict[str, Any]]:
        try:
            return self.router_frr().peers()
        except Exception:
            return {}

    def vip_nexthops(self, vip: str) -> List[str]:
        """The gateways of the router's route to `vip` (`ip -n rtr -j route show VIP`)."""
        r = self.topo.router
        assert r is not None
        p = nsh.run_in_ns(None, ["ip", "-n", r.netns, "-j", "route", "show", vip], check=False, timeout=10)
        try:
            routes = json.loads(p.stdout or "[]")
        except ValueError:
            return []
        out = []
        for rt in routes:
            if rt.get("gateway"):
                out.append(rt["gateway"])
            for nh in rt.get("nexthops") or ():
                if nh.get("gateway"):
                    out.append(nh["gateway"])
        return sorted(set(out))

    def vip(self) -> str:
        import yaml
        with open(self.topo.services_path or "", encoding="utf-8") as f:
            return str((yaml.safe_load(f) or {})["services"][0]["vip"])

    def wait_bgp(self, timeout: float = BGP_WAIT) -> None:
        want = {a: dpu for a, _, dpu in self.neighbors()}
        vip = self.vip()
        deadline = time.monotonic() + timeout
        while True:
            peers = self.router_peers()
            # Established and BFD up: BFD runs through the eSwitch and OVS like the sessions
            est = sorted(a for a in want if (peers.get(a) or {}).get("bgp") == "Established"
                         and (peers.get(a) or {}).get("bfd") == "up")
            hops = self.vip_nexthops(vip)
            if len(est) == len(want) and set(hops) >= set(want):
                self.say("BGP: %s established with %s (BFD %s); %s via %s" % (
                    self.topo.router.netns if self.topo.router else "router", ", ".join(
                        want[a] for a in est), ", ".join((peers[a].get("bfd") or "-") for a in est),
                    vip, ", ".join("%s (%s)" % (h, want.get(h, "?")) for h in hops)))
                return
            if time.monotonic() > deadline:
                missing = ["%s (%s): BGP %s, BFD %s" % (dpu, a, (peers.get(a) or {}).get("bgp") or "none",
                                                        (peers.get(a) or {}).get("bfd") or "-")
                           for a, dpu in want.items() if a not in est]
                no_hop = ["%s (%s)" % (dpu, a) for a, dpu in want.items() if a not in hops]
                raise LabError("after %.0f s the router still lacks: %s%s. The DPUs' controllers announce "
                               "the VIP (their logs: %s)" % (
                                   timeout, "; ".join(missing) or "no session missing",
                                   "; no nexthop for %s via %s" % (vip, ", ".join(no_hop)) if no_hop else "",
                                   ", ".join(os.path.join(d.run_dir, "controller.log") for d in self.dpus)))
            time.sleep(0.5)

    # -- down
    def down(self) -> List[str]:
        done: List[str] = []
        errors = []
        for d in self.dpus:
            try:
                done += d.down()
            except Exception as e:     # keep removing the rest
                errors.append("%s: %s" % (d.spec.name, e))
        done += self._stop_router()
        for m in (self.members() if self.topo.store else []):
            name = "store-" + m.name
            rec = self.state.process(name)
            if rec is not None or (m.pid() is not None and _cmdline_has(m.pid(), m.db)):
                pid = rec["pid"] if rec else m.pid()
                if stop_pid(pid, rec.get("start") if rec else None):
                    done.append(name)
                self.state.drop_process(name)
        for name in list(self.state.data["processes"]):
            self.lab.stop_process(name)
            done.append(name)
        done += self._stop_unrecorded_bind9()
        done += self._stop_unrecorded()
        taps = self.lab.delete_taps()
        if taps:
            done.append("taps " + ",".join(sorted(set(taps))))
        nss = [ns for ns in self.state.data["namespaces"] if nsh.ns_exists(ns)]
        self.lab.down()
        if nss:
            done.append("namespaces " + ",".join(nss))
        for d in self.dpus:
            prefix = _file_prefix(d.spec.config_path)
            if prefix and os.path.isdir(os.path.join(DPDK_RUN, prefix)):
                shutil.rmtree(os.path.join(DPDK_RUN, prefix), ignore_errors=True)
        if os.path.isdir(self.store_dir()):
            shutil.rmtree(self.store_dir(), ignore_errors=True)
            done.append("store files")
        if errors:
            raise LabError("lab down incomplete: " + "; ".join(errors))
        return done

    def _stop_router(self) -> List[str]:
        r = self.topo.router
        ps = self.state.data["extra"].get("router_pathspace")
        if r is None or not ps:
            return []
        stopped = self.router_frr().stop()
        for d in ("bgpd", "bfdd", "zebra"):
            name = "frr-%s-%s" % (r.netns, d)
            if self.state.process(name):
                self.lab.stop_process(name)
        shutil.rmtree(os.path.join(FRR_RUN, ps), ignore_errors=True)
        return ["%s frr %s" % (r.netns, ",".join(stopped))] if stopped else []

    def is_up(self) -> bool:
        return any(nsh.ns_exists(ns) for ns in self.state.data["namespaces"])

    # -- status
    def status(self) -> Dict[str, Any]:
        st = self.lab.status()
        st["dpus"] = {}
        for d in self.dpus:
            ds = d.status() if d.state.exists else {"processes": {}, "bridges": {}, "eswitch_entries": None}
            st["dpus"][d.spec.name] = {"processes": ds["processes"], "bridges": ds["bridges"],
                                       "eswitch_entries": ds.get("eswitch_entries")}
        st["bgp"] = self.router_peers() if self.state.data["extra"].get("router_pathspace") else {}
        try:
            st["neighbors"] = {a: dpu for a, _, dpu in self.neighbors()}
        except Exception:
            st["neighbors"] = {}
        st["vip"] = self.vip()
        st["nexthops"] = self.vip_nexthops(st["vip"]) if nsh.ns_exists(self.topo.router.netns) else []
        st["dashboard"] = self.dashboard_url()
        return st

    def status_ok(self, st: Dict[str, Any]) -> bool:
        procs = list(st["processes"].values()) + [
            p for d in st["dpus"].values() for p in d["processes"].values()]
        want = set(st["neighbors"])
        return bool(st["state"] and procs and all(p["alive"] for p in procs)
                    and all(st["namespaces"].values())
                    and want and all((st["bgp"].get(a) or {}).get("bgp") == "Established" for a in want)
                    and set(st["nexthops"]) >= want
                    and all(d["processes"] and d["bridges"] for d in st["dpus"].values()))


def _file_prefix(config_path: str) -> Optional[str]:
    """The DPDK --file-prefix of a DPU's source config (its runtime dir's exact name)."""
    import yaml
    try:
        with open(config_path, encoding="utf-8") as f:
            args = [str(a) for a in (((yaml.safe_load(f) or {}).get("dpu") or {}).get("eswitch") or {}).get(
                "eal_args") or ()]
    except (OSError, ValueError):
        return None
    if "--file-prefix" in args and args.index("--file-prefix") + 1 < len(args):
        p = args[args.index("--file-prefix") + 1]
        return p if p and "/" not in p and p not in (".", "..") else None
    return None


def print_status(st: Dict[str, Any]) -> None:
    print("fleet lab run dir %s: %s" % (st["run_dir"],
                                        "state recorded" if st["state"] else "no state (down)"))
    ns = st["namespaces"]
    print("  namespaces: %s" % (", ".join("%s%s" % (n, "" if e else " (missing)") for n, e in ns.items())
                                 if any(ns.values()) else "none"))
    if st["foreign_namespaces"]:
        print("  NOT OURS: %s exist but belong to another lab or to something else"
              % ", ".join(st["foreign_namespaces"]))
    for name, p in st["processes"].items():
        print("  %-17s pid %-7s %s  in %s" % (name, p["pid"], "alive" if p["alive"] else "DEAD", p["netns"]))
    for dpu, d in st["dpus"].items():
        print("  %s:" % dpu)
        for name, p in d["processes"].items():
            print("    %-15s pid %-7s %s  in %s" % (name, p["pid"], "alive" if p["alive"] else "DEAD",
                                                    p["netns"]))
        if d["bridges"]:
            print("    OVS bridges: %s" % ", ".join("%s (%d flows)" % kv
                                                for kv in sorted(d["bridges"].items())))
        if d.get("eswitch_entries"):
            print("    eSwitch entries: %(installed)d installed, %(planned)d planned" % d["eswitch_entries"])
    for addr, dpu in sorted(st["neighbors"].items()):
        p = st["bgp"].get(addr) or {}
        print("  BGP %s (%s): %s, BFD %s, up %s" % (addr, dpu, p.get("bgp") or "no session",
                                                    p.get("bfd") or "-", p.get("uptime") or "-"))
    print("  %s via %s" % (st["vip"], ", ".join("%s (%s)" % (h, st["neighbors"].get(h, "?"))
                                                for h in st["nexthops"]) or "nothing (no route)"))
    if st.get("dashboard"):
        print("  dashboards: %s" % st["dashboard"])


# ---------------------------------------------------------------- demo


_QUERY_SNIPPET = """\
import json, sys
import dns.exception, dns.query
from xenoflow_ovs.lab.frames import answer_txt, make_query
a = json.loads(sys.argv[1])
out = {}
for src, sport in a["flows"]:
    got = {}
    for _ in range(a["count"]):
        try:
            r = dns.query.udp(make_query(a["name"], "TXT"), a["server"], timeout=1.0, port=53,
                              source=src, source_port=sport)
            ans = answer_txt(r)
        except (dns.exception.DNSException, OSError):
            ans = None
        got[str(ans)] = got.get(str(ans), 0) + 1
    out["%s:%d" % (src, sport)] = got
print(json.dumps(out))
"""


class FleetDemo:
    """Queries from fips1's sources with fixed source ports: the router's L4 hash decides the
    DPU of each flow (`ip route get ... sport P`), the intent the backend, whichever DPU."""

    QUERIES_PER_FLOW = 3
    BASE_SPORT = 40000

    def __init__(self, lab: FleetLab) -> None:
        self.lab = lab
        self.say = lab.say

    def dpu_of(self, src: str, sport: int, vip: str, port: int = 53) -> Optional[str]:
        """Which DPU the router sends the flow to (its nexthop's DPU), None: no route."""
        r = self.lab.topo.router
        assert r is not None
        iif = self._client_iif()
        p = nsh.run_in_ns(None, ["ip", "-n", r.netns, "-j", "route", "get", vip, "from", src, "iif", iif,
                                 "ipproto", "udp", "sport", str(sport), "dport", str(port)],
                          check=False, timeout=10)
        try:
            gw = (json.loads(p.stdout or "[]") or [{}])[0].get("gateway")
        except ValueError:
            return None
        return {a: dpu for a, _, dpu in self.lab.neighbors()}.get(gw)

    def _client_iif(self) -> str:
        """The router's interface towards the clients (the link whose other end is in the
        clients' namespace)."""
        r = self.lab.topo.router
        cns = sorted(self.lab.topo.clients)[0]
        for v in self.lab.topo.links:
            for a, b in ((v.a, v.b), (v.b, v.a)):
                if a.netns == r.netns and b.netns == cns:
                    return a.ifname
        raise LabError("no link between %s and %s" % (r.netns, cns))

    def flows(self, sources: List[str]) -> List[Tuple[str, int]]:
        return [(s, self.BASE_SPORT + i) for i, s in enumerate(sources)]

    def query(self, ns: str, vip: str, flows: List[Tuple[str, int]], count: int) -> Dict[str, Dict[str, int]]:
        arg = json.dumps({"server": vip, "flows": flows, "count": count, "name": "who.example.lab"})
        p = nsh.run_in_ns(ns, [sys.executable, "-c", _QUERY_SNIPPET, arg], env=subprocess_env(),
                          timeout=60 + len(flows) * count * 2)
        return json.loads(p.stdout)

    def dpu_counters(self, d: DpuCtl) -> Dict[str, Any]:
        demo = Demo(d)
        return demo.counters()

    def run(self) -> int:
        say, lab = self.say, self.lab
        rc = EXIT_OK
        vip = lab.vip()
        d0 = lab.dpus[0]
        p = d0.planes.planned()
        svc_name = p.services[0].svc.name
        table = list(p.table(svc_name))
        svc = p.services[0].svc
        # every DPU's controller applies the same table
        for d in lab.dpus:
            view = d.api("/services") or {}
            got = next((s.get("buckets") for s in view.get("services", [])
                        if s.get("name") == svc_name), None)
            if got != table:
                say("%s: its controller's table for %s is %s, the store's intent gives %s" % (
                    d.spec.name, svc_name, got, table))
                rc = EXIT_FOUND
        cns = sorted(lab.topo.clients)[0]
        sources = list(lab.topo.clients[cns])
        flows = self.flows(sources)
        carried = {f: self.dpu_of(f[0], f[1], vip) for f in flows}
        per_dpu: Dict[str, int] = {}
        for f, dpu in carried.items():
            per_dpu[str(dpu)] = per_dpu.get(str(dpu), 0) + 1
        say("router %s: %d flows (source address, fixed source port) from %s hash to %s" % (
            lab.topo.router.netns, len(flows), cns,
            ", ".join("%s %d" % kv for kv in sorted(per_dpu.items()))))
        names = [d.spec.name for d in lab.dpus]
        if any(per_dpu.get(n, 0) == 0 for n in names) or "None" in per_dpu:
            say("the flows do not spread over every DPU (or some have no route)")
            rc = EXIT_FOUND
        before = {d.spec.name: self.dpu_counters(d) for d in lab.dpus}
        res = self.query(cns, vip, flows, self.QUERIES_PER_FLOW)
        sent = answered = wrong = 0
        per_dpu_ok: Dict[str, int] = {}
        for (src, sport), dpu in carried.items():
            exp = Demo(d0).expected_backend(svc, table, src)
            got = res.get("%s:%d" % (src, sport), {})
            sent += self.QUERIES_PER_FLOW
            for ans, n in got.items():
                if ans == "None":
                    continue
                answered += n
                if ans != exp:
                    wrong += n
                else:
                    per_dpu_ok[str(dpu)] = per_dpu_ok.get(str(dpu), 0) + n
        say("service %s: %d queries from %d sources: %d answered, %d by the wrong backend, %d lost; "
            "answered right per DPU: %s" % (svc_name, sent, len(flows), answered, wrong, sent - answered,
                                            ", ".join("%s %d" % kv for kv in sorted(per_dpu_ok.items()))))
        if wrong or answered != sent:
            rc = EXIT_FOUND
        settled = {d.spec.name: Demo(d).settled_counters() for d in lab.dpus}
        for d in lab.dpus:
            dd = _delta(before[d.spec.name], settled[d.spec.name])
            es = sum(dd["eswitch"].values())
            ovs = sum(dd["ovs"].values())
            chk = d.api("/check") or {}
            st = d.api("/status") or {}
            fleet = st.get("fleet") or {}
            # the controller's announcer: fleet.bgp.announced (the prefixes its bgpd announces)
            ann = (fleet.get("bgp") or {}).get("announced", fleet.get("announced", "n/a"))
            carried_n = per_dpu.get(d.spec.name, 0) * self.QUERIES_PER_FLOW
            say("%s: eSwitch packets %d (flows it carried: %d queries), OVS packets %d, fallback %s, "
                "verdict %s, announced %s" % (d.spec.name, es, carried_n, ovs, dd["fallback"],
                                             chk.get("verdict", "n/a"), _fmt(ann)))
            if dd["fallback"] not in (0, None) or chk.get("verdict") != "consistent" or es < carried_n:
                rc = EXIT_FOUND
            if isinstance(ann, (list, tuple)) and vip not in " ".join(str(a) for a in ann):
                rc = EXIT_FOUND
        return rc


def _fmt(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v) or "nothing"
    return str(v)


# ---------------------------------------------------------------- entry point


def run(action: str, lab: FleetLab, say: Progress) -> int:
    if action == "up":
        was_up = lab.is_up()
        try:
            lab.up()
        except LabBusy:
            raise
        except BaseException:
            if not was_up:
                try:
                    lab.down()
                except Exception as e:
                    print("xenoflow lab up: removing what was built failed too: %s" % e, file=sys.stderr)
            raise
        say("fleet lab up (run dir %s); `xenoflow lab down --topology %s` removes it"
            % (os.path.relpath(lab.run_dir), lab.topo.name))
        return EXIT_OK
    if action == "down":
        done = lab.down()
        say("lab down: %s" % (", ".join(done) if done else "nothing was up"))
        return EXIT_OK
    if action == "status":
        st = lab.status()
        print_status(st)
        return EXIT_OK if lab.status_ok(st) else EXIT_FOUND
    if action == "demo":
        return _demo(lab, say, lambda: FleetDemo(lab).run())
    print("unknown action %r" % action, file=sys.stderr)
    return EXIT_ERROR


"""`xenoflow doctor -c FILE`: the host as a config needs it, for running XenoFlow there.

Read in the current network namespace (run it where the controller runs: on a
BlueField the Arm's, in the lab `ip netns exec dpu`): the interfaces the config
names, the e-switch mode of its PCI functions (DOCA), OVS and its bridges,
`hw-offload`, the representor routes in OVS (flows of our cookie space) and the
controller's listeners. `read_host()` gathers the facts once; the checks in
doctor.py are pure functions of them.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

TIMEOUT_S = 5.0


@dataclass
class Listener:
    """One of the controller's listeners: free, held by a XenoFlow process (ours), held
    by another process, or not openable here (the address is not on this host)."""
    label: str                # api, metrics, openflow, api-socket
    where: str                # host:port or the socket path
    state: str                # free | ours | other | unusable
    owner: str = ""           # "pid 123 (cmdline)" when known


@dataclass
class Host:
    driver: str = "softdoca"
    mode: str = "vnf"
    mirror_routes: bool = True
    netdevs: List[Tuple[str, str, bool]] = field(default_factory=list)  # (name, role, present)
    pci: List[Tuple[str, str, Optional[str], str]] = field(default_factory=list)
    # ^ (port, pci address, devlink e-switch mode or None, why not)
    ovs_db: str = ""
    ovs_bridges: Optional[List[str]] = None          # None: OVS not reachable
    ovs_note: str = ""
    want_bridges: List[str] = field(default_factory=list)
    hw_offload: Optional[str] = None
    routes: Dict[str, List[Tuple[int, int]]] = field(default_factory=dict)   # bridge -> (cookie, prio)
    flows: Dict[str, Optional[List[Tuple[int, int]]]] = field(default_factory=dict)
    flows_note: Dict[str, str] = field(default_factory=dict)
    listeners: List[Listener] = field(default_factory=list)


def _run(argv: List[str], env: Optional[Dict[str, str]] = None) -> Tuple[Optional[str], str]:
    """(stdout, or None; why not)."""
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                           timeout=TIMEOUT_S, check=False, env=env)
    except FileNotFoundError:
        return None, "%s is not installed" % argv[0]
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, "%s: %s" % (argv[0], exc)
    if p.returncode != 0:
        return None, (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]
    return p.stdout, ""


# ---------------------------------------------------------------- interfaces, e-switch mode


def netdev_present(name: str) -> bool:
    """In this process's network namespace (not /sys, which may show another one)."""
    try:
        socket.if_nametoindex(name)
        return True
    except OSError:
        return False


def _netdevs(cfg: Any) -> List[Tuple[str, str, bool]]:
    """Every interface the config makes OVS or eswitchd open, with its role."""
    out: List[Tuple[str, str, bool]] = []
    on_bridge = {p for br in cfg.bridges for p in br.ports}
    for p in cfg.ports:
        kind = "representor" if p.of else "uplink"
        if p.name in on_bridge:
            out.append((p.name, "%s %s, an OVS port" % (kind, p.name), netdev_present(p.name)))
        if cfg.eswitch.driver == "softdoca":
            for name, role in ((p.iface, "softdoca's wire side of %s" % p.name),
                               (p.rep_iface, "softdoca's side towards %s's representor" % p.name)):
                if name:
                    out.append((name, role, netdev_present(name)))
    return out


def parse_devlink_mode(text: str) -> Optional[str]:
    """`devlink dev eswitch show pci/...`: "pci/0000:03:00.0: mode switchdev inline-mode ..."."""
    m = re.search(r"\bmode\s+(\S+)", text or "")
    return m.group(1) if m else None


def _pci(cfg: Any) -> List[Tuple[str, str, Optional[str], str]]:
    out: List[Tuple[str, str, Optional[str], str]] = []
    if cfg.eswitch.driver != "doca":
        return out
    for p in cfg.ports:
        if p.of or not p.pci:       # representors live on their device's e-switch
            continue
        addr = p.pci if p.pci.count(":") == 2 else "0000:" + p.pci
        text, why = _run(["devlink", "dev", "eswitch", "show", "pci/" + addr])
        out.append((p.name, addr, parse_devlink_mode(text or ""), why))
    return out


# ---------------------------------------------------------------- OVS


def _ovs(h: Host, cfg: Any) -> None:
    from .intent import plan as plan_mod

    db = cfg.path(cfg.ovs_db)
    h.ovs_db = db
    h.want_bridges = [br.name for br in cfg.bridges]
    text, why = _run(["ovs-vsctl", "--db=" + db, "--timeout=%d" % TIMEOUT_S, "list-br"])
    if text is None:
        h.ovs_note = why
        return
    h.ovs_bridges = text.split()
    val, _ = _run(["ovs-vsctl", "--db=" + db, "--timeout=%d" % TIMEOUT_S, "--if-exists", "get",
                   "Open_vSwitch", ".", "other_config:hw-offload"])
    h.hw_offload = (val or "").strip().strip('"') or None
    p = plan_mod.plan(cfg)
    for br in cfg.bridges:
        h.routes[br.name] = [(f.cookie, f.priority) for f in p.bridge_flows(br.name) if f.kind == "route"]
        if br.name in h.ovs_bridges:
            h.flows[br.name], h.flows_note[br.name] = _dump(br.name, db)


def _dump(bridge: str, db: str) -> Tuple[Optional[List[Tuple[int, int]]], str]:
    """(cookie, priority) of every flow on the bridge. A private OVS (the lab's) keeps the
    bridge's management socket beside its database socket."""
    target = bridge
    if db.startswith("unix:"):
        mgmt = os.path.join(os.path.dirname(db[5:]), bridge + ".mgmt")
        if os.path.exists(mgmt):
            target = "unix:" + mgmt
    text, why = _run(["ovs-ofctl", "-O", "OpenFlow13", "--timeout=%d" % TIMEOUT_S, "dump-flows", target])
    if text is None:
        return None, why
    return parse_flows(text), ""


def parse_flows(text: str) -> List[Tuple[int, int]]:
    out = []
    for line in text.splitlines():
        c, p = re.search(r"\bcookie=(0x[0-9a-f]+)", line), re.search(r"\bpriority=(\d+)", line)
        if c:
            out.append((int(c.group(1), 16), int(p.group(1)) if p else 32768))
    return out


# ---------------------------------------------------------------- listeners


def _proc_listeners(port: int) -> List[int]:
    """Socket inodes listening on TCP `port` in this network namespace."""
    inodes = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.append(int(cols[9]))
    return inodes


def _owner_of(inodes: List[int]) -> Tuple[Optional[int], str]:
    want = {"socket:[%d]" % i for i in inodes}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        fd_dir = "/proc/%s/fd" % pid
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(os.path.join(fd_dir, fd)) in want:
                    return int(pid), _cmdline(int(pid))
            except OSError:
                continue
    return None, ""


def _cmdline(pid: int) -> str:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def is_ours(cmdline: str) -> bool:
    """`xenoflow controller`, `python -m xenoflow_ovs.cli controller`, `ryu-manager xenoflow_ovs.app`."""
    return "xenoflow" in cmdline


def tcp_listener(label: str, host: str, port: int) -> Listener:
    where = "%s:%d" % (host, port)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # a TIME_WAIT is not a holder
    try:
        s.bind((host, port))
        return Listener(label, where, "free")
    except OSError as exc:
        if exc.errno != 98:   # EADDRINUSE
            return Listener(label, where, "unusable", exc.strerror or str(exc))
    finally:
        s.close()
    pid, cmd = _owner_of(_proc_listeners(port))
    if pid is None:
        return Listener(label, where, "other", "a process this user cannot see")
    return Listener(label, where, "ours" if is_ours(cmd) else "other", "pid %d (%s)" % (pid, cmd[:80]))


def unix_listener(label: str, path: str, dpu: str) -> Listener:
    """The API's unix socket: free, stale (the controller replaces it), or a controller's."""
    if not os.path.exists(path):
        return Listener(label, path, "free")
    from .api import server as api_mod
    try:
        code, body = api_mod.request("GET", "/status", unix_path=path, timeout=3.0)
    except OSError:
        return Listener(label, path, "free", "a stale socket (a starting controller replaces it)")
    if code == 401:
        return Listener(label, path, "ours", "a controller answers (token required)")
    if code == 200 and isinstance(body, dict):
        if body.get("dpu") == dpu:
            return Listener(label, path, "ours", "the controller of %s, pid %s" % (dpu, body.get("pid")))
        return Listener(label, path, "other", "the controller of DPU %r" % body.get("dpu"))
    return Listener(label, path, "other", "something answering HTTP %s" % code)


def _listeners(cfg: Any) -> List[Listener]:
    out = []
    for label, ep in (("api", cfg.api), ("metrics", getattr(cfg, "metrics", None)),
                      ("openflow", cfg.openflow)):
        if ep is not None and ep.host is not None:
            out.append(tcp_listener(label, ep.host, ep.port))
    if cfg.api.socket:
        out.append(unix_listener("api-socket", cfg.path(cfg.api.socket), cfg.dpu_name))
    return out


def read_host(cfg: Any) -> Host:
    e = cfg.eswitch
    h = Host(driver=e.driver, mode=e.mode, mirror_routes=e.mirror_routes)
    h.netdevs = _netdevs(cfg)
    h.pci = _pci(cfg)
    _ovs(h, cfg)
    h.listeners = _listeners(cfg)
    return h

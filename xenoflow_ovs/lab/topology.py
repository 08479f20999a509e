"""The lab builder: a topology file (topologies/<name>/topology.yaml) made real.

One builder for every topology: it reads the file (namespaces, veth pairs with
their MACs and addresses, loopback addresses, sysctls, Linux bridges with
static FDB entries, the DPU's eSwitch port wiring, bind9 backends), creates it
with pyroute2 (+ ``ethtool``/``sysctl``/``bridge`` inside the namespaces), and
destroys it again.

Everything it makes is recorded in a state file under the run dir *before* it
is made (:class:`LabState`, owner-only permissions), so :meth:`Lab.down`
removes exactly that, also after a crash: processes by recorded PID (and start
time, so a reused PID is never signalled), OVS netdev taps by exact name inside
the dpu namespace (``ip tuntap del``, lab_notes.md section 9), namespaces by
exact name (which takes their veths with them). Nothing is ever listed and
deleted by pattern, and nothing of the lab is created in the root namespace.

Wiring of an eSwitch port X (DESIGN.md "Lab"):
  * with an eSwitch (softdoca): ``dpu-X`` <-> wire peer (tor ``t-X`` or fips5),
    ``rep-X`` <-> ``X`` (the OVS port), all dpu ends in namespace ``dpu``;
  * with driver ``none`` (OVS alone balances) there is nobody between the wire
    and OVS, so the OVS port ``X`` itself is the wire end: ``X`` <-> wire peer.

The lab's namespace names are fixed by the topology, so only one lab can be up
at a time: :meth:`Lab.up` refuses (:class:`LabBusy`) when one of them exists
and this run dir's state does not own it.

Python 3.9 compatible; subprocesses take list args, never a shell.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from . import netns as nsh

__all__ = ["TopologyError", "LabBusy", "End", "Veth", "EswitchPort", "LinuxBridge", "Topology",
           "run_dirs_in_namespaces", "processes_in_namespaces",
           "load_topology", "LabState", "Lab", "proc_alive", "proc_start_time", "stop_pid"]


class TopologyError(ValueError):
    """The topology file is wrong (message names the key)."""


class LabBusy(RuntimeError):
    """Another lab (or something else) holds one of this lab's fixed namespace names."""


# ---------------------------------------------------------------- the topology, as data


@dataclass(frozen=True)
class End:
    netns: str
    ifname: str
    mac: Optional[str] = None
    addresses: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Veth:
    a: End
    b: End
    role: str = "link"            # link | wire | rep | direct (wire straight to the OVS port)
    port: Optional[str] = None    # the eSwitch port, for wire/rep/direct


@dataclass(frozen=True)
class EswitchPort:
    name: str
    wire: End        # dpu-X, opened by softdoca
    wire_peer: End   # t-X in tor, or the host's interface in fips5
    rep: End         # rep-X, opened by softdoca
    rep_peer: End    # X, the OVS port


@dataclass(frozen=True)
class LinuxBridge:
    netns: str
    name: str
    mac: Optional[str]
    ports: Tuple[str, ...]
    learning_off: Tuple[str, ...]
    fdb: Tuple[Tuple[str, str], ...]   # (mac, port)


@dataclass(frozen=True)
class DnsBackend:
    netns: str
    name: str
    vip: str


@dataclass(frozen=True)
class Topology:
    name: str
    path: str
    config_path: str
    namespaces: Tuple[str, ...]
    sysctls: Dict[str, Dict[str, str]]
    dpu_netns: str
    eswitch_ports: Tuple[EswitchPort, ...]
    taps: Tuple[str, ...]
    links: Tuple[Veth, ...]
    loopback: Dict[str, Tuple[str, ...]]
    bridges: Tuple[LinuxBridge, ...]
    dns: Tuple[DnsBackend, ...]
    clients: Dict[str, Tuple[str, ...]]
    host: Dict[str, Any] = field(default_factory=dict)

    def veths(self, eswitch: bool = True) -> List[Veth]:
        """Every veth pair of the lab, for the eSwitch wiring or the direct one (driver none)."""
        out = list(self.links)
        for p in self.eswitch_ports:
            if eswitch:
                out.append(Veth(p.wire, p.wire_peer, "wire", p.name))
                out.append(Veth(p.rep, p.rep_peer, "rep", p.name))
            else:
                out.append(Veth(p.rep_peer, p.wire_peer, "direct", p.name))
        return out

    def sysctls_of(self, ns: str) -> Dict[str, str]:
        out = dict(self.sysctls.get("*", {}))
        out.update(self.sysctls.get(ns, {}))
        return out

    def check_against(self, cfg: Any) -> None:
        """Cross-check with the XenoFlow config (a config.Config): same eSwitch ports,
        wire/representor names as dpu.ports says, OVS ports named as the ports."""
        want = {p.name: p for p in cfg.ports}
        have = {p.name: p for p in self.eswitch_ports}
        if set(want) != set(have):
            raise TopologyError("%s: dpu.ports %s do not match the config's dpu.ports %s"
                                % (self.path, sorted(have), sorted(want)))
        for name, p in have.items():
            c = want[name]
            if c.iface and c.iface != p.wire.ifname:
                raise TopologyError("%s: dpu.ports.%s.wire.ifname %s, config says iface %s"
                                    % (self.path, name, p.wire.ifname, c.iface))
            if c.rep_iface and c.rep_iface != p.rep.ifname:
                raise TopologyError("%s: dpu.ports.%s.rep.ifname %s, config says rep_iface %s"
                                    % (self.path, name, p.rep.ifname, c.rep_iface))
            if p.rep_peer.ifname != name:
                raise TopologyError("%s: dpu.ports.%s.rep.peer.ifname must be %s (the OVS port)"
                                    % (self.path, name, name))


def _req(m: Any, key: str, where: str) -> Any:
    if not isinstance(m, dict) or key not in m:
        raise TopologyError("%s: missing key %r" % (where, key))
    return m[key]


def _end(m: Any, where: str, default_ns: Optional[str] = None) -> End:
    if not isinstance(m, dict):
        raise TopologyError("%s: expected a mapping" % where)
    unknown = set(m) - {"netns", "ifname", "mac", "addresses", "peer"}
    if unknown:
        raise TopologyError("%s: unknown key(s) %s" % (where, ", ".join(sorted(unknown))))
    ns = m.get("netns", default_ns)
    if not ns:
        raise TopologyError("%s: missing key 'netns'" % where)
    ifname = str(_req(m, "ifname", where))
    try:
        nsh.check_ifname(ifname)
    except ValueError as e:
        raise TopologyError("%s.ifname: %s" % (where, e))
    mac = m.get("mac")
    if mac is not None:
        mac = str(mac).lower()
        first = int(mac.split(":")[0], 16)
        if len(mac.split(":")) != 6 or not first & 2 or first & 1:
            raise TopologyError("%s.mac: %s is not a locally administered unicast MAC" % (where, mac))
    addrs = tuple(str(a) for a in (m.get("addresses") or ()))
    for a in addrs:
        _check_lab_cidr(a, where + ".addresses")
    return End(str(ns), ifname, mac, addrs)


def _check_lab_cidr(cidr: str, where: str) -> None:
    import ipaddress
    try:
        net = ipaddress.ip_interface(cidr)
    except ValueError as e:
        raise TopologyError("%s: %s" % (where, e))
    if net.version != 4 or net.ip not in ipaddress.ip_network("198.18.0.0/15"):
        raise TopologyError("%s: %s is outside 198.18.0.0/15 (the lab's only addresses)" % (where, cidr))


def load_topology(path: str) -> Topology:
    """Read and validate a topology file."""
    path = os.path.abspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            d = yaml.safe_load(f)
    except OSError as e:
        raise TopologyError("%s: cannot read: %s" % (path, e.strerror))
    if not isinstance(d, dict):
        raise TopologyError("%s: expected a mapping at the top" % path)
    allowed = {"name", "config", "namespaces", "sysctls", "dpu", "links", "loopback", "bridges",
               "dns", "clients", "host"}
    unknown = set(d) - allowed
    if unknown:
        raise TopologyError("%s: unknown key(s) %s" % (path, ", ".join(sorted(unknown))))
    base = os.path.dirname(path)
    namespaces = tuple(str(n) for n in _req(d, "namespaces", path))
    for n in namespaces:
        if not n or "/" in n or len(n) > 32:
            raise TopologyError("%s: bad namespace name %r" % (path, n))
    sysctls = {str(ns): {str(k): str(v) for k, v in (kv or {}).items()}
               for ns, kv in (d.get("sysctls") or {}).items()}
    dpu = _req(d, "dpu", path)
    dpu_ns = str(_req(dpu, "netns", "dpu"))
    eports = []
    for pname, pd in (_req(dpu, "ports", "dpu") or {}).items():
        w = "dpu.ports.%s" % pname
        wire_d, rep_d = _req(pd, "wire", w), _req(pd, "rep", w)
        wire = _end(dict(wire_d, netns=dpu_ns), w + ".wire")
        rep = _end(dict(rep_d, netns=dpu_ns), w + ".rep")
        wire_peer = _end(_req(wire_d, "peer", w + ".wire"), w + ".wire.peer")
        rep_peer = _end(_req(rep_d, "peer", w + ".rep"), w + ".rep.peer", default_ns=dpu_ns)
        if rep_peer.netns != dpu_ns:
            raise TopologyError("%s.rep.peer: the OVS port lives in %s" % (w, dpu_ns))
        eports.append(EswitchPort(str(pname), wire, wire_peer, rep, rep_peer))
    links = []
    for i, ld in enumerate(d.get("links") or ()):
        w = "links[%d]" % i
        links.append(Veth(_end(_req(ld, "a", w), w + ".a"), _end(_req(ld, "b", w), w + ".b")))
    loopback = {}
    for ns, addrs in (d.get("loopback") or {}).items():
        loopback[str(ns)] = tuple(str(a) for a in addrs)
        for a in loopback[str(ns)]:
            _check_lab_cidr(a, "loopback.%s" % ns)
    bridges = []
    for i, bd in enumerate(d.get("bridges") or ()):
        w = "bridges[%d]" % i
        fdb = tuple((str(_req(e, "mac", w + ".fdb")).lower(), str(_req(e, "port", w + ".fdb")))
                    for e in (bd.get("fdb") or ()))
        bridges.append(LinuxBridge(str(_req(bd, "netns", w)), nsh.check_ifname(str(_req(bd, "name", w))),
                                   bd.get("mac"), tuple(bd.get("ports") or ()),
                                   tuple(bd.get("learning_off") or ()), fdb))
        for port in bridges[-1].learning_off + tuple(p for _, p in fdb):
            if port not in bridges[-1].ports:
                raise TopologyError("%s: %s is not a port of the bridge" % (w, port))
    dns = tuple(DnsBackend(str(_req(b, "netns", "dns")), str(_req(b, "name", "dns")),
                           str(_req(b, "vip", "dns"))) for b in (d.get("dns") or ()))
    clients = {str(ns): tuple(str(a) for a in addrs) for ns, addrs in (d.get("clients") or {}).items()}
    topo = Topology(
        name=str(d.get("name") or os.path.basename(base)), path=path,
        config_path=os.path.join(base, str(d.get("config", "xenoflow.yaml"))),
        namespaces=namespaces, sysctls=sysctls, dpu_netns=dpu_ns, eswitch_ports=tuple(eports),
        taps=tuple(str(t) for t in (dpu.get("taps") or ())), links=tuple(links), loopback=loopback,
        bridges=tuple(bridges), dns=dns, clients=clients, host=dict(d.get("host") or {}))
    # every namespace used is declared, every interface name unique per namespace
    for wiring in (True, False):
        names = set()
        for v in topo.veths(wiring):
            for e in (v.a, v.b):
                if e.netns not in namespaces:
                    raise TopologyError("%s: namespace %s (of %s) is not in namespaces"
                                        % (path, e.netns, e.ifname))
                if (e.netns, e.ifname) in names:
                    raise TopologyError("%s: interface %s/%s defined twice" % (path, e.netns, e.ifname))
                names.add((e.netns, e.ifname))
    for ns in list(loopback) + list(clients) + [b.netns for b in dns] + [b.netns for b in bridges]:
        if ns not in namespaces:
            raise TopologyError("%s: namespace %s is not in namespaces" % (path, ns))
    return topo


# ---------------------------------------------------------------- processes by PID


def ns_inode(ns: str) -> Optional[int]:
    """The inode of a named network namespace (its identity while it lives)."""
    try:
        return os.stat(os.path.join("/var/run/netns", ns)).st_ino
    except OSError:
        return None


def processes_in_namespaces(namespaces: Sequence[str]) -> List[Tuple[int, List[str]]]:
    """(pid, argv) of every process whose network namespace is one of `namespaces`
    (read-only: /proc/PID/ns/net compared with the namespaces' inodes)."""
    inodes = {ns_inode(ns) for ns in namespaces} - {None}
    out = []
    if not inodes:
        return out
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.stat("/proc/%s/ns/net" % pid).st_ino not in inodes:
                continue
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        out.append((int(pid), argv))
    return out


def run_dirs_in_namespaces(namespaces: Sequence[str]) -> List[str]:
    """Run dirs of the labs whose processes live in `namespaces` (from the
    `-c <run dir>/xenoflow.yaml` of their command lines), to tell the user whose
    namespaces these are."""
    found = set()
    for _, argv in processes_in_namespaces(namespaces):
        for i, a in enumerate(argv[:-1]):
            if a == "-c" and argv[i + 1].endswith("xenoflow.yaml"):
                found.add(os.path.dirname(argv[i + 1]))
    return sorted(found)



def proc_start_time(pid: int) -> Optional[int]:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22),
    None when it does not exist or is a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rpartition(")")[2].split()
    except (OSError, ValueError):
        return None
    if not rest or rest[0] in ("Z", "X"):
        return None
    return int(rest[19])


def proc_alive(pid: Optional[int], start: Optional[int] = None) -> bool:
    """True while `pid` runs and (when `start` is given) is still the process we started."""
    if not pid:
        return False
    st = proc_start_time(pid)
    return st is not None and (start is None or st == start)


def stop_pid(pid: int, start: Optional[int] = None, timeout: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after `timeout`; only if the PID is still the recorded
    process. Returns True if it is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not proc_alive(pid, start):
            return True
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while proc_alive(pid, start) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
    _reap(pid)
    return not proc_alive(pid, start)


def _reap(pid: int) -> None:
    """Collect `pid` if it is our child (it is when up and down run in one process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    except OSError:
        pass


# ---------------------------------------------------------------- the state file


class LabState:
    """What a lab made, in ``<run dir>/state.json`` (0600, run dir 0700).

    Keys: topology, wiring (eswitch|direct), namespaces (created by us), taps
    ([netns, name]), processes ({name: {pid, start, argv, netns, log}}), extra."""

    FILE = "state.json"

    def __init__(self, run_dir: str) -> None:
        self.run_dir = os.path.abspath(run_dir)
        self.path = os.path.join(self.run_dir, self.FILE)
        self.data: Dict[str, Any] = {}
        self.load()

    def load(self) -> Dict[str, Any]:
        try:
            with open(self.path) as f:
                self.data = json.load(f)
        except (OSError, ValueError):
            self.data = {}
        self.data.setdefault("namespaces", [])
        self.data.setdefault("taps", [])
        self.data.setdefault("processes", {})
        self.data.setdefault("extra", {})
        return self.data

    @property
    def exists(self) -> bool:
        return os.path.exists(self.path)

    def save(self) -> None:
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        os.chmod(self.run_dir, 0o700)
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, self.path)

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    # -- records
    def add_namespace(self, ns: str) -> None:
        if ns not in self.data["namespaces"]:
            self.data["namespaces"].append(ns)
            self.save()

    def add_tap(self, ns: str, name: str) -> None:
        if [ns, name] not in self.data["taps"]:
            self.data["taps"].append([ns, name])
            self.save()

    def add_process(self, name: str, pid: int, argv: Sequence[str], netns: Optional[str],
                    log: Optional[str] = None) -> None:
        self.data["processes"][name] = {"pid": pid, "start": proc_start_time(pid),
                                        "argv": list(argv), "netns": netns, "log": log}
        self.save()

    def process(self, name: str) -> Optional[Dict[str, Any]]:
        return self.data["processes"].get(name)

    def process_alive(self, name: str) -> bool:
        p = self.process(name)
        return bool(p) and proc_alive(p["pid"], p.get("start"))

    def drop_process(self, name: str) -> None:
        if self.data["processes"].pop(name, None) is not None:
            self.save()


# ---------------------------------------------------------------- the builder


def _run(ns: Optional[str], argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess:
    return nsh.run_in_ns(ns, argv, check=check, timeout=30)


class Lab:
    """Builds and destroys one topology; `eswitch` picks the wiring (False: driver none)."""

    def __init__(self, topo: Topology, run_dir: str, eswitch: bool = True,
                 log: Any = None) -> None:
        self.topo = topo
        self.run_dir = os.path.abspath(run_dir)
        self.eswitch = eswitch
        self.state = LabState(self.run_dir)
        self.log = log or (lambda msg: None)

    @property
    def wiring(self) -> str:
        return "eswitch" if self.eswitch else "direct"

    # -- ownership
    def owns(self, ns: str) -> bool:
        """`ns` is recorded as made by this run dir and is still that namespace (its
        inode, recorded at creation, matches: a namespace of the same name made by
        somebody else after ours vanished is not ours)."""
        if ns not in self.state.data["namespaces"]:
            return False
        want = self.state.data.get("ns_inodes", {}).get(ns)
        return want is None or ns_inode(ns) in (None, want)

    def foreign_namespaces(self) -> List[str]:
        """The topology's namespaces that exist but this run dir did not create."""
        return [ns for ns in self.topo.namespaces if nsh.ns_exists(ns) and not self.owns(ns)]

    def check_free(self) -> None:
        foreign = self.foreign_namespaces()
        if foreign:
            owners = sorted(run_dirs_in_namespaces(foreign))
            raise LabBusy(
                "namespace(s) %s exist and are not this lab's (run dir %s). %s, or they were made "
                "by something else: this lab will not touch them." % (
                    ", ".join(foreign), self.run_dir,
                    "The lab of run dir %s is up (stop it with `xenoflow lab down --run-dir %s`)"
                    % (owners[0], owners[0]) if owners else
                    "Another lab is up (stop it with `xenoflow lab down --run-dir <its run dir>`)"))
        w = self.state.data.get("wiring")
        if w and w != self.wiring and any(nsh.ns_exists(ns) for ns in self.state.data["namespaces"]):
            raise LabBusy("the lab in %s is up with the %s wiring (eswitch %s); run `xenoflow lab "
                          "down` before switching the eSwitch driver"
                          % (self.run_dir, w, "none" if w == "direct" else "on"))

    # -- up
    def up(self) -> None:
        """Create what is missing (idempotent). Raises LabBusy before touching anything
        when the namespaces belong to someone else."""
        self.check_free()
        self.state.data["topology"] = self.topo.path
        self.state.data["wiring"] = self.wiring
        self.state.save()
        for ns in self.topo.namespaces:
            self.state.add_namespace(ns)       # recorded first: a crash still cleans it
            nsh.create_ns(ns, exist_ok=True)
            self.state.data.setdefault("ns_inodes", {})[ns] = ns_inode(ns)
            self.state.save()
            kv = self.topo.sysctls_of(ns)
            if kv:
                _run(ns, ["sysctl", "-q", "-w"] + ["%s=%s" % (k, v) for k, v in sorted(kv.items())])
        for ns, name in ((self.topo.dpu_netns, t) for t in self.topo.taps):
            self.state.add_tap(ns, name)
        for v in self.topo.veths(self.eswitch):
            self._veth(v)
        for br in self.topo.bridges:
            self._bridge(br)
        for ns, addrs in self.topo.loopback.items():
            for a in addrs:
                nsh.add_lo_address(ns, a)

    def _veth(self, v: Veth) -> None:
        a_there = nsh.link_exists(v.a.ifname, v.a.netns)
        b_there = nsh.link_exists(v.b.ifname, v.b.netns)
        if not (a_there and b_there):
            # half a pair (or a stale name): remove what is there, by exact name, and redo it
            if a_there:
                nsh.delete_link(v.a.ifname, v.a.netns)
            if b_there:
                nsh.delete_link(v.b.ifname, v.b.netns)
            nsh.add_veth(v.a.ifname, v.b.ifname, ns=v.a.netns, peer_ns=v.b.netns)
        for e in (v.a, v.b):
            nsh.set_link(e.ifname, ns=e.netns, mac=e.mac, up=None)
            for a in e.addresses:
                nsh.add_address(e.ifname, a, ns=e.netns)
            # TX checksum offload off on every end (lab_notes.md 3.1: else UDP breaks)
            _run(e.netns, ["ethtool", "-K", e.ifname, "tx", "off"])
            nsh.set_link(e.ifname, ns=e.netns, up=True)

    def _bridge(self, br: LinuxBridge) -> None:
        from pyroute2 import NetNS

        with NetNS(br.netns) as ipr:
            if not ipr.link_lookup(ifname=br.name):
                ipr.link("add", ifname=br.name, kind="bridge")
            idx = ipr.link_lookup(ifname=br.name)[0]
            if br.mac:
                ipr.link("set", index=idx, address=br.mac)
            for port in br.ports:
                pidx = ipr.link_lookup(ifname=port)
                if not pidx:
                    raise TopologyError("bridge %s: no port %s in %s" % (br.name, port, br.netns))
                ipr.link("set", index=pidx[0], master=idx)
            ipr.link("set", index=idx, state="up")
        for port in br.learning_off:
            _run(br.netns, ["ip", "link", "set", "dev", port, "type", "bridge_slave", "learning", "off"])
        for mac, port in br.fdb:
            _run(br.netns, ["bridge", "fdb", "replace", mac, "dev", port, "master", "static"])

    # -- processes recorded by PID
    def stop_process(self, name: str, timeout: float = 10.0) -> None:
        p = self.state.process(name)
        if p is None:
            return
        if not stop_pid(p["pid"], p.get("start"), timeout=timeout):
            raise RuntimeError("%s (pid %d) does not die" % (name, p["pid"]))
        self.state.drop_process(name)

    # -- down
    def delete_taps(self) -> List[str]:
        """``ip tuntap del`` every recorded tap still present (exact names, in its namespace)."""
        gone = []
        for ns, name in list(self.state.data["taps"]):
            if nsh.ns_exists(ns) and self.owns(ns) and nsh.link_exists(name, ns):
                _run(ns, ["ip", "tuntap", "del", "dev", name, "mode", "tap"], check=False)
                if nsh.link_exists(name, ns):
                    nsh.delete_link(name, ns)
                gone.append(name)
        return gone

    def down(self) -> None:
        """Remove everything recorded: processes (reverse start order), taps, namespaces.
        Idempotent; the state file goes last."""
        errors = []
        for name in reversed(list(self.state.data["processes"])):
            try:
                self.stop_process(name)
            except Exception as e:  # keep removing the rest
                errors.append("%s: %s" % (name, e))
        try:
            self.delete_taps()
        except Exception as e:
            errors.append("taps: %s" % e)
        for ns in reversed(list(self.state.data["namespaces"])):
            if nsh.ns_exists(ns) and not self.owns(ns):
                # same name, another namespace: not ours to delete any more
                self.state.data["namespaces"].remove(ns)
                self.state.save()
                continue
            try:
                nsh.delete_ns(ns)
            except Exception as e:
                errors.append("namespace %s: %s" % (ns, e))
            else:
                self.state.data["namespaces"].remove(ns)
                self.state.save()
        if errors:
            raise RuntimeError("lab down incomplete: " + "; ".join(errors))
        self.state.remove()

    # -- status
    def status(self) -> Dict[str, Any]:
        procs = {}
        for name, p in self.state.data["processes"].items():
            procs[name] = {"pid": p["pid"], "alive": proc_alive(p["pid"], p.get("start")),
                           "netns": p.get("netns"), "log": p.get("log")}
        return {
            "run_dir": self.run_dir,
            "state": self.state.exists,
            "wiring": self.state.data.get("wiring"),
            "namespaces": {ns: nsh.ns_exists(ns) for ns in self.topo.namespaces},
            "foreign_namespaces": self.foreign_namespaces(),
            "processes": procs,
        }

    def leftovers(self) -> Dict[str, List[str]]:
        """What of this topology still exists (for tests and `down`'s report):
        namespaces, recorded taps, recorded processes alive."""
        return {
            "namespaces": [ns for ns in self.topo.namespaces if nsh.ns_exists(ns)],
            "taps": [n for ns, n in self.state.data["taps"]
                     if nsh.ns_exists(ns) and nsh.link_exists(n, ns)],
            "processes": ["%s(%d)" % (n, p["pid"]) for n, p in self.state.data["processes"].items()
                          if proc_alive(p["pid"], p.get("start"))],
        }

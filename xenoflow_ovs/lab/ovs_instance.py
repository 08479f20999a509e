"""A private Open vSwitch (ovsdb-server + ovs-vswitchd, userspace datapath).

No systemd, no ovs-ctl, nothing in the system rundir. Everything lives in `rundir`:

    conf.db, db.sock (punix), ovsdb-server.pid/.log, ovs-vswitchd.pid/.log,
    <prog>.<pid>.ctl (unixctl sockets, OVS's default naming under OVS_RUNDIR,
    so ``ovs-appctl -t ovs-vswitchd ...`` works with :meth:`OvsInstance.env`),
    <bridge>.mgmt (what ``ovs-ofctl <bridge>`` connects to).

Bridges must be ``datapath_type=netdev`` (there is no kernel module). The
netdev datapath creates persistent tap devices (``ovs-netdev`` and one per
bridge) in the namespace where ovs-vswitchd runs; :meth:`stop` deletes every
bridge before it kills the daemons, then removes such taps if any are left.
Give `netns` to run the daemons inside a network namespace: its taps and ports
then never collide with another OVS on the machine.

Subprocesses take list args, never a shell.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Dict, List, Optional

from .netns import ns_argv

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
PKGDATADIR = "/usr/share/openvswitch"

__all__ = ["OvsInstance", "OvsError"]


class OvsError(RuntimeError):
    pass


def _pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    # state is the field after the ')' closing the command name
    return stat.rpartition(")")[2].split()[0] != "Z"


class OvsInstance:
    """One private OVS. Use as a context manager or call start()/stop()."""

    def __init__(self, rundir: str, netns: Optional[str] = None,
                 timeout: float = 20.0) -> None:
        self.rundir = os.path.abspath(rundir)
        self.netns = netns
        self.timeout = timeout
        self.dbfile = os.path.join(self.rundir, "conf.db")
        self.sock = os.path.join(self.rundir, "db.sock")
        self.db = "unix:" + self.sock
        self._known_bridges: List[str] = []

    # --- paths and environment ------------------------------------------------

    def pidfile(self, prog: str) -> str:
        return os.path.join(self.rundir, prog + ".pid")

    def logfile(self, prog: str) -> str:
        return os.path.join(self.rundir, prog + ".log")

    def pid(self, prog: str) -> Optional[int]:
        """PID from the pidfile of `prog` ('ovsdb-server' or 'ovs-vswitchd'),
        None if there is no pidfile or that process is gone."""
        try:
            with open(self.pidfile(prog)) as f:
                pid = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _pid_alive(pid) else None

    def ctl_path(self, prog: str) -> Optional[str]:
        pid = self.pid(prog)
        return os.path.join(self.rundir, "%s.%d.ctl" % (prog, pid)) if pid else None

    def env(self, base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        """Environment for ovs-ofctl / ovs-appctl / ovs-vsctl subprocesses."""
        e = dict(os.environ if base is None else base)
        e.update(OVS_RUNDIR=self.rundir, OVS_DBDIR=self.rundir, OVS_LOGDIR=self.rundir,
                 OVS_SYSCONFDIR=self.rundir, OVS_PKGDATADIR=PKGDATADIR)
        return e

    # --- running commands -------------------------------------------------------

    def _run(self, argv: List[str], in_ns: bool = False, check: bool = True,
             timeout: Optional[float] = None) -> subprocess.CompletedProcess:
        full = ns_argv(self.netns, argv) if in_ns else list(argv)
        p = subprocess.run(full, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=timeout or self.timeout * 3,
                           stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise OvsError("%s failed (%d): %s" % (" ".join(full), p.returncode,
                                                   (p.stderr or p.stdout).strip()))
        return p

    def vsctl(self, *args: str, wait: bool = True, check: bool = True) -> str:
        """ovs-vsctl --db=<ours> args...; returns stdout. wait=False adds --no-wait."""
        argv = ["ovs-vsctl", "--db=" + self.db, "--timeout=%d" % int(self.timeout)]
        if not wait:
            argv.append("--no-wait")
        return self._run(argv + [str(a) for a in args], check=check).stdout

    def ofctl(self, *args: str, check: bool = True) -> str:
        """ovs-ofctl -O OpenFlow13 args...; returns stdout."""
        return self._run(["ovs-ofctl", "-O", "OpenFlow13"] + [str(a) for a in args],
                         check=check).stdout

    def appctl(self, target: str, *args: str, check: bool = True) -> str:
        """ovs-appctl -t <target> args... (target: 'ovs-vswitchd' or 'ovsdb-server')."""
        return self._run(["ovs-appctl", "-t", target, "--timeout=%d" % int(self.timeout)]
                         + [str(a) for a in args], check=check).stdout

    def bridges(self) -> List[str]:
        return [b for b in self.vsctl("list-br", wait=False).split() if b]

    def add_bridge(self, name: str, *extra: str) -> None:
        """add-br NAME as the lab wants it: netdev datapath, OpenFlow13, secure.
        `extra` are more ovs-vsctl words appended (e.g. '--', 'set', ...)."""
        self.vsctl("--may-exist", "add-br", name, "--", "set", "bridge", name,
                   "datapath_type=netdev", "protocols=OpenFlow13", "fail_mode=secure", *extra)
        if name not in self._known_bridges:
            self._known_bridges.append(name)

    # --- lifecycle ----------------------------------------------------------------

    def running(self) -> bool:
        return self.pid("ovsdb-server") is not None and self.pid("ovs-vswitchd") is not None

    def start(self) -> "OvsInstance":
        os.makedirs(self.rundir, exist_ok=True)
        if not os.path.exists(self.dbfile):
            self._run(["ovsdb-tool", "create", self.dbfile, SCHEMA])
        self._start_ovsdb()
        self.vsctl("init", wait=False)
        self._start_vswitchd()
        return self

    def _daemon(self, prog: str, argv: List[str]) -> None:
        if self.pid(prog):
            raise OvsError("%s already running (pid %d)" % (prog, self.pid(prog)))
        try:
            os.unlink(self.pidfile(prog))
        except OSError:
            pass
        with open(os.path.join(self.rundir, prog + ".stderr"), "ab") as err:
            p = subprocess.run(ns_argv(self.netns, argv), env=self.env(), stdin=subprocess.DEVNULL,
                               stdout=err, stderr=err, timeout=self.timeout * 3)
        if p.returncode != 0:
            raise OvsError("%s did not start (rc %d), see %s" % (prog, p.returncode,
                                                                  self.logfile(prog)))
        deadline = time.monotonic() + self.timeout
        while not (self.pid(prog) and os.path.exists(self.ctl_path(prog) or "/nonexistent")):
            if time.monotonic() > deadline:
                raise OvsError("%s: no pidfile/unixctl after %.0fs" % (prog, self.timeout))
            time.sleep(0.05)

    def _start_ovsdb(self) -> None:
        self._daemon("ovsdb-server", [
            "ovsdb-server", self.dbfile,
            "--remote=punix:" + self.sock,
            "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
            "--pidfile=" + self.pidfile("ovsdb-server"),
            "--log-file=" + self.logfile("ovsdb-server"),
            "--detach", "--no-chdir", "-vconsole:off",
        ])
        deadline = time.monotonic() + self.timeout
        while not os.path.exists(self.sock):
            if time.monotonic() > deadline:
                raise OvsError("ovsdb-server: no socket %s" % self.sock)
            time.sleep(0.05)

    def _start_vswitchd(self) -> None:
        self._daemon("ovs-vswitchd", [
            "ovs-vswitchd", self.db,
            "--pidfile=" + self.pidfile("ovs-vswitchd"),
            "--log-file=" + self.logfile("ovs-vswitchd"),
            "--detach", "--no-chdir", "-vconsole:off",
        ])
        # vswitchd has read the DB and (re)created the bridges once this returns
        self.vsctl("--", "set", "Open_vSwitch", ".", "external_ids:xenoflow-lab=1")

    def _kill(self, prog: str) -> None:
        pid = self.pid(prog)
        if pid is None:
            return
        for sig, wait in ((signal.SIGTERM, self.timeout), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while _pid_alive(pid):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            else:
                return
        if _pid_alive(pid):
            raise OvsError("%s (pid %d) does not die" % (prog, pid))

    def restart_vswitchd(self) -> None:
        """Kill ovs-vswitchd and start it again on the same DB (bridges come back)."""
        self._kill("ovs-vswitchd")
        self._start_vswitchd()

    def restart_ovsdb(self) -> None:
        """Kill ovsdb-server and start it again on the same DB file; ovs-vswitchd
        reconnects by itself."""
        self._kill("ovsdb-server")
        self._start_ovsdb()
        # wait until vswitchd is back in sync with the DB
        if self.pid("ovs-vswitchd"):
            self.vsctl("--", "set", "Open_vSwitch", ".", "external_ids:xenoflow-lab=1")

    def leftover_taps(self) -> List[str]:
        """Tap devices of this OVS's netdev datapath still present (in its netns)."""
        names = ["ovs-netdev"] + list(self._known_bridges)
        argv = ["ip", "-o", "link", "show", "type", "tun"]
        if self.netns:
            argv[1:1] = ["-n", self.netns]
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           universal_newlines=True)
        present = set()
        for line in p.stdout.splitlines():
            parts = line.split(":")
            if len(parts) > 1:
                present.add(parts[1].strip().split("@")[0])
        return [n for n in names if n in present]

    def stop(self) -> None:
        """del-br every bridge, kill both daemons by PID, remove leftover taps."""
        if self.pid("ovsdb-server"):
            try:
                brs = self.bridges()
            except (OvsError, subprocess.TimeoutExpired):
                brs = []
            for b in brs:
                if b not in self._known_bridges:
                    self._known_bridges.append(b)
            for b in brs:
                try:
                    self.vsctl("--if-exists", "del-br", b, wait=self.pid("ovs-vswitchd") is not None)
                except (OvsError, subprocess.TimeoutExpired):
                    pass
        self._kill("ovs-vswitchd")
        self._kill("ovsdb-server")
        for tap in self.leftover_taps():
            argv = ["ip", "tuntap", "del", "dev", tap, "mode", "tap"]
            subprocess.run(ns_argv(self.netns, argv), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)

    def __enter__(self) -> "OvsInstance":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return "OvsInstance(%r, netns=%r)" % (self.rundir, self.netns)

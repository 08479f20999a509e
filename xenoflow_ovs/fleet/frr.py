"""FRR (zebra, bfdd, bgpd) without systemd: one set of daemons per path space, optionally
inside a network namespace, configured from files (fleet/bgp.py renders them) and driven
at run time through vtysh.

`-N <pathspace>` puts the pid files and vty sockets in /var/run/frr/<pathspace>/, so many
sets live side by side (and beside a system frr.service, which uses none). vtysh talks to
the daemons over those unix sockets, so it runs in this namespace whatever the daemons'.

Daemons are stopped by their pid files only, and only when that process's command line
names our path space: a stale pid file can never make us signal somebody else's process.
Commands are argv lists, never a shell.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Set

from xenoflow_ovs.lab.netns import run_in_ns

from . import bgp
from .bgp import BgpError

FRR_BIN = "/usr/lib/frr"
RUN_ROOT = "/var/run/frr"
CONF_ROOT = "/etc/frr"
DAEMONS = ("zebra", "bfdd", "bgpd")
FRR_USER = "frr"

# vtysh reports a refused command on stdout, as a line starting with '%'
_ERROR_LINE = re.compile(r"^% ?(Unknown command|Invalid|Command incomplete|Ambiguous command|"
                         r"Can't|Cannot|Error|Failed|Malformed|Specify|Please|No such|There is no|"
                         r"BGP instance|Configuration failed|Create the|Not)", re.M)
# harmless: we give vtysh no vtysh.conf of its own
_NOISE = re.compile(r"^.*vtysh\.conf.*$\n?", re.M)
_PATHSPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class FrrError(BgpError):
    """A daemon did not start or stop, or vtysh refused a command."""


def _frr_ids() -> "tuple[int, int]":
    try:
        return pwd.getpwnam(FRR_USER).pw_uid, grp.getgrnam(FRR_USER).gr_gid
    except KeyError:
        raise FrrError("no user/group %r: is FRR installed (apt install frr)?" % FRR_USER)


def _cmdline(pid: int) -> List[str]:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _read_pid(path: str) -> Optional[int]:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 1 else None


def _write_file(path: str, text: str, gid: int) -> None:
    """Atomically, 0640 root:frr: the daemons read it after dropping to user frr, and
    nobody else needs to."""
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chown(tmp, 0, gid)
        os.chmod(tmp, 0o640)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _check_reachable(path: str, uid: int, gid: int) -> None:
    """A daemon that cannot read its file starts all the same, with no configuration: make
    sure user frr can get through every directory above conf_dir (a mkdtemp one is 0700)."""
    while True:
        st = os.stat(path)
        bit = 0o100 if st.st_uid == uid else 0o010 if st.st_gid == gid else 0o001
        if not st.st_mode & bit:
            raise FrrError("user %s cannot enter %s (mode %o)" % (FRR_USER, path, st.st_mode & 0o777))
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


class Frr:
    def __init__(self, pathspace: Optional[str], netns: Optional[str] = None, conf_dir: Optional[str] = None,
                 daemons: Sequence[str] = DAEMONS) -> None:
        # None: the system's FRR (frr.service, no -N), driven through vtysh only
        if pathspace is not None and not _PATHSPACE.match(pathspace):
            raise FrrError("bad path space %r" % (pathspace,))
        unknown = [d for d in daemons if d not in DAEMONS]
        if unknown or not daemons:
            raise FrrError("unsupported daemons %r (known: %s)" % (unknown, ", ".join(DAEMONS)))
        self.pathspace = pathspace
        self.netns = netns
        self.conf_dir = conf_dir or os.path.join(CONF_ROOT, pathspace or "")
        self.run_dir = os.path.join(RUN_ROOT, pathspace or "")
        # zebra first: the others connect to it
        self.daemons = tuple(d for d in DAEMONS if d in daemons)

    # --- processes -------------------------------------------------------------------

    def _own(self) -> None:
        if self.pathspace is None:
            raise FrrError("the system's FRR (no path space) is started and stopped by its service "
                           "(systemctl restart frr), not by us")

    def _pid_file(self, daemon: str) -> str:
        return os.path.join(self.run_dir, daemon + ".pid")

    def _ours(self, daemon: str, pid: int) -> bool:
        """Is `pid` our `daemon`: its command line is the daemon's, with our path space."""
        argv = _cmdline(pid)
        if not argv or os.path.basename(argv[0]) != daemon:
            return False
        return any(a == self.pathspace and argv[i - 1] in ("-N", "--pathspace")
                   for i, a in enumerate(argv) if i > 0) or "--pathspace=" + self.pathspace in argv

    def _pid(self, daemon: str) -> Optional[int]:
        pid = _read_pid(self._pid_file(daemon))
        return pid if pid is not None and self._ours(daemon, pid) else None

    def pids(self) -> Dict[str, Optional[int]]:
        return {d: self._pid(d) for d in self.daemons}

    def running(self) -> bool:
        return all(p is not None for p in self.pids().values())

    def _prepare(self, files: Dict[str, str]) -> None:
        uid, gid = _frr_ids()
        os.makedirs(self.conf_dir, mode=0o750, exist_ok=True)
        _check_reachable(os.path.dirname(os.path.abspath(self.conf_dir)), uid, gid)
        os.chown(self.conf_dir, 0, gid)
        os.chmod(self.conf_dir, 0o750)
        for name, text in files.items():
            if os.path.basename(name) != name or not name.endswith(".conf"):
                raise FrrError("bad config file name %r" % (name,))
            _write_file(os.path.join(self.conf_dir, name), text, gid)
        os.makedirs(self.run_dir, mode=0o755, exist_ok=True)
        os.chown(self.run_dir, uid, gid)
        os.chmod(self.run_dir, 0o755)

    def _argv(self, daemon: str) -> List[str]:
        conf = os.path.join(self.conf_dir, daemon + ".conf")
        return [os.path.join(FRR_BIN, daemon), "-d", "-N", self.pathspace, "-f", conf,
                "-A", "127.0.0.1", "--log", "file:" + os.path.join(self.run_dir, daemon + ".log")]

    def _start_one(self, daemon: str, deadline: float) -> int:
        conf = os.path.join(self.conf_dir, daemon + ".conf")
        if not os.path.exists(conf):
            raise FrrError("%s: no %s" % (daemon, conf))
        # -d: the daemon forks and the command returns once it is set up
        p = run_in_ns(self.netns, self._argv(daemon), check=False,
                      timeout=max(1.0, deadline - time.monotonic()))
        if p.returncode != 0:
            raise FrrError("%s did not start (exit %d): %s" % (daemon, p.returncode,
                                                               (p.stderr or p.stdout).strip()))
        while True:
            pid = self._pid(daemon)
            if pid is not None:
                return pid
            if time.monotonic() > deadline:
                raise FrrError("%s wrote no pid file in %s" % (daemon, self.run_dir))
            time.sleep(0.05)

    def start(self, files: Dict[str, str], timeout: float = 20.0) -> Dict[str, int]:
        """Write `files` (name -> text) into conf_dir, start the daemons not running yet,
        wait until vtysh answers. Daemons already running keep their configuration: a
        changed file takes effect at their next start."""
        self._own()
        deadline = time.monotonic() + timeout
        self._prepare(files)
        pids: Dict[str, int] = {}
        for d in self.daemons:
            pid = self._pid(d)
            pids[d] = pid if pid is not None else self._start_one(d, deadline)
        self._wait_vtysh(deadline)
        return pids

    def _wait_vtysh(self, deadline: float) -> None:
        sockets = [os.path.join(self.run_dir, d + ".vty") for d in self.daemons]
        last = ""
        while True:
            if all(os.path.exists(s) for s in sockets):
                try:
                    self.vtysh("show version", timeout=max(1.0, deadline - time.monotonic()))
                    return
                except FrrError as e:
                    last = str(e)
            if time.monotonic() > deadline:
                raise FrrError("vtysh -N %s does not answer: %s" % (self.pathspace, last or "no sockets"))
            time.sleep(0.1)

    def stop(self, grace: float = 5.0) -> List[str]:
        """Stop our daemons (SIGTERM, SIGKILL after `grace` s), bgpd first so its peers see
        a notification rather than a timeout, then remove the run directory unless a
        daemon this instance does not manage still runs from it."""
        self._own()
        stopped = []
        for d in reversed(self.daemons):
            pid = self._pid(d)
            if pid is not None and self._signal_until_gone(d, pid, grace):
                stopped.append(d)
        if not any(self._pid(d) is not None for d in DAEMONS):
            shutil.rmtree(self.run_dir, ignore_errors=True)
        return stopped

    def _signal_until_gone(self, daemon: str, pid: int, grace: float) -> bool:
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return True
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not self._ours(daemon, pid):
                    return True
                time.sleep(0.05)
        raise FrrError("%s (pid %d) did not exit" % (daemon, pid))

    # --- vtysh -----------------------------------------------------------------------

    def vtysh(self, *commands: str, timeout: float = 10.0) -> str:
        """Run `commands` in one vtysh session; FrrError when vtysh fails or refuses one."""
        argv = ["vtysh"] + (["-N", self.pathspace] if self.pathspace else [])
        for c in commands:
            argv += ["-c", c]
        try:
            p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise FrrError("vtysh -N %s %r: no answer in %.1f s" % (self.pathspace, list(commands), timeout))
        err = _NOISE.sub("", p.stderr).strip()
        refused = _ERROR_LINE.search(p.stdout)
        if p.returncode != 0 or refused:
            line = p.stdout[refused.start():].splitlines()[0] if refused else ""
            raise FrrError("vtysh -N %s %r: %s" % (self.pathspace, list(commands),
                                                   "; ".join(x for x in (line, err, p.stdout.strip())
                                                             if x) or "exit %d" % p.returncode))
        return p.stdout

    def configure(self, lines: Sequence[str]) -> None:
        self.vtysh("configure terminal", *lines)

    # --- BGP -------------------------------------------------------------------------

    def announce(self, asn: int, prefix: Any) -> None:
        self.configure(bgp.network_commands(asn, prefix, True))

    def withdraw(self, asn: int, prefix: Any) -> None:
        """Idempotent: withdrawing what is not announced is no error."""
        if bgp._prefix(prefix) in self.networks(asn):
            self.configure(bgp.network_commands(asn, prefix, False))

    def networks(self, asn: int) -> Set[str]:
        """What bgpd announces; empty while bgpd is down (and so after it restarts)."""
        return bgp.parse_networks(self.vtysh("show running-config"), asn)

    def peers(self) -> Dict[str, Dict[str, Any]]:
        return bgp.parse_peers(self.vtysh("show bgp ipv4 unicast summary json"),
                               self.vtysh("show bfd peers json"))

    def set_med(self, asn: int, med: Optional[int]) -> None:
        """Set (None: clear) the MED and send every announcement again with it."""
        self.configure(bgp.med_commands(asn, med))
        self.vtysh("clear bgp ipv4 unicast * soft out")

"""Members of the store's Raft cluster: ovsdb-tool and ovsdb-server, driven without a shell.

A member is a database file (created with `ovsdb-tool create-cluster` for the first one,
`join-cluster` for the others: the Raft address is where members talk to each other)
served by one ovsdb-server, whose client remote (ptcp:/punix:) is what controllers and
`xenoflow fleet` connect to. The election timer is a cluster setting changed on the leader
in steps of at most 2x (ovsdb-server refuses more): set_election_timer() steps.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from .model import SCHEMA_NAME
from .store import SCHEMA


class ClusterError(Exception):
    pass


def _tool(name: str) -> str:
    path = shutil.which(name) or next((p for p in ("/usr/sbin/" + name, "/usr/bin/" + name)
                                       if os.path.exists(p)), None)
    if path is None:
        raise ClusterError("%s not found: install openvswitch-switch (Debian) or openvswitch" % name)
    return path


def _run(argv: List[str], timeout: float = 30.0) -> str:
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ClusterError("%s: no answer within %.0f s" % (" ".join(argv), timeout))
    if p.returncode != 0:
        raise ClusterError("%s: %s" % (os.path.basename(argv[0]), (p.stderr or p.stdout).strip()))
    return p.stdout


def create(db: str, raft: str) -> None:
    """The first member: a new cluster holding the empty xenoflow database."""
    if os.path.exists(db):
        raise ClusterError("%s exists: a member's file is created once (remove it to start over)" % db)
    os.makedirs(os.path.dirname(os.path.abspath(db)), mode=0o700, exist_ok=True)
    _run([_tool("ovsdb-tool"), "create-cluster", db, SCHEMA, raft])
    os.chmod(db, 0o600)


def join(db: str, raft: str, peers: Sequence[str]) -> None:
    """Another member: joins when its ovsdb-server first reaches one of `peers`."""
    if os.path.exists(db):
        raise ClusterError("%s exists: a member's file is created once (remove it to start over)" % db)
    if not peers:
        raise ClusterError("joining needs the Raft address of at least one member")
    os.makedirs(os.path.dirname(os.path.abspath(db)), mode=0o700, exist_ok=True)
    _run([_tool("ovsdb-tool"), "join-cluster", db, SCHEMA_NAME, raft] + list(peers))
    os.chmod(db, 0o600)


def _alive(pid: int) -> bool:
    """Running, not a zombie: a detached ovsdb-server that exited stays one until init
    reaps it, which may take a second or more."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@dataclass
class Member:
    """One ovsdb-server serving a member's file; its files live in `run_dir`."""
    db: str
    run_dir: str
    name: str = "store"
    netns: Optional[str] = None     # run ovsdb-server inside this network namespace (a lab's)

    @property
    def pidfile(self) -> str:
        return os.path.join(self.run_dir, self.name + ".pid")

    @property
    def ctl(self) -> str:
        return os.path.join(self.run_dir, self.name + ".ctl")

    @property
    def log(self) -> str:
        return os.path.join(self.run_dir, self.name + ".log")

    def argv(self, remotes: Sequence[str]) -> List[str]:
        return [_tool("ovsdb-server"), "--detach", "--no-chdir", "--pidfile=" + self.pidfile,
                "--unixctl=" + self.ctl, "--log-file=" + self.log] + [
                    "--remote=" + r for r in remotes] + [self.db]

    def start(self, remotes: Sequence[str]) -> int:
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        env = dict(os.environ, OVS_RUNDIR=self.run_dir, OVS_LOGDIR=self.run_dir)
        argv = self.argv(remotes)
        if self.netns:
            from ..lab.netns import ns_argv
            argv = ns_argv(self.netns, argv)
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, env=env, timeout=30)
        if p.returncode != 0:
            raise ClusterError("ovsdb-server for %s: %s" % (self.db, p.stderr.strip()))
        pid = self.pid()
        if pid is None:
            raise ClusterError("ovsdb-server for %s started but wrote no pid file" % self.db)
        return pid

    def pid(self) -> Optional[int]:
        try:
            with open(self.pidfile) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if pid > 0 and _alive(pid) else None

    def stop(self, sig: int = signal.SIGTERM, wait: float = 10.0) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.02)
        raise ClusterError("ovsdb-server %d did not stop" % pid)

    def appctl(self, *args: str) -> str:
        return _run([_tool("ovs-appctl"), "-t", self.ctl] + list(args), timeout=10)

    def status(self) -> Dict[str, str]:
        return parse_status(self.appctl("cluster/status", SCHEMA_NAME))

    def kick(self, server: str) -> None:
        """Remove a member for good (one that will not come back), by its server id."""
        self.appctl("cluster/kick", SCHEMA_NAME, server)


def parse_status(text: str) -> Dict[str, str]:
    """`cluster/status`: the "Key: value" lines (Role, Leader, Term, Election timer...),
    and the servers as "servers" (one per line, as printed)."""
    out: Dict[str, str] = {}
    servers: List[str] = []
    in_servers = False
    for line in text.splitlines():
        if in_servers and line.startswith(" "):
            servers.append(line.strip())
            continue
        in_servers = False
        m = re.match(r"^([A-Za-z][A-Za-z ]*):\s*(.*)$", line)
        if m:
            out[m.group(1).strip()] = m.group(2).strip()
            in_servers = m.group(1).strip() == "Servers"
    out["servers"] = "\n".join(servers)
    return out


def set_election_timer(leader: Member, ms: int, wait: float = 10.0) -> int:
    """Move the cluster's election timer to `ms` in steps the server accepts (at most
    double, at least half, each step committed before the next); the value reached."""
    deadline = time.monotonic() + wait
    while True:
        now = int(leader.status().get("Election timer", "0") or 0)
        if now == ms or now == 0:
            return now
        step = max(ms, (now + 1) // 2) if ms < now else min(ms, now * 2)
        try:
            leader.appctl("cluster/change-election-timer", SCHEMA_NAME, str(step))
        except ClusterError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise ClusterError("election timer stuck at %d ms (asked %d)" % (now, ms))
        time.sleep(0.05)

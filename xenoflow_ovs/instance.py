"""One controller and one eswitchd per DPU, and the start-up checks before they touch anything.

A daemon's first act is `acquire(cfg, role)`: an exclusive flock on
``<state dir>/<role>.<dpu name>.lock`` (statedir.py). A second instance for the same DPU
fails there, before any OpenFlow listener, API socket or eSwitch call, and so can remove
or change nothing of the first. The lock lives as long as the process (the kernel drops it
when the process dies, however it dies); the file itself is never deleted, since a
process holding the lock on a deleted file and a newcomer locking a new file with the same
name would both believe they are alone.

Every start-up failure is a `StartupError`: the daemons print its one line and exit 2.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from typing import Any, Callable, Dict, Optional

from . import statedir
from .intent import config as config_mod


class StartupError(Exception):
    """Why a daemon cannot start, in one line."""


class AlreadyRunning(StartupError):
    pass


# role -> the open lock file of this process (kept open: closing it drops the lock)
_held: Dict[str, int] = {}


def lock_path(cfg: config_mod.Config, role: str) -> str:
    return os.path.join(statedir.ensure(cfg), "%s.%s.lock" % (role, cfg.dpu_name))


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode(errors="replace").strip()
    except OSError:
        return ""
    return " (pid %s)" % text if text.isdigit() else ""


def acquire(cfg: config_mod.Config, role: str) -> str:
    """Take the DPU's `role` lock for this process, or raise AlreadyRunning naming the
    holder's PID. Idempotent within a process. Returns the lock file's path."""
    try:
        path = lock_path(cfg, role)
    except OSError as exc:
        raise StartupError("cannot create the state directory %s: %s"
                           % (statedir.path(cfg), exc.strerror or exc))
    if role in _held:
        return path
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StartupError("cannot open the lock file %s: %s" % (path, exc.strerror or exc))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _holder(fd)
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise AlreadyRunning("a %s for DPU %s is already running%s (lock %s held): not starting"
                                 % (role, cfg.dpu_name, holder, path))
        raise StartupError("cannot lock %s: %s" % (path, exc.strerror or exc))
    # our PID, for the next one's message; only written once the lock is ours
    os.ftruncate(fd, 0)
    os.pwrite(fd, b"%d\n" % os.getpid(), 0)
    _held[role] = fd
    return path


def held(role: str) -> bool:
    return role in _held


def next_generation(cfg: config_mod.Config, now: Optional[float] = None) -> int:
    """This controller's session generation toward eswitchd: larger than any earlier
    controller's for this DPU. Call with the controller lock held. Microseconds of the
    wall clock, and one more than the last one recorded, whichever is larger: a
    controller started later always wins, even one whose state dir was wiped meanwhile."""
    path = os.path.join(statedir.ensure(cfg), "controller.%s.generation" % cfg.dpu_name)
    last = 0
    try:
        with open(path) as f:
            last = int(f.read().strip() or 0)
    except (OSError, ValueError):
        pass
    gen = max(last + 1, int((time.time() if now is None else now) * 1e6))
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("%d\n" % gen)
    os.replace(tmp, path)
    return gen


def check_tcp_free(host: str, port: int, what: str) -> None:
    """Fail now, in one line, if someone listens on host:port (os-ken's listener would
    otherwise die in its own thread and leave a controller without OpenFlow)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the real listeners do
        s.bind((host, port))
    except OSError as exc:
        raise StartupError("%s %s:%d: %s" % (what, host, port, exc.strerror or exc))
    finally:
        s.close()


def wait_eswitchd(cfg: config_mod.Config, hello: Callable[[], Any], timeout: float,
                  sleep: Callable[[float], None] = time.sleep) -> Optional[Any]:
    """Ask eswitchd `hello()` until it answers or `timeout` s pass (0: one try, no
    error: the controller then starts with OVS alone). Raises StartupError past it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return hello()
        except Exception as exc:  # EswitchError, OSError: not there (yet)
            if timeout <= 0:
                return None
            if time.monotonic() >= deadline:
                raise StartupError("eswitchd unreachable at %s after %d s (dpu.eswitch.connect_timeout): %s"
                                   % (cfg.path(cfg.eswitch.socket), timeout, exc))
        sleep(0.2)


def controller_checks(cfg: config_mod.Config, listen_openflow: bool = True) -> None:
    """What a starting controller checks before it opens anything: its OpenFlow, API and
    metrics ports free (an API port of 0 or a disabled listener is skipped)."""
    if listen_openflow:
        check_tcp_free(cfg.openflow.host, cfg.openflow.port, "OpenFlow port in use:")
    if os.environ.get("XENOFLOW_API") != "0":
        if cfg.api.port:
            check_tcp_free(cfg.api.host, cfg.api.port, "API port in use:")
        m = getattr(cfg, "metrics", None)
        if m is not None and getattr(m, "port", 0):
            check_tcp_free(m.host, m.port, "metrics port in use:")

"""One log format for every XenoFlow process: time, level, logger, message.

`configure()` replaces the root logger's handlers (os-ken's `init_log` and Ryu's
`ryu-manager` install their own and reset the level: call `reapply()` after them).

Where lines go:
- `file` given: that file (reopened when logrotate moves it);
- started by systemd with stderr connected to the journal ($JOURNAL_STREAM names
  stderr's device:inode): stderr, each line prefixed with its syslog priority
  (``<6>``), which journald reads, and without a time (journald stamps lines itself);
- started by systemd otherwise ($INVOCATION_ID) with /dev/log present: syslog;
- else stderr.
`fmt="json"`: one JSON object per line (time, level, logger, message, daemon, pid;
`exc` with a traceback).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import time
from typing import Any, Dict, Optional

LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("text", "json")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_TEXT = "%(levelname)s %(name)s: %(message)s"
_PRIO = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

_last: Optional[Dict[str, Any]] = None


class _IsoFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: Optional[str] = None) -> str:
        t = time.gmtime(record.created)
        return "%s.%03dZ" % (time.strftime(datefmt or "%Y-%m-%dT%H:%M:%S", t), int(record.msecs))


class JsonFormatter(_IsoFormatter):
    def __init__(self, daemon: str = "") -> None:
        super().__init__()
        self.daemon = daemon

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
               "message": record.getMessage(), "pid": record.process}
        if self.daemon:
            out["daemon"] = self.daemon
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, sort_keys=False)


class _JournalFormatter(logging.Formatter):
    """``<prio>`` before each line: journald's priority for stderr lines."""

    def format(self, record: logging.LogRecord) -> str:
        prio = _PRIO.get(record.levelno, 6)
        return "\n".join("<%d>%s" % (prio, line) for line in super().format(record).splitlines())


def stderr_is_journal(env: Optional[Dict[str, str]] = None) -> bool:
    """$JOURNAL_STREAM is "device:inode" of the journal stream systemd gave us; it stays
    in the environment of children whose stderr went elsewhere, hence the comparison."""
    js = (env if env is not None else os.environ).get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in js.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def level_of(name: str) -> int:
    name = (name or "info").lower()
    if name not in LEVELS:
        raise ValueError("log level %r: one of %s" % (name, ", ".join(LEVELS)))
    return getattr(logging, name.upper())


def make_handler(file: Optional[str], fmt: str, daemon: str,
                 env: Optional[Dict[str, str]] = None) -> logging.Handler:
    env = env if env is not None else dict(os.environ)
    if fmt not in FORMATS:
        raise ValueError("log format %r: one of %s" % (fmt, ", ".join(FORMATS)))
    handler: logging.Handler
    journal = False
    if file:
        handler = logging.handlers.WatchedFileHandler(file)
    elif stderr_is_journal(env):
        handler, journal = logging.StreamHandler(sys.stderr), True
    elif env.get("INVOCATION_ID") and os.path.exists("/dev/log"):
        handler = logging.handlers.SysLogHandler(address="/dev/log")
        handler.ident = "%s[%d]: " % (daemon or "xenoflow", os.getpid())
        journal = True   # syslog stamps lines itself
    else:
        handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(daemon))
    elif journal and isinstance(handler, logging.StreamHandler):
        handler.setFormatter(_JournalFormatter(JOURNAL_TEXT))
    elif journal:
        handler.setFormatter(logging.Formatter(JOURNAL_TEXT))
    else:
        handler.setFormatter(_IsoFormatter(TEXT))
    return handler


def configure(level: str = "info", file: Optional[str] = None, fmt: str = "text",
              daemon: str = "") -> None:
    """Install the one format on the root logger at `level` (a name of LEVELS)."""
    global _last
    lvl = level_of(level)
    handler = make_handler(file, fmt, daemon)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        if getattr(h, "_xenoflow", False):
            h.close()
    handler._xenoflow = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(lvl)
    _last = {"level": level, "file": file, "fmt": fmt, "daemon": daemon}


def reapply() -> None:
    """After a framework's own logging set-up (os-ken's init_log, ryu-manager): ours again."""
    if _last is not None:
        configure(**_last)


def configured() -> bool:
    return _last is not None


def from_env(daemon: str = "") -> None:
    """The app under `ryu-manager` has no flags of ours: XENOFLOW_LOG_LEVEL,
    XENOFLOW_LOG_FILE, XENOFLOW_LOG_FORMAT (`xenoflow controller` sets them too, so the
    app re-applies what the command line asked)."""
    env = os.environ
    # ryu-manager --verbose has set the root logger to DEBUG: keep it
    default = "debug" if logging.getLogger().level == logging.DEBUG else "info"
    configure(env.get("XENOFLOW_LOG_LEVEL") or default, env.get("XENOFLOW_LOG_FILE") or None,
              env.get("XENOFLOW_LOG_FORMAT") or "text", daemon)

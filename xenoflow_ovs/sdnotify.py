"""systemd's notify protocol without a dependency: one datagram to $NOTIFY_SOCKET.

`notify("READY=1")` is a no-op when systemd did not ask for it (no $NOTIFY_SOCKET), so the
daemons call it unconditionally. An abstract socket is written with a leading "@".
"""

from __future__ import annotations

import os
import socket
from typing import Optional


def notify(state: str, env: Optional[dict] = None) -> bool:
    """Send `state` (e.g. "READY=1", "STOPPING=1", "STATUS=..."); False if nobody listens."""
    path = (env if env is not None else os.environ).get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        s.connect(path)
        s.sendall(state.encode())
        return True
    except OSError:
        return False
    finally:
        s.close()


def ready(status: str = "") -> bool:
    return notify("READY=1\nMAINPID=%d%s" % (os.getpid(), "\nSTATUS=" + status if status else ""))


def stopping() -> bool:
    return notify("STOPPING=1")

"""The one place that imports the OpenFlow framework: os-ken (>= 4, native hub) or
Ryu 4.34 (eventlet). Everything else imports these names from here.

Which one: the framework already running this process wins (ryu-manager has
imported ryu before it loads our app; our launcher has imported os_ken), then
XENOFLOW_RUNTIME (osken|ryu, set by tox), then os_ken, then ryu.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from typing import Any, Tuple


def _pick() -> Tuple[str, str]:
    if "ryu.base.app_manager" in sys.modules:
        return "ryu", "ryu"
    if "os_ken.base.app_manager" in sys.modules:
        return "osken", "os_ken"
    order = [("osken", "os_ken"), ("ryu", "ryu")]
    if os.environ.get("XENOFLOW_RUNTIME") == "ryu":
        order.reverse()
    for name, pkg in order:
        try:
            importlib.import_module(pkg + ".base.app_manager")
            return name, pkg
        except ImportError:
            continue
    raise ImportError("neither os_ken (os-ken >= 4) nor ryu (4.34) is installed")


RUNTIME, _PKG = _pick()


def _mod(name: str) -> Any:
    return importlib.import_module(_PKG + "." + name)


app_manager = _mod("base.app_manager")
ofp_event = _mod("controller.ofp_event")
handler = _mod("controller.handler")
event = _mod("controller.event")
hub = _mod("lib.hub")
ofproto_v1_3 = _mod("ofproto.ofproto_v1_3")
ofproto_v1_3_parser = _mod("ofproto.ofproto_v1_3_parser")

set_ev_cls = handler.set_ev_cls
CONFIG_DISPATCHER = handler.CONFIG_DISPATCHER
MAIN_DISPATCHER = handler.MAIN_DISPATCHER
DEAD_DISPATCHER = handler.DEAD_DISPATCHER
BaseApp = app_manager.RyuApp if RUNTIME == "ryu" else app_manager.OSKenApp

# Green (eventlet) or native threads? Ryu's hub is eventlet. ryu-manager green-patches
# `threading` too, but not with --enable-debugger, nor when the app is imported without
# it (tests): the hub's own primitives work in every case, where a native wait on an
# unpatched threading.Event would block every green thread.
GREEN = RUNTIME == "ryu" or getattr(hub, "HUB_TYPE", "native") == "eventlet"


def make_event() -> Any:
    """An Event with set/clear/is_set/wait(timeout) that works with the running hub
    (os-ken's native hub.Event cannot time out a wait: its Timeout is a timer that
    never interrupts the waiting thread)."""
    return hub.Event() if GREEN else threading.Event()


def make_lock() -> Any:
    """A mutex usable with `with` across the hub's threads (green or native)."""
    return hub.BoundedSemaphore(1) if GREEN else threading.Lock()

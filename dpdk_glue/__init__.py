"""dpdk_glue: DOCA Flow (or softdoca, its behavioural model on DPDK) from Python via cffi.

``import dpdk_glue`` always works; the compiled module is loaded on first use, and a missing
build raises GlueMissing with the build instructions.  One eSwitch per process (DPDK EAL).
softdoca's own knobs (fault injection, forwarder policy, ...) are in dpdk_glue.softdoca_ctl.
"""
from __future__ import annotations

from dpdk_glue.binding import (
    COLOR_GREEN,
    COLOR_RED,
    COLOR_YELLOW,
    BasicPipe,
    EntrySpec,
    ESwitch,
    GlueEntry,
    GlueError,
    GlueMatch,
    GlueMissing,
    Meter,
    PortSpec,
    RootPipe,
    default_eal_args,
    glue_info,
    glue_target,
)

__all__ = [
    "COLOR_GREEN",
    "COLOR_RED",
    "COLOR_YELLOW",
    "BasicPipe",
    "EntrySpec",
    "ESwitch",
    "GlueEntry",
    "GlueError",
    "GlueMatch",
    "GlueMissing",
    "Meter",
    "PortSpec",
    "RootPipe",
    "default_eal_args",
    "glue_info",
    "glue_target",
]

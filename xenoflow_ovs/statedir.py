"""Where a DPU's durable files live: the operator's changes (overlay) and the one-instance
locks of its controller and eswitchd.

``dpu.state_dir`` when the config sets it (relative to the config file), else systemd's
``$STATE_DIRECTORY`` (``StateDirectory=`` of the unit), else ``/var/lib/xenoflow/<dpu name>``.
Created owner-only on first use."""
from __future__ import annotations

import os

from .intent import config as config_mod

DEFAULT_ROOT = "/var/lib/xenoflow"


def path(cfg: config_mod.Config) -> str:
    if cfg.state_dir:
        return cfg.path(cfg.state_dir)
    env = os.environ.get("STATE_DIRECTORY")
    if env:
        return env.split(":")[0]  # systemd lists several when the unit names several
    return os.path.join(DEFAULT_ROOT, cfg.dpu_name)


def ensure(cfg: config_mod.Config) -> str:
    """The directory, created (0700) if missing."""
    d = path(cfg)
    os.makedirs(d, mode=0o700, exist_ok=True)
    return d

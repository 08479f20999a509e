"""The state file: the app view of the status (status.Status.app_view), rewritten
after every poll and at stop, for tools that cannot reach the API (the lab, tests).
Written to a temporary file and renamed, so a reader never sees half of it."""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, Optional

from ..intent import config as config_mod

log = logging.getLogger("xenoflow.app")

ENV_STATE = "XENOFLOW_STATE"   # its path (default: <config dir>/run/<dpu>-controller.json)


def default_path(cfg: config_mod.Config) -> str:
    return os.environ.get(ENV_STATE) or cfg.path(os.path.join("run", "%s-controller.json" % cfg.dpu_name))


class StateFile:
    def __init__(self, path: Optional[str]):
        self.path = path

    def write(self, view: Dict[str, Any]) -> None:
        if not self.path:
            return
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(view, f, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot write state file %s: %s", self.path, exc)

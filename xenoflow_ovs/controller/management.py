"""How a running controller is operated: the HTTP API (api/), the health monitor
(its verdicts are changes like any other), SIGHUP, and reload: a new config is
applied OVSDB first (new bridges, ports, patches), then as the runtime's
transition, make-before-break across both planes; a bad one changes nothing."""

from __future__ import annotations

import logging
import os
import signal
from typing import Any, Dict, Optional

from ..api import handlers as handlers_mod
from ..api import server as api_mod
from ..intent import config as config_mod
from . import compat
from . import health as health_mod
from . import ovsdb as ovsdb_mod
from . import runtime as runtime_mod

log = logging.getLogger("xenoflow.app")

ENV_API = "XENOFLOW_API"     # "0": no HTTP API (unit tests build many apps)


class Management:
    def __init__(self, app: Any, config_path: Optional[str]):
        self.app = app
        self.config_path = config_path
        self.api: Optional[api_mod.Api] = None
        self.metrics_api: Optional[api_mod.Api] = None  # read-only: /metrics and /status
        self.health = health_mod.Monitor(list(app.runtime.cfg.services), self.health_changed,
                                         sleep=compat.hub.sleep, spawn=compat.hub.spawn)

    def start(self) -> None:
        self._start_api()
        self.health.start()
        try:
            signal.signal(signal.SIGHUP, lambda signum, frame: compat.hub.spawn(self._sighup))
        except ValueError:  # not the main thread (tests): reload through the API instead
            pass

    def stop(self) -> None:
        self.health.stop()
        if self.api is not None:
            self.api.stop()
        if self.metrics_api is not None:
            self.metrics_api.stop()

    def _start_api(self) -> None:
        if os.environ.get(ENV_API) == "0":
            return
        app = self.app
        cfg = app.runtime.cfg
        a = cfg.api
        self.api = api_mod.Api(a.host, a.port, cfg.path(a.socket) if a.socket else None,
                               token=api_mod.read_token(cfg.path(a.token_file) if a.token_file else None),
                               spawn=compat.hub.spawn)
        handlers_mod.install(self.api, app.runtime, app.status, self.reload_from_file, app.metrics,
                             fleet=app.fleet)
        self.api.start()
        self.metrics_api = api_mod.start_metrics_listener(cfg, app.metrics, app.status.snapshot,
                                                          spawn=compat.hub.spawn)

    def _sighup(self) -> None:
        try:
            out = self.reload_from_file()
            log.info("SIGHUP reload applied: %s", out)
        except Exception as exc:  # a bad file keeps the running state
            log.error("SIGHUP reload rejected, running state kept: %s", exc)

    def health_changed(self, service: str, backend: str, up: bool, why: str) -> None:
        """From the health monitor's thread: take the backend out of (or back into) both
        planes, make-before-break, through the runtime."""
        try:
            self.app.runtime.set_health(service, backend, up, why)
        except Exception as exc:
            log.error("health %s/%s -> %s not applied: %s", service, backend,
                      "up" if up else "down", exc)

    def apply_config(self, new_cfg: config_mod.Config, why: str = "reload") -> Dict[str, Any]:
        """Move to a new config. Call it from any thread but the app's event thread
        (the transition waits for barrier replies handled there)."""
        app = self.app
        db = app.worker.ovsdb
        if db is not None:
            db.ensure(ovsdb_mod.desired(new_cfg))
        out = app.runtime.reload(new_cfg, why=why)
        # the runtime's services: the new file with the operator's overlay on top (a backend
        # added through the API keeps its health probe across a reload)
        self.health.set_services(list(app.runtime.cfg.services))
        app.run_in_app(app.follow_runtime)
        return out

    def reload_from_file(self) -> Dict[str, Any]:
        """Re-read the config file (SIGHUP, POST /reload); counted good or bad."""
        metrics = self.app.metrics
        try:
            if not self.config_path:
                raise runtime_mod.Conflict("the controller was not started from a config file")
            new_cfg = config_mod.load(self.config_path)
            if self.app.fleet is not None:    # the file's own part, with the store's services
                new_cfg = self.app.fleet.with_local(new_cfg)
            out = self.apply_config(new_cfg, why="reload")
        except Exception:
            metrics.reloaded(False)
            raise
        metrics.reloaded(True)
        return out

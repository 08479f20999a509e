"""The overlay file: the operator's changes to a running controller, durable.

`<state dir>/overlay.json` (statedir.py: dpu.state_dir, systemd's StateDirectory, or
/var/lib/xenoflow/<dpu>), never next to the config file, since /etc may be read-only.
Rewritten on every accepted edit: to a temporary file in the same directory, flushed to
disk, then renamed over the old one, owner-only (0600). A crash leaves the old overlay or
the new one, never half of either. What the edits mean and how they meet the config file
is xenoflow_ovs/intent/overlay.py.

A file that cannot be read or is not an overlay stops the controller at start with one
line naming it (OverlayError): starting without it would silently put drained backends
back into service, the failure the overlay exists to prevent. `xenoflow state show`
prints it, `xenoflow state clear` removes it.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List, Optional, Set, Tuple

from . import statedir
from .intent import config as config_mod
from .intent import overlay as pure
from .intent.overlay import Edit, OverlayError

log = logging.getLogger("xenoflow.overlay")

FILENAME = "overlay.json"
ENV_OVERLAY = "XENOFLOW_OVERLAY"   # its path, overriding <state dir>/overlay.json (tests)

__all__ = ["Overlay", "OverlayError", "path", "read", "write", "attach", "with_state"]


def path(cfg: config_mod.Config) -> str:
    return os.environ.get(ENV_OVERLAY) or os.path.join(statedir.path(cfg), FILENAME)


def read(file: str) -> List[Edit]:
    """The edits in `file`; none if it does not exist. OverlayError names the file."""
    try:
        with open(file) as f:
            doc = json.load(f)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise OverlayError("%s: unreadable overlay (%s); fix it or remove it with "
                           "`xenoflow state clear`" % (file, exc))
    try:
        return pure.check(doc)
    except OverlayError as exc:
        raise OverlayError("%s: %s; fix it or remove it with `xenoflow state clear`" % (file, exc))


def write(file: str, edits: List[Edit]) -> None:
    """Atomically replace `file` (0600) with these edits."""
    directory = os.path.dirname(file) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = "%s.%d.tmp" % (file, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(pure.document(edits), f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, file)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # the rename itself must survive a power cut (a reboot is the point)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _valid(cfg: config_mod.Config):
    def valid(data: Dict[str, Any]) -> bool:
        try:
            config_mod.from_data(data, base_dir=cfg.base_dir, source="<overlay>")
        except config_mod.ConfigError:
            return False
        return True
    return valid


def with_state(cfg: config_mod.Config, edits: List[Edit]
               ) -> Tuple[config_mod.Config, Dict[str, Set[str]], List[Edit], List[Edit]]:
    """The config file's config with the edits on top: (config, drained, kept, dropped)."""
    if not edits:
        return cfg, {}, [], []
    data, drained, kept, dropped = pure.apply(config_mod.to_data(cfg), edits, _valid(cfg))
    new_cfg = config_mod.from_data(data, base_dir=cfg.base_dir, source="<overlay>") if kept else cfg
    return new_cfg, drained, kept, dropped


class Overlay:
    """The overlay of one running controller: its edits, and the ones dropped since start."""

    def __init__(self, file: str, edits: Optional[List[Edit]] = None):
        self.path = file
        self.edits: List[Edit] = list(edits or [])
        self.dropped: List[str] = []
        self.error: Optional[str] = None   # the last write failed: running state is not durable

    @classmethod
    def load(cls, file: str) -> "Overlay":
        return cls(file, read(file))

    def apply(self, cfg: config_mod.Config) -> Tuple[config_mod.Config, Dict[str, Set[str]]]:
        """`cfg` (the config file's) with the overlay on top. Edits it cannot take are
        dropped, reported in `dropped`, and the file is rewritten without them."""
        new_cfg, drained, kept, dropped = self.preview(cfg)
        self.commit(kept, dropped)
        return new_cfg, drained

    def preview(self, cfg: config_mod.Config
                ) -> Tuple[config_mod.Config, Dict[str, Set[str]], List[Edit], List[Edit]]:
        """apply() without keeping anything: (config, drained, kept edits, dropped edits)."""
        return with_state(cfg, self.edits)

    def commit(self, kept: List[Edit], dropped: List[Edit]) -> None:
        if not dropped:
            return
        for e in dropped:
            log.warning("overlay: dropped %s: the config has no such backend or service, "
                        "or the edit makes it invalid", pure.describe(e))
        self.dropped += [n for n in pure.names(dropped) if n not in self.dropped]
        self._save(kept)

    @staticmethod
    def names(edits: List[Edit]) -> List[str]:
        return pure.names(edits)

    def remember(self, edit: Edit) -> Optional[str]:
        """Record an accepted edit and write the file; the error text if it could not be
        written (the edit is applied but not durable: status shows it)."""
        return self._save(pure.record(self.edits, edit))

    def _save(self, edits: List[Edit]) -> Optional[str]:
        self.edits = edits
        try:
            write(self.path, edits)
            self.error = None
        except OSError as exc:
            self.error = "cannot write %s: %s" % (self.path, exc)
            log.error("overlay: %s: the change is applied but will not survive a restart",
                      self.error)
        return self.error

    def view(self) -> Dict[str, Any]:
        """GET /status's "overlay"."""
        out: Dict[str, Any] = {"path": self.path, "edits": len(self.edits), "dropped": list(self.dropped)}
        if self.error:
            out["error"] = self.error
        return out


def attach(runtime: Any, file: Optional[str] = None) -> Overlay:
    """Load the overlay of the runtime's DPU and put it on top of the runtime's config,
    before the runtime starts. Raises OverlayError (one line, naming the file)."""
    ov = Overlay.load(file or path(runtime.cfg))
    runtime.use_overlay(ov)
    if ov.edits:
        log.info("overlay %s: %d edit(s) applied on top of the config file%s", ov.path, len(ov.edits),
                 "; dropped %s" % ", ".join(ov.dropped) if ov.dropped else "")
    return ov

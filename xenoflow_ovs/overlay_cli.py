"""The command line of the operator's durable state: `xenoflow state show|clear`,
`xenoflow plan --with-state`, and the weight warnings of `check-config` and `plan`.

cli.py wires these in: `add_parsers(sub)` in build_parser, `add_plan_flag(p)` on the
plan parser, `plan_input(args, cfg)` in its plan and `warn(cfg)` in its check-config."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional, Set, Tuple

from .exitcodes import EXIT_ERROR, EXIT_OK
from .intent import buckets
from .intent import config as config_mod
from .intent import overlay as pure

STOP_NOTE = ("a running controller keeps the state it has in memory and writes it back on its "
             "next edit: stop it first, or restart it after clearing")


def warn(cfg: config_mod.Config, out: Any = None) -> List[str]:
    """Print (to stderr) the weights the bucket tables cannot realise; returns the lines."""
    lines = buckets.weight_warnings_of(cfg)
    for line in lines:
        print("warning: " + line, file=out or sys.stderr)
    return lines


def add_plan_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--with-state", action="store_true",
                   help="apply the operator's overlay (drains, weights, backends changed through "
                   "the API) from the DPU's state directory on top of the file")


def plan_input(args: argparse.Namespace, cfg: config_mod.Config
               ) -> Optional[Tuple[config_mod.Config, Dict[str, Set[str]]]]:
    """The config and the drained backends `plan` renders: the file's alone, or with
    --with-state the file with the overlay on top, as a restarted controller would run it
    (which overlay, and what it dropped, go to stderr). Prints the weight warnings of the
    result. None, after one line naming the file, if the overlay is bad."""
    drained: Dict[str, Set[str]] = {}
    if getattr(args, "with_state", False):
        from . import overlay as overlay_mod
        file = overlay_mod.path(cfg)
        try:
            edits = overlay_mod.read(file)
        except overlay_mod.OverlayError as exc:
            print(str(exc), file=sys.stderr)
            return None
        cfg, drained, kept, dropped = overlay_mod.with_state(cfg, edits)
        print("# with state: %s, %d edit(s) applied%s" % (
            file, len(kept), "; dropped: " + ", ".join(pure.describe(e) for e in dropped) if dropped
            else ""), file=sys.stderr)
    warn(cfg)
    return cfg, drained




def cmd_state(args: argparse.Namespace) -> int:
    from . import overlay as overlay_mod
    from .cli import _load_or_report  # cli imports this module: a late import, not a cycle
    cfg = _load_or_report(args.config)
    if cfg is None:
        return EXIT_ERROR
    file = overlay_mod.path(cfg)
    if args.action == "clear":
        try:
            os.unlink(file)
        except FileNotFoundError:
            print("%s: no overlay, nothing to clear" % file)
            return EXIT_OK
        except OSError as exc:
            print("%s: cannot remove: %s" % (file, exc), file=sys.stderr)
            return EXIT_ERROR
        print("%s: cleared (%s)" % (file, STOP_NOTE))
        return EXIT_OK
    try:
        edits = overlay_mod.read(file)
    except overlay_mod.OverlayError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_ERROR
    _, drained, kept, dropped = overlay_mod.with_state(cfg, edits)
    if args.json:
        print(json.dumps({"path": file, "edits": edits, "dropped": dropped,
                          "drained": {s: sorted(n) for s, n in drained.items()}}, sort_keys=True))
        return EXIT_OK
    print("%s: %d edit(s)%s" % (file, len(edits), "" if os.path.exists(file) else " (no file)"))
    for e in edits:
        print("  %s%s" % (pure.describe(e), "   (dropped on start: the config has no such "
                          "backend, or it makes the config invalid)" if e in dropped else ""))
    return EXIT_OK


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("state", help="the operator's durable state (drains, weights, backends changed "
                       "through the API): show it, or clear it")
    p.add_argument("action", choices=("show", "clear"))
    p.add_argument("-c", "--config", required=True, help="the controller's config (names the DPU and "
                   "its state directory)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_state)

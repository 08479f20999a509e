"""The operator's overlay: changes made to a running controller (API, `xenoflow backend`)
as a list of edits, each keyed by (service, backend), applied on top of the config file.

Pure code; reading and writing the file is xenoflow_ovs/overlay.py. The shape is the
one a fleet's shared intent store would hold for a DPU (a list of keyed, replayable
edits, not a copy of the config), so that store can later take this file's place
without the controller changing how it applies them.

Edits, applied in list order to the config's data:

    {"op": "add",    "service": S, "backend": B, "ip": IP, "mac": MAC, "weight": W}
    {"op": "remove", "service": S, "backend": B}
    {"op": "weight", "service": S, "backend": B, "weight": W}
    {"op": "drain",  "service": S, "backend": B}
    {"op": "limits", "service": S, "limits": {pps, burst, per_bucket_pps, per_bucket_burst} | null}

A `limits` edit names no backend: it sets the service's whole `limits` mapping (null:
none, whatever the file says); the last one per service stands.

Precedence: an edit wins over the file for what it names (a weight set through the API
stays although the file says another one). An edit whose backend (or service) the file
no longer has, or that would make the config invalid, is dropped: it is reported and
the caller rewrites the overlay without it. An `add` of a name the file now defines is
dropped too: the file's definition wins once the operator has written it down.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Set, Tuple

VERSION = 1
OPS = ("add", "remove", "weight", "drain", "limits")
_FIELDS = {"add": ("ip", "mac", "weight"), "remove": (), "weight": ("weight",), "drain": (),
           "limits": ("limits",)}

Edit = Dict[str, Any]


class OverlayError(ValueError):
    """The overlay's content is not an overlay (names what is wrong)."""


def check(doc: Any) -> List[Edit]:
    """The edits of a parsed overlay document; OverlayError names the first problem."""
    if not isinstance(doc, dict) or not isinstance(doc.get("edits"), list):
        raise OverlayError("not an overlay: expected an object with a list \"edits\"")
    if doc.get("version", VERSION) != VERSION:
        raise OverlayError("version %r, this controller reads version %d" % (doc.get("version"), VERSION))
    out = []
    for i, e in enumerate(doc["edits"]):
        where = "edits[%d]" % i
        if not isinstance(e, dict) or e.get("op") not in OPS:
            raise OverlayError("%s: op must be one of %s" % (where, ", ".join(OPS)))
        allowed = ({"op", "service"} | ({"backend"} if e["op"] != "limits" else set())
                   | set(_FIELDS[e["op"]]))
        extra = sorted(set(e) - allowed)
        if extra:
            raise OverlayError("%s: unknown key(s) %s" % (where, ", ".join(extra)))
        if e["op"] == "limits":
            out.append(_checked_limits(e, where))
            continue
        for k in ("service", "backend") + tuple(f for f in _FIELDS[e["op"]] if f != "weight"):
            if not isinstance(e.get(k), str) or not e[k]:
                raise OverlayError("%s: %s must be a non-empty string" % (where, k))
        if "weight" in _FIELDS[e["op"]] and (isinstance(e.get("weight"), bool)
                                            or not isinstance(e.get("weight"), int)):
            if not (e["op"] == "add" and "weight" not in e):
                raise OverlayError("%s: weight must be an integer" % where)
        out.append(dict(e))
    return out


def _checked_limits(e: Edit, where: str) -> Edit:
    """A limits edit's shape (its values are the config parser's to judge, on apply)."""
    if not isinstance(e.get("service"), str) or not e["service"]:
        raise OverlayError("%s: service must be a non-empty string" % where)
    lim = e.get("limits", False)
    if lim is not None and not (isinstance(lim, dict) and all(isinstance(k, str) for k in lim)):
        raise OverlayError("%s: limits must be a mapping or null" % where)
    return dict(e)


def document(edits: List[Edit]) -> Dict[str, Any]:
    return {"version": VERSION, "edits": list(edits)}


def _key(e: Edit) -> Tuple[str, str]:
    # a limits edit is the service's: "" is no backend's name (names are non-empty)
    return e["service"], e.get("backend", "")


def record(edits: List[Edit], edit: Edit) -> List[Edit]:
    """The overlay after one more accepted edit, kept minimal (one edit per backend and
    kind, in the order that replays it). `{"op": "undrain", ...}` removes a drain."""
    key, op = _key(edit), edit["op"]
    mine = [e for e in edits if _key(e) == key]
    rest = [e for e in edits if _key(e) != key]
    if op == "limits":
        return rest + [dict(edit)]
    if op == "undrain":
        return rest + [e for e in mine if e["op"] != "drain"]
    if op == "remove":
        # A backend the overlay itself added (no remove before its add) leaves no trace;
        # one the file defines is remembered as removed.
        from_file = not any(e["op"] == "add" for e in mine) or any(e["op"] == "remove" for e in mine)
        return rest + ([dict(edit)] if from_file else [])
    if op == "add":
        return rest + [e for e in mine if e["op"] == "remove"] + [dict(edit)]
    if op == "weight":
        added = [e for e in mine if e["op"] == "add"]
        if added:  # fold into the add: the backend exists only through the overlay
            merged = dict(added[-1], weight=edit["weight"])
            return rest + [e if e is not added[-1] else merged for e in mine]
        return rest + [e for e in mine if e["op"] != "weight"] + [dict(edit)]
    if op == "drain":
        return rest + [e for e in mine if e["op"] != "drain"] + [dict(edit)]
    raise ValueError("unknown overlay op %r" % op)


def _copy(data: Any) -> Any:
    """A deep copy of YAML-shaped data (dicts, lists, scalars)."""
    if isinstance(data, dict):
        return {k: _copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_copy(v) for v in data]
    return data


def _service(data: Dict[str, Any], name: str) -> Optional[Dict[str, Any]]:
    return next((s for s in data.get("services", []) if s["name"] == name), None)


def _apply_one(data: Dict[str, Any], e: Edit, drained: Dict[str, Set[str]]) -> bool:
    """Apply one edit to `data` (and `drained`) in place; False if it names what is not there."""
    svc = _service(data, e["service"])
    if svc is None:
        return False
    if e["op"] == "limits":
        if e["limits"] is None:
            svc.pop("limits", None)
        else:
            svc["limits"] = dict(e["limits"])
        return True
    names = [b["name"] for b in svc["backends"]]
    if e["op"] == "add":
        if e["backend"] in names:
            return False
        be = {"name": e["backend"], "ip": e["ip"], "mac": e["mac"]}
        if "weight" in e:
            be["weight"] = e["weight"]
        svc["backends"].append(be)
        return True
    if e["backend"] not in names:
        return False
    i = names.index(e["backend"])
    if e["op"] == "remove":
        svc["backends"].pop(i)
        drained.get(e["service"], set()).discard(e["backend"])
    elif e["op"] == "weight":
        svc["backends"][i]["weight"] = e["weight"]
    else:
        drained.setdefault(e["service"], set()).add(e["backend"])
    return True


def apply(data: Dict[str, Any], edits: List[Edit],
          valid: Optional[Callable[[Dict[str, Any]], bool]] = None
          ) -> Tuple[Dict[str, Any], Dict[str, Set[str]], List[Edit], List[Edit]]:
    """The config data with the edits applied: (data, drained, kept edits, dropped edits).

    `valid(data)` (the config parser, for instance) is asked after each edit; an edit
    after which the config would be invalid is dropped like one naming a missing backend,
    so one bad edit cannot take the others (or the controller) down with it."""
    out = _copy(data)
    drained: Dict[str, Set[str]] = {}
    kept: List[Edit] = []
    dropped: List[Edit] = []
    for e in edits:
        trial, trial_drained = _copy(out), {k: set(v) for k, v in drained.items()}
        if _apply_one(trial, e, trial_drained) and (valid is None or e["op"] == "drain" or valid(trial)):
            out, drained = trial, trial_drained
            kept.append(e)
        else:
            dropped.append(e)
    return out, {k: v for k, v in drained.items() if v}, kept, dropped


def names(edits: List[Edit]) -> List[str]:
    """"service/backend" of each edit, once, in order: what status reports as dropped."""
    out: List[str] = []
    for e in edits:
        n = "%s/%s" % _key(e) if e["op"] != "limits" else "%s limits" % e["service"]
        if n not in out:
            out.append(n)
    return out


def describe(e: Edit) -> str:
    if e["op"] == "limits":
        lim = e["limits"]
        return "limits %s %s" % (e["service"], "none" if lim is None else
                                 " ".join("%s=%s" % kv for kv in sorted(lim.items())))
    extra = "".join(" %s=%s" % (k, e[k]) for k in _FIELDS[e["op"]] if k in e)
    return "%s %s/%s%s" % (e["op"], e["service"], e["backend"], extra)

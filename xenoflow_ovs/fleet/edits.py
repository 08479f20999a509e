"""Changes of the fleet's intent as pure functions: (the services as read, the whole
snapshot) -> the services to write, or an exception that writes nothing.

store.Store.change() runs one of these inside a verified transaction (again on a fresh
read when a concurrent edit got in first). Each validates its result against every
DPU's published facts and against the facts of the file it was imported from
(`Fleet.external_ids:facts`), so a change no DPU could take is refused before commit.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Set

from . import agreement, model

Rows = List[Dict[str, Any]]
FLAGS = ("drained", "health", "health_seq", "health_why")


class Conflict(ValueError):
    """The request makes no sense in the current state (HTTP 409)."""


def _carry(old: Rows, new: Rows) -> Rows:
    """The new rows with the drain and health state of the backends both have."""
    flags = {(s["name"], b["name"]): {k: b[k] for k in FLAGS if k in b}
             for s in old for b in s.get("backends", [])}
    for s in new:
        for b in s["backends"]:
            b.update(flags.get((s["name"], b["name"]), {}))
    return new


def _contexts(snap: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Every DPU's published facts, and the import's under the name "<imported file>"."""
    out = {n: d for n, d in snap.get("dpus", {}).items() if d.get("facts")}
    ref = (snap.get("external_ids") or {}).get("facts")
    if ref:
        out["<imported file>"] = {"facts": ref}
    return out


def check(services: List[Dict[str, Any]], snap: Dict[str, Any]) -> None:
    lines = model.validate(services, _contexts(snap))
    if lines:
        raise model.FleetError(lines)


def import_services(services: List[Dict[str, Any]], facts: Optional[str] = None):
    """Replace every service by these (a file's `services:`). Drains and health of the
    backends that stay are kept. `facts`: the file's local part (the import's context)."""
    def mutate(before: Rows, snap: Dict[str, Any]) -> Rows:
        if facts is not None:      # written with the services: the next edits' context
            snap["external_ids"] = dict(snap.get("external_ids") or {}, facts=facts)
        check(services, snap)
        return _carry(before, model.rows_of(services))
    return mutate


def _find(rows: Rows, service: str, backend: Optional[str] = None) -> Dict[str, Any]:
    for s in rows:
        if s["name"] == service:
            if backend is None:
                return s
            for b in s["backends"]:
                if b["name"] == backend:
                    return b
            raise LookupError("no backend %r in service %r" % (backend, service))
    raise LookupError("no service %r" % service)


def _out_of_service(rows: Rows) -> Dict[str, Set[str]]:
    out: Dict[str, Set[str]] = {}
    for s in rows:
        for b in s["backends"]:
            if b.get("drained") or b.get("health") == "down":
                out.setdefault(s["name"], set()).add(b["name"])
    return out


def drain(service: str, backend: str, on: bool = True):
    def mutate(before: Rows, snap: Dict[str, Any]) -> Rows:
        b = _find(before, service, backend)
        if on and not b.get("drained"):
            if model.last_in_service(model.services_of(before), _out_of_service(before), service, backend):
                raise Conflict("cannot drain %s: it is the last backend in service of %s"
                               % (backend, service))
        b["drained"] = on
        return before
    return mutate


def backend_edit(op: str, service: str, backend: str, **fields: Any):
    """add (ip, mac, weight), remove, weight (weight): the same edits as the API's."""
    def mutate(before: Rows, snap: Dict[str, Any]) -> Rows:
        services = model.services_of(before)
        svc = _find(services, service)
        names = [b["name"] for b in svc["backends"]]
        if op == "add":
            if backend in names:
                raise Conflict("service %r already has a backend %r" % (service, backend))
            svc["backends"].append(dict({"name": backend}, **fields))
        elif backend not in names:
            raise LookupError("no backend %r in service %r" % (backend, service))
        elif op == "remove":
            svc["backends"].pop(names.index(backend))
        elif op == "weight":
            svc["backends"][names.index(backend)]["weight"] = fields["weight"]
        else:
            raise ValueError("unknown backend edit %r" % op)
        check(services, snap)
        return _carry(before, model.rows_of(services))
    return mutate


def limits_edit(service: str, limits: Any):
    """A service's rate limits (the YAML's `limits` mapping; None: none), validated like a file."""
    def mutate(before: Rows, snap: Dict[str, Any]) -> Rows:
        services = model.services_of(before)
        svc = _find(services, service)
        if limits is None:
            svc.pop("limits", None)
        else:
            _storable_limits(services.index(svc), limits)
            svc["limits"] = limits
        check(services, snap)
        return _carry(before, model.rows_of(services))
    return mutate


def _storable_limits(i: int, limits: Any) -> None:
    """What the store's `limits` column ({string: integer}) cannot hold, refused before any
    DPU's parser is asked (with no DPU's facts published, none would be)."""
    where = "services[%d].limits" % i
    if not isinstance(limits, dict):
        raise model.FleetError(["%s: must be a mapping" % where])
    bad = ["%s.%s: must be a whole number" % (where, k) for k, v in limits.items()
           if isinstance(v, bool) or not isinstance(v, int)]
    if bad:
        raise model.FleetError(bad)


def agree_health(window: Optional[int] = None):
    """Write the verdicts the agreement rule reaches on the snapshot read."""
    def mutate(before: Rows, snap: Dict[str, Any]) -> Rows:
        for v in agreement.decide(snap, window):
            b = _find(before, v.service, v.backend)
            b["health"] = "up" if v.up else "down"
            b["health_seq"] = int(snap.get("health_seq", 0))
            b["health_why"] = v.why
        return before
    return mutate



def drain_dpu(name: str, on: bool = True, force: bool = False):
    """Take a DPU out of the announcement (on) or put it back. Refused when it would leave
    no DPU announcing the VIPs (a whole-fleet outage), unless `force`."""
    def mutate(before: Rows, snap: Dict[str, Any]) -> Rows:
        dpus = snap.get("dpus", {})
        if name not in dpus:
            raise LookupError("no DPU %r in the store (known: %s)"
                              % (name, ", ".join(sorted(dpus)) or "none"))
        drained = set(snap.get("drained_dpus") or [])
        if on and name not in drained and not force:
            others = [n for n, d in dpus.items() if n != name and n not in drained and d.get("announced")]
            if not others:
                raise Conflict("draining %s would leave no DPU announcing the VIPs (no other DPU announces "
                               "them now); --force to drain it anyway" % name)
        (drained.add if on else drained.discard)(name)
        snap["drained_dpus"] = sorted(drained)
        return before
    return mutate

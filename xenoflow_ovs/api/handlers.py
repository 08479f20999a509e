"""The API's routes over the running controller. The OpenAPI document
(openapi.yaml beside this file) describes exactly these; a test checks the
live server against it.

Invalid requests get a 4xx with a message and change nothing: every edit is
validated like a config file, and applied as one all-or-nothing transition.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Optional, Tuple

from ..controller.runtime import Conflict, TransitionError
from ..intent import buckets, render
from ..intent import config as config_mod

OPENAPI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openapi.yaml")
Reply = Tuple[Any, ...]
LIMIT_KEYS = ("pps", "burst", "per_bucket_pps", "per_bucket_burst")   # a service's `limits` keys


def _error(code: int, message: str, **extra: Any) -> Reply:
    return code, dict(extra, error=message)


def _guard(fn: Any) -> Any:
    """Map the runtime's (and the fleet store's) exceptions onto HTTP statuses."""
    from ..fleet import edits as fleet_edits
    from ..fleet.model import FleetError
    from ..fleet.store import StoreError

    def wrapped(body: Any, **params: str) -> Reply:
        try:
            return fn(body, **params)
        except config_mod.ConfigError as exc:
            return _error(400, "the change makes an invalid config", errors=exc.lines())
        except FleetError as exc:
            return _error(400, "the change does not fit every DPU of the fleet", errors=exc.lines)
        except fleet_edits.Conflict as exc:
            return _error(409, str(exc))
        except StoreError as exc:
            return _error(503, str(exc))
        except LookupError as exc:
            return _error(404, str(exc.args[0]) if exc.args else str(exc))
        except Conflict as exc:
            return _error(409, str(exc))
        except TransitionError as exc:
            return _error(503, str(exc))
    return wrapped


def _object(body: Any, required: Tuple[str, ...], optional: Tuple[str, ...] = ()) -> Dict[str, Any]:
    if not isinstance(body, dict):
        raise config_mod.ConfigError([("<body>", "must be a JSON object", 0)], source="<api>")
    problems = [("<body>.%s" % k, "missing", 0) for k in required if k not in body]
    problems += [("<body>.%s" % k, "unknown key", 0) for k in body if k not in required + optional]
    if problems:
        raise config_mod.ConfigError(problems, source="<api>")
    return body


def _service_index(data: Dict[str, Any], service: str) -> int:
    for i, s in enumerate(data["services"]):
        if s["name"] == service:
            return i
    raise LookupError("no service %r" % service)


def _backend_index(data: Dict[str, Any], si: int, backend: str) -> int:
    for i, b in enumerate(data["services"][si]["backends"]):
        if b["name"] == backend:
            return i
    raise LookupError("no backend %r in service %r" % (backend, data["services"][si]["name"]))


def _limits_body(body: Any) -> Any:
    """PUT .../limits: the YAML's `limits` mapping as it is: the config parser judges it like
    the file's (its errors name services[i].limits.KEY), so nothing is checked twice."""
    return body


def _set_limits(svc: Dict[str, Any], limits: Optional[Dict[str, Any]]) -> None:
    """A service's data with these limits (None: none)."""
    if limits is None:
        svc.pop("limits", None)
    else:
        svc["limits"] = limits


def _describe_limits(limits: Any) -> str:
    if isinstance(limits, dict):
        return " ".join("%s=%s" % kv for kv in sorted(limits.items()))
    return "none" if limits is None else repr(limits)


def install(api: Any, rt: Any, status: Any, reload: Callable[[], Dict[str, Any]],
            metrics: Any = None, fleet: Any = None) -> None:
    """The routes over a running controller: `rt` its runtime (runtime.Runtime),
    `status` its status (status.Status: `.snapshot()`, `.check()`), `reload` the
    reload from its config file, `metrics` its metrics.Metrics (or None), `fleet` the
    follower of the fleet's store (fleet/follower.py) when the DPU is in one: backend
    edits are then store transactions, answered once this DPU applied them."""
    _install_views(api, rt, status)
    if fleet is not None:
        _install_fleet_edits(api, fleet, reload)
    else:
        _install_edits(api, rt, reload)
    if metrics is not None:
        api.route("GET", "/metrics", lambda body: (200, metrics.exposition(), metrics.content_type))
    api.route("GET", "/openapi.yaml", lambda body: (200, open(OPENAPI, "rb").read(), "application/yaml"))


def _opt(addr: Any) -> Optional[str]:
    return None if addr is None else str(addr)


def _install_views(api: Any, rt: Any, status: Any) -> None:
    def services_view() -> Dict[str, Any]:
        cfg, plan = rt.cfg, rt.in_force
        counters = status.snapshot().get("services", {})
        tables = dict(plan.tables)
        out = []
        for s in cfg.services:
            seen = counters.get(s.name, {})
            out.append({
                "name": s.name, "vip": _opt(s.vip), "vip6": _opt(s.vip6), "vip_mac": s.vip_mac,
                "protocol": s.protocol, "protocols": list(s.protocols),
                "port": s.port, "ingress": s.ingress, "egress": s.egress,
                "policy": {"kind": s.policy.kind, "bits": s.policy.bits},
                "warnings": buckets.weight_warnings(s),
                "buckets": list(tables[s.name]) if s.name in tables else [],
                "limits": {k: getattr(s.limits, k) for k in LIMIT_KEYS if getattr(s.limits, k) is not None}
                or None,
                "backends": [dict(seen.get(b.name, {}), name=b.name, ip=_opt(b.ip), ip6=_opt(b.ip6),
                                  mac=b.mac, weight=b.weight) for b in s.backends]})
        return {"services": out}

    api.route("GET", "/status", lambda body: (200, status.snapshot()))
    api.route("GET", "/check", lambda body: (200, status.check()))
    api.route("GET", "/services", lambda body: (200, services_view()))

    @_guard
    def get_service(body: Any, service: str) -> Reply:
        for s in services_view()["services"]:
            if s["name"] == service:
                return 200, s
        raise LookupError("no service %r" % service)
    api.route("GET", "/services/{service}", get_service)

    @_guard
    def get_plan(body: Any) -> Reply:
        p = rt.in_force     # the whole plan, rendered: walked once, never copied
        return 200, {"ovs": {br.name: [render.to_ofctl(f) for f in p.iter_flows(br.name)]
                             for br in rt.cfg.bridges},
                     "eswitch": [render.describe_entry(e) for e in p.iter_entries()],
                     "tables": {name: list(tbl) for name, tbl in p.tables}}
    api.route("GET", "/plan", get_plan)


def _install_edits(api: Any, rt: Any, reload: Callable[[], Dict[str, Any]]) -> None:
    @_guard
    def add_backend(body: Any, service: str) -> Reply:
        spec = _object(body, ("name", "mac"), ("ip", "ip6", "weight"))

        def mutate(data: Dict[str, Any]) -> None:
            si = _service_index(data, service)
            data["services"][si]["backends"].append(dict(spec))
        remember = dict(spec, op="add", service=service, backend=spec["name"])
        del remember["name"]
        return 201, rt.edit(mutate, "API: add backend %s/%s" % (service, spec["name"]), remember)
    api.route("POST", "/services/{service}/backends", add_backend)

    @_guard
    def remove_backend(body: Any, service: str, backend: str) -> Reply:
        def mutate(data: Dict[str, Any]) -> None:
            si = _service_index(data, service)
            data["services"][si]["backends"].pop(_backend_index(data, si, backend))
        return 200, rt.edit(mutate, "API: remove backend %s/%s" % (service, backend),
                            {"op": "remove", "service": service, "backend": backend})
    api.route("DELETE", "/services/{service}/backends/{backend}", remove_backend)

    @_guard
    def set_weight(body: Any, service: str, backend: str) -> Reply:
        spec = _object(body, ("weight",))

        def mutate(data: Dict[str, Any]) -> None:
            si = _service_index(data, service)
            data["services"][si]["backends"][_backend_index(data, si, backend)]["weight"] = spec["weight"]
        return 200, rt.edit(mutate, "API: weight %s/%s=%s" % (service, backend, spec["weight"]),
                            {"op": "weight", "service": service, "backend": backend,
                             "weight": spec["weight"]})
    api.route("PUT", "/services/{service}/backends/{backend}/weight", set_weight)

    for action, on in (("drain", True), ("undrain", False)):
        def drain(body: Any, service: str, backend: str, on: bool = on) -> Reply:
            return 200, rt.drain(service, backend, on)
        api.route("POST", "/services/{service}/backends/{backend}/" + action, _guard(drain))

    def limits_edit(service: str, limits: Any) -> Reply:
        def mutate(data: Dict[str, Any]) -> None:
            _set_limits(data["services"][_service_index(data, service)], limits)
        return 200, rt.edit(mutate, "API: limits %s %s" % (service, _describe_limits(limits)),
                            {"op": "limits", "service": service, "limits": limits})
    api.route("PUT", "/services/{service}/limits",
              _guard(lambda body, service: limits_edit(service, _limits_body(body))))
    api.route("DELETE", "/services/{service}/limits",
              _guard(lambda body, service: limits_edit(service, None)))

    @_guard
    def post_reload(body: Any) -> Reply:
        return 200, reload()
    api.route("POST", "/reload", post_reload)


def _install_fleet_edits(api: Any, fleet: Any, reload: Callable[[], Dict[str, Any]]) -> None:
    """The same routes, bodies and errors; the edit is committed to the store (validated
    against every DPU's facts first) and every DPU applies it."""
    from ..fleet import edits as fleet_edits

    @_guard
    def add_backend(body: Any, service: str) -> Reply:
        spec = dict(_object(body, ("name", "mac"), ("ip", "ip6", "weight")))
        name = spec.pop("name")
        return 201, fleet.edit(fleet_edits.backend_edit("add", service, name, **spec),
                               "API: add backend %s/%s" % (service, name))
    api.route("POST", "/services/{service}/backends", add_backend)

    @_guard
    def remove_backend(body: Any, service: str, backend: str) -> Reply:
        return 200, fleet.edit(fleet_edits.backend_edit("remove", service, backend),
                               "API: remove backend %s/%s" % (service, backend))
    api.route("DELETE", "/services/{service}/backends/{backend}", remove_backend)

    @_guard
    def set_weight(body: Any, service: str, backend: str) -> Reply:
        spec = _object(body, ("weight",))
        return 200, fleet.edit(fleet_edits.backend_edit("weight", service, backend, weight=spec["weight"]),
                               "API: weight %s/%s=%s" % (service, backend, spec["weight"]))
    api.route("PUT", "/services/{service}/backends/{backend}/weight", set_weight)

    for action, on in (("drain", True), ("undrain", False)):
        def drain(body: Any, service: str, backend: str, on: bool = on) -> Reply:
            return 200, fleet.edit(fleet_edits.drain(service, backend, on),
                                   "%s %s/%s" % ("drain" if on else "undrain", service, backend))
        api.route("POST", "/services/{service}/backends/{backend}/" + action, _guard(drain))

    def limits_edit(service: str, limits: Any) -> Reply:
        return 200, fleet.edit(fleet_edits.limits_edit(service, limits),
                               "API: limits %s %s" % (service, _describe_limits(limits)))
    api.route("PUT", "/services/{service}/limits",
              _guard(lambda body, service: limits_edit(service, _limits_body(body))))
    api.route("DELETE", "/services/{service}/limits",
              _guard(lambda body, service: limits_edit(service, None)))

    @_guard
    def post_reload(body: Any) -> Reply:
        return 200, reload()
    api.route("POST", "/reload", post_reload)

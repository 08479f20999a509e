"""The fleet's intent as the store holds it, and what a DPU makes of it. Pure.

The store (xenoflow.ovsschema) holds services and backends as typed rows, the drains,
the agreed health of every backend, and one row per DPU. A DPU's config is its local
file (ports, bridges, eSwitch) with the store's services in place of the file's: the
same parser validates both, so a DPU's tables are a pure function of the store's
contents and its own facts. Every function here works on plain data (the snapshot a
store read returns), so the mapping is tested without a server.

Snapshot:
    {"version": int, "health_seq": int, "health_window": int,
     "services": [{"name", "vip", "vip6": [..], "vip_mac", "protocols": [..], "port",
                   "ingress", "egress", "policy_kind", "policy_bits", "health": {str: str},
                   "limits": {str: int}, "position",
                   "backends": [{"name", "ip", "ip6": [..], "mac", "weight", "position", "drained",
                                 "health": "up"|"down", "health_seq", "health_why"}]}],
     "dpus": {name: {"facts", "applied_version", "state", "stale", "verdict", "digests",
                     "observations", "observed_seq", ...}}}
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set

from ..intent import buckets
from ..intent import capacity as capacity_mod
from ..intent import config as config_mod
from . import agreement

SCHEMA_NAME = "xenoflow"
# health keys of a service, and how their text in the store's map turns back into YAML values
_HEALTH_TYPES = {"enabled": "bool", "query": "str", "qtype": "str", "expect": "str", "interval": "float",
                 "timeout": "float", "rise": "int", "fall": "int", "source": "str", "source6": "str",
                 "protocols": "list", "families": "list"}


class FleetError(ValueError):
    """An edit or an import the fleet cannot take; `lines` name each problem and where."""

    def __init__(self, lines: List[str]):
        super().__init__("; ".join(lines))
        self.lines = list(lines)


@dataclass(frozen=True)
class Intent:
    """What a DPU applies from one version of the store."""
    version: int
    services: List[Dict[str, Any]]                      # config data, as in a file's `services:`
    drained: Dict[str, Set[str]] = field(default_factory=dict)
    down: Dict[str, Set[str]] = field(default_factory=dict)   # agreed health: out of service


# ---------------------------------------------------------------- store rows <-> config data


def _health_to_store(h: Dict[str, Any]) -> Dict[str, str]:
    out = {}
    for k, v in h.items():
        if v is None:
            continue
        if isinstance(v, bool):
            out[k] = "true" if v else "false"
        elif isinstance(v, (list, tuple)):
            out[k] = ",".join(str(x) for x in v)
        else:
            out[k] = str(v)
    return out


def _health_from_store(m: Dict[str, str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, text in m.items():
        kind = _HEALTH_TYPES.get(k, "str")
        try:
            if kind == "bool":
                out[k] = {"true": True, "false": False}[text]
            elif kind == "float":
                out[k] = float(text)
            elif kind == "int":
                out[k] = int(text)
            elif kind == "list":
                out[k] = text.split(",") if text else []
            else:
                out[k] = text
        except (KeyError, ValueError):
            out[k] = text      # the parser names the bad value and its key path
    return out


def rows_of(services: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The store's service rows (backends inside) of a file's `services:` data."""
    out = []
    for i, s in enumerate(services):
        protocols = s.get("protocols") or [s.get("protocol", "udp")]
        policy = s.get("policy") or {}
        out.append({
            "name": s["name"], "vip": str(s.get("vip") or ""),
            "vip6": [str(s["vip6"])] if s.get("vip6") else [],
            "vip_mac": s["vip_mac"], "protocols": sorted(protocols), "port": int(s["port"]),
            "ingress": s["ingress"], "egress": s["egress"],
            "policy_kind": policy.get("kind", "src-ip-bits"), "policy_bits": int(policy.get("bits", 1)),
            "health": _health_to_store(s.get("health") or {}), "limits": dict(s.get("limits") or {}),
            "position": i,
            "backends": [{"name": b["name"], "ip": str(b.get("ip") or ""),
                          "ip6": [str(b["ip6"])] if b.get("ip6") else [], "mac": b["mac"],
                          "weight": int(b.get("weight", 1)), "position": j}
                         for j, b in enumerate(s["backends"])],
        })
    return out


def services_of(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """A file's `services:` data from the store's service rows (in their stored order)."""
    out = []
    for s in sorted(rows, key=lambda r: (r.get("position", 0), r["name"])):
        svc: Dict[str, Any] = {"name": s["name"], "vip_mac": s["vip_mac"]}
        if s.get("vip"):              # "" in the store: an IPv6-only service
            svc["vip"] = s["vip"]
        order = list(config_mod.PROTOCOLS)      # the store holds a set: back in canonical order
        protocols = sorted(s.get("protocols") or ["udp"], key=order.index)
        if len(protocols) == 1:
            svc["protocol"] = protocols[0]
        else:                 # the parser says whether this controller serves both
            svc["protocols"] = protocols
        if s.get("vip6"):
            svc["vip6"] = s["vip6"][0]
        svc.update({"port": s["port"], "ingress": s["ingress"], "egress": s["egress"],
                    "policy": {"kind": s["policy_kind"], "bits": s["policy_bits"]},
                    "backends": [_backend_of(b) for b in sorted(
                        s.get("backends", []), key=lambda b: (b.get("position", 0), b["name"]))]})
        if s.get("health"):
            svc["health"] = _health_from_store(s["health"])
        if s.get("limits"):
            svc["limits"] = dict(s["limits"])
        out.append(svc)
    return out


def _backend_of(b: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {"name": b["name"]}
    if b.get("ip"):
        out["ip"] = b["ip"]
    if b.get("ip6"):
        out["ip6"] = b["ip6"][0]
    out.update({"mac": b["mac"], "weight": b["weight"]})
    return out


def intent_of(snap: Dict[str, Any]) -> Intent:
    drained: Dict[str, Set[str]] = {}
    down: Dict[str, Set[str]] = {}
    for s in snap.get("services", []):
        for b in s.get("backends", []):
            if b.get("drained"):
                drained.setdefault(s["name"], set()).add(b["name"])
            if b.get("health") == "down":
                down.setdefault(s["name"], set()).add(b["name"])
    return Intent(int(snap.get("version", 0)), services_of(snap.get("services", [])), drained, down)


# ---------------------------------------------------------------- a DPU's config


def local_data(cfg: config_mod.Config) -> Dict[str, Any]:
    """A DPU's own part of its config (everything but the services): its facts."""
    data = config_mod.to_data(cfg)
    data.pop("services", None)
    return data


def facts_of(cfg: config_mod.Config) -> str:
    """What a DPU publishes in its row so a writer can validate edits for it."""
    data = local_data(cfg)
    data.pop("fleet", None)          # where the store is: no business of other writers
    return json.dumps(data, sort_keys=True)


def compose(local: Dict[str, Any], services: List[Dict[str, Any]], base_dir: str = ".",
            source: str = "<fleet>") -> config_mod.Config:
    """The DPU's config: its local part with these services. ConfigError names the key path."""
    data = dict(local)
    data["services"] = services
    return config_mod.from_plain(data, base_dir=base_dir, source=source)


def validate(services: List[Dict[str, Any]], dpus: Dict[str, Dict[str, Any]],
             drained: Optional[Dict[str, Set[str]]] = None) -> List[str]:
    """Problems of these services on every DPU that published its facts, each line naming
    the DPU and the key path; [] when every DPU can take them."""
    lines: List[str] = []
    for name in sorted(dpus):
        facts = dpus[name].get("facts")
        if not facts:
            continue
        try:
            local = json.loads(facts)
        except ValueError:
            lines.append("dpu %s: its published facts are not JSON (a controller of another release?)"
                         % name)
            continue
        try:
            cfg = compose(local, services, source="<dpu %s>" % name)
        except config_mod.ConfigError as exc:
            lines += ["dpu %s: %s: %s" % (name, path, msg) for path, msg, _ in exc.problems]
            continue
        lines += ["dpu %s: %s" % (name, w) for w in capacity_mod.eswitch_warnings(cfg)]
    return lines


def last_in_service(services: List[Dict[str, Any]], out: Dict[str, Set[str]], service: str,
                    backend: str) -> bool:
    """Taking `backend` out would leave `service` with no backend of weight > 0 in service."""
    for s in services:
        if s["name"] == service:
            return not [b for b in s["backends"] if int(b.get("weight", 1)) > 0 and b["name"] != backend
                        and b["name"] not in out.get(service, set())]
    return False


# ---------------------------------------------------------------- identical tables


def service_digest(svc: config_mod.Service, table: buckets.Table) -> str:
    """What decides where a client of this service goes, hashed: its address, its policy
    and its bucket table with each backend's address. Local facts (port numbers, bridges)
    are left out: two DPUs with equal digests send every client to the same backend."""
    by_name = {b.name: b for b in svc.backends}
    h = hashlib.sha256()
    # an IPv4, single-transport service hashes as it always has: DPUs on older versions agree
    if svc.vip6 is None and len(svc.protocols) == 1:
        h.update(repr((svc.name, str(svc.vip), svc.protocol, svc.port, svc.policy.kind,
                       svc.policy.bits)).encode())
    else:
        h.update(repr((svc.name, str(svc.vip), str(svc.vip6), svc.protocols, svc.port, svc.policy.kind,
                       svc.policy.bits)).encode())
    for name in table:
        b = by_name[name]
        h.update(("%s %s %s%s;" % (name, b.ip, b.mac.lower(), " " + str(b.ip6) if b.ip6 else "")).encode())
    return h.hexdigest()[:16]


def digests(cfg: config_mod.Config, tables: Dict[str, buckets.Table]) -> Dict[str, str]:
    return {s.name: service_digest(s, tables[s.name]) for s in cfg.services if s.name in tables}


def differing(dpus: Dict[str, Dict[str, Any]], version: int) -> Dict[str, List[str]]:
    """Services whose digest differs between the DPUs that applied `version`:
    {service: [the DPUs in a minority, or all of them when there is no majority]}."""
    by_service: Dict[str, Dict[str, List[str]]] = {}
    for name, d in dpus.items():
        if d.get("applied_version") != version:
            continue
        for svc, dig in (d.get("digests") or {}).items():
            by_service.setdefault(svc, {}).setdefault(dig, []).append(name)
    out: Dict[str, List[str]] = {}
    for svc, groups in by_service.items():
        if len(groups) < 2:
            continue
        ranked = sorted(groups.values(), key=len, reverse=True)
        if len(ranked[0]) > len(ranked[1]):
            out[svc] = sorted(n for g in ranked[1:] for n in g)
        else:
            out[svc] = sorted(n for g in ranked for n in g)
    return out


def dpu_rows(snap: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Every DPU's row of a snapshot, as `fleet status` and a DPU's own status show it:
    version, state, verdict, announcement and BGP peers, drained, and whether its health
    observations are recent (`heard`; `behind_by` fleet rounds)."""
    fresh = set(agreement.fresh(snap["dpus"], snap["health_seq"], snap.get("health_window") or
                                agreement.DEFAULT_WINDOW))
    out = {}
    for name, d in sorted(snap["dpus"].items()):
        out[name] = {"applied_version": d.get("applied_version", 0), "state": d.get("state"),
                     "stale": d.get("stale"), "verdict": d.get("verdict"),
                     "announced": d.get("announced"), "error": d.get("error") or None,
                     "rejected_version": (d.get("rejected_version") or [None])[0],
                     "heard": name in fresh, "behind_by": snap["health_seq"] - d.get("observed_seq", 0),
                     "digests": d.get("digests") or {}, "observations": d.get("observations") or {},
                     "packets": d.get("counters") or {}, "drained": name in snap.get("drained_dpus", ()),
                     "announce_why": d.get("announce_why") or None, "quiet": d.get("quiet"),
                     "bgp": d.get("bgp") or {}}
    return out


def lagging(dpus: Dict[str, Dict[str, Any]], version: int) -> Dict[str, str]:
    """DPUs not on `version`, and why: {name: text}."""
    out = {}
    for name, d in sorted(dpus.items()):
        applied = d.get("applied_version", 0)
        if d.get("state") == "rejected":
            out[name] = "rejected version %s: %s" % (
                (d.get("rejected_version") or ["?"])[0] if isinstance(d.get("rejected_version"), list)
                else d.get("rejected_version"), d.get("error") or "?")
        elif applied != version:
            out[name] = "on version %d of %d" % (applied, version)
    return out


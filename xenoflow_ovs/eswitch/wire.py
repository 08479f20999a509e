"""eswitchd's wire format: the plan's pipes, entries and changes as JSON objects.

One request and one reply per line (newline-delimited JSON) over an owner-only unix
socket. Both sides use these functions: the daemon (daemon.py) and the controller's
client (client.py). Entries travel with their owner's cookie, so a listing tells a
restarted controller what it may adopt.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List

from ..intent.plan import Change, Entry, Meter, Pipe

METER_OPS = ("add_meter", "update_meter", "remove_meter")


def pipe_to_wire(p: Pipe) -> Dict[str, Any]:
    out = {"port": p.port, "name": p.name, "mask": [list(m) for m in p.mask],
           "fwd_port": p.fwd_port, "nr_entries": p.nr_entries, "owner": p.owner}
    # a metered pipe's stage fields only when set: an older eswitchd reads the plain form
    if p.meter or p.fwd_pipe or p.drop or p.miss:
        out.update(meter=p.meter, fwd_pipe=p.fwd_pipe, drop=p.drop, miss=list(p.miss))
    return out


def pipe_from_wire(d: Dict[str, Any]) -> Pipe:
    return Pipe(port=d["port"], name=d["name"], mask=tuple((str(f), int(m)) for f, m in d["mask"]),
                fwd_port=d["fwd_port"], nr_entries=int(d["nr_entries"]), owner=d["owner"],
                meter=str(d.get("meter") or ""), fwd_pipe=d.get("fwd_pipe"), drop=bool(d.get("drop")),
                miss=tuple(d.get("miss") or ()))


def entry_to_wire(e: Entry) -> Dict[str, Any]:
    out = {"port": e.port, "pipe": e.pipe, "match": [list(m) for m in e.match], "kind": e.kind,
           "owner": e.owner, "fwd": list(e.fwd), "priority": e.priority, "dst_mac": e.dst_mac,
           "backend": e.backend, "bucket": e.bucket, "cookie": e.cookie}
    if e.meter is not None:
        out["meter"] = list(e.meter)
    if e.shared_meter is not None:
        out["shared_meter"] = e.shared_meter
    return out


def _rate(v: Any) -> Any:
    return None if v is None else (int(v[0]), int(v[1]))


def entry_from_wire(d: Dict[str, Any]) -> Entry:
    sm = d.get("shared_meter")
    return Entry(port=d["port"], pipe=d["pipe"],
                 match=tuple((str(f), int(v), int(m)) for f, v, m in d["match"]),
                 kind=d["kind"], owner=d["owner"], fwd=tuple(d["fwd"]),
                 priority=int(d.get("priority") or 0), dst_mac=d.get("dst_mac"),
                 backend=d.get("backend"), bucket=d.get("bucket"), meter=_rate(d.get("meter")),
                 shared_meter=None if sm is None else int(sm))


def meter_to_wire(m: Meter) -> Dict[str, Any]:
    return {"port": m.where, "meter_id": m.meter_id, "pps": m.pps, "burst": m.burst, "owner": m.owner,
            "scope": m.scope}


def meter_from_wire(d: Dict[str, Any]) -> Meter:
    return Meter("eswitch", str(d["port"]), int(d["meter_id"]), int(d["pps"]), int(d["burst"]),
                 str(d["owner"]), str(d.get("scope") or "service"))


def _item_to_wire(x: Any) -> Dict[str, Any]:
    if isinstance(x, Pipe):
        return pipe_to_wire(x)
    return meter_to_wire(x) if isinstance(x, Meter) else entry_to_wire(x)


def change_to_wire(c: Change) -> Dict[str, Any]:
    out = {"op": c.op, "item": _item_to_wire(c.item)}
    if c.old is not None:
        out["old"] = _item_to_wire(c.old)
    return out


def change_from_wire(d: Dict[str, Any]) -> Change:
    if d["op"] in ("add_pipe", "remove_pipe"):
        conv: Any = pipe_from_wire
    else:
        conv = meter_from_wire if d["op"] in METER_OPS else entry_from_wire
    old = d.get("old")
    return Change("eswitch", d["op"], conv(d["item"]), conv(old) if old else None)


# ---------------------------------------------------------------- compact runs
#
# A service's buckets travel as runs: consecutive bucket changes of one op on one pipe
# share everything but the match value and the target, so a run carries those once and
# each bucket as [value, dst_mac, backend, bucket]. At 2^16 buckets this is a quarter of
# the bytes of the per-change form and a fraction of the time on both ends. eswitchd
# says in its hello whether it reads runs ("runs" in "features"); the per-change form
# stays valid for every client.

RUN_OPS = ("add", "update", "remove")


def _run_key(c: Change) -> Any:
    e = c.item
    if (c.op not in RUN_OPS or not isinstance(e, Entry) or e.pipe == "root" or e.kind != "bucket"
            or len(e.match) != 1):
        return None
    field, _, mask = e.match[0]
    return (c.op, e.port, e.pipe, e.owner, e.fwd, field, mask, e.meter, e.shared_meter)


def changes_to_wire(changes: Iterable[Change], runs: bool = True) -> List[Dict[str, Any]]:
    """The request's change list; with `runs`, bucket changes grouped as runs. The old
    item of an update does not travel: eswitchd updates from what it has installed."""
    out: List[Dict[str, Any]] = []
    last: Any = None
    for c in changes:
        key = _run_key(c) if runs else None
        if key is None:
            out.append(change_to_wire(Change(c.plane, c.op, c.item)))
            last = None
            continue
        e = c.item
        if key != last:
            op, port, pipe, owner, fwd, field, mask, meter, shared = key
            run = {"port": port, "pipe": pipe, "owner": owner, "fwd": list(fwd), "field": field, "mask": mask}
            if meter is not None:
                run["meter"] = list(meter)
            if shared is not None:
                run["shared_meter"] = shared
            out.append({"op": op, "run": run, "items": []})
            last = key
        out[-1]["items"].append([e.match[0][1], e.dst_mac, e.backend, e.bucket])
    return out


def changes_from_wire(changes: List[Any]) -> List[Change]:
    """Either form, item by item; errors name the change (changes[i]) that is malformed."""
    out: List[Change] = []
    for i, d in enumerate(changes):
        try:
            if isinstance(d, dict) and "run" in d:
                out.extend(_run_from_wire(d))
            else:
                out.append(change_from_wire(d))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValueError("changes[%d]: malformed (%s: %s)" % (i, type(exc).__name__, exc))
    return out


def _run_from_wire(d: Dict[str, Any]) -> List[Change]:
    op = d["op"]
    if op not in RUN_OPS:
        raise ValueError("a run's op is add, update or remove, not %r" % (op,))
    r = d["run"]
    port, pipe, owner = str(r["port"]), str(r["pipe"]), str(r["owner"])
    fwd, field, mask = tuple(r["fwd"]), str(r["field"]), int(r["mask"])
    meter, shared = _rate(r.get("meter")), r.get("shared_meter")
    shared = None if shared is None else int(shared)
    # A run names a handful of backends and MACs 2^16 times: eswitchd keeps every entry,
    # so each distinct string is kept once (JSON decoding makes a new one per occurrence).
    once: Dict[Any, Any] = {}
    return [Change("eswitch", op, Entry(port=port, pipe=pipe, match=((field, int(v), mask),), kind="bucket",
                                        owner=owner, fwd=fwd, dst_mac=once.setdefault(mac, mac),
                                        backend=once.setdefault(backend, backend), bucket=bucket,
                                        meter=meter, shared_meter=shared))
            for v, mac, backend, bucket in d["items"]]

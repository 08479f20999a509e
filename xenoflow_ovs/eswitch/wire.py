"""eswitchd's wire format: the plan's pipes, entries and changes as JSON objects.

One request and one reply per line (newline-delimited JSON) over an owner-only unix
socket. Both sides use these functions: the daemon (daemon.py) and the controller's
client (client.py). Entries travel with their owner's cookie, so a listing tells a
restarted controller what it may adopt.
"""

from __future__ import annotations

from typing import Any, Dict

from ..intent.plan import Change, Entry, Pipe


def pipe_to_wire(p: Pipe) -> Dict[str, Any]:
    return {"port": p.port, "name": p.name, "mask": [list(m) for m in p.mask],
            "fwd_port": p.fwd_port, "nr_entries": p.nr_entries, "owner": p.owner}


def pipe_from_wire(d: Dict[str, Any]) -> Pipe:
    return Pipe(port=d["port"], name=d["name"], mask=tuple((str(f), int(m)) for f, m in d["mask"]),
                fwd_port=d["fwd_port"], nr_entries=int(d["nr_entries"]), owner=d["owner"])


def entry_to_wire(e: Entry) -> Dict[str, Any]:
    return {"port": e.port, "pipe": e.pipe, "match": [list(m) for m in e.match], "kind": e.kind,
            "owner": e.owner, "fwd": list(e.fwd), "priority": e.priority, "dst_mac": e.dst_mac,
            "backend": e.backend, "bucket": e.bucket, "cookie": e.cookie}


def entry_from_wire(d: Dict[str, Any]) -> Entry:
    return Entry(port=d["port"], pipe=d["pipe"],
                 match=tuple((str(f), int(v), int(m)) for f, v, m in d["match"]),
                 kind=d["kind"], owner=d["owner"], fwd=tuple(d["fwd"]),
                 priority=int(d.get("priority") or 0), dst_mac=d.get("dst_mac"),
                 backend=d.get("backend"), bucket=d.get("bucket"))


def change_to_wire(c: Change) -> Dict[str, Any]:
    item = pipe_to_wire(c.item) if isinstance(c.item, Pipe) else entry_to_wire(c.item)
    out = {"op": c.op, "item": item}
    if c.old is not None:
        out["old"] = entry_to_wire(c.old) if isinstance(c.old, Entry) else pipe_to_wire(c.old)
    return out


def change_from_wire(d: Dict[str, Any]) -> Change:
    is_pipe = d["op"] in ("add_pipe", "remove_pipe")
    conv = pipe_from_wire if is_pipe else entry_from_wire
    old = d.get("old")
    return Change("eswitch", d["op"], conv(d["item"]), conv(old) if old else None)

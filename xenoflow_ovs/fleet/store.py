"""The fleet's intent store: a clustered ovsdb-server (Raft) holding xenoflow.ovsschema,
reached through the `ovs` IDL with ovsdbapp (its connection thread, reconnection with
back-off, TRY_AGAIN retries).

Every remote of the cluster is given (`tcp:A:6640,tcp:B:6640,...` or unix sockets), and
the IDL is not leader-only: it reads from whichever member it reaches and sends writes
through it, so a leader election stalls writes for about one election timeout, not for a
reconnection back-off (reads never stall).

Transactions are ovsdbapp commands that run on the replica in its connection thread and
verify what they read:
  - every change of the intent (import, backend edits, drains, agreed health) reads the
    services, verifies `Fleet.version` and writes version + 1. Two concurrent edits both
    read the same version; the second one's commit fails verification, ovsdbapp runs it
    again on the fresh replica (where the first edit is visible) and it commits on top,
    so no edit is lost, and each commit has its own version;
  - a health observation verifies and bumps `Fleet.health_seq` (the fleet's clock);
  - a DPU's own row is written by that DPU alone, without verification.
A mutation function is pure (fleet/edits.py): it gets the services as read and returns
them changed, or raises; raising aborts the transaction and nothing is written.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from ovs.db import idl as ovs_idl
from ovsdbapp import exceptions
from ovsdbapp.backend import ovs_idl as backend
from ovsdbapp.backend.ovs_idl import command, connection

from . import agreement, model

log = logging.getLogger("xenoflow.fleet")

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "xenoflow.ovsschema")
PROBE_MS = 2000       # a silent member (partitioned, stopped) is given up after ~2 probes

Mutate = Callable[[List[Dict[str, Any]], Dict[str, Any]], List[Dict[str, Any]]]

_SERVICE_COLS = ("name", "vip", "vip6", "vip_mac", "protocols", "port", "ingress", "egress", "policy_kind",
                 "policy_bits", "health", "limits", "position")
_BACKEND_COLS = ("name", "ip", "ip6", "mac", "weight", "position", "drained", "health", "health_seq",
                 "health_why")
_BACKEND_DEFAULTS = {"drained": False, "health": "up", "health_seq": 0, "health_why": ""}
DPU_COLS = ("name", "facts", "driver", "ports", "capacity", "applied_version", "state",
            "rejected_version", "error", "stale", "verdict", "announced", "announce_why", "quiet", "bgp",
            "digests", "observations", "observed_seq", "counters")


class StoreError(Exception):
    """The store could not be reached, or refused a transaction (the text says which)."""


def remotes_string(remotes: Sequence[str]) -> str:
    return ",".join(remotes)


def absolute_remotes(remotes: Sequence[str], base: Optional[str] = None) -> List[str]:
    """Relative `unix:PATH` remotes made absolute against `base` (the working directory by
    default). The OVS library would take them as relative to its own run directory, which
    is not where a user's `--db unix:run/fleet/store/s1.sock` points."""
    out = []
    for r in remotes:
        kind, sep, path = r.partition(":")
        if sep and kind in ("unix", "punix") and path and not os.path.isabs(path):
            r = "%s:%s" % (kind, os.path.abspath(os.path.join(base or os.getcwd(), path)))
        out.append(r)
    return out


# ---------------------------------------------------------------- reading the replica


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return dict(v)
    if isinstance(v, list):
        return list(v)
    return v


def _root(tables: Any) -> Any:
    rows = list(tables["Fleet"].rows.values())
    return rows[0] if rows else None


def read_all(tables: Any) -> Dict[str, Any]:
    """The replica as plain data (model.py's snapshot)."""
    root = _root(tables)
    snap: Dict[str, Any] = {
        "version": root.version if root is not None else 0,
        "health_seq": root.health_seq if root is not None else 0,
        "health_window": root.health_window if root is not None else 0,
        "external_ids": dict(root.external_ids) if root is not None else {},
        "drained_dpus": sorted(getattr(root, "drained_dpus", None) or []) if root is not None else [],
        "services": [], "dpus": {}}
    for s in tables["Service"].rows.values():
        svc = {c: _plain(getattr(s, c)) for c in _SERVICE_COLS}
        svc["backends"] = sorted(({c: _plain(getattr(b, c)) for c in _BACKEND_COLS} for b in s.backends),
                                 key=lambda b: (b["position"], b["name"]))
        snap["services"].append(svc)
    snap["services"].sort(key=lambda s: (s["position"], s["name"]))
    for d in tables["DPU"].rows.values():
        snap["dpus"][d.name] = {c: _plain(getattr(d, c)) for c in DPU_COLS}
    return snap


# ---------------------------------------------------------------- commands


class _Intent(command.BaseCommand):
    """Change the intent: read it, verify its version, write the mutation's result as
    version + 1 (nothing, and no new version, when the mutation changes nothing)."""

    def __init__(self, api: Any, mutate: Mutate, why: str):
        super().__init__(api)
        self.mutate = mutate
        self.why = why

    def __str__(self) -> str:
        return "fleet edit (%s)" % self.why

    def run_idl(self, txn: Any) -> None:
        tables = self.api.tables
        root = _root(tables)
        if root is None:
            root = txn.insert(tables["Fleet"])
            root.version, root.health_seq, root.health_window = 0, 0, agreement.DEFAULT_WINDOW
            root.external_ids, root.drained_dpus = {}, []
        else:
            root.verify("version")
        snap = read_all(tables)
        for d in tables["DPU"].rows.values():     # what a validation against facts read
            d.verify("facts")
        before, ext, dd = snap["services"], dict(snap["external_ids"]), list(snap["drained_dpus"])
        after = self.mutate(copy.deepcopy(before), snap)
        if after == before and snap["external_ids"] == ext and sorted(snap["drained_dpus"]) == dd:
            self.result = snap["version"]
            return
        if after != before:
            _write_services(txn, tables, after)
        if snap["external_ids"] != ext:
            root.external_ids = snap["external_ids"]
        if sorted(snap["drained_dpus"]) != dd:
            root.drained_dpus = sorted(snap["drained_dpus"])
        root.version = snap["version"] + 1
        self.result = root.version


def _set(row: Any, col: str, value: Any, new: bool = False) -> None:
    if new or _plain(getattr(row, col)) != value:
        setattr(row, col, value)


def _write_services(txn: Any, tables: Any, services: List[Dict[str, Any]]) -> None:
    have = {s.name: s for s in tables["Service"].rows.values()}
    want = {s["name"] for s in services}
    for name, row in have.items():
        if name not in want:
            row.delete()                      # its backends go with it (strong references)
    for svc in services:
        row = have.get(svc["name"])
        new = row is None
        if new:
            row = txn.insert(tables["Service"])
        for c in _SERVICE_COLS:
            _set(row, c, svc[c], new)
        old = {b.name: b for b in row.backends} if svc["name"] in have else {}
        rows = []
        for b in svc["backends"]:
            brow = old.get(b["name"])
            bnew = brow is None
            if bnew:
                brow = txn.insert(tables["Backend"])
            for c in _BACKEND_COLS:
                _set(brow, c, b.get(c, _BACKEND_DEFAULTS.get(c)), bnew)
            rows.append(brow)
        if new or [r.uuid for r in row.backends] != [r.uuid for r in rows]:
            row.backends = rows


class _Publish(command.BaseCommand):
    """A DPU's own row: create it, or set the columns given that differ."""

    def __init__(self, api: Any, name: str, fields: Dict[str, Any]):
        super().__init__(api)
        self.name, self.fields = name, fields

    def run_idl(self, txn: Any) -> None:
        row = next((d for d in self.api.tables["DPU"].rows.values() if d.name == self.name), None)
        new = row is None
        if new:
            row = txn.insert(self.api.tables["DPU"])
            row.name, row.state = self.name, "starting"     # an enum: "" is not a value
        for c, v in self.fields.items():
            _set(row, c, v, new)
        self.result = True


class _Observe(command.BaseCommand):
    """A DPU's probe results, stamped with the fleet's health sequence. The sequence is
    incremented by the server (a mutation: never a verify conflict, however many DPUs
    write at once); the stamp is the value read + 1, so DPUs writing in the same instant
    may share a number, which the freshness window absorbs."""

    def __init__(self, api: Any, name: str, observations: Dict[str, str]):
        super().__init__(api)
        self.name, self.observations = name, observations

    def run_idl(self, txn: Any) -> None:
        tables = self.api.tables
        root = _root(tables)
        if root is None:
            raise StoreError("the store holds no fleet yet (`xenoflow fleet import`)")
        row = next((d for d in tables["DPU"].rows.values() if d.name == self.name), None)
        if row is None:
            row = txn.insert(tables["DPU"])
            row.name, row.state = self.name, "starting"
        seq = root.health_seq + 1
        root.increment("health_seq")
        row.observed_seq = seq    # noqa: V101 (an OVSDB column)
        row.observations = dict(self.observations)
        self.result = seq


class _Forget(command.BaseCommand):
    def __init__(self, api: Any, name: str):
        super().__init__(api)
        self.name = name

    def run_idl(self, txn: Any) -> None:
        rows = [d for d in self.api.tables["DPU"].rows.values() if d.name == self.name]
        for d in rows:
            d.delete()
        self.result = len(rows)


def _api_class() -> type:
    class Api(backend.Backend):
        schema = model.SCHEMA_NAME
        lookup_table: Dict[str, Any] = {}   # noqa: V107 (ovsdbapp reads it)
        _ovsdb_connection = None    # one per Store: ovsdbapp keeps it on the class
    return Api


class _Idl(connection.OvsdbIdl):
    """The replica; wakes the store's watchers when its contents change."""

    def __init__(self, remote: str, helper: Any, changed: Any):
        super().__init__(remote, helper, probe_interval=PROBE_MS, leader_only=False)
        self.changed = changed
        self.lives = 0

    def run(self) -> bool:
        was_live = self.state == self.IDL_S_MONITORING
        seqno = self.change_seqno
        out = super().run()
        if not was_live and self.state == self.IDL_S_MONITORING:
            self.lives += 1
        if self.change_seqno != seqno or (was_live != (self.state == self.IDL_S_MONITORING)):
            self.changed()
        return out


# ---------------------------------------------------------------- the client


class Store:
    """One client of the fleet's store. Calls are synchronous and bounded by `timeout`."""

    def __init__(self, remotes: Sequence[str], timeout: float = 5.0,
                 on_change: Optional[Callable[[], None]] = None):
        if not remotes:
            raise StoreError("no store remotes")
        remotes = absolute_remotes(remotes)
        self.remote = remotes_string(remotes)
        self.timeout = timeout
        self.on_change = on_change or (lambda: None)
        self._api: Any = None
        self._idl: Optional[_Idl] = None
        self._open_lock = threading.Lock()

    # -- connection

    def connect(self) -> "Store":
        """Wait (bounded by `timeout`) until the replica holds the store's contents."""
        with self._open_lock:
            if self._api is not None:
                return self
            helper = ovs_idl.SchemaHelper(location=SCHEMA)
            helper.register_all()
            idl = _Idl(self.remote, helper, lambda: self.on_change())   # set later by a follower
            conn = connection.Connection(idl, timeout=self.timeout)
            api = _api_class()(conn, start=False)
            try:
                conn.start()
            except Exception as exc:
                try:
                    conn.stop(1)
                except Exception:
                    idl.close()
                raise StoreError("no fleet store answered at %s within %.1f s (%s)" % (
                    self.remote, self.timeout, type(exc).__name__)) from exc
            self._api, self._idl = api, idl
        return self

    def connected(self) -> bool:
        idl = self._idl
        return idl is not None and idl.state == idl.IDL_S_MONITORING

    @property
    def lives(self) -> int:
        """How many times the replica became live (reconnections + 1)."""
        return self._idl.lives if self._idl is not None else 0

    @property
    def change_seqno(self) -> int:
        return self._idl.change_seqno if self._idl is not None else 0

    def close(self) -> None:
        with self._open_lock:
            if self._api is not None:
                try:
                    self._api.ovsdb_connection.stop(self.timeout)
                except Exception:
                    pass
            self._api = self._idl = None

    # -- reading

    def snapshot(self) -> Dict[str, Any]:
        """The replica as plain data; consistent (taken between two updates)."""
        api = self._need()
        with api.ovsdb_connection.lock:
            return read_all(api.tables)

    def version(self) -> Optional[int]:
        """The intent version the replica holds (None before any import): one read, for a
        watcher woken by every change (most are other DPUs' heartbeats)."""
        api = self._need()
        with api.ovsdb_connection.lock:
            root = _root(api.tables)
            return root.version if root is not None else None

    # -- writing

    def _need(self) -> Any:
        if self._api is None:
            self.connect()
        return self._api

    def _run(self, cmd: Any) -> Any:
        api = self._need()
        txn = api.create_transaction(check_error=True, log_errors=False)
        txn.add(cmd)
        try:
            txn.commit()
        except (model.FleetError, LookupError, ValueError):
            raise
        except exceptions.TimeoutException as exc:
            raise StoreError("%s: no answer from the store (%s) within %.1f s" % (
                cmd, self.remote, self.timeout)) from exc
        except RuntimeError as exc:
            raise StoreError("%s: %s" % (cmd, exc)) from exc
        return cmd.result

    def change(self, mutate: Mutate, why: str) -> int:
        """Apply a pure mutation of the services in one verified transaction; the version
        it committed (the current one when it changed nothing)."""
        return int(self._run(_Intent(self._need(), mutate, why)))

    def publish(self, dpu: str, **fields: Any) -> None:
        self._run(_Publish(self._need(), dpu, fields))

    def observe(self, dpu: str, observations: Dict[str, str]) -> int:
        return int(self._run(_Observe(self._need(), dpu, observations)))

    def forget(self, dpu: str) -> int:
        return int(self._run(_Forget(self._need(), dpu)))

    def wait_version(self, version: int, dpus: Optional[Sequence[str]] = None,
                     timeout: float = 10.0) -> Dict[str, int]:
        """Wait until every DPU (or those named) shows `version` applied; their versions."""
        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot()
            rows = snap["dpus"]
            names = list(dpus) if dpus is not None else list(rows)
            got = {n: rows.get(n, {}).get("applied_version", -1) for n in names}
            if all(v >= version for v in got.values()) or time.monotonic() >= deadline:
                return got
            time.sleep(0.01)

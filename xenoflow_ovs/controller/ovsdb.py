"""OVS bridges through OVSDB, with ovsdbapp (no ovs-vsctl, no subprocess).

`desired(cfg)` (pure) says what each configured bridge must look like; `Ovsdb`
makes the database so, idempotently: what exists is left alone (may_exist),
what is missing or differs is fixed, foreign ports, bridges and controllers
are never removed, and nothing is written when nothing differs.

ovsdbapp does the OVSDB work: it fetches the schema, keeps the `ovs` IDL
replica in its own connection thread (which reconnects by itself, with
backoff, when ovsdb-server restarts), queues our transactions to that thread,
retries them on TRY_AGAIN, and, like `ovs-vsctl` without --no-wait, bumps
next_cfg and waits until ovs-vswitchd has applied it (cur_cfg). Our part is
one command, `_Ensure`: run inside that thread on the replica, it compares
every bridge with its spec, records each difference as a line of the change
report, and applies them with ovsdbapp's own idempotent commands (add_br and
add_port with may_exist, db_create, db_set), all in ONE transaction. It
verifies every column it read, and a transaction that writes nothing still
makes one round trip: a replica left stale by a dropped session or by someone
else's write is never taken for the truth, ovsdbapp retries on the fresh one.

Runtimes: under os-ken the connection thread is a native thread. ryu-manager
green-patches the whole process with eventlet before it loads our app
(`hub.patch(thread=False)`, then `hub.patch(thread=True)`: socket, select,
time, os, threading, queue), so there ovsdbapp's thread, queues and lock are
green and the `ovs` poller uses green select: a caller waiting for a
transaction yields to the hub (tests/integration/test_ovs_ovsdb.py runs it
so, against a private OVS).
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ovsdbapp import exceptions
from ovsdbapp.backend.ovs_idl import command, connection, idlutils, transaction
from ovsdbapp.schema.open_vswitch import impl_idl

from ..intent.config import Config

LOG = logging.getLogger("xenoflow.ovsdb")

DB_NAME = "Open_vSwitch"
DATAPATH_TYPE = "netdev"      # the userspace datapath: the lab has no kernel module
DEAD_VLAN = 4095  # patch ports sit on it: NORMAL never floods into them (no-flood)
COLUMNS = {
    "Open_vSwitch": ["bridges", "next_cfg", "cur_cfg"],
    "Bridge": ["name", "ports", "controller", "fail_mode", "protocols", "datapath_type",
               "other_config", "external_ids"],
    "Port": ["name", "interfaces", "tag", "vlan_mode"],
    "Interface": ["name", "type", "options", "ofport", "ofport_request", "mac"],
    "Controller": ["target"],
}
# what a transaction that writes nothing sends, so that it still reaches the server
_ROUND_TRIP = {"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["cur_cfg"]}
LOST_FOR = 30.0   # s: after a call found no server, is_connected() says no until a
                  # reconnection, or for this long (then a call may try again)


class OvsdbError(Exception):
    pass


# ---------------------------------------------------------------- the intent (pure)


def datapath_id(bridge: str) -> int:
    """Deterministic datapath id of a bridge: 'XF' in the top 16 bits, a CRC of the
    name in the low 32, so the controller knows which bridge connected."""
    return 0x5846 << 48 | zlib.crc32(bridge.encode())


@dataclass(frozen=True)
class IfaceSpec:
    name: str
    type: str = ""                                  # "" (system: the lab's veth), internal, patch
    options: Tuple[Tuple[str, str], ...] = ()
    mac: Optional[str] = None
    ofport_request: Optional[int] = None
    tag: Optional[int] = None


@dataclass(frozen=True)
class BridgeSpec:
    name: str
    dpid: int
    controller: str
    mark: str                                       # external_ids:xenoflow
    ifaces: Tuple[IfaceSpec, ...]


def desired(cfg: Config) -> List[BridgeSpec]:
    """What every configured bridge must have. OpenFlow port numbers are requested
    deterministically: a dpu port's id + 1, internal ports from 100, patches from 200.
    Nothing for a slave controller: it writes nothing, OVSDB included (the bridges, their
    datapath ids and its controller target are the master's or the operator's)."""
    if not cfg.role.writes:
        return []
    target = "tcp:%s:%d" % (cfg.openflow.host, cfg.openflow.port)
    out = []
    for br in cfg.bridges:
        ifaces = [IfaceSpec(p, ofport_request=cfg.port(p).id + 1) for p in br.ports]
        ifaces += [IfaceSpec(ip.name, "internal", mac=ip.mac, ofport_request=100 + i)
                   for i, ip in enumerate(br.internal)]
        peers = [b if a == br.name else a for a, b in cfg.patches if br.name in (a, b)]
        ifaces += [IfaceSpec(cfg.patch_port(br.name, peer), "patch",
                             options=(("peer", cfg.patch_port(peer, br.name)),),
                             ofport_request=200 + i, tag=DEAD_VLAN)
                   for i, peer in enumerate(peers)]
        out.append(BridgeSpec(br.name, datapath_id(br.name), target, cfg.dpu_name, tuple(ifaces)))
    return out


# ---------------------------------------------------------------- ovsdbapp, extended


class _Idl(connection.OvsdbIdl):
    """The replica. Counts the times it became live (its contents received), which
    happens again after every reconnection of its session."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lives = 0

    def run(self) -> bool:
        was_live = self.state == self.IDL_S_MONITORING
        changed = super().run()
        if not was_live and self.state == self.IDL_S_MONITORING:
            self.lives += 1
        return changed


class _Transaction(impl_idl.OvsVsctlTransaction):
    """ovsdbapp's ovs-vsctl transaction, except that next_cfg is bumped only when
    something is written (by `_Ensure`), and that ovs-vswitchd not applying it in
    time is an error, not a log line. An interface vswitchd could not open is
    logged, as ovs-vsctl does."""

    def pre_commit(self, txn: Any) -> None:  # noqa: V105 (ovsdbapp calls it)
        txn.expected_ifaces = set()  # noqa: V101 (ovsdbapp's add_port fills it)
        txn.bumped = False           # _Ensure sets it when it writes

    def post_commit(self, txn: Any) -> None:
        transaction.Transaction.post_commit(self, txn)
        if not txn.bumped:
            return
        try:
            self.do_post_commit(txn)
        except impl_idl.VswitchdInterfaceAddException as exc:
            LOG.warning("ovsdb: %s", exc)
        except exceptions.TimeoutException as exc:
            raise OvsdbError("written, but ovs-vswitchd did not apply it within %.1f s" %
                             self.timeout) from exc


class _PortNumbers(command.ReadOnlyCommand):
    def __init__(self, api: Any, bridge: str):
        super().__init__(api)
        self.bridge = bridge

    def run_idl(self, txn: Any) -> None:
        br = self.api.lookup("Bridge", self.bridge, default=None)
        if br is None:
            raise OvsdbError("no bridge %r" % self.bridge)
        self.result = {i.name: i.ofport[0] for p in br.ports for i in p.interfaces
                       if i.ofport and i.ofport[0] > 0}


def _api_class() -> type:
    class Api(impl_idl.OvsdbIdl):
        # ovsdbapp keeps the connection in a class attribute: one class per Ovsdb,
        # so that each has its own (the tests open several, on several servers)
        _ovsdb_connection = None

        def create_transaction(self, check_error: bool = False, log_errors: bool = True,
                               **kwargs: Any) -> _Transaction:
            return _Transaction(self, self.ovsdb_connection, check_error=check_error,
                                log_errors=log_errors)
    return Api


class _Ensure(command.BaseCommand):
    """Every bridge as specified, in the transaction it runs in (in ovsdbapp's
    connection thread, again on each retry). Result: the changes made."""

    def __init__(self, api: Any, specs: List[BridgeSpec]):
        super().__init__(api)
        self.specs = specs

    def __str__(self) -> str:
        return "ensure bridges %s" % ", ".join(s.name for s in self.specs)

    def run_idl(self, txn: Any) -> None:
        self.txn = txn
        root = self.api.lookup("Open_vSwitch", ".")
        root.verify("bridges")
        changes: List[str] = []
        for spec in self.specs:
            changes += self._bridge(spec)
        if changes:
            root.increment("next_cfg")
            txn.bumped = True
        else:
            txn.add_op(_ROUND_TRIP)
        self.result = changes

    def _do(self, cmd: Any) -> Any:
        cmd.run_idl(self.txn)
        return cmd

    def _read(self, row: Any, column: str) -> Any:
        row.verify(column)
        return getattr(row, column)

    def _bridge(self, spec: BridgeSpec) -> List[str]:
        api, name = self.api, spec.name
        changes: List[str] = []
        br = api.lookup("Bridge", name, default=None)
        if br is None:
            self._do(api.add_br(name, may_exist=True, datapath_type=DATAPATH_TYPE))
            changes.append("bridge %s created" % name)

        def read(column: str, default: Any) -> Any:
            return default if br is None else self._read(br, column)

        have = {"datapath_type": read("datapath_type", ""), "fail_mode": read("fail_mode", []),
                "protocols": read("protocols", []),
                "other_config": dict(read("other_config", {})),
                "external_ids": dict(read("external_ids", {}))}
        want = dict(have, datapath_type=DATAPATH_TYPE, fail_mode=["secure"],
                    protocols=["OpenFlow13"])
        want["other_config"] = dict(have["other_config"], **{
            "disable-in-band": "true", "datapath-id": "%016x" % spec.dpid})
        want["external_ids"] = dict(have["external_ids"], xenoflow=spec.mark)
        differ = [(c, want[c]) for c in want if want[c] != have[c]]
        changes += ["bridge %s: %s=%s" % (name, c, v) for c, v in differ]
        if differ:
            self._do(api.db_set("Bridge", name, *differ))

        ctls = list(read("controller", []))
        for c in ctls:
            c.verify("target")
        if not any(c.target == spec.controller for c in ctls):
            ctl = self._do(api.db_create("Controller", target=spec.controller))
            # ours replaces our stale target (a changed openflow endpoint); others stay
            kept = [c for c in ctls if not c.target.startswith("tcp:")]
            self._do(api.db_set("Bridge", name, ("controller", kept + [ctl])))
            changes.append("bridge %s: controller %s" % (name, spec.controller))

        ports = {p.name: p for p in read("ports", [])}
        for ispec in spec.ifaces:
            if ispec.name in ports:
                changes += self._fix_port(ports[ispec.name], ispec, name)
            else:
                changes += self._add_port(ispec, name)
        return changes

    def _add_port(self, ispec: IfaceSpec, bridge: str) -> List[str]:
        api = self.api
        if api.lookup("Port", ispec.name, default=None) is not None:
            raise OvsdbError("bridge %s: port %s is on another bridge" % (bridge, ispec.name))
        attrs: Dict[str, Any] = {"type": ispec.type}
        if ispec.options:
            attrs["options"] = dict(ispec.options)
        if ispec.mac:
            attrs["mac"] = ispec.mac
        if ispec.ofport_request is not None:
            attrs["ofport_request"] = ispec.ofport_request
        self._do(api.add_port(bridge, ispec.name, may_exist=True, **attrs))
        if ispec.tag is not None:
            self._do(api.db_set("Port", ispec.name, ("tag", ispec.tag), ("vlan_mode", "access")))
        return ["bridge %s: port %s%s added" % (
            bridge, ispec.name, " (%s)" % ispec.type if ispec.type else "")]

    def _fix_port(self, port: Any, ispec: IfaceSpec, bridge: str) -> List[str]:
        """may_exist: an existing port is kept; only what makes it work as
        configured (type, patch peer, internal MAC, no-flood tag) is corrected."""
        changes, name = [], ispec.name
        for iface in self._read(port, "interfaces"):
            if iface.name != name:
                continue
            sets: List[Tuple[str, Any]] = []
            if ispec.type and self._read(iface, "type") != ispec.type:
                sets.append(("type", ispec.type))
                changes.append("bridge %s: %s type=%s" % (bridge, name, ispec.type))
            options = self._read(iface, "options")
            for k, v in ispec.options:
                if options.get(k) != v:
                    sets.append(("options", {k: v}))      # db_set merges into the map
                    changes.append("bridge %s: %s options:%s=%s" % (bridge, name, k, v))
            if ispec.mac and [m.lower() for m in self._read(iface, "mac")] != [ispec.mac.lower()]:
                sets.append(("mac", ispec.mac))
                changes.append("bridge %s: %s mac=%s" % (bridge, name, ispec.mac))
            if sets:
                self._do(self.api.db_set("Interface", name, *sets))
        if ispec.tag is not None and self._read(port, "tag") != [ispec.tag]:
            self._do(self.api.db_set("Port", name, ("tag", ispec.tag), ("vlan_mode", "access")))
            changes.append("bridge %s: %s tag=%d" % (bridge, name, ispec.tag))
        return changes


# ---------------------------------------------------------------- the connection


class _Capture(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.messages: List[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.messages.append(record.getMessage())
        return False


class Ovsdb:
    """One ovsdbapp connection to Open_vSwitch. Calls are synchronous, bounded by
    `timeout`, and serialised by `lock` (pass a green lock under eventlet: a native
    lock held across a green wait deadlocks)."""

    def __init__(self, remote: str, timeout: float = 10.0, lock: Any = None,
                 logger: Optional[logging.Logger] = None):
        self.remote = remote
        self.timeout = timeout
        self.log = logger or LOG
        self._lock = lock if lock is not None else threading.Lock()
        self._api: Any = None
        self._idl: Optional[_Idl] = None
        self._seen_lives = 0
        self._lost: Optional[Tuple[int, float]] = None   # (lives, when) a call found no server

    # -- connection

    def _open(self) -> Any:
        if self._api is not None:
            return self._api
        why = _Capture()                 # ovsdbapp logs why at ERROR, on every retry:
        idlutils.LOG.addFilter(why)      # it goes into our exception, reported once
        try:
            helper = idlutils.get_schema_helper(self.remote, DB_NAME)
        except Exception as exc:
            raise OvsdbError("cannot connect to %s: %s" % (
                self.remote, "; ".join(why.messages) or exc)) from exc
        finally:
            idlutils.LOG.removeFilter(why)
        for table, cols in COLUMNS.items():
            helper.register_columns(table, cols)
        idl = _Idl(self.remote, helper)
        conn = connection.Connection(idl, timeout=self.timeout)
        try:
            api = _api_class()(conn, start=False)
            conn.start()                           # waits for the replica's contents
        except Exception as exc:
            idl.close()
            raise OvsdbError("cannot connect to %s: no database within %.1f s (%s)" % (
                self.remote, self.timeout, type(exc).__name__)) from exc
        self._api, self._idl = api, idl
        return api

    def connect(self) -> None:
        """Wait (bounded by `timeout`) until the replica is live; raises OvsdbError."""
        with self._lock:
            self._open()

    def is_connected(self) -> bool:
        """The replica is live: received since the session last (re)connected, and
        no round trip failed since. (A session that just dropped is seen when it
        reconnects, or when a call finds the server gone.)"""
        with self._lock:
            idl, lost = self._idl, self._lost
            if idl is None or idl.state != idl.IDL_S_MONITORING:
                return False
            return lost is None or lost[0] != idl.lives or time.monotonic() - lost[1] > LOST_FOR

    def reconnected(self) -> bool:
        """True once after each (re)connection of the session: time to re-ensure."""
        with self._lock:
            if self._idl is None:
                return False
            lives = self._idl.lives
            changed, self._seen_lives = lives != self._seen_lives, lives
            return changed

    def close(self) -> None:
        with self._lock:
            if self._api is not None:
                self._api.ovsdb_connection.stop(self.timeout)   # closes the IDL
            self._api = self._idl = None

    # -- reading

    def port_numbers(self, bridge: str) -> Dict[str, int]:
        """{interface name: OpenFlow port number} of a bridge (ports vswitchd has
        opened; one that failed has no number and is left out)."""
        with self._lock:
            api = self._open()
            return _PortNumbers(api, bridge).execute(check_error=True, log_errors=False)

    # -- writing

    def ensure(self, specs: List[BridgeSpec]) -> List[str]:
        """Make every bridge as specified, in one transaction; returns what was
        changed (empty: nothing, and nothing was written)."""
        with self._lock:
            api = self._open()
            txn = api.create_transaction(check_error=True, log_errors=False)
            ensure = txn.add(_Ensure(api, specs))
            try:
                txn.commit()
            except OvsdbError:
                raise
            except exceptions.TimeoutException as exc:
                # no answer, even after ovsdbapp's retries: the session is down
                self._lost = (self._idl.lives, time.monotonic()) if self._idl else None
                raise OvsdbError("%s: no answer from %s within %.1f s" % (
                    ensure, self.remote, self.timeout)) from exc
            except Exception as exc:
                raise OvsdbError("%s: %s (%s)" % (ensure, exc, self.remote)) from exc
            self._lost = None
            out = list(ensure.result or [])
        for line in out:
            self.log.info("ovsdb: %s", line)
        return out

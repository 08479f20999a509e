"""OVS bridges through OVSDB, with the python `ovs` IDL (no ovs-vsctl, no subprocess).

`desired(cfg)` (pure) says what each configured bridge must look like; `Ovsdb`
keeps one IDL connection and makes the database so, idempotently: what exists
is left alone (may_exist), what is missing or differs on a bridge is fixed in
ONE transaction per bridge, and nothing is written when nothing differs. Every
transaction bumps next_cfg and waits until ovs-vswitchd has applied it
(cur_cfg), as `ovs-vsctl` does without --no-wait.

Calls are synchronous and short, made from the controller's own thread; the
IDL's session reconnects by itself (with backoff) when ovsdb-server restarts,
and every call first waits, bounded, for the replica to be live again. Under
Ryu (eventlet) the `ovs` poller uses green select, so waiting yields.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import ovs.db.idl
import ovs.jsonrpc
import ovs.poller
import ovs.stream

from ..intent.config import Config

LOG = logging.getLogger("xenoflow.ovsdb")

DB_NAME = "Open_vSwitch"
DEAD_VLAN = 4095  # patch ports sit on it: NORMAL never floods into them (no-flood)
COLUMNS = {
    "Open_vSwitch": ["bridges", "next_cfg", "cur_cfg"],
    "Bridge": ["name", "ports", "controller", "fail_mode", "protocols", "datapath_type",
               "other_config", "external_ids"],
    "Port": ["name", "interfaces", "tag", "vlan_mode", "external_ids"],
    "Interface": ["name", "type", "options", "ofport", "ofport_request", "mac", "error",
                  "external_ids"],
    "Controller": ["target"],
}


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
    deterministically: a dpu port's id + 1, internal ports from 100, patches from 200."""
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


# ---------------------------------------------------------------- the connection


def _get_schema(remote: str, timeout: float) -> Dict[str, Any]:
    deadline = time.monotonic() + timeout
    err, stream = ovs.stream.Stream.open_block(ovs.stream.Stream.open(remote),
                                               int(timeout * 1000))
    if err:
        raise OvsdbError("cannot connect to %s: %s" % (remote, errno.errorcode.get(err, err)))
    rpc = ovs.jsonrpc.Connection(stream)
    try:
        req = ovs.jsonrpc.Message.create_request("get_schema", [DB_NAME])
        rpc.send(req)
        while True:
            rpc.run()
            err, msg = rpc.recv()
            if not err and msg is not None and msg.id == req.id:
                if msg.type != ovs.jsonrpc.Message.T_REPLY:
                    raise OvsdbError("get_schema failed: %s" % (msg.error,))
                return msg.result
            if err and err != errno.EAGAIN:
                raise OvsdbError("get_schema from %s: %s" % (remote, errno.errorcode.get(err, err)))
            left = deadline - time.monotonic()
            if left <= 0:
                raise OvsdbError("get_schema from %s timed out" % remote)
            poller = ovs.poller.Poller()
            rpc.wait(poller)
            rpc.recv_wait(poller)
            poller.timer_wait(int(left * 1000) + 1)
            poller.block()
    finally:
        rpc.close()


class Ovsdb:
    """One IDL replica of Open_vSwitch. Thread-safe through `lock` (pass a green
    lock under eventlet: a native lock held across a green wait deadlocks)."""

    def __init__(self, remote: str, timeout: float = 10.0, lock: Any = None,
                 logger: Optional[logging.Logger] = None):
        self.remote = remote
        self.timeout = timeout
        self.log = logger or LOG
        self._lock = lock if lock is not None else threading.Lock()
        self.idl: Optional[ovs.db.idl.Idl] = None
        self._seen_seqno: Optional[int] = None

    # -- connection

    def _ensure_idl(self) -> ovs.db.idl.Idl:
        if self.idl is None:
            helper = ovs.db.idl.SchemaHelper(schema_json=_get_schema(self.remote, self.timeout))
            for table, cols in COLUMNS.items():
                helper.register_columns(table, cols)
            self.idl = ovs.db.idl.Idl(self.remote, helper)
        return self.idl

    def _live(self) -> bool:
        idl = self.idl
        return (idl is not None and idl._session.is_connected()
                and idl.state == idl.IDL_S_MONITORING and idl.has_ever_connected())

    def _wait_until(self, cond: Callable[[], bool], timeout: float, what: str,
                    txn: Optional[ovs.db.idl.Transaction] = None) -> None:
        deadline = time.monotonic() + timeout
        idl = self._ensure_idl()
        while True:
            if txn is None:
                idl.run()
            if cond():
                return
            if txn is not None:
                idl.run()   # a transaction being committed: commit() first, then run
            left = deadline - time.monotonic()
            if left <= 0:
                raise OvsdbError("%s: timed out after %.1f s (%s)" % (what, timeout, self.remote))
            poller = ovs.poller.Poller()
            idl.wait(poller)
            if txn is not None:
                txn.wait(poller)
            poller.timer_wait(min(int(left * 1000) + 1, 500))
            poller.block()

    def _sync(self) -> ovs.db.idl.Idl:
        idl = self._ensure_idl()
        self._wait_until(self._live, self.timeout, "waiting for ovsdb-server")
        return idl

    def connect(self) -> None:
        """Wait (bounded by `timeout`) until the replica is live; raises OvsdbError."""
        with self._lock:
            try:
                self._sync()
            except Exception:
                if self.idl is not None:
                    self.idl.close()
                self.idl = None
                raise

    def is_connected(self) -> bool:
        with self._lock:
            if self.idl is None:
                return False
            self.idl.run()
            return self._live()

    def reconnected(self) -> bool:
        """True once after each (re)connection of the session: time to re-ensure."""
        with self._lock:
            if self.idl is None:
                return False
            seqno = self.idl._session.get_seqno()
            changed, self._seen_seqno = seqno != self._seen_seqno, seqno
            return changed

    def close(self) -> None:
        with self._lock:
            if self.idl is not None:
                self.idl.close()
                self.idl = None

    # -- reading

    def _rows(self, table: str) -> List[Any]:
        return list(self.idl.tables[table].rows.values())

    def _bridge(self, name: str) -> Optional[Any]:
        for row in self._rows("Bridge"):
            if row.name == name:
                return row
        return None

    def bridges(self) -> List[str]:
        with self._lock:
            self._sync()
            return sorted(r.name for r in self._rows("Bridge"))

    def port_numbers(self, bridge: str) -> Dict[str, int]:
        """{interface name: OpenFlow port number} of a bridge (ports vswitchd has
        opened; one that failed has no number and is left out)."""
        with self._lock:
            self._sync()
            br = self._bridge(bridge)
            if br is None:
                raise OvsdbError("no bridge %r" % bridge)
            out = {}
            for port in br.ports:
                for iface in port.interfaces:
                    if iface.ofport and iface.ofport[0] > 0:
                        out[iface.name] = iface.ofport[0]
            return out

    def interface_errors(self, bridge: str) -> Dict[str, str]:
        with self._lock:
            self._sync()
            br = self._bridge(bridge)
            if br is None:
                return {}
            return {i.name: i.error[0] for p in br.ports for i in p.interfaces if i.error}

    # -- writing

    def _transact(self, build: Callable[[ovs.db.idl.Transaction], List[str]], what: str
                  ) -> List[str]:
        """Run build(txn) -> list of changes made; commit if any, bump next_cfg and
        wait for ovs-vswitchd. Retries on TRY_AGAIN (the replica was stale)."""
        for _ in range(5):
            idl = self._sync()
            txn = ovs.db.idl.Transaction(idl)
            txn.add_comment("xenoflow: " + what)
            changes = build(txn)
            if not changes:
                txn.abort()
                return []
            root = self._rows("Open_vSwitch")[0]
            root.increment("next_cfg")
            status = [ovs.db.idl.Transaction.INCOMPLETE]

            def done() -> bool:
                status[0] = txn.commit()
                return status[0] != ovs.db.idl.Transaction.INCOMPLETE
            self._wait_until(done, self.timeout, what, txn)
            if status[0] == ovs.db.idl.Transaction.TRY_AGAIN:
                continue
            if status[0] not in (ovs.db.idl.Transaction.SUCCESS, ovs.db.idl.Transaction.UNCHANGED):
                raise OvsdbError("%s: %s (%s)" % (what, status[0], txn.get_error()))
            if status[0] == ovs.db.idl.Transaction.SUCCESS:
                next_cfg = txn.get_increment_new_value()
                self._wait_until(lambda: self._rows("Open_vSwitch")[0].cur_cfg >= next_cfg,
                                 self.timeout, "%s: waiting for ovs-vswitchd" % what)
            return changes
        raise OvsdbError("%s: database kept changing (try again)" % what)

    def ensure(self, specs: List[BridgeSpec]) -> List[str]:
        """Make every bridge as specified; returns what was changed (empty: nothing)."""
        out: List[str] = []
        with self._lock:
            for spec in specs:
                out += self._transact(lambda txn, s=spec: self._build_bridge(txn, s),
                                      "ensure bridge %s" % spec.name)
        for line in out:
            self.log.info("ovsdb: %s", line)
        return out

    def _build_bridge(self, txn: ovs.db.idl.Transaction, spec: BridgeSpec) -> List[str]:
        changes: List[str] = []
        tables = self.idl.tables
        br = self._bridge(spec.name)
        created = br is None
        if created:
            br = txn.insert(tables["Bridge"])
            br.name = spec.name
            local = self._new_port(txn, IfaceSpec(spec.name, "internal"))
            br.ports = [local]
            self._rows("Open_vSwitch")[0].addvalue("bridges", br)
            changes.append("bridge %s created" % spec.name)

        def want(column: str, value: Any) -> None:
            if getattr(br, column, None) != value:
                setattr(br, column, value)
                changes.append("bridge %s: %s=%s" % (spec.name, column, value))

        want("datapath_type", "netdev")
        want("fail_mode", ["secure"])
        want("protocols", ["OpenFlow13"])
        oc = dict(getattr(br, "other_config", {}) or {})
        oc.update({"disable-in-band": "true", "datapath-id": "%016x" % spec.dpid})
        want("other_config", oc)
        ext = dict(getattr(br, "external_ids", {}) or {})
        ext["xenoflow"] = spec.mark
        want("external_ids", ext)

        ctls = list(getattr(br, "controller", []) or [])
        if not any(c.target == spec.controller for c in ctls):
            ctl = txn.insert(tables["Controller"])
            ctl.target = spec.controller
            # ours replaces our stale target (a changed openflow endpoint); others stay
            br.controller = [c for c in ctls if not c.target.startswith("tcp:")] + [ctl]
            changes.append("bridge %s: controller %s" % (spec.name, spec.controller))

        current = list(getattr(br, "ports", []) or [])
        ports = {p.name: p for p in current}
        added = []
        for ispec in spec.ifaces:
            port = ports.get(ispec.name)
            if port is None:
                added.append(self._new_port(txn, ispec))
                changes.append("bridge %s: port %s%s added" % (
                    spec.name, ispec.name, " (%s)" % ispec.type if ispec.type else ""))
            else:
                changes += self._fix_port(port, ispec, spec.name)
        if added and created:
            br.ports = current + added
        else:
            for port in added:   # a mutation: ports someone else adds meanwhile stay
                br.addvalue("ports", port)
        return changes

    def _new_port(self, txn: ovs.db.idl.Transaction, ispec: IfaceSpec) -> Any:
        tables = self.idl.tables
        iface = txn.insert(tables["Interface"])
        iface.name = ispec.name
        iface.type = ispec.type
        if ispec.options:
            iface.options = dict(ispec.options)
        if ispec.mac:
            iface.mac = [ispec.mac]
        if ispec.ofport_request is not None:
            iface.ofport_request = [ispec.ofport_request]
        port = txn.insert(tables["Port"])
        port.name = ispec.name
        port.interfaces = [iface]
        if ispec.tag is not None:
            port.tag = [ispec.tag]
            port.vlan_mode = ["access"]
        return port

    def _fix_port(self, port: Any, ispec: IfaceSpec, bridge: str) -> List[str]:
        """may_exist: an existing port is kept; only what makes it work as
        configured (type, patch peer, internal MAC, no-flood tag) is corrected."""
        changes = []
        for iface in port.interfaces:
            if iface.name != ispec.name:
                continue
            if ispec.type and iface.type != ispec.type:
                iface.type = ispec.type
                changes.append("bridge %s: %s type=%s" % (bridge, ispec.name, ispec.type))
            for k, v in ispec.options:
                if iface.options.get(k) != v:
                    opts = dict(iface.options)
                    opts[k] = v
                    iface.options = opts
                    changes.append("bridge %s: %s options:%s=%s" % (bridge, ispec.name, k, v))
            if ispec.mac and [m.lower() for m in iface.mac] != [ispec.mac.lower()]:
                iface.mac = [ispec.mac]
                changes.append("bridge %s: %s mac=%s" % (bridge, ispec.name, ispec.mac))
        if ispec.tag is not None and port.tag != [ispec.tag]:
            port.tag = [ispec.tag]
            port.vlan_mode = ["access"]
            changes.append("bridge %s: %s tag=%d" % (bridge, ispec.name, ispec.tag))
        return changes

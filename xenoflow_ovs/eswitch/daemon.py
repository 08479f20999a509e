"""`xenoflow eswitchd`: the one long-lived process that owns the eSwitch.

Like ovs-vswitchd under its controller: the DPDK EAL initialises once per
process and the ports must outlive controller crashes and upgrades, so the
controller never opens them itself. eswitchd keeps no policy: it applies the
pipes and entries it is told (all-or-nothing per request), and lists them back
with their owner's cookie and counters. It listens on a unix socket that only
its owner may use.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import socketserver
import threading
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

from .. import instance, logsetup, memory, sdnotify
from ..exitcodes import EXIT_ERROR, EXIT_OK
from ..intent import capacity, eswitch_ports
from ..intent import config as config_mod
from ..intent.plan import Change, Entry, Meter, Pipe
from . import session as session_mod
from . import wire

log = logging.getLogger("xenoflow.eswitchd")

ROOT_CAPACITY = capacity.ROOT_ENTRIES  # root control pipe entries per port: services + routes
# The plan's priorities are OpenFlow-like (higher wins); DOCA's control pipe
# priorities are the other way round (0 is the highest). Each plan priority has two
# DOCA priorities next to each other, so a root entry can be replaced by its successor
# installed beside it (the other of the two) before it goes: make-before-break, and
# neither ties with the other nor crosses a neighbouring plan priority.
DOCA_PRIO_BASE = 1000


def doca_priority(plan_priority: int) -> int:
    return 2 * (DOCA_PRIO_BASE - plan_priority)


def beside_priority(doca_prio: int) -> int:
    """The other DOCA priority of the same plan priority."""
    return doca_prio ^ 1


class RequestError(Exception):
    """A request that is wrong before anything is touched (names the problem)."""


class GlueDriver:
    """Maps plan pipes/entries onto dpdk_glue calls. The glue is not thread-safe:
    every call comes from the server while it holds its lock."""

    def __init__(self, cfg: config_mod.Config):
        import dpdk_glue
        from dpdk_glue import softdoca_ctl
        self.glue = dpdk_glue
        self.softdoca = softdoca_ctl  # the knobs only softdoca has (busy_poll, fault injection)
        self.cfg = cfg
        # Devices before their representors, vnf pairs and e-switches: intent/eswitch_ports.py
        ports = [dpdk_glue.PortSpec(**kw) for kw in eswitch_ports.port_specs(cfg)]
        # the meter budgets config validation counts against (intent/config.py)
        self.sw = dpdk_glue.ESwitch(eal_args=list(cfg.eswitch.eal_args), ports=ports, mode=cfg.eswitch.mode,
                                    meters=config_mod.ESWITCH_ENTRY_METERS,
                                    shared_meters=config_mod.ESWITCH_SHARED_METERS)
        self.roots: Dict[str, Any] = {}

    def open(self) -> None:
        self.sw.open()
        if self.cfg.eswitch.busy_poll:
            if self.softdoca.available():
                self.softdoca.set_busy_poll(self.sw, True)
            else:
                log.warning("dpu.eswitch.busy_poll is a softdoca knob: ignored on %s", self.sw.target)
        elif self.cfg.eswitch.idle_max_us:
            if self.softdoca.available():
                self.softdoca.set_busy_poll(self.sw, False, idle_max_us=self.cfg.eswitch.idle_max_us)
            else:
                log.warning("dpu.eswitch.idle_max_us is a softdoca knob: ignored on %s", self.sw.target)
        cap = self.cfg.eswitch.capacity
        if (cap.entries_per_pipe or cap.pipes) and self.softdoca.available():
            # softdoca fails past the declared limits as the hardware does; real DOCA needs
            # no knob for that (its hardware fails by itself)
            self.softdoca.set_capacity(self.sw, cap.entries_per_pipe, cap.pipes)

    def close(self) -> None:
        self.sw.close()

    def _root(self, port: str) -> Any:
        if port not in self.roots:
            self.roots[port] = self.sw.create_root_pipe(port, nr_entries=ROOT_CAPACITY)
        return self.roots[port]

    def create_pipe(self, p: Pipe, pipes: Optional[Dict[Tuple[str, str], Any]] = None) -> Any:
        mask = self.glue.GlueMatch(**dict(p.mask))
        if not (p.meter or p.fwd_pipe or p.drop or p.miss):
            return self.sw.create_basic_pipe(p.port, name=p.name, mask=mask, fwd_port=p.fwd_port,
                                             nr_entries=p.nr_entries)
        pipes = pipes or {}
        kw: Dict[str, Any] = {"meter": p.meter or None}
        if p.drop:
            kw["drop"] = True
        elif p.fwd_pipe:
            kw["fwd_pipe"] = pipes[(p.port, p.fwd_pipe)]
        else:
            kw["fwd_port"] = p.fwd_port
        if p.miss:
            kw["miss_pipe" if p.miss[0] == "pipe" else "miss_port"] = (
                pipes[(p.port, p.miss[1])] if p.miss[0] == "pipe" else p.miss[1])
        # a match-all meter pipe only meters: no MAC of its own (the bucket pipe set it)
        kw["set_mac"] = not p.drop and bool(p.mask)
        return self.sw.create_basic_pipe(p.port, name=p.name, mask=mask, nr_entries=p.nr_entries, **kw)

    def create_meter(self, m: Meter) -> Any:
        return self.sw.create_meter(m.where, m.pps, m.burst)

    def modify_meter(self, handle: Any, m: Meter) -> None:
        self.sw.modify_meter(handle, m.pps, m.burst)

    def destroy_meter(self, handle: Any) -> None:
        self.sw.destroy_meter(handle)

    def update_meters(self, pairs: List[Tuple[Any, Tuple[int, int]]]) -> None:
        """New rates of entries' own meters, in place, in one glue batch (counters kept)."""
        self.sw.update_entry_meters(pairs)

    def destroy_pipe(self, handle: Any) -> None:
        self.sw.destroy_pipe(handle)

    def _request(self, e: Entry, pipes: Dict[Tuple[str, str], Any],
                 meters: Optional[Dict[Tuple[str, int], Any]] = None, beside: Any = None) -> Any:
        """The glue's spec of `e`; a root entry `beside` another takes its other priority."""
        GlueMatch = self.glue.GlueMatch
        if e.pipe == "root":
            kw: Dict[str, Any] = {}
            if e.fwd[0] == "pipe":
                kw["fwd_pipe"] = pipes[(e.port, e.fwd[1])]
            elif e.fwd[0] == "port":
                kw["fwd_port"] = e.fwd[1]
            else:
                kw["drop"] = True
            prio = doca_priority(e.priority) if beside is None else beside_priority(beside.priority)
            return self._root(e.port).entry(
                match=GlueMatch(**{f: v for f, v, _ in e.match}),
                mask=GlueMatch(**{f: m for f, _, m in e.match}), priority=prio, **kw)
        pipe = pipes[(e.port, e.pipe)]
        kw = {}
        if e.meter is not None:
            kw["meter"] = tuple(e.meter)
        if e.shared_meter is not None:
            kw["shared_meter"] = (meters or {})[(e.port, e.shared_meter)]
        return pipe.entry(match=GlueMatch(**{f: v for f, v, _ in e.match}),
                          dst_mac=e.dst_mac if pipe.set_mac else None, **kw)

    def add(self, entries: List[Entry], pipes: Dict[Tuple[str, str], Any],
            meters: Optional[Dict[Tuple[str, int], Any]] = None) -> List[Any]:
        return self.sw.add_entries([self._request(e, pipes, meters) for e in entries])

    def add_beside(self, handle: Any, e: Entry, pipes: Dict[Tuple[str, str], Any],
                   meters: Optional[Dict[Tuple[str, int], Any]] = None) -> Any:
        """A root entry's successor (same match, new target), installed beside the entry
        `handle` at the other DOCA priority of its plan priority: until the caller removes
        the old one, every packet of the class meets one of the two, so none misses the
        root pipe and falls back to OVS. (A control entry's target is not updated in place.)"""
        return self.sw.add_entries([self._request(e, pipes, meters, beside=handle)])[0]

    def update_macs(self, pairs: List[Tuple[Any, str]]) -> None:
        """New destination MACs of bucket entries, in place, in one glue batch (counters kept)."""
        self.sw.update_entries(pairs)

    def remove(self, handles: List[Any]) -> None:
        self.sw.remove_entries(handles)

    def query(self, handles: List[Any]) -> List[Tuple[int, int]]:
        return self.sw.query_entries(handles) if handles else []

    def prepare_sum(self, handles: List[Any]) -> Any:
        """`handles` made ready for query_sum, again and again while they stay installed
        (eswitchd prepares a group once, until an entry joins or leaves it)."""
        try:
            from dpdk_glue.binding import _load
            _, ffi = _load()
            return (len(handles), ffi.new("uint64_t[]", [h._handle for h in handles]), handles)
        except (ImportError, AttributeError):   # a glue without these internals: the public path
            return (len(handles), None, handles)

    def query_sum(self, prepared: Any) -> Tuple[int, int]:
        """The summed (packets, bytes) of prepared handles: one glue call and two sums. The
        binding's query_entries checks every entry and makes a tuple for each: 0.3 s a poll
        at 8 x 2^16 entries, where this takes a few ms."""
        n, array, handles = prepared
        if n and array is not None:
            from dpdk_glue.binding import _load
            lib, ffi = _load()
            pk, by = ffi.new("uint64_t[]", n), ffi.new("uint64_t[]", n)
            with self.sw._lock:
                self.sw._check_open()
                rc = lib.xf_entries_query(array, n, pk, by)
            if rc == 0:
                return sum(ffi.unpack(pk, n)), sum(ffi.unpack(by, n))
        counts = self.query(handles)       # also where a failure is raised with its name
        return sum(c[0] for c in counts), sum(c[1] for c in counts)

    def port_stats(self, port: str) -> Dict[str, int]:
        return dict(self.sw.port_stats(port))

    def inject_fault(self, nth: int = 0, at_process: bool = False) -> None:
        self.softdoca.fault_inject(self.sw, int(nth), bool(at_process))


Key = Tuple[str, str, Tuple[Tuple[str, int, int], ...]]
# What eswitchd totals: (kind, owner, backend); backend only for buckets (a route's or a
# dispatch entry's group is its owner).
Group = Tuple[str, str, Optional[str]]
FEATURES = ("runs", "totals", "version")   # what this eswitchd speaks beyond the first protocol


BUCKET_GROUPS = 64     # a drop stage of at most this many buckets totals each bucket apart


def group_of(e: Entry, buckets: int = 0) -> Group:
    """A bucket's group is its backend's; a drop stage's entries group as the service limit's
    drops ("service" in the backend's place), each bucket's ("bucket/<b>") when the stage has at
    most BUCKET_GROUPS buckets (`buckets`: its pipe's size), else all buckets' ("bucket"): a
    poll costs one query per group."""
    if e.kind == "drop":
        if e.bucket is None:
            return (e.kind, e.owner, "service")
        return (e.kind, e.owner, "bucket/%d" % e.bucket if 0 < buckets <= BUCKET_GROUPS else "bucket")
    return (e.kind, e.owner, e.backend if e.kind == "bucket" else None)


class _Simulation:
    """A change list played on keys only. What the list adds and removes is kept beside the
    table, not in a copy of it (2^16 entries a pipe)."""

    def __init__(self, pipes: set, entries: Dict[Key, Any], meters: Optional[set] = None):
        self.pipes = pipes
        self.entries = entries
        self.meters = meters if meters is not None else set()
        self.added: set = set()
        self.gone: set = set()
        self.held: Optional[Dict[Tuple[str, str], int]] = None   # entries per pipe, once asked

    def meter(self, c: Change, where: str) -> None:
        key = (c.item.where, c.item.meter_id)
        if c.op == "add_meter" and key in self.meters:
            raise RequestError("%s: meter %s exists" % (where, key))
        if c.op != "add_meter" and key not in self.meters:
            raise RequestError("%s: no meter %s" % (where, key))
        if c.item.pps < 1 or c.item.burst < 1:
            raise RequestError("%s: a meter needs a rate and a burst of at least 1" % where)
        if c.op == "add_meter":
            self.meters.add(key)
        elif c.op == "remove_meter":
            self.meters.discard(key)

    def exists(self, k: Key) -> bool:
        return k in self.added or (k in self.entries and k not in self.gone)

    def _held(self) -> Dict[Tuple[str, str], int]:
        if self.held is None:
            self.held = {}
            for k in list(self.entries) + list(self.added):
                if self.exists(k):
                    self.held[(k[0], k[1])] = self.held.get((k[0], k[1]), 0) + 1
        return self.held

    def pipe(self, c: Change, where: str) -> None:
        key = c.item.key
        if c.op == "add_pipe":
            if key in self.pipes:
                raise RequestError("%s: pipe %s exists" % (where, key))
            self.pipes.add(key)
            return
        if key not in self.pipes:
            raise RequestError("%s: no pipe %s" % (where, key))
        if self._held().get(key):
            raise RequestError("%s: pipe %s still has entries" % (where, key))
        self.pipes.discard(key)

    def entry(self, c: Change, where: str) -> None:
        e = c.item
        k = e.key
        if c.op == "add" and self.exists(k):
            raise RequestError("%s: entry %s exists" % (where, k))
        if c.op != "add" and not self.exists(k):
            raise RequestError("%s: no entry %s" % (where, k))
        if e.pipe != "root" and (e.port, e.pipe) not in self.pipes:
            raise RequestError("%s: entry names unknown pipe %s" % (where, e.pipe))
        if c.op != "remove" and e.fwd and e.fwd[0] == "pipe" and (e.port, e.fwd[1]) not in self.pipes:
            raise RequestError("%s: forwards to unknown pipe %s" % (where, e.fwd[1]))
        if c.op != "remove" and e.kind == "bucket" and not e.dst_mac:
            raise RequestError("%s: a bucket entry needs dst_mac" % where)
        if c.op != "remove" and e.shared_meter is not None and (e.port, e.shared_meter) not in self.meters:
            raise RequestError("%s: names unknown meter %d" % (where, e.shared_meter))
        if c.op == "update":
            return
        if c.op == "add":
            self.added.add(k)
            self.gone.discard(k)
        else:
            self.added.discard(k)
            self.gone.add(k)
        if self.held is not None:
            self.held[(k[0], k[1])] = self.held.get((k[0], k[1]), 0) + (1 if c.op == "add" else -1)


class EswitchState:
    """What is installed, all-or-nothing application of change lists, and totals.

    Totals: per group, what its entries counted while they were in it. An entry that
    leaves a group (removed, or updated to another backend) is read right then, under the
    lock, and that count retires into the group's total; an entry that joins a group with
    a count already on it (an in-place update keeps the counter) has that count taken off
    the group's. A group's total = retired + the live counters of its members: exact
    across bucket moves, monotonic while eswitchd runs, and a poll costs one query per
    group, not an object per entry.

    `version` moves with every apply (from any client, successful or not): a controller
    that knows the version its own apply produced lists the table only when it moved
    behind its back. `boot` tells one eswitchd run from the next."""

    def __init__(self, driver: Any):
        self.driver = driver
        self.pipes: Dict[Tuple[str, str], Tuple[Pipe, Any]] = {}
        self.entries: Dict[Key, Tuple[Entry, Any, int]] = {}
        self.meters: Dict[Tuple[str, int], Tuple[Meter, Any]] = {}   # shared meters
        self.lock = threading.Lock()
        # What the last apply read of each entry right before it changed or went away
        # (when the client asked for it: an older controller credits it to the backend the
        # entry named until then; a newer one reads the totals instead).
        self.counted: List[Dict[str, Any]] = []
        self._report_counted = True
        self.members: Dict[Group, Dict[Key, Any]] = {}
        self.retired: Dict[Group, List[int]] = {}
        self.prepared: Dict[Group, Any] = {}     # members made ready for the driver's query_sum
        self.version = 0
        self.boot = uuid.uuid4().hex

    def _handles(self) -> Dict[Tuple[str, str], Any]:
        return {k: h for k, (_, h) in self.pipes.items()}

    def _meter_handles(self) -> Dict[Tuple[str, int], Any]:
        return {k: h for k, (_, h) in self.meters.items()}

    def table_version(self) -> Dict[str, Any]:
        return {"boot": self.boot, "version": self.version}

    # -- totals bookkeeping ------------------------------------------------------------

    def _group(self, e: Entry) -> Group:
        held = self.pipes.get((e.port, e.pipe)) if e.kind == "drop" else None
        return group_of(e, held[0].nr_entries if held is not None else 0)

    def _join(self, e: Entry, h: Any, had: Tuple[int, int], key: Optional[Key] = None) -> None:
        g = self._group(e)
        self.prepared.pop(g, None)
        self.members.setdefault(g, {})[e.key if key is None else key] = h
        t = self.retired.setdefault(g, [0, 0])
        t[0] -= had[0]
        t[1] -= had[1]

    def _leave(self, e: Entry, counted: Tuple[int, int]) -> None:
        g = self._group(e)
        self.prepared.pop(g, None)
        m = self.members.get(g, {})
        m.pop(e.key, None)
        t = self.retired.setdefault(g, [0, 0])
        t[0] += counted[0]
        t[1] += counted[1]
        if not m:
            del self.members[g]

    def _note(self, e: Entry, counted: Tuple[int, int]) -> None:
        if self._report_counted:
            self.counted.append({"entry": wire.entry_to_wire(e), "pkts": counted[0], "bytes": counted[1]})

    # -- applying --------------------------------------------------------------------

    def validate(self, changes: List[Change]) -> None:
        """Simulate the list on keys only: a bad request must change nothing."""
        sim = _Simulation(set(self.pipes), self.entries, set(self.meters))
        for i, c in enumerate(changes):
            where = "changes[%d] (%s)" % (i, c.op)
            if c.op in ("add_pipe", "remove_pipe"):
                sim.pipe(c, where)
            elif c.op in wire.METER_OPS:
                sim.meter(c, where)
            elif c.op in ("add", "update", "remove"):
                sim.entry(c, where)
            else:
                raise RequestError("%s: unknown op" % where)

    def apply(self, changes: List[Change], report_counted: bool = True) -> Dict[str, Any]:
        """Applies all or nothing; returns what was done and the table versions around it."""
        with self.lock:
            self.validate(changes)
            self.counted = []
            self._report_counted = report_counted
            before = self.version
            self.version += 1       # even a failed apply may have moved counters or handles
            undo: List[Callable[[], None]] = []
            done = {"add_pipe": 0, "add": 0, "update": 0, "remove": 0, "remove_pipe": 0, "add_meter": 0,
                    "update_meter": 0, "remove_meter": 0}
            one = {"add_pipe": self._add_pipe, "remove_pipe": self._remove_pipe, "add_meter": self._add_meter,
                   "update_meter": self._update_meter, "remove_meter": self._remove_meter}
            batch = {"add": self._add, "update": self._update, "remove": self._remove}
            try:
                i = 0
                while i < len(changes):
                    c = changes[i]
                    if c.op in batch:   # consecutive entry changes of one op: one glue batch
                        j, keys = i, set()
                        while j < len(changes) and changes[j].op == c.op:
                            k = changes[j].item.key
                            if k in keys:
                                break
                            keys.add(k)
                            j += 1
                        batch[c.op]([x.item for x in changes[i:j]], undo)
                        done[c.op] += j - i
                        i = j
                        continue
                    one[c.op](c.item, undo)
                    done[c.op] += 1
                    i += 1
            except Exception:
                for fn in reversed(undo):
                    try:
                        fn()
                    except Exception:  # pragma: no cover - report, keep unwinding
                        log.exception("rollback step failed")
                raise
            return {"applied": done, "version_before": before, "version": self.version, "boot": self.boot}

    def _add_meter(self, m: Meter, undo: list) -> None:
        h = self.driver.create_meter(m)
        self.meters[(m.where, m.meter_id)] = (m, h)

        def back() -> None:
            self.driver.destroy_meter(h)
            del self.meters[(m.where, m.meter_id)]
        undo.append(back)

    def _update_meter(self, m: Meter, undo: list) -> None:
        old, h = self.meters[(m.where, m.meter_id)]
        self.driver.modify_meter(h, m)
        self.meters[(m.where, m.meter_id)] = (m, h)

        def back() -> None:
            self.driver.modify_meter(h, old)
            self.meters[(m.where, m.meter_id)] = (old, h)
        undo.append(back)

    def _remove_meter(self, m: Meter, undo: list) -> None:
        old, h = self.meters.pop((m.where, m.meter_id))
        self.driver.destroy_meter(h)
        undo.append(lambda: self._add_meter(old, []))

    def _add_pipe(self, p: Pipe, undo: list) -> None:
        h = self.driver.create_pipe(p, self._handles())
        self.pipes[p.key] = (p, h)

        def back() -> None:
            self.driver.destroy_pipe(h)
            del self.pipes[p.key]
        undo.append(back)

    def _remove_pipe(self, p: Pipe, undo: list) -> None:
        old, h = self.pipes.pop(p.key)
        self.driver.destroy_pipe(h)
        undo.append(lambda: self._add_pipe(old, []))

    def _add(self, entries: List[Entry], undo: list) -> None:
        handles = self.driver.add(entries, self._handles(), self._meter_handles())
        for e, h in zip(entries, handles):
            k = e.key
            self.entries[k] = (e, h, e.cookie)
            self._join(e, h, (0, 0), k)

        def back() -> None:
            counts = self.driver.query(handles)
            self.driver.remove(handles)
            for e, c in zip(entries, counts):
                del self.entries[e.key]
                self._leave(e, c)
        undo.append(back)

    def _remove(self, entries: List[Entry], undo: list) -> None:
        olds = [self.entries[e.key] for e in entries]
        # read right before they go: what they counted stays with the backend they had
        counts = self.driver.query([h for _, h, _ in olds])
        self.driver.remove([h for _, h, _ in olds])
        for (old, _, _), c in zip(olds, counts):
            del self.entries[old.key]
            self._leave(old, c)
            self._note(old, c)
        undo.append(lambda: self._add([old for old, _, _ in olds], []))

    def _update(self, entries: List[Entry], undo: list) -> None:
        basic = [e for e in entries if e.pipe != "root"]
        rerated = [e for e in basic if self.entries[e.key][0].meter != e.meter]
        if rerated:
            self._update_meters(rerated, undo)
        if basic:
            self._update_macs(basic, undo)
        for e in entries:
            if e.pipe == "root":
                self._update_root(e, undo)

    def _update_macs(self, entries: List[Entry], undo: list) -> None:
        olds = [self.entries[e.key] for e in entries]
        counts = self.driver.query([h for _, h, _ in olds])    # right before they move
        self.driver.update_macs([(h, e.dst_mac) for e, (_, h, _) in zip(entries, olds)])
        for e, (old, h, _), c in zip(entries, olds, counts):
            self._note(old, c)
            self._leave(old, c)
            self._join(e, h, c)           # the counter stays on the entry
            self.entries[e.key] = (e, h, e.cookie)

        def back() -> None:
            now = self.driver.query([h for _, h, _ in olds])
            self.driver.update_macs([(h, old.dst_mac) for old, h, _ in olds])
            for e, (old, h, c), n in zip(entries, olds, now):
                self._leave(e, n)
                self._join(old, h, n)
                self.entries[e.key] = (old, h, c)
        undo.append(back)

    def _update_meters(self, entries: List[Entry], undo: list) -> None:
        """New rates of bucket entries' own meters (the MACs follow in _update_macs)."""
        olds = [self.entries[e.key] for e in entries]
        if any(e.meter is None or old.meter is None for e, (old, _, _) in zip(entries, olds)):
            raise RequestError("an entry's meter can change rate in place, not come or go: "
                               "that is a new pipe")
        self.driver.update_meters([(h, tuple(e.meter)) for e, (_, h, _) in zip(entries, olds)])
        undo.append(lambda: self.driver.update_meters([(h, tuple(old.meter)) for old, h, _ in olds]))

    def _replace_root(self, h: Any, e: Entry) -> Tuple[Any, Tuple[int, int]]:
        """Make-before-break: the successor beside `h`, then `h` read and removed. Returns
        the successor's handle and what `h` counted (packets between that read and the
        removal are not counted, as for any removal)."""
        new_h = self.driver.add_beside(h, e, self._handles(), self._meter_handles())
        (was,) = self.driver.query([h])
        self.driver.remove([h])
        return new_h, was

    def _update_root(self, e: Entry, undo: list) -> None:
        old, h, c = self.entries[e.key]
        new_h, was = self._replace_root(h, e)
        self._note(old, was)
        self._leave(old, was)
        self._join(e, new_h, (0, 0))     # a new entry: all it counts is its group's
        self.entries[e.key] = (e, new_h, e.cookie)

        def back() -> None:
            h_back, now = self._replace_root(new_h, old)
            self._leave(e, now)
            self._join(old, h_back, (0, 0))
            self.entries[e.key] = (old, h_back, c)
        undo.append(back)

    # -- reading ---------------------------------------------------------------------

    def listing(self) -> Dict[str, Any]:
        with self.lock:
            return {"pipes": [wire.pipe_to_wire(p) for p, _ in self.pipes.values()],
                    "meters": [wire.meter_to_wire(m) for m, _ in self.meters.values()],
                    "entries": [dict(wire.entry_to_wire(e), cookie=c) for e, _, c in self.entries.values()],
                    "table": self.table_version()}

    def counters(self, entries: bool = True) -> Dict[str, Any]:
        """Totals per group (and with `entries`, every entry's own counters: O(entries)
        on the wire, for tools and tests)."""
        with self.lock:
            out: Dict[str, Any] = {"table": self.table_version()}
            sums: Dict[Group, Tuple[int, int]] = {}
            if entries:
                items = list(self.entries.values())
                counts = self.driver.query([h for _, h, _ in items])
                out["entries"] = [{"entry": wire.entry_to_wire(e), "pkts": n, "bytes": b}
                                  for (e, _, _), (n, b) in zip(items, counts)]
                acc: Dict[Group, List[int]] = {}
                for (e, _, _), (n, b) in zip(items, counts):
                    t = acc.setdefault(self._group(e), [0, 0])
                    t[0] += n
                    t[1] += b
                sums = {g: (t[0], t[1]) for g, t in acc.items()}
            else:
                for g, m in self.members.items():
                    if g not in self.prepared:
                        self.prepared[g] = self.driver.prepare_sum(list(m.values()))
                    sums[g] = self.driver.query_sum(self.prepared[g])
            totals = []
            for g in set(self.retired) | set(sums):
                r = self.retired.get(g, [0, 0])
                live = sums.get(g, (0, 0))
                totals.append({"kind": g[0], "owner": g[1], "backend": g[2],
                               "pkts": r[0] + live[0], "bytes": r[1] + live[1]})
            out["totals"] = totals
            out["ports"] = {p.name: self.driver.port_stats(p.name) for p in self.driver.cfg.ports}
        return out


class _Handler(socketserver.StreamRequestHandler):
    """One connection; `self` is its key in the session fence."""

    def handle(self) -> None:
        try:
            for line in self.rfile:
                req = None
                try:
                    req = json.loads(line)
                    reply = self.server.dispatch(req, self)  # type: ignore[attr-defined]
                except Exception as exc:  # every failure is a reply, never a dead daemon
                    reply = _error_reply(exc)
                self.wfile.write(json.dumps(reply).encode() + b"\n")
                self.wfile.flush()
                if isinstance(req, dict) and req.get("op") in ("list", "apply"):
                    # a listing or a large change leaves tens of MB freed but mapped
                    del reply
                    memory.give_back()
        finally:
            self.server.sessions.closed(self)  # type: ignore[attr-defined]


def _error_reply(exc: Exception) -> Dict[str, Any]:
    out: Dict[str, Any] = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
    if isinstance(exc, session_mod.Refused):
        out["fenced"] = True
    for attr in ("doca_error", "call"):
        if getattr(exc, attr, None):
            out[attr] = getattr(exc, attr)
    if getattr(exc, "failed", None):
        out["failed"] = [str(f) for f in exc.failed]  # type: ignore[attr-defined]
    return out


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, state: EswitchState, info: Dict[str, Any]):
        self.state = state
        self.info = info
        self.sessions = session_mod.Sessions()
        directory = os.path.dirname(path) or "."
        os.makedirs(directory, mode=0o700, exist_ok=True)
        remove_stale_socket(path)
        old = os.umask(0o177)  # the socket is born owner-only: no window where others may connect
        try:
            super().__init__(path, _Handler)
        finally:
            os.umask(old)
        self.created = os.stat(path).st_ino   # ours: removed at exit only while it is still ours

    def remove_socket(self) -> None:
        path = self.server_address
        try:
            if os.stat(path).st_ino == self.created:
                os.unlink(path)
        except OSError:
            pass

    def dispatch(self, req: Dict[str, Any], conn: Any = None) -> Dict[str, Any]:
        op = req.get("op")
        if op == "hello":
            return dict(self.info, ok=True, session=self.sessions.view(), features=list(FEATURES),
                        table=self.state.table_version())
        if op == "claim":
            got = self.sessions.claim(conn, int(req.get("generation") or 0), bool(req.get("takeover")),
                                      str(req.get("who") or ""))
            if got["took_over_from"]:
                log.warning("%s took the eSwitch over from %s: the old session's writes are refused",
                            req.get("who"), got["took_over_from"])
            else:
                log.info("eSwitch session: %s (generation %d)", req.get("who"), got["generation"])
            return dict(got, ok=True)
        if op == "list":
            return dict(self.state.listing(), ok=True)
        if op == "counters":
            return dict(self.state.counters(entries=bool(req.get("entries", True))), ok=True)
        if op == "apply":
            try:
                self.sessions.check_write(conn)
            except session_mod.Refused as exc:
                log.error("refused a write: %s", exc)
                raise
            changes = req.get("changes")
            if not isinstance(changes, list):
                raise RequestError("apply needs a list of changes")
            try:
                parsed = wire.changes_from_wire(changes)
            except ValueError as exc:
                raise RequestError(str(exc))
            report = bool(req.get("counted", True))   # an older controller settles with these
            out = dict(self.state.apply(parsed, report_counted=report), ok=True)
            if report:
                out["counted"] = self.state.counted
            return out
        if op == "fault":
            self.state.driver.inject_fault(**{k: v for k, v in req.items() if k != "op"})
            return {"ok": True}
        raise RequestError("unknown op %r" % (op,))


def remove_stale_socket(path: str) -> None:
    """A socket left by a dead eswitchd is removed; a live one (someone answers on it) is
    not ours to remove: refuse to start."""
    if not os.path.exists(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)   # nobody listens: stale
        return
    finally:
        probe.close()
    raise instance.StartupError("%s: another process listens on this socket: not starting" % path)


def serve(cfg: config_mod.Config, driver: Any = None, ready: Optional[threading.Event] = None) -> None:
    path = cfg.path(cfg.eswitch.socket)
    remove_stale_socket(path)   # before the EAL: a live socket means do not touch anything
    driver = driver or GlueDriver(cfg)
    driver.open()
    try:
        server = Server(path, EswitchState(driver),
                        {"driver": cfg.eswitch.driver, "mode": cfg.eswitch.mode, "pid": os.getpid(),
                         "dpu": cfg.dpu_name})
        stop = threading.Event()

        def on_signal(signum: int, frame: Any) -> None:
            log.info("signal %d: shutting down", signum)
            sdnotify.stopping()
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        # systemd's ExecReload: eswitchd keeps no config beyond its ports (a restart opens them)
        signal.signal(signal.SIGHUP, lambda signum, frame: log.info(
            "SIGHUP: nothing to reload (ports and EAL change with a restart)"))
        log.info("eswitchd for %s (%s, %s) listening on %s", cfg.dpu_name, cfg.eswitch.driver,
                 cfg.eswitch.mode, path)
        sdnotify.ready("eSwitch open, listening on %s" % path)
        if ready is not None:
            ready.set()
        try:
            server.serve_forever(poll_interval=0.2)
        finally:
            server.server_close()
            server.remove_socket()
    finally:
        driver.close()  # tears the pipes down and stops the ports


def main(args: argparse.Namespace) -> int:
    if not logsetup.configured():
        logsetup.configure("debug" if getattr(args, "verbose", False) else "info", daemon="eswitchd")
    try:
        cfg = config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        for line in exc.lines():
            log.error("%s", line)
        return EXIT_ERROR
    if not cfg.has_eswitch:
        log.error("%s: dpu.eswitch.driver is none: there is no eSwitch to own", args.config)
        return EXIT_ERROR
    try:
        # first: a second eswitchd for this DPU touches nothing of the first
        instance.acquire(cfg, "eswitchd")
        serve(cfg)
    except instance.StartupError as exc:
        log.error("%s", exc)
        return EXIT_ERROR
    except Exception as exc:  # the EAL, the glue, the socket: one line, no traceback
        log.error("eswitchd cannot start: %s: %s", type(exc).__name__, exc)
        log.debug("start-up failure", exc_info=True)
        return EXIT_ERROR
    return EXIT_OK

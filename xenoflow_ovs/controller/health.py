"""Health checks: DNS probes per backend, with rise/fall hysteresis.

The state machine is pure (`Hysteresis`), the probe is one blocking dnspython
query that works with dnspython 1.16 (the Ryu environment) and 2.x, and the
`Monitor` runs probes on a thread and reports transitions to a callback, which
takes the backend out of (or back into) both planes make-before-break.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..intent.config import Backend, Health, Service

log = logging.getLogger("xenoflow.health")


@dataclass
class Hysteresis:
    """Up after `rise` good probes in a row, down after `fall` bad ones. Starts up:
    a fresh controller must not drain every backend while its first probes fly."""
    rise: int
    fall: int
    up: bool = True
    good: int = 0
    bad: int = 0

    def observe(self, ok: bool) -> Optional[bool]:
        """Record one probe result; return the new state if it changed, else None."""
        if ok:
            self.good, self.bad = self.good + 1, 0
            if not self.up and self.good >= self.rise:
                self.up = True
                return True
        else:
            self.good, self.bad = 0, self.bad + 1
            if self.up and self.bad >= self.fall:
                self.up = False
                return False
        return None


def probe(server: str, port: int, protocol: str, h: Health) -> Tuple[bool, str]:
    """One DNS query to a backend's own address; (ok, why)."""
    import dns.exception
    import dns.message
    import dns.query
    import dns.rcode

    q = dns.message.make_query(h.query, h.qtype)
    src = h.source6 if ":" in server else h.source
    source = str(src) if src is not None else None   # the config holds an IPAddress
    try:
        if protocol == "tcp":
            r = dns.query.tcp(q, server, timeout=h.timeout, port=port, source=source)
        else:
            r = dns.query.udp(q, server, timeout=h.timeout, port=port, source=source)
    except dns.exception.Timeout:
        return False, "timeout after %gs" % h.timeout
    except (OSError, dns.exception.DNSException) as exc:
        return False, "%s: %s" % (type(exc).__name__, exc)
    if r.rcode() != dns.rcode.NOERROR:
        return False, "rcode %s" % dns.rcode.to_text(r.rcode())
    text = " ".join(rr.to_text() for rr in r.answer)
    if h.expect is not None and h.expect not in text:
        return False, "answer %r lacks %r" % (text, h.expect)
    return True, text


Transition = Callable[[str, str, bool, str], None]   # (service, backend, up, why)


def probe_targets(svc: Service, b: Backend) -> List[Tuple[str, str]]:
    """(address, transport) of each probe a round sends to a backend: every configured
    transport over every configured family (default: each family the backend has an
    address of). The backend is healthy in a round only when all of them answer."""
    h = svc.health
    addrs = [(4, b.ip), (6, b.ip6)]
    fams = [(f, a) for f, a in addrs if a is not None and (not h.families or f in h.families)]
    return [(str(a), proto) for _, a in fams for proto in h.protocols]


def probe_all(probe_fn: Callable[[str, int, str, Health], Tuple[bool, str]], svc: Service,
              b: Backend) -> Tuple[bool, str]:
    """A backend's round: stops at the first failure, which names its address and transport."""
    why = ""
    targets = probe_targets(svc, b)
    for addr, proto in targets:
        ok, why = probe_fn(addr, svc.port, proto, svc.health)
        if not ok:
            return False, why if len(targets) == 1 else "%s %s: %s" % (proto, addr, why)
    return True, why


class Monitor:
    """Probes every backend of every service with health enabled, on one thread.

    Probes run one after another: with a handful of backends and sub-second
    timeouts that keeps within the interval, and it never floods a backend."""

    def __init__(self, services: List[Service], on_change: Transition,
                 probe_fn: Callable[[str, int, str, Health], Tuple[bool, str]] = probe,
                 sleep: Callable[[float], None] = time.sleep,
                 spawn: Optional[Callable[..., Any]] = None):
        self.on_change = on_change
        self.probe_fn = probe_fn
        self.sleep = sleep
        self.spawn = spawn  # the framework's hub.spawn: green under Ryu, native under os-ken
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.set_services(services)

    def set_services(self, services: List[Service]) -> None:
        old = getattr(self, "states", {})
        self.services = [s for s in services if s.health.enabled]
        # A reload keeps the state of backends that stay, so a down backend stays down.
        self.states: Dict[Tuple[str, str], Hysteresis] = {}
        for s in self.services:
            for b in s.backends:
                key = (s.name, b.name)
                self.states[key] = old.get(key) or Hysteresis(rise=s.health.rise, fall=s.health.fall)
        self.last: Dict[Tuple[str, str], str] = {}
        self.probed: Dict[Tuple[str, str], Tuple[bool, float]] = {}  # last probe: ok, seconds
        self.path_suspect = getattr(self, "path_suspect", False)

    def down(self) -> Dict[str, List[str]]:
        out: Dict[str, List[str]] = {}
        for (svc, be), st in self.states.items():
            if not st.up:
                out.setdefault(svc, []).append(be)
        return out

    def run_once(self) -> None:
        results = []
        for s in list(self.services):
            for b in s.backends:
                t0 = time.monotonic()
                ok, why = probe_all(self.probe_fn, s, b)
                self.probed[(s.name, b.name)] = (ok, time.monotonic() - t0)
                self.last[(s.name, b.name)] = why
                results.append((s, b, ok, why))
        # Every probe failing at once says more about the probe path (on a BlueField it
        # runs through the Arm's OVS, which may be restarting) than about the backends;
        # and with all of them out the table would keep them all anyway. Such a round
        # changes nothing, so healthy backends are not failed over for nothing.
        if len(results) > 1 and not any(ok for _, _, ok, _ in results):
            if not self.path_suspect:
                log.warning("every health probe failed at once (%s): the probe path is suspect, "
                            "backend states kept", results[0][3])
            self.path_suspect = True
            return
        self.path_suspect = False
        for s, b, ok, why in results:
            key = (s.name, b.name)
            st = self.states.get(key)
            if st is None:
                continue
            changed = st.observe(ok)
            if changed is not None:
                log.warning("backend %s/%s is %s: %s", s.name, b.name,
                            "up" if changed else "DOWN", why)
                self.on_change(s.name, b.name, changed, why)

    def interval(self) -> float:
        return min((s.health.interval for s in self.services), default=1.0)

    def start(self) -> None:
        if self._thread is not None:
            return
        if self.spawn is not None:
            self._thread = self.spawn(self._loop)
        else:
            self._thread = threading.Thread(target=self._loop, name="xenoflow-health", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self.services:
                self.sleep(1.0)   # every service's health was switched off by a reload
                continue
            t0 = time.monotonic()
            try:
                self.run_once()
            except Exception:  # a probe bug must not stop health checking for good
                log.exception("health round failed")
            self.sleep(max(0.0, self.interval() - (time.monotonic() - t0)))

    def stop(self) -> None:
        self._stop.set()

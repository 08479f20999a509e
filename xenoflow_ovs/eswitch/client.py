"""The controller's side of eswitchd: a small blocking client (wire format in wire.py).

eswitchd keeps no policy: it is told pipes and entries (the plan's own objects,
serialised here) and reports them back with their owner's cookie and counters,
so a restarted controller can adopt what is installed instead of re-adding it.
Newline-delimited JSON over a unix socket; one request, one reply.
"""

from __future__ import annotations

import json
import socket
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ..intent.plan import Change, Entry, Meter, Pipe
from .wire import changes_to_wire, entry_from_wire, meter_from_wire, pipe_from_wire

TableVersion = Tuple[str, int]   # (eswitchd's boot, its table version): see daemon.EswitchState


class EswitchError(Exception):
    """eswitchd refused or failed a request; `.doca_error` and `.call` when the glue failed."""

    def __init__(self, message: str, doca_error: Optional[str] = None, call: Optional[str] = None,
                 failed: Optional[list] = None, fenced: bool = False):
        super().__init__(message)
        self.doca_error = doca_error
        self.call = call
        self.failed = failed or []
        self.fenced = fenced     # eswitchd's session fence refused us (a newer controller owns it)


# ---------------------------------------------------------------- client


class EswitchClient:
    """One connection, shared by the controller's threads: `lock` serialises requests
    (the app passes its framework's lock: green under Ryu, native under os-ken).

    With `session` ({"generation": int, "who": str}) every connection first claims the
    eSwitch (eswitch/session.py), taking it over from any older session: the controller
    holds its DPU's instance lock, so it is the one that should write. A refused claim
    raises EswitchError with `fenced` set."""

    def __init__(self, path: str, timeout: float = 10.0, lock: Any = None,
                 session: Optional[Dict[str, Any]] = None):
        import threading
        self.path = path
        self.timeout = timeout
        self.session = session
        self._sock: Optional[socket.socket] = None
        self._buf = b""
        self._features: Optional[List[str]] = None    # the connected eswitchd's, from its hello
        # the table version of the last listing (installed()), None before one or from an
        # eswitchd that does not keep one
        self.listed: Optional[TableVersion] = None
        self.listed_meters: List[Meter] = []
        self._lock = lock if lock is not None else threading.Lock()

    def _connect(self) -> socket.socket:
        if self._sock is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(self.timeout)
            try:
                s.connect(self.path)
            except OSError as exc:
                s.close()
                raise EswitchError("cannot reach eswitchd at %s: %s" % (self.path, exc))
            self._sock, self._buf, self._features = s, b"", None
            if self.session is not None:
                self._exchange(dict(self.session, op="claim", takeover=True))
        return self._sock

    def _exchange(self, req: Dict[str, Any]) -> Dict[str, Any]:
        sock = self._sock
        assert sock is not None
        op = req.get("op")
        try:
            sock.sendall(json.dumps(req, separators=(",", ":")).encode() + b"\n")
            # chunks kept apart and only the newest searched: a listing of 2^16 entries is
            # megabytes, and joining as it comes would copy it over and over
            parts = [self._buf]
            while b"\n" not in parts[-1]:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise EswitchError("eswitchd closed the connection")
                parts.append(chunk)
        except (OSError, EswitchError) as exc:
            self.close()
            raise EswitchError("eswitchd request %s failed: %s" % (op, exc))
        line, self._buf = b"".join(parts).split(b"\n", 1)
        reply = json.loads(line)
        if not reply.get("ok"):
            if reply.get("fenced") and op == "claim":
                self.close()
            raise EswitchError(reply.get("error", "unknown error"), reply.get("doca_error"),
                               reply.get("call"), reply.get("failed"), bool(reply.get("fenced")))
        return reply

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def call(self, op: str, **args: Any) -> Dict[str, Any]:
        with self._lock:
            return self._call(op, args)

    def _call(self, op: str, args: Dict[str, Any]) -> Dict[str, Any]:
        self._connect()
        return self._exchange(dict(args, op=op))

    def hello(self) -> Dict[str, Any]:
        return self.call("hello")

    def features(self) -> List[str]:
        """What the connected eswitchd speaks beyond the first protocol (asked once per
        connection: a restarted eswitchd may be another version)."""
        with self._lock:
            self._connect()
            if self._features is None:
                self._features = list(self._exchange({"op": "hello"}).get("features") or [])
            return self._features

    def table_version(self) -> Optional[TableVersion]:
        """eswitchd's table version now, or None if it keeps none (an older eswitchd)."""
        return _version(self.hello().get("table"))

    def apply(self, changes: Iterable[Change], counted: bool = True) -> Dict[str, Any]:
        """All-or-nothing: on failure eswitchd rolls the whole list back and raises. With
        `counted`, the reply carries each changed entry's counters read right before the
        change (an O(changes) list: leave it out when reading eswitchd's totals)."""
        runs = "runs" in self.features()
        return self.call("apply", changes=changes_to_wire(changes, runs=runs), counted=counted)

    def installed(self) -> Tuple[List[Pipe], List[Entry]]:
        r = self.call("list")
        self.listed = _version(r.get("table"))
        # the shared meters of the same listing (an older eswitchd lists none)
        self.listed_meters = [meter_from_wire(m) for m in r.get("meters") or ()]
        return ([pipe_from_wire(p) for p in r["pipes"]], [entry_from_wire(e) for e in r["entries"]])

    def counters(self, entries: bool = True) -> Dict[str, Any]:
        """{"totals": [{"kind", "owner", "backend", "pkts", "bytes"}], "ports": {port: {...}},
        "table": {"boot", "version"}} and, with `entries`, every entry's own counters:
        "entries": [{"entry": wire, "pkts": n, "bytes": n}] (O(entries): tools and tests)."""
        return self.call("counters", entries=entries)


def _version(table: Any) -> Optional[TableVersion]:
    if not isinstance(table, dict) or table.get("boot") is None:
        return None
    return (str(table["boot"]), int(table["version"]))

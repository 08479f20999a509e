"""The controller's JSON HTTP API, on loopback TCP and on an owner-only unix socket.

Routes are plain callables returning (status, body), registered by the app, so
this module knows nothing of OpenFlow and runs the same under os-ken 4 (native
threads) and Ryu (eventlet-patched threads). The unix socket is how the CLI
reaches a controller inside the lab's network namespace.
"""

from __future__ import annotations

import hmac
import http.client
import io
import json
import logging
import os
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple

from .. import dashboard

log = logging.getLogger("xenoflow.api")

# A route gets the JSON body (or None) and the path parameters, and returns
# (status, body) with a JSON-able body, or (status, bytes, content type).
Route = Callable[..., Tuple[Any, ...]]
MAX_BODY = 1 << 20


class Limits:
    """What one client may hold of a listener. A connection costs a handler (a thread,
    green under Ryu) from accept to close, so the number of connections is the bound on
    handlers; the timeouts make sure a slow or silent client gives its handler back."""
    idle_timeout = 30.0      # a kept-alive connection with no request in it
    request_timeout = 10.0   # from a request's first byte to its last (headers and body)
    write_timeout = 10.0     # a client that does not read its reply
    max_connections = 128    # beyond that the longest idle (or slowest) connection is closed
    max_running = 16         # routes running at once; more get 503 at once

    def __init__(self, **kw: float):
        for k, v in kw.items():
            if not hasattr(Limits, k):
                raise TypeError("no limit %r" % k)
            setattr(self, k, v)


def _match_path(pattern: str, path: str) -> Optional[Dict[str, str]]:
    ps, xs = pattern.strip("/").split("/"), path.strip("/").split("/")
    if len(ps) != len(xs):
        return None
    params = {}
    for p, x in zip(ps, xs):
        if p.startswith("{") and p.endswith("}"):
            if not x:
                return None
            params[p[1:-1]] = x
        elif p != x:
            return None
    return params


def _content_length(values: List[str]) -> Optional[int]:
    """The body length from every Content-Length header, None if malformed (not a
    decimal number, or two headers that disagree)."""
    got = {v.strip() for v in values}
    if not got:
        return 0
    if len(got) > 1:
        return None
    v = got.pop()
    return int(v) if v.isdigit() and v.isascii() else None


class _Conn:
    """One accepted connection as the registry sees it: idle (waiting for a request),
    reading (a request has started) or busy (a route runs: never closed under it)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.state = "idle"
        self.since = time.monotonic()

    def enter(self, state: str) -> None:
        self.state, self.since = state, time.monotonic()


class _Conns:
    """The open connections of one listener, bounded. At the bound a new connection
    evicts the longest idle one, else the one reading a request the longest: a flood
    of idle or stalled clients cannot lock a new request out."""

    def __init__(self, limit: int):
        self.limit = limit
        self.live: Dict[int, _Conn] = {}
        self.lock = threading.Lock()   # never held across I/O: safe with green threads
        self.evicted = 0

    def admit(self, sock: socket.socket) -> Optional[_Conn]:
        victim = None
        with self.lock:
            if len(self.live) >= self.limit:
                cands = [c for c in self.live.values() if c.state != "busy"]
                rank = {"idle": 0, "reading": 1}
                cands.sort(key=lambda c: (rank[c.state], c.since))
                if not cands:
                    return None
                victim = cands[0]
                del self.live[id(victim)]
                self.evicted += 1
            conn = _Conn(sock)
            self.live[id(conn)] = conn
        if victim is not None:
            try:  # its handler's read returns at once; the handler closes it
                victim.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return conn

    def drop(self, conn: _Conn) -> None:
        with self.lock:
            self.live.pop(id(conn), None)


class _DeadlineReader(io.RawIOBase):
    """The socket's reading side with one deadline per request instead of one timeout
    per read: a client sending a byte every few seconds still runs out of time."""

    def __init__(self, sock: socket.socket, conn: _Conn, limits: Limits):
        self.sock, self.conn, self.limits = sock, conn, limits
        self.deadline = 0.0

    def next_request(self) -> None:
        self.conn.enter("idle")
        self.deadline = time.monotonic() + self.limits.idle_timeout

    def readable(self) -> bool:  # noqa: V105 (io.RawIOBase's protocol, called by BufferedReader)
        return True

    def readinto(self, b: Any) -> int:  # noqa: V105 (io.RawIOBase's protocol)
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("request not complete within %gs" % self.limits.request_timeout)
        self.sock.settimeout(left)
        n = self.sock.recv_into(b)
        if n and self.conn.state == "idle":  # the first byte of a request starts its clock
            self.conn.enter("reading")
            self.deadline = time.monotonic() + self.limits.request_timeout
        return n


class _Handler(BaseHTTPRequestHandler):
    server_version = "xenoflow"
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        srv = self.server
        self.conn: _Conn = srv.conn_of.pop(id(self.request))  # type: ignore[attr-defined]
        self.reader = _DeadlineReader(self.request, self.conn, srv.api.limits)  # type: ignore[attr-defined]
        self.rfile = io.BufferedReader(self.reader)  # type: ignore[assignment]
        self.wfile = socketserver._SocketWriter(self.request)  # type: ignore[attr-defined]
        self._unread = 0

    def handle(self) -> None:
        self.close_connection = True
        while True:
            self.reader.next_request()
            self.handle_one_request()
            if self.close_connection:
                return

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s " + fmt, self.client_address, *args)

    def _reply(self, code: int, body: Any, ctype: str = "application/json") -> None:
        if isinstance(body, bytes):
            data = bytes(body)
        else:
            data = json.dumps(body, indent=1, sort_keys=True, default=str).encode() + b"\n"
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if self._unread:  # a body left unread would be taken for the next request
            self.close_connection = True
            self.send_header("Connection", "close")
        if code == 503:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.request.settimeout(self.server.api.limits.write_timeout)  # type: ignore[attr-defined]
        self.wfile.write(data)

    def _authorized(self, api: "Api") -> bool:
        if api.token is None:
            return True
        got = self.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        return hmac.compare_digest(got, api.token_header)  # constant time: no timing oracle

    def _dispatch(self, method: str) -> None:
        api: Api = self.server.api  # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        length = _content_length(self.headers.get_all("Content-Length") or [])
        if length is None or self.headers.get("Transfer-Encoding"):
            self._unread = 1   # unknown extent: the connection cannot be reused
            self._reply(400, {"error": "malformed or missing Content-Length (chunked bodies "
                                       "are not accepted)"})
            return
        self._unread = length
        if length > MAX_BODY:
            self._reply(413, {"error": "body larger than %d bytes" % MAX_BODY})
            return
        if not self._authorized(api):
            self._reply(401, {"error": "missing or wrong bearer token"})
            return
        route, params, allowed = None, {}, []
        for (m, pattern), fn in api.routes.items():
            got = _match_path(pattern, path)
            if got is not None:
                allowed.append(m)
                if m == method:
                    route, params = fn, got
        if route is None:
            if allowed:
                self._reply(405, {"error": "%s not allowed on %s" % (method, path),
                                  "allowed": sorted(allowed)})
            else:
                self._reply(404, {"error": "no route %s %s" % (method, path),
                                  "routes": sorted({p for _, p in api.routes})})
            return
        body = None
        if length:
            raw = self.rfile.read(length)
            if len(raw) < length:  # the client closed mid-body
                self.close_connection = True
                return
            self._unread = 0
            try:
                body = json.loads(raw)
            except ValueError as exc:
                self._reply(400, {"error": "body is not JSON: %s" % exc})
                return
        self._run(api, route, params, body, method, path)

    def _run(self, api: "Api", route: Route, params: Dict[str, str], body: Any, method: str,
             path: str) -> None:
        if not api.enter():
            self._reply(503, {"error": "busy: %d requests running" % api.limits.max_running})
            return
        self.conn.enter("busy")
        try:
            reply = route(body, **params)
        except Exception as exc:  # a bug in a route is a 500, never a dead API thread
            log.exception("route %s %s failed", method, path)
            reply = (500, {"error": "%s: %s" % (type(exc).__name__, exc)})
        finally:
            api.leave()
        self._reply(*reply)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")


class _SpawningMixIn:
    """One handler per connection, started with the API's `spawn` (a native thread under
    os-ken 4, a green thread under Ryu, whose eventlet does not patch `threading`), as
    long as the connection registry admits it."""

    spawn: Callable[..., Any]
    conns: _Conns
    conn_of: Dict[int, _Conn]
    # socketserver's listen backlog: a burst of connects must not wait in SYN retries
    request_queue_size = 256   # noqa: V107

    def process_request(self, request: Any, client_address: Any) -> None:
        conn = self.conns.admit(request)
        if conn is None:   # every connection is running a route: refuse the newcomer
            self.shutdown_request(request)  # type: ignore[attr-defined]
            return
        self.conn_of[id(request)] = conn
        self.spawn(self._handle_one, request, client_address, conn)

    def _handle_one(self, request: Any, client_address: Any, conn: _Conn) -> None:
        try:
            self.finish_request(request, client_address)  # type: ignore[attr-defined]
        except Exception:
            self.handle_error(request, client_address)  # type: ignore[attr-defined]
        finally:
            self.conns.drop(conn)
            self.conn_of.pop(id(request), None)
            self.shutdown_request(request)  # type: ignore[attr-defined]

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("API connection %s ended with an error", client_address, exc_info=True)


class _UnixHTTPServer(_SpawningMixIn, socketserver.UnixStreamServer):
    def get_request(self) -> Tuple[socket.socket, Tuple[str, int]]:
        conn, _ = super().get_request()
        return conn, ("unix", 0)  # BaseHTTPRequestHandler expects (host, port)


class _TCPHTTPServer(_SpawningMixIn, HTTPServer):
    pass


def _thread(fn: Callable[..., Any], *args: Any) -> Any:
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


class ListenError(OSError):
    """A listener could not be opened (address in use, a live socket at the path)."""


def _unix_in_use(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class Api:
    def __init__(self, host: Optional[str], port: Optional[int], unix_path: Optional[str] = None,
                 token: Optional[str] = None, spawn: Callable[..., Any] = _thread,
                 limits: Optional[Limits] = None, name: str = "API"):
        self.host, self.port, self.unix_path = host, port, unix_path
        self.token = token
        self.token_header = ("Bearer " + token).encode() if token is not None else b""
        self.spawn = spawn
        self.limits = limits or Limits()
        self.name = name
        self.routes: Dict[Tuple[str, str], Route] = {}
        self._servers: List[socketserver.BaseServer] = []
        self._running = 0
        self._lock = threading.Lock()
        self._unix_ino: Optional[int] = None

    def route(self, method: str, path: str, fn: Route) -> None:
        self.routes[(method, path)] = fn

    def enter(self) -> bool:
        """Take a route slot if one is free; never waits (a native lock held by a waiting
        green thread would stop every green thread)."""
        with self._lock:
            if self._running >= self.limits.max_running:
                return False
            self._running += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._running -= 1

    def connections(self) -> int:
        return sum(len(s.conns.live) for s in self._servers)  # type: ignore[attr-defined]

    def evictions(self) -> int:
        """Connections closed to make room for a new one, since start."""
        return sum(s.conns.evicted for s in self._servers)  # type: ignore[attr-defined]

    def start(self) -> None:
        if self.host is not None and self.port is not None:
            where = "%s:%d" % (self.host, self.port)
            try:
                srv = _TCPHTTPServer((self.host, self.port), _Handler)
            except OSError as exc:
                raise ListenError(exc.errno, "%s on %s: %s" % (self.name, where, exc.strerror)) from None
            self.port = srv.server_address[1]
            self._start(srv, "http://%s:%d" % (self.host, self.port))
        if self.unix_path:
            os.makedirs(os.path.dirname(self.unix_path) or ".", mode=0o700, exist_ok=True)
            if os.path.exists(self.unix_path):
                if _unix_in_use(self.unix_path):  # another live process serves there: keep it
                    self.stop()
                    raise ListenError(98, "%s on %s: a running process answers on that socket"
                                      % (self.name, self.unix_path))
                os.unlink(self.unix_path)  # a stale socket of a dead controller
            old = os.umask(0o177)  # owner-only from birth
            try:
                srv = _UnixHTTPServer(self.unix_path, _Handler)
            finally:
                os.umask(old)
            self._unix_ino = os.stat(self.unix_path).st_ino
            self._start(srv, "unix:" + self.unix_path)

    def _start(self, srv: socketserver.BaseServer, where: str) -> None:
        srv.api = self  # type: ignore[attr-defined]
        srv.spawn = self.spawn  # type: ignore[attr-defined]
        srv.conns = _Conns(self.limits.max_connections)  # type: ignore[attr-defined]
        srv.conn_of = {}  # type: ignore[attr-defined]
        self._servers.append(srv)
        self.spawn(srv.serve_forever, 0.5)
        log.info("%s listening on %s", self.name, where)

    def stop(self) -> None:
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()
        self._servers = []
        # only the socket we bound: never one a later process put at the same path
        if self.unix_path and self._unix_ino is not None:
            try:
                if os.stat(self.unix_path).st_ino == self._unix_ino:
                    os.unlink(self.unix_path)
            except OSError:
                pass
            self._unix_ino = None


def start_metrics_listener(cfg: Any, metrics: Any, status: Callable[[], Dict[str, Any]],
                           spawn: Callable[..., Any] = _thread) -> Optional[Api]:
    """The read-only listener of `controller.metrics` (cfg.metrics): GET /metrics
    (Prometheus), GET /status and the dashboard page that polls it (GET / and
    /dashboard/, its files at /dashboard/{asset}), no write route behind it, so it can be
    opened to a scraper without the API's token. None when the config has no host for it."""
    ep = getattr(cfg, "metrics", None)
    if ep is None or ep.host is None:
        return None
    srv = Api(ep.host, ep.port, spawn=spawn, name="metrics")
    srv.route("GET", "/metrics", lambda body: (200, metrics.exposition(), metrics.content_type))
    srv.route("GET", "/status", lambda body: (200, status()))
    # paths lose their trailing slash before routing: "/dashboard" is also "/dashboard/"
    # (the page moves itself to "/dashboard/", where its relative links resolve)
    srv.route("GET", "/", lambda body: _dashboard_asset(""))
    srv.route("GET", "/dashboard", lambda body: _dashboard_asset(""))
    srv.route("GET", "/dashboard/{asset}", lambda body, asset: _dashboard_asset(asset))
    srv.start()
    return srv


def _dashboard_asset(name: str) -> Tuple[Any, ...]:
    """A route's reply for one of the dashboard's fixed files, 404 for any other name."""
    got = dashboard.asset(name)
    if got is None:
        return 404, {"error": "no dashboard file %r" % name, "files": sorted(dashboard.ASSETS)}
    return (200,) + got


# ---------------------------------------------------------------- client


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def read_token(path: Optional[str]) -> Optional[str]:
    """The bearer token from a file that only its owner may read (else refuse to start)."""
    if not path:
        return None
    st = os.stat(path)
    if st.st_mode & 0o077:
        raise PermissionError("%s: token file must not be readable by group or others (chmod 600)"
                              % path)
    with open(path) as f:
        token = f.read().strip()
    if not token:
        raise ValueError("%s: token file is empty" % path)
    return token


def request(method: str, path: str, *, unix_path: Optional[str] = None, host: str = "127.0.0.1",
            port: int = 8080, body: Any = None, timeout: float = 10.0,
            token: Optional[str] = None) -> Tuple[int, Any]:
    conn: http.client.HTTPConnection
    if unix_path:
        conn = _UnixConnection(unix_path, timeout)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        if token:
            headers["Authorization"] = "Bearer " + token
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        if resp.getheader("Content-Type", "").startswith("application/json"):
            return resp.status, json.loads(raw or b"null")
        return resp.status, raw.decode(errors="replace")
    finally:
        conn.close()

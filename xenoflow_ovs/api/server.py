"""The controller's JSON HTTP API, on loopback TCP and on an owner-only unix socket.

Routes are plain callables returning (status, body), registered by the app, so
this module knows nothing of OpenFlow and runs the same under os-ken 4 (native
threads) and Ryu (eventlet-patched threads). The unix socket is how the CLI
reaches a controller inside the lab's network namespace.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple

log = logging.getLogger("xenoflow.api")

# A route gets the JSON body (or None) and the path parameters, and returns
# (status, body) with a JSON-able body, or (status, bytes, content type).
Route = Callable[..., Tuple[Any, ...]]
MAX_BODY = 1 << 20


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


class _Handler(BaseHTTPRequestHandler):
    server_version = "xenoflow"
    protocol_version = "HTTP/1.1"

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
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self, method: str) -> None:
        api: Api = self.server.api  # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        if api.token is not None and self.headers.get("Authorization") != "Bearer " + api.token:
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
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._reply(413, {"error": "body larger than %d bytes" % MAX_BODY})
            return
        if length:
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError as exc:
                self._reply(400, {"error": "body is not JSON: %s" % exc})
                return
        try:
            reply = route(body, **params)
        except Exception as exc:  # a bug in a route is a 500, never a dead API thread
            log.exception("route %s %s failed", method, path)
            reply = (500, {"error": "%s: %s" % (type(exc).__name__, exc)})
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
    """One handler per request, started with the API's `spawn` (a native thread under
    os-ken 4, a green thread under Ryu, whose eventlet does not patch `threading`)."""

    spawn: Callable[..., Any]

    def process_request(self, request: Any, client_address: Any) -> None:
        self.spawn(self._handle_one, request, client_address)

    def _handle_one(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)  # type: ignore[attr-defined]
        except Exception:
            self.handle_error(request, client_address)  # type: ignore[attr-defined]
        finally:
            self.shutdown_request(request)  # type: ignore[attr-defined]


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


class Api:
    def __init__(self, host: Optional[str], port: Optional[int], unix_path: Optional[str] = None,
                 token: Optional[str] = None, spawn: Callable[..., Any] = _thread):
        self.host, self.port, self.unix_path = host, port, unix_path
        self.token = token
        self.spawn = spawn
        self.routes: Dict[Tuple[str, str], Route] = {}
        self._servers: List[socketserver.BaseServer] = []

    def route(self, method: str, path: str, fn: Route) -> None:
        self.routes[(method, path)] = fn

    def start(self) -> None:
        if self.host is not None and self.port is not None:
            srv = _TCPHTTPServer((self.host, self.port), _Handler)
            self._start(srv, "http://%s:%d" % (self.host, srv.server_address[1]))
            self.port = srv.server_address[1]
        if self.unix_path:
            os.makedirs(os.path.dirname(self.unix_path) or ".", mode=0o700, exist_ok=True)
            if os.path.exists(self.unix_path):
                os.unlink(self.unix_path)  # a stale socket of a dead controller
            old = os.umask(0o177)  # owner-only from birth
            try:
                srv = _UnixHTTPServer(self.unix_path, _Handler)
            finally:
                os.umask(old)
            self._start(srv, "unix:" + self.unix_path)

    def _start(self, srv: socketserver.BaseServer, where: str) -> None:
        srv.api = self  # type: ignore[attr-defined]
        srv.spawn = self.spawn  # type: ignore[attr-defined]
        self._servers.append(srv)
        self.spawn(srv.serve_forever, 0.5)
        log.info("API listening on %s", where)

    def stop(self) -> None:
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()
        self._servers = []
        if self.unix_path and os.path.exists(self.unix_path):
            os.unlink(self.unix_path)


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

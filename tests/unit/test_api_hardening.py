"""The API under hostile clients, over real sockets: a stalled request, a flood of idle
connections, malformed lengths; and the token compared in constant time."""

import http.client
import json
import resource
import socket
import threading
import time

import pytest

from xenoflow_ovs.api import server as api

FAST = api.Limits(idle_timeout=3.0, request_timeout=1.0, max_connections=64, max_running=4)


@pytest.fixture
def srv():
    s = api.Api("127.0.0.1", 0, limits=FAST)
    s.route("GET", "/status", lambda body: (200, {"ok": True}))
    s.route("POST", "/echo", lambda body: (200, {"got": body}))
    s.start()
    yield s
    s.stop()


def _timed_status(port, timeout=5.0):
    t0 = time.monotonic()
    code, body = api.request("GET", "/status", port=port, timeout=timeout)
    return code, body, time.monotonic() - t0


def _raw(port, data, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def test_stalled_clients_do_not_block_a_request_and_are_cut_off(srv):
    stalled = []
    for _ in range(20):   # headers begun, never finished; and one dribbling a byte at a time
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")
        stalled.append(s)
    drip = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    stop = threading.Event()

    def dribble():
        for ch in b"GET /status HTTP/1.1\r\nX-Slow: " + b"a" * 200:
            if stop.is_set():
                return
            try:
                drip.send(bytes([ch]))
            except OSError:
                return
            time.sleep(0.2)
    t = threading.Thread(target=dribble, daemon=True)
    t.start()
    try:
        code, body, took = _timed_status(srv.port)
        assert (code, body) == (200, {"ok": True}) and took < 0.5, took
        # the request deadline (1 s) ends every stalled request, the dribbling one too
        time.sleep(FAST.request_timeout + 0.7)
        for s in stalled:
            s.settimeout(2)
            assert s.recv(100) == b""
        drip.settimeout(2)
        assert drip.recv(100) == b""
        assert srv.connections() == 0
    finally:
        stop.set()
        for s in stalled + [drip]:
            s.close()


def _fd_room(want):
    """Raise this process's open-file limit towards `want` client sockets (the listener
    side holds at most max_connections of them)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want + 200 and (hard == resource.RLIM_INFINITY or hard > soft):
        soft = want + 200 if hard == resource.RLIM_INFINITY else min(hard, want + 200)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return min(want, soft - 200)


def test_thousands_of_idle_connections_cannot_lock_out_a_request(srv):
    idle = []
    n = _fd_room(2000)
    assert n >= 4 * FAST.max_connections   # else the flood proves nothing
    try:
        for _ in range(n):
            idle.append(socket.create_connection(("127.0.0.1", srv.port), timeout=5))
        time.sleep(0.3)
        # the listener holds at most max_connections; a new request still gets in, fast
        assert srv.connections() <= FAST.max_connections
        assert srv.evictions() >= n - FAST.max_connections
        worst = max(_timed_status(srv.port)[2] for _ in range(5))
        assert worst < 0.5, worst
        # and a kept-alive client's next request keeps working too
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        for _ in range(3):
            conn.request("GET", "/status")
            assert conn.getresponse().read() and True
        conn.close()
    finally:
        for s in idle:
            s.close()


def test_routes_running_at_once_are_bounded():
    gate = threading.Event()
    s = api.Api("127.0.0.1", 0, limits=api.Limits(max_running=2))
    s.route("GET", "/slow", lambda body: (200, {"waited": gate.wait(10)}))
    s.route("GET", "/fast", lambda body: (200, {}))
    s.start()
    try:
        results = []
        threads = [threading.Thread(target=lambda: results.append(
            api.request("GET", "/slow", port=s.port)[0])) for _ in range(2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5
        while s._running < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert s._running == 2
        assert api.request("GET", "/fast", port=s.port)[0] == 503
        gate.set()
        for t in threads:
            t.join(10)
        assert results == [200, 200]
        assert api.request("GET", "/fast", port=s.port)[0] == 200
    finally:
        s.stop()


@pytest.mark.parametrize("value", [b"abc", b"-1", b"1e3", b"0x10", b"12, 13"])
def test_malformed_content_length_is_400_and_the_server_lives(srv, value):
    out = _raw(srv.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + value +
               b"\r\n\r\n{}")
    assert out.startswith(b"HTTP/1.1 400"), out[:80]
    assert b"Content-Length" in out.split(b"\r\n\r\n", 1)[1]
    assert _timed_status(srv.port)[0] == 200


def test_disagreeing_lengths_and_chunked_bodies_are_400(srv):
    out = _raw(srv.port, b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}")
    assert out.startswith(b"HTTP/1.1 400")
    out = _raw(srv.port, b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400")


def test_an_unread_body_never_becomes_the_next_request(tmp_path):
    tok = tmp_path / "token"
    tok.write_text("s3cret\n")
    tok.chmod(0o600)
    s = api.Api("127.0.0.1", 0, token=api.read_token(str(tok)))
    s.route("POST", "/echo", lambda body: (200, {"got": body}))
    s.start()
    try:
        smuggled = b"GET /echo HTTP/1.1\r\n\r\n"
        out = _raw(s.port, b"POST /echo HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(smuggled) + smuggled)
        assert out.startswith(b"HTTP/1.1 401") and out.count(b"HTTP/1.1") == 1, out
        assert b"Connection: close" in out
    finally:
        s.stop()


def test_token_is_compared_in_constant_time(tmp_path, monkeypatch):
    tok = tmp_path / "token"
    tok.write_text("s3cret\n")
    tok.chmod(0o600)
    calls = []
    real = api.hmac.compare_digest
    monkeypatch.setattr(api.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    s = api.Api("127.0.0.1", 0, token=api.read_token(str(tok)))
    s.route("GET", "/status", lambda body: (200, {}))
    s.start()
    try:
        assert api.request("GET", "/status", port=s.port, token="wrong")[0] == 401
        assert api.request("GET", "/status", port=s.port, token="s3cret")[0] == 200
        assert api.request("GET", "/status", port=s.port)[0] == 401
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
        conn.request("GET", "/status", headers={"Authorization": "Bearer s\u00e9cret"})
        assert conn.getresponse().status == 401   # not ASCII: still a plain refusal
        conn.close()
        assert len(calls) == 4 and all(b == b"Bearer s3cret" for _, b in calls)
    finally:
        s.stop()


def test_metrics_listener_is_read_only():
    class M:
        content_type = "text/plain; version=0.0.4"

        def exposition(self):
            return b"xenoflow_up 1\n"

    class Cfg:
        class metrics:  # noqa: N801 (stands in for the config's Endpoint)
            host, port = "127.0.0.1", 0
    s = api.start_metrics_listener(Cfg, M(), lambda: {"dpu": "bf3"})
    try:
        assert api.request("GET", "/metrics", port=s.port) == (200, "xenoflow_up 1\n")
        assert api.request("GET", "/status", port=s.port) == (200, {"dpu": "bf3"})
        code, body = api.request("POST", "/services/dns/backends/fips2/drain", port=s.port)
        assert code == 404
        assert body["routes"] == ["/", "/dashboard", "/dashboard/{asset}", "/metrics", "/status"]
        assert api.request("POST", "/status", port=s.port)[0] == 405
        assert api.request("POST", "/reload", port=s.port)[0] == 404
    finally:
        s.stop()


def test_a_port_in_use_is_one_clear_error():
    s = api.Api("127.0.0.1", 0)
    s.start()
    try:
        with pytest.raises(api.ListenError, match="API on 127.0.0.1:%d" % s.port):
            api.Api("127.0.0.1", s.port).start()
    finally:
        s.stop()


def test_a_live_unix_socket_is_neither_replaced_nor_removed(tmp_path):
    path = str(tmp_path / "api.sock")
    first = api.Api(None, None, path)
    first.route("GET", "/status", lambda body: (200, {"who": "first"}))
    first.start()
    try:
        with pytest.raises(api.ListenError, match="answers on that socket"):
            api.Api(None, None, path).start()
        assert api.request("GET", "/status", unix_path=path) == (200, {"who": "first"})
    finally:
        first.stop()
    assert not (tmp_path / "api.sock").exists()
    # a stale socket (nobody listening) is replaced
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()
    second = api.Api(None, None, path)
    second.route("GET", "/status", lambda body: (200, {"who": "second"}))
    second.start()
    try:
        assert json.dumps(api.request("GET", "/status", unix_path=path)[1]) == '{"who": "second"}'
    finally:
        second.stop()

"""The API server on loopback TCP and on an owner-only unix socket; the CLI calls it."""

import http.client
import json
import os
import stat

import pytest

from xenoflow_ovs.api import server as api
from xenoflow_ovs.cli import main as cli_main


@pytest.fixture
def server(tmp_path):
    srv = api.Api("127.0.0.1", 0, str(tmp_path / "run" / "api.sock"))
    state = {"verdict": "consistent", "dpu": "bf3", "services": {"dns": {"fips2": {"ovs_packets": 3}}}}
    srv.route("GET", "/status", lambda body: (200, state))
    srv.route("GET", "/check", lambda body: (200, {"verdict": state["verdict"], "buckets": [],
                                                   "routes": [], "drift": [], "fallback_packets": 0,
                                                   "miss_other_packets": 0}))
    srv.route("POST", "/echo", lambda body: (200, {"got": body}))
    srv.route("GET", "/boom", lambda body: 1 / 0)
    srv.route("PUT", "/things/{name}/weight", lambda body, name: (200, {"name": name, "w": body}))
    srv.route("GET", "/metrics", lambda body: (200, b"m 1\n", "text/plain; version=0.0.4"))
    srv.start()
    yield srv, state
    srv.stop()


def test_tcp_and_unix_answer_the_same(server):
    srv, _ = server
    assert api.request("GET", "/status", port=srv.port)[1]["dpu"] == "bf3"
    assert api.request("GET", "/status", unix_path=srv.unix_path)[1]["dpu"] == "bf3"
    mode = stat.S_IMODE(os.stat(srv.unix_path).st_mode)
    assert mode & 0o077 == 0, oct(mode)


def test_errors_are_json_and_4xx(server):
    srv, _ = server
    code, body = api.request("GET", "/nope", port=srv.port)
    assert code == 404 and "/status" in body["routes"]
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    conn.request("POST", "/echo", body=b"{not json", headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 400 and "not JSON" in json.loads(resp.read())["error"]
    conn.close()
    code, body = api.request("POST", "/echo", port=srv.port, body={"a": 1})
    assert (code, body) == (200, {"got": {"a": 1}})
    code, body = api.request("GET", "/boom", port=srv.port)
    assert code == 500 and "ZeroDivisionError" in body["error"]
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    conn.putrequest("POST", "/echo")
    conn.putheader("Content-Length", str(api.MAX_BODY + 1))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()


def test_cli_status_and_check_exit_codes(server, capsys):
    srv, state = server
    assert cli_main(["status", "--socket", srv.unix_path, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dpu"] == "bf3"
    assert cli_main(["check", "--socket", srv.unix_path]) == 0
    state["verdict"] = "drift"
    assert cli_main(["check", "--socket", srv.unix_path]) == 1
    assert cli_main(["check", "--socket", srv.unix_path + ".missing"]) == 2


def test_path_parameters_methods_and_raw_bodies(server):
    srv, _ = server
    assert api.request("PUT", "/things/fips2/weight", port=srv.port, body=3) == \
        (200, {"name": "fips2", "w": 3})
    code, body = api.request("DELETE", "/things/fips2/weight", port=srv.port)
    assert code == 405 and body["allowed"] == ["PUT"]
    assert api.request("GET", "/metrics", port=srv.port) == (200, "m 1\n")


def test_bearer_token(tmp_path):
    tok = tmp_path / "token"
    tok.write_text("s3cret\n")
    tok.chmod(0o644)
    with pytest.raises(PermissionError):
        api.read_token(str(tok))
    tok.chmod(0o600)
    srv = api.Api("127.0.0.1", 0, token=api.read_token(str(tok)))
    srv.route("GET", "/status", lambda body: (200, {"ok": True}))
    srv.start()
    try:
        assert api.request("GET", "/status", port=srv.port)[0] == 401
        assert api.request("GET", "/status", port=srv.port, token="wrong")[0] == 401
        assert api.request("GET", "/status", port=srv.port, token="s3cret") == (200, {"ok": True})
    finally:
        srv.stop()

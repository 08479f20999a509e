"""The API server against its OpenAPI document: every route documented, every documented
route served, every response valid; bad requests are 4xx and change nothing."""

import copy
import os
import random
import shutil
import tempfile

import openapi_check
import pytest
import yaml

from xenoflow_ovs.api import handlers as routes
from xenoflow_ovs.api import server as api
from xenoflow_ovs.api.metrics import Metrics
from xenoflow_ovs.controller import status
from xenoflow_ovs.controller.runtime import Runtime
from xenoflow_ovs.intent import config, consistency

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(ROOT, "topologies", "paper", "xenoflow.yaml")
DOC = openapi_check.DOC
validate = openapi_check.validate


class Controller:
    """What the routes need of a running controller, over a Runtime whose OVS side is a
    table; its status comes from the controller's own builder."""

    def __init__(self, cfg):
        self.flows = {}
        self.meters = {}
        self.runtime = Runtime(cfg, self.apply)
        self.metrics = Metrics(cfg.dpu_name, self.snapshot)
        self.path = PAPER

    def apply(self, changes):
        for c in changes:
            if c.op.endswith("_meter"):     # OVS meters: a table of their own
                if c.op == "delete_meter":
                    del self.meters[c.item.key]
                else:
                    self.meters[c.item.key] = c.item
            elif c.op == "delete":
                del self.flows[c.item.key]
            else:
                self.flows[c.item.key] = c.item

    def by_bridge(self):
        out = {}
        for f in self.flows.values():
            out.setdefault(f.bridge, []).append(f)
        return out

    def check(self):
        rt = self.runtime
        return consistency.check(rt.cfg, rt.in_force, self.by_bridge(), counters={"fallback": None})

    def snapshot(self):
        rt = self.runtime
        view = {"dpu": rt.cfg.dpu_name, "eswitch": {"driver": rt.cfg.eswitch.driver},
                "bridges": {b.name: {"connected": True} for b in rt.cfg.bridges},
                "services": {}, "fallback_packets": None, "miss_other_packets": 0, "packet_ins": 0}
        return status.build(rt, view, self.check()["verdict"])

    def reload_from_file(self):
        return self.runtime.reload(config.load(self.path), why="reload")


@pytest.fixture
def server():
    data = config.to_data(config.load(PAPER))
    data["dpu"]["eswitch"]["driver"] = "none"
    data["services"][0]["policy"]["bits"] = 3
    ctl = Controller(config.from_data(data, base_dir=os.path.dirname(PAPER)))
    ctl.path = None
    ctl.runtime.transition(why="initial")
    sockdir = tempfile.mkdtemp(prefix="xf-")   # unix socket paths must stay < 108 bytes
    srv = api.Api("127.0.0.1", 0, os.path.join(sockdir, "api.sock"))
    routes.install(srv, ctl.runtime, ctl, ctl.reload_from_file, ctl.metrics)
    srv.start()
    yield srv, ctl
    srv.stop()
    shutil.rmtree(sockdir, ignore_errors=True)


def call(srv, method, path, body=None):
    return api.request(method, path, port=srv.port, body=body)


def test_every_route_is_documented_and_every_documented_route_served(server):
    srv, _ = server
    served = {(m, p) for m, p in srv.routes}
    documented = {(m.upper(), p) for p, ops in DOC["paths"].items() for m in ops if m != "parameters"}
    assert served == documented


def test_responses_match_the_document(server):
    srv, ctl = server
    for path in ("/status", "/check", "/plan", "/services", "/services/dns", "/metrics", "/openapi.yaml"):
        code, body = call(srv, "GET", path)
        validate("GET", path if path != "/services/dns" else "/services/{service}", code, body)
    assert call(srv, "GET", "/check")[1]["verdict"] == "consistent"
    t = "/services/{service}/backends"
    code, body = call(srv, "POST", "/services/dns/backends",
                      {"name": "fips6", "ip": "198.18.0.6", "mac": "02:00:c6:12:00:06", "weight": 2})
    assert code == 201, body
    validate("POST", t, code, body)
    assert body["moved_buckets"] == 8   # OVS alone: its rules moved every bucket (1:1 -> 1:1:2)
    view = call(srv, "GET", "/services/dns")[1]
    assert "fips6" in view["buckets"] and {b["name"] for b in view["backends"]} >= {"fips6"}
    code, body = call(srv, "PUT", "/services/dns/backends/fips6/weight", {"weight": 1})
    validate("PUT", t + "/{backend}/weight", code, body)
    code, body = call(srv, "POST", "/services/dns/backends/fips6/drain")
    validate("POST", t + "/{backend}/drain", code, body)
    assert "fips6" not in call(srv, "GET", "/services/dns")[1]["buckets"]
    code, body = call(srv, "POST", "/services/dns/backends/fips6/undrain")
    validate("POST", t + "/{backend}/undrain", code, body)
    code, body = call(srv, "DELETE", "/services/dns/backends/fips6")
    validate("DELETE", t + "/{backend}", code, body)
    assert "fips6" not in call(srv, "GET", "/services/dns")[1]["buckets"]
    metrics = call(srv, "GET", "/metrics")[1]
    assert 'xenoflow_backend_up{backend="fips2",dpu="bf3",service="dns"} 1.0' in metrics


@pytest.mark.parametrize("method,path,body,code", [
    ("POST", "/services/dns/backends", {"name": "x", "ip": "nope", "mac": "02:00:c6:12:00:09"}, 400),
    ("POST", "/services/dns/backends", {"name": "fips2", "ip": "198.18.0.9",
                                        "mac": "02:00:c6:12:00:09"}, 400),
    ("POST", "/services/dns/backends", {"name": "x", "ip": "198.18.0.9"}, 400),
    ("POST", "/services/dns/backends", {"name": "x", "ip": "198.18.0.9", "mac": "02:00:c6:12:00:09",
                                        "colour": "red"}, 400),
    ("POST", "/services/dns/backends", ["not", "an", "object"], 400),
    ("POST", "/services/nope/backends", {"name": "x", "ip": "198.18.0.9", "mac": "02:00:c6:12:00:09"}, 404),
    ("PUT", "/services/dns/backends/fips2/weight", {"weight": "heavy"}, 400),
    ("PUT", "/services/dns/backends/fips2/weight", {"weight": -1}, 400),
    ("PUT", "/services/dns/backends/ghost/weight", {"weight": 1}, 404),
    ("DELETE", "/services/dns/backends/ghost", None, 404),
    ("PUT", "/services/dns/limits", {"pps": 0}, 400),
    ("PUT", "/services/dns/limits", {"burst": 10}, 400),
    ("PUT", "/services/dns/limits", {"ppps": 10}, 400),
    ("PUT", "/services/dns/limits", {}, 400),
    ("PUT", "/services/dns/limits", [100], 400),
    ("PUT", "/services/nope/limits", {"pps": 100}, 404),
    ("DELETE", "/services/nope/limits", None, 404),
    ("POST", "/services/dns/backends/ghost/drain", None, 404),
    ("GET", "/services/nope", None, 404),
])
def test_bad_requests_are_4xx_and_change_nothing(server, method, path, body, code):
    srv, ctl = server
    before = (copy.deepcopy(ctl.flows), ctl.runtime.cfg)
    got, reply = call(srv, method, path, body)
    assert got == code and reply["error"], reply
    assert (ctl.flows, ctl.runtime.cfg) == before


def test_a_bad_limit_gets_the_config_error_naming_its_key(server):
    srv, ctl = server
    code, body = call(srv, "PUT", "/services/dns/limits", {"per_bucket_pps": 100, "pps": -5})
    assert code == 400 and any("services[0].limits.pps: must be between 1" in e for e in body["errors"]), body
    validate("PUT", "/services/{service}/limits", code, body)
    assert ctl.runtime.cfg.service("dns").limits.kind == ""


def test_limits_are_set_replaced_and_removed_at_run_time(server):
    srv, ctl = server
    code, body = call(srv, "PUT", "/services/dns/limits", {"per_bucket_pps": 200, "per_bucket_burst": 20})
    assert code == 200 and body["ovs"] > 0, body
    validate("PUT", "/services/{service}/limits", code, body)
    lim = ctl.runtime.cfg.service("dns").limits
    assert lim.bucket == (200, 20) and lim.service is None
    meters = list(ctl.runtime.in_force.meters())
    assert len(meters) == 16 and {m.pps for m in meters} == {200}, "a meter per bucket (bits 3) and family"
    assert set(ctl.meters) == {m.key for m in meters}, "the meters reached OVS"
    view = call(srv, "GET", "/services/dns")[1]
    validate("GET", "/services/{service}", 200, view)
    assert view["limits"] == {"per_bucket_pps": 200, "per_bucket_burst": 20}
    st = call(srv, "GET", "/status")[1]
    validate("GET", "/status", 200, st)
    assert st["limits"]["dns"]["per_bucket_pps"] == 200
    assert st["limits"]["dns"]["limited_packets"] == {"ovs": {"service": 0, "bucket": 0}, "eswitch": None}
    code, body = call(srv, "PUT", "/services/dns/limits", {"pps": 1000})      # replaces, not merges
    assert code == 200
    lim = ctl.runtime.cfg.service("dns").limits
    assert lim.service == (1000, 100) and lim.bucket is None
    assert [m.scope for m in ctl.runtime.in_force.meters()] == ["service"]
    metrics = call(srv, "GET", "/metrics")[1]
    assert 'xenoflow_limit_pps{dpu="bf3",scope="service",service="dns"} 1000.0' in metrics
    code, body = call(srv, "DELETE", "/services/dns/limits")
    validate("DELETE", "/services/{service}/limits", code, body)
    assert code == 200 and ctl.runtime.cfg.service("dns").limits.kind == ""
    assert not list(ctl.runtime.in_force.meters()) and not ctl.meters
    assert call(srv, "GET", "/services/dns")[1]["limits"] is None


def test_cli_limits_uses_the_api_and_status_prints_them(server, capsys):
    from xenoflow_ovs.cli import main as cli_main
    srv, ctl = server
    sock = ["--socket", srv.unix_path]
    assert cli_main(["limits", "dns", "--per-bucket-pps", "300"] + sock) == 0
    assert "limits dns per_bucket_pps=300: applied" in capsys.readouterr().out
    assert ctl.runtime.cfg.service("dns").limits.bucket == (300, 30)
    assert cli_main(["status"] + sock) == 0
    out = capsys.readouterr().out
    assert "dns limits: per bucket 300 pps (burst 30, the default); rate-limited packets: ovs 0" in out
    assert cli_main(["limits", "dns", "--pps", "0"] + sock) == 2
    assert "services[0].limits.pps" in capsys.readouterr().err
    assert cli_main(["limits", "dns"] + sock) == 2
    assert cli_main(["limits", "dns", "--remove"] + sock) == 0
    assert ctl.runtime.cfg.service("dns").limits.kind == ""


def test_draining_the_last_backend_is_a_conflict(server):
    srv, ctl = server
    assert call(srv, "POST", "/services/dns/backends/fips2/drain")[0] == 200
    code, body = call(srv, "POST", "/services/dns/backends/fips3/drain")
    assert code == 409 and "last backend" in body["error"]
    validate("POST", "/services/{service}/backends/{backend}/drain", code, body)


def test_reload_good_and_bad_files(server, tmp_path):
    srv, ctl = server
    data = config.to_data(ctl.runtime.cfg)
    f = tmp_path / "xf.yaml"
    ctl.path = str(f)
    f.write_text("services: [\n")           # broken: rejected, running state kept
    before = (dict(ctl.flows), ctl.runtime.cfg)
    code, body = call(srv, "POST", "/reload")
    assert code == 400 and any("YAML syntax" in e for e in body["errors"])
    validate("POST", "/reload", code, body)
    assert (ctl.flows, ctl.runtime.cfg) == before
    data["services"][0]["backends"][1]["weight"] = 3    # good: a minimal diff
    f.write_text(yaml.safe_dump(data))
    code, body = call(srv, "POST", "/reload")
    assert code == 200 and body["ovs"] > 0, body
    validate("POST", "/reload", code, body)
    assert ctl.runtime.cfg.service("dns").backend("fips3").weight == 3
    code, body = call(srv, "POST", "/reload")       # same file again: nothing to do
    assert (code, body["ovs"], body["eswitch"]) == (200, 0, 0)


def test_cli_backend_commands_use_the_api(server, capsys):
    from xenoflow_ovs.cli import main as cli_main
    srv, ctl = server
    sock = ["--socket", srv.unix_path]
    assert cli_main(["backend", "drain", "fips3"] + sock) == 0
    assert "drain dns/fips3: applied" in capsys.readouterr().out
    assert not ctl.runtime.in_service("dns", "fips3")
    assert cli_main(["backend", "drain", "fips2"] + sock) == 2          # the last one: 409
    assert "last backend" in capsys.readouterr().err
    assert cli_main(["backend", "undrain", "fips3"] + sock) == 0
    assert cli_main(["backend", "add", "fips6", "--ip", "198.18.0.6", "--mac", "02:00:c6:12:00:06"]
                    + sock) == 0
    assert "fips6" in ctl.runtime.in_force.table("dns")
    assert cli_main(["backend", "weight", "fips6", "--weight", "2"] + sock) == 0
    assert ctl.runtime.cfg.service("dns").backend("fips6").weight == 2
    assert cli_main(["backend", "add", "bad", "--ip", "nope", "--mac", "02:00:c6:12:00:07"] + sock) == 2
    assert "ip" in capsys.readouterr().err
    assert cli_main(["backend", "remove", "fips6"] + sock) == 0
    assert cli_main(["backend", "remove", "ghost"] + sock) == 2


def test_broken_config_mutants_never_change_a_running_controller(server, tmp_path):
    """The config fuzzer's mutants, fed to POST /reload: a rejected file changes nothing."""
    from config_mutants import mutate
    srv, ctl = server
    original = yaml.safe_dump(config.to_data(ctl.runtime.cfg), sort_keys=False)
    f = tmp_path / "xf.yaml"
    ctl.path = str(f)
    rnd = random.Random(11)
    rejected = 0
    for _ in range(40):
        before = (dict(ctl.flows), ctl.runtime.cfg, ctl.runtime.in_force)
        f.write_text(mutate(original, rnd))
        code, body = call(srv, "POST", "/reload")
        if code == 400:
            rejected += 1
            assert body["errors"] and (dict(ctl.flows), ctl.runtime.cfg, ctl.runtime.in_force) == before
        else:
            assert code in (200, 409), body     # a valid mutant is applied (or refused whole)
        f.write_text(original)
        assert call(srv, "POST", "/reload")[0] == 200
    assert rejected >= 10

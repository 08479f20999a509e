"""The dashboard page in a real browser (headless Chromium, no WebDriver), served by the real
metrics listener (api.server.start_metrics_listener) from the installed package, polling a
status built by the controller's own builder (controller.status.build over a Runtime of the
paper's intent) whose counters grow at every poll.

What the page offers to tests (stable, also for the lab's end-to-end test):
  URLs          /dashboard/ (the page; / and /dashboard move there), /dashboard/dashboard.js,
                /dashboard/dashboard.css, /dashboard/index.html; the page polls ../status
  #xf-banner    data-state="ok" (and hidden) | "unreachable": "controller unreachable since HH:MM:SS"
  #xf-main      data-stale="true" while unreachable (the last data, greyed)
  #xf-dpu, #xf-updated, #xf-verdict (data-verdict), #xf-drift > li[data-drift]
  #xf-fallback  data-alarm="false" ("fallback 0") | "true" | "n/a" ("fallback n/a (OVS alone)"),
                data-value: the packets
  #xf-fallback-alarm   present only while fallback_packets > 0 (data-value: the packets)
  #xf-miss-other       data-value (packets), data-rate (packets/s)
  #xf-eswitch, #xf-bridges
  section.xf-service[data-service=S] > tr.xf-backend[data-service=S][data-backend=B]
                [data-state=in-service|drained|unhealthy|out-of-service], cells td[data-field=...]:
                state, eswitch-pps, eswitch-bps, ovs-pps, ovs-bps, eswitch-packets, ovs-packets
                (data-value: the number, "" before two samples), pps-chart and bps-chart holding
                svg[data-chart=pps|bps] > polyline[data-series=eswitch|ovs]
  #xf-limits-section > #xf-limits > tr.xf-limit[data-service=S], td[data-field=pps|burst|
                per-bucket-pps|per-bucket-burst|eswitch-limited|ovs-limited|buckets]
  #xf-fleet-section > #xf-fleet > tr.xf-dpu[data-dpu=D][data-self=true|false]
                th[data-field=dpu] td[data-field=version|state|verdict|announcement|store];
                #xf-fleet-peers > li[data-peer]
  #xf-transition, #xf-reconcile, #xf-events > li[data-event=transition|reconcile|fleet-apply]
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from types import SimpleNamespace

import artefacts
import openapi_check
import pytest
from process_helpers import free_port

from xenoflow_ovs.api import server as api
from xenoflow_ovs.api.metrics import Metrics
from xenoflow_ovs.controller import status as status_mod
from xenoflow_ovs.controller.counters import Drops, MeteredTotals
from xenoflow_ovs.controller.runtime import Runtime
from xenoflow_ovs.intent import config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(ROOT, "topologies", "paper", "xenoflow.yaml")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LOADED, IDLE = "fips2", "fips3"
PKTS_PER_POLL, BYTES_PER_PKT = 500, 82
# virtual time: Chromium runs the page's timers without waiting; 11 s are 5 polls
BUDGET_MS = 11000


# ---------------------------------------------------------------- the status source


class Dpu:
    """A controller's status, built by controller.status.build from a Runtime of the paper's
    intent (with rate limits), its eswitchd totals (fed in eswitchd's reply format) and an
    app view as the app's Status.refresh writes it. Every call is one poll: the loaded
    backend's counters, its bucket's rate-limited drops and fallback (when asked) grow."""

    def __init__(self, driver="softdoca", fallback_per_poll=0, fail_after=None, read_every=1):
        data = config.to_data(config.load(PAPER))
        data["dpu"]["eswitch"]["driver"] = driver
        data["services"][0]["limits"] = {"pps": 5000, "per_bucket_pps": 200}
        data["controller"]["metrics"] = {"host": "127.0.0.1", "port": free_port()}
        self.cfg = config.from_data(data, base_dir=os.path.dirname(PAPER))
        self.flows = {}
        self.rt = Runtime(self.cfg, self._apply)
        self.drops = Drops()
        self.rt.es_totals = MeteredTotals(self.drops)
        self.rt.transition(why="initial")
        self.rt.start()
        self.reconciled = {"time": time.time(), "bridge": "ovsbr1", "kind": "adopt", "actions": {"add": 0}}
        self.fallback_per_poll = fallback_per_poll
        self.fail_after = fail_after
        self.read_every = read_every   # eswitchd polled at every read_every-th status only
        self.polls = 0
        self.lock = threading.Lock()

    def _apply(self, changes):
        for c in changes:
            if c.op == "delete":
                self.flows.pop(c.item.key, None)
            else:
                self.flows[c.item.key] = c.item

    def _eswitchd_reply(self, n):
        """What eswitchd's counters call answers after n polls of traffic to LOADED."""
        pkts = n * PKTS_PER_POLL if self.cfg.has_eswitch else 0
        return {"table": {"boot": "b1"}, "ports": {p: {"miss_pkts": 0} for p in ("p0", "p1")},
                "totals": [{"kind": "bucket", "owner": "dns", "backend": LOADED, "pkts": pkts,
                            "bytes": pkts * BYTES_PER_PKT},
                           {"kind": "drop", "owner": "dns", "backend": "bucket/2", "pkts": n * 40,
                            "bytes": n * 40 * BYTES_PER_PKT}]}

    def _view(self, n):
        """The app view (controller/status.py, Status.refresh) after n polls."""
        plan, es = self.rt.in_force, self.cfg.eswitch
        ovs_pkts = 0 if self.cfg.has_eswitch else n * PKTS_PER_POLL
        services = {svc.name: {b.name: {"ovs_packets": ovs_pkts if b.name == LOADED else 0,
                                        "ovs_bytes": ovs_pkts * BYTES_PER_PKT if b.name == LOADED else 0}
                               for b in svc.backends} for svc in self.cfg.services}
        bridges = {b.name: {"connected": True, "flows": plan.flow_count(b.name),
                            "planned": plan.flow_count(b.name), "in_sync": True}
                   for b in self.cfg.bridges}
        return {"dpu": self.cfg.dpu_name, "runtime": "osken", "time": time.time(), "pid": os.getpid(),
                "eswitch": {"driver": es.driver, "mode": es.mode, "mirror_routes": es.mirror_routes,
                            "error": None},
                "bridges": bridges, "services": services, "routes": {},
                "fallback_packets": n * self.fallback_per_poll if self.cfg.has_eswitch else None,
                "miss_other_packets": 3 * n, "packet_ins": 0, "repairs": 0,
                "last_reconcile": self.reconciled,
                "last_transition": dict(self.rt.last_transition), "ovsdb": {}, "handler_errors": 0,
                "of_errors": 0}

    def status(self):
        with self.lock:
            self.polls += 1
            n = self.polls
            if self.fail_after is not None and n > self.fail_after:
                os._exit(0)   # the controller dies mid-request: the page must say so
            if self.cfg.has_eswitch and (n - 1) % self.read_every == 0:
                self.rt.es_totals.update(self._eswitchd_reply(n))
            verdict = "fallback" if self.fallback_per_poll and self.cfg.has_eswitch else "consistent"
            return status_mod.build(self.rt, self._view(n), verdict, limited=self.drops)


@pytest.fixture
def served():
    """The real metrics listener serving a Dpu's status; yields (base URL, dpu)."""
    listeners = []

    def serve(dpu):
        srv = api.start_metrics_listener(dpu.cfg, Metrics(dpu.cfg.dpu_name, dpu.status), dpu.status)
        listeners.append(srv)
        return "http://127.0.0.1:%d" % srv.port
    yield serve
    for srv in listeners:
        srv.stop()


# ---------------------------------------------------------------- the browser and the DOM


def chromium(url, tmp_path, *extra):
    assert CHROMIUM, "chromium is needed for the dashboard's browser tests (apt-get install chromium)"
    profile = tempfile.mkdtemp(prefix="xf-chromium-", dir=str(tmp_path))
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-extensions", "--disable-background-networking", "--user-data-dir=" + profile,
            "--virtual-time-budget=%d" % BUDGET_MS] + list(extra) + [url]
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Dom(HTMLParser):
    """Chromium's serialized DOM as a flat list of elements, each with its attributes and
    the text of everything inside it."""
    VOID = {"meta", "link", "br", "img", "input", "hr", "col", "source", "wbr"}

    def __init__(self, html):
        super().__init__()
        self.elements, self._open = [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):  # noqa: V105 (HTMLParser's callbacks)
        node = SimpleNamespace(tag=tag, attrs=dict(attrs), parts=[], children=[])
        if self._open:
            self._open[-1].children.append(node)
        self.elements.append(node)
        if tag not in self.VOID:
            self._open.append(node)

    def handle_endtag(self, tag):  # noqa: V105 (HTMLParser's callbacks)
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                return

    def handle_data(self, data):  # noqa: V105 (HTMLParser's callbacks)
        for node in self._open:
            node.parts.append(data)

    def by_id(self, ident):
        got = [e for e in self.elements if e.attrs.get("id") == ident]
        return got[0] if got else None

    def select(self, **attrs):
        want = {k.replace("_", "-"): v for k, v in attrs.items()}
        return [e for e in self.elements if all(e.attrs.get(k) == v for k, v in want.items())]


def text(node):
    return " ".join("".join(node.parts).split())


def field(row, name):
    """The td[data-field=name] inside a row."""
    stack = list(row.children)
    while stack:
        n = stack.pop()
        if n.attrs.get("data-field") == name:
            return n
        stack.extend(n.children)
    raise AssertionError("no data-field=%s in %s" % (name, row.attrs))


def load(url, tmp_path):
    return Dom(chromium(url + "/dashboard/", tmp_path, "--dump-dom"))


def keep_screenshot(url, tmp_path, name):
    """A screenshot, kept among the test artefacts (tests/artefacts.py)."""
    path = str(tmp_path / name)
    chromium(url + "/dashboard/", tmp_path, "--screenshot=" + path, "--window-size=1280,900")
    assert os.path.getsize(path) > 10000   # a PNG of a drawn page, not an empty one
    return artefacts.keep(path, name)


def backend_row(dom, service, backend):
    rows = dom.select(data_service=service, data_backend=backend)
    assert len(rows) == 1, [r.attrs for r in dom.select(**{"class": "xf-backend"})]
    return rows[0]


# ---------------------------------------------------------------- the tests


def test_the_status_source_has_the_controllers_shape():
    dpu = Dpu()
    st = dpu.status()
    openapi_check.validate("GET", "/status", 200, st)
    assert st["services"]["dns"][LOADED]["eswitch_packets"] == PKTS_PER_POLL
    assert dpu.status()["limits"]["dns"]["limited_packets"]["eswitch"] == {"service": 0, "bucket": 80}


def test_the_listener_serves_the_page_and_its_files_only(served):
    base = served(Dpu())
    for path in ("/", "/dashboard", "/dashboard/", "/dashboard/index.html"):
        with urllib.request.urlopen(base + path, timeout=5) as r:
            assert r.headers["Content-Type"] == "text/html; charset=utf-8"
            assert b'<script src="dashboard.js">' in r.read()
    with urllib.request.urlopen(base + "/dashboard/dashboard.js", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/javascript") and b"../status" in r.read()
    for bad in ("/dashboard/__init__.py", "/dashboard/..%2F__init__.py", "/dashboard/../api/openapi.yaml"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + bad, timeout=5)
        assert err.value.code == 404
    req = urllib.request.Request(base + "/dashboard/", method="POST", data=b"{}")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 405


def test_rates_states_limits_and_fallback_0_then_a_drain(served, tmp_path):
    dpu = Dpu()
    base = served(dpu)
    dom = load(base, tmp_path)
    assert dom.by_id("xf-banner").attrs["data-state"] == "ok"
    assert text(dom.by_id("xf-dpu")) == "bf3"
    assert dom.by_id("xf-verdict").attrs["data-verdict"] == "consistent"
    assert "fallback 0" in text(dom.by_id("xf-fallback"))
    assert dom.by_id("xf-fallback").attrs["data-alarm"] == "false" and dom.by_id("xf-fallback-alarm") is None
    loaded, idle = backend_row(dom, "dns", LOADED), backend_row(dom, "dns", IDLE)
    assert text(field(loaded, "name")) == LOADED and text(field(idle, "name")) == IDLE
    pps = float(field(loaded, "eswitch-pps").attrs["data-value"])
    assert pps > 0 and text(field(loaded, "eswitch-pps")).endswith("pkt/s")
    assert float(field(loaded, "eswitch-bps").attrs["data-value"]) == pytest.approx(pps * BYTES_PER_PKT)
    assert float(field(loaded, "ovs-pps").attrs["data-value"]) == 0
    assert float(field(idle, "eswitch-pps").attrs["data-value"]) == 0
    assert int(field(loaded, "eswitch-packets").attrs["data-value"]) >= 2 * PKTS_PER_POLL
    assert loaded.attrs["data-state"] == "in-service" and text(field(loaded, "state")) == "in service"
    charts = [e for e in dom.elements if e.tag == "svg" and e.attrs.get("data-chart") in ("pps", "bps")]
    assert len(charts) == 4
    peaks = {float(c.attrs["data-peak"]) for c in charts if c.attrs["data-chart"] == "pps"}
    assert len(peaks) == 1 and peaks.pop() > 0, "a service's backends share one scale, so rows compare"
    eswitch_line = [e for e in dom.select(data_series="eswitch") if e.attrs.get("points")]
    assert eswitch_line, "no eSwitch line drawn"
    limit = dom.select(**{"class": "xf-limit", "data-service": "dns"})[0]
    assert field(limit, "pps").attrs["data-value"] == "5000"
    assert field(limit, "per-bucket-pps").attrs["data-value"] == "200"
    assert int(field(limit, "eswitch-limited").attrs["data-value"]) > 0
    assert "bucket 2" in text(field(limit, "buckets"))
    assert "initial" in text(dom.by_id("xf-transition"))
    assert float(dom.by_id("xf-miss-other").attrs["data-rate"]) > 0
    assert dom.by_id("xf-fleet-section").attrs.get("hidden") is not None

    dpu.rt.drain("dns", LOADED)
    dom = load(base, tmp_path)
    loaded = backend_row(dom, "dns", LOADED)
    assert loaded.attrs["data-state"] == "drained" and text(field(loaded, "state")) == "drained"
    assert backend_row(dom, "dns", IDLE).attrs["data-state"] == "in-service"
    assert "drain dns/%s" % LOADED in text(dom.by_id("xf-transition"))
    log = [e for e in dom.elements if e.tag == "li" and e.attrs.get("data-event")]
    assert [e.attrs["data-event"] for e in log] == ["transition", "reconcile"], "newest first"
    assert "drain dns/%s" % LOADED in text(log[0])
    keep_screenshot(base, tmp_path, "dashboard-drained.png")


def test_rates_follow_the_eswitch_readings_not_the_tabs_polls(served, tmp_path):
    """The controller reads eswitchd's counters on its own clock: a poll that finds the
    same reading again is no news, not a rate of 0 (the chart would saw-tooth)."""
    base = served(Dpu(read_every=2))
    dom = load(base, tmp_path)
    loaded = backend_row(dom, "dns", LOADED)
    assert float(field(loaded, "eswitch-pps").attrs["data-value"]) > 0
    chart = [e for e in dom.select(data_series="eswitch") if e.attrs.get("points")][0]
    ys = [float(p.split(",")[1]) for p in chart.attrs["points"].split()]
    assert len(ys) >= 3, chart.attrs["points"]
    baseline = 38.0    # the chart's y of 0 (height 40, padding 2)
    assert all(y < baseline for y in ys), chart.attrs["points"]


def test_fallback_is_an_alarm(served, tmp_path):
    base = served(Dpu(fallback_per_poll=7))
    dom = load(base, tmp_path)
    alarm = dom.by_id("xf-fallback-alarm")
    assert alarm is not None and int(alarm.attrs["data-value"]) >= 14
    assert text(alarm).startswith("ALARM: fallback ")
    assert dom.by_id("xf-fallback").attrs["data-alarm"] == "true"
    assert "fallback 0" not in text(dom.by_id("xf-main"))
    keep_screenshot(base, tmp_path, "dashboard-fallback.png")


def test_ovs_alone_has_no_fallback(served, tmp_path):
    dom = load(served(Dpu(driver="none")), tmp_path)
    assert text(dom.by_id("xf-fallback")) == "fallback n/a (OVS alone)"
    assert dom.by_id("xf-fallback-alarm") is None
    loaded = backend_row(dom, "dns", LOADED)
    assert text(field(loaded, "eswitch-pps")) == "n/a"
    assert float(field(loaded, "ovs-pps").attrs["data-value"]) > 0


def test_a_dead_controller_is_announced_and_its_last_data_greyed(tmp_path):
    """The listener in a process of its own that dies (os._exit) at its 4th status."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.join(ROOT, "tests")] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "serve", "3"],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:"), base
        dom = load(base, tmp_path)
        banner = dom.by_id("xf-banner")
        assert banner.attrs["data-state"] == "unreachable" and "hidden" not in banner.attrs
        assert text(banner).startswith("controller unreachable since ")
        since = text(banner)[len("controller unreachable since "):][:8]
        assert time.strptime(since, "%H:%M:%S")
        main = dom.by_id("xf-main")
        assert main.attrs["data-stale"] == "true" and "stale" in main.attrs.get("class", "")
        # the last data stays, greyed
        assert backend_row(dom, "dns", LOADED).attrs["data-state"] == "in-service"
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)


def test_the_page_recovers_by_itself(tmp_path):
    """A status that fails for a while (HTTP 500, as when the status cannot be built), then
    answers again: the banner goes and the data is live again."""
    dpu = Dpu()
    calls = {"n": 0}

    def flaky():
        calls["n"] += 1
        if 2 <= calls["n"] <= 3:
            raise RuntimeError("status unavailable")
        return dpu.status()
    srv = api.start_metrics_listener(dpu.cfg, Metrics(dpu.cfg.dpu_name, dpu.status), flaky)
    try:
        dom = load("http://127.0.0.1:%d" % srv.port, tmp_path)
    finally:
        srv.stop()
    assert calls["n"] >= 5
    assert dom.by_id("xf-banner").attrs["data-state"] == "ok"
    assert dom.by_id("xf-main").attrs["data-stale"] == "false"
    assert float(field(backend_row(dom, "dns", LOADED), "eswitch-pps").attrs["data-value"]) > 0


# another DPU as the store shows it (fleet/follower.py DPU_VIEW_KEYS)
PEER_DPU = {"applied_version": 6, "state": "rejected", "stale": True, "verdict": "drift",
            "announced": False, "announce_why": "not forwarding the VIPs",
            "error": "version 7: port p9 missing", "drained": False, "heard": False, "bgp": {}}


def fleet_view(dpu):
    """This DPU's part of a fleet as the status carries it: fleet/follower.py's view with
    fleet/announcer.py's under "bgp" (the store and FRR themselves are docs/fleet.md's lab)."""
    return {"dpu": dpu, "remotes": ["unix:/run/store1.sock"], "connected": True, "write_failed": None,
            "stale": False, "state": "ok", "error": None, "applied_version": 7, "store_version": 7,
            "rejected_version": None, "source": "store", "disconnected_since": None, "applies": 3,
            "last_apply": {"version": 7}, "local_down": {}, "drained": False,
            "dpus": {dpu: dict(PEER_DPU, applied_version=7, verdict="consistent", announced=True,
                               announce_why="announced", heard=True, state="ok"),
                     "bf4": PEER_DPU},
            "dpus_read_at": time.time(),
            "bgp": {"announced": ["198.18.0.53/32"], "vips": ["198.18.0.53/32"], "why": "announced",
                    "asn": 65001, "speaker": "198.18.1.11", "pathspace": None, "med": None,
                    "peers": {"198.18.1.1": {"bgp": "Established", "bfd": "up", "uptime": "00:01:02",
                                             "prefixes_sent": 1}},
                    "error": None, "drain": None}}


def test_a_fleet_dpu_shows_its_version_verdict_and_announcement(tmp_path):
    dpu = Dpu()

    def with_fleet():
        st = dpu.status()
        st["fleet"] = fleet_view(st["dpu"])
        return st
    openapi_check.validate("GET", "/status", 200, with_fleet())
    srv = api.start_metrics_listener(dpu.cfg, Metrics(dpu.cfg.dpu_name, dpu.status), with_fleet)
    try:
        dom = load("http://127.0.0.1:%d" % srv.port, tmp_path)
    finally:
        srv.stop()
    assert dom.by_id("xf-fleet-section").attrs.get("hidden") is None
    row = dom.select(**{"class": "xf-dpu", "data-dpu": "bf3"})[0]
    assert field(row, "version").attrs["data-value"] == "7"
    assert text(field(row, "version")) == "applied 7 / store 7"
    assert text(field(row, "verdict")) == "consistent"
    assert text(field(row, "announcement")) == "announced 198.18.0.53/32 (announced)"
    assert "BGP Established, BFD up" in text(dom.select(data_peer="198.18.1.1")[0])
    assert row.attrs["data-self"] == "true" and text(field(row, "dpu")) == "bf3 (this DPU)"
    other = dom.select(**{"class": "xf-dpu", "data-dpu": "bf4"})[0]
    assert other.attrs["data-self"] == "false"
    assert text(field(other, "version")) == "applied 6 / store 7"
    assert text(field(other, "state")) == "rejected, stale: version 7: port p9 missing"
    assert text(field(other, "verdict")) == "drift"
    assert text(field(other, "announcement")) == "not announced (not forwarding the VIPs)"
    assert text(field(other, "store")).startswith("silent")
    assert "fleet applied version 7" in text(dom.by_id("xf-events"))


def _serve_until_death(fail_after):
    """`python test_dashboard_page.py serve N`: a listener whose process dies at status N+1."""
    dpu = Dpu(fail_after=fail_after)
    srv = api.start_metrics_listener(dpu.cfg, Metrics(dpu.cfg.dpu_name, dpu.status), dpu.status)
    print("http://127.0.0.1:%d" % srv.port, flush=True)
    time.sleep(120)
    os._exit(1)   # not polled enough: the test fails on the exit code


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    _serve_until_death(int(sys.argv[2]))

"""The dashboard on the paper lab, in a real browser, under DNS load.

`lab up` relays the controller's read-only metrics listener from the DPU's namespace to
127.0.0.1:9302. A headless Chromium, driven through Debian's chromedriver (Selenium, given
both paths: nothing is downloaded), keeps one tab open on the page while a load generator
in fips4 queries the VIP from 8 source addresses at a known rate:

1. both backends by name, each carrying half of the offered load in the eSwitch (the page's
   rates against the generator's), OVS 0, "fallback 0 packets", verdict consistent;
2. a drain through the API: the open tab shows the backend drained within a few seconds
   and, after the next readings, its eSwitch rate at 0 while the other backend takes the
   whole load; undrain; rate limits set through the API appear on the page and leave it;
3. the live /metrics carries every series the Grafana dashboard queries that a DPU like
   this one exports, and `xenoflow top --once` against the relayed listener shows the same
   backends with rates.
Screenshots are kept among the test artefacts (tests/artefacts.py); timings are printed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request

import artefacts
import lab_harness as fl
import pytest

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.lab, pytest.mark.slow]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GRAFANA = os.path.join(REPO, "dashboards", "grafana", "xenoflow.json")
RATE = 400.0                # queries/s offered, over 8 sources: each backend gets half
SOURCES = 8
STATE_WITHIN = 5.0          # a drain on the page: one poll (2 s) after the change, and slack
RATES_WITHIN = 8.0          # ... and in its rates: two more readings after that

# what the page shows, read in one script so a re-render between reads cannot tear it
SNAPSHOT_JS = """
var out = {banner: null, verdict: null, fallback: null, alarm: null, rows: {}, limits: {}};
var b = document.getElementById("xf-banner");
out.banner = b ? b.getAttribute("data-state") : null;
out.verdict = document.getElementById("xf-verdict").getAttribute("data-verdict");
var f = document.getElementById("xf-fallback");
out.fallback = f.textContent;
out.alarm = f.getAttribute("data-alarm");
function fields(row) {
  var o = {};
  row.querySelectorAll("[data-field]").forEach(function (c) {
    o[c.getAttribute("data-field")] = {text: c.textContent, value: c.getAttribute("data-value")};
  });
  return o;
}
document.querySelectorAll("tr.xf-backend").forEach(function (r) {
  out.rows[r.getAttribute("data-backend")] = {state: r.getAttribute("data-state"), fields: fields(r)};
});
document.querySelectorAll("tr.xf-limit").forEach(function (r) {
  out.limits[r.getAttribute("data-service")] = fields(r);
});
return JSON.stringify(out);
"""


@pytest.fixture(scope="module")
def lab():
    with fl.running_lab("xf-dash-") as lab:
        yield lab


@pytest.fixture(scope="module")
def load(lab):
    """DNS load for the whole module, stopped (by PID) at its end."""
    lab.wait_settled(30)
    ld = lab.load(lab.sources(SOURCES), RATE, duration=240)
    yield ld
    ld.kill()


@pytest.fixture(scope="module")
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "Debian's chromium and chromium-driver are missing (scripts/install-deps.sh)"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--window-size=1280,760", "--hide-scrollbars"):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service(driver), options=opts)
    try:
        yield drv
    finally:
        drv.quit()


def snapshot(browser):
    return json.loads(browser.execute_script(SNAPSHOT_JS))


def value(snap, backend, field):
    v = snap["rows"][backend]["fields"][field]["value"]
    return float(v) if v not in (None, "") else None


def wait_page(browser, cond, timeout, what):
    """The first snapshot for which cond holds, and the seconds it took."""
    t0, snap = time.monotonic(), None
    while time.monotonic() - t0 < timeout:
        snap = snapshot(browser)
        try:
            if cond(snap):
                return snap, time.monotonic() - t0
        except (KeyError, TypeError):       # the row or field is not drawn yet
            pass
        time.sleep(0.2)
    pytest.fail("the page did not show %s within %.0f s; it shows %s" % (what, timeout, json.dumps(snap)))


def fit_window_to_page(browser):
    """Headless Chromium shoots the viewport only: grow the window by what is below it."""
    size = browser.get_window_size()
    below = browser.execute_script("return document.documentElement.scrollHeight - window.innerHeight")
    if below > 0:
        browser.set_window_size(size["width"], size["height"] + below)


def keep_screenshot(browser, tmp_path, name):
    fit_window_to_page(browser)
    path = str(tmp_path / name)
    assert browser.save_screenshot(path) and os.path.getsize(path) > 10000
    print("screenshot: %s" % artefacts.keep(path, name))


def eswitch_rates(browser, polls=3):
    """Median eSwitch packets/s per backend over `polls` polls of the page (2 s apart)."""
    seen = {}
    for i in range(polls):
        snap = snapshot(browser)
        for be in snap["rows"]:
            seen.setdefault(be, []).append(value(snap, be, "eswitch-pps") or 0.0)
        if i < polls - 1:
            time.sleep(2)
    return {be: statistics.median(v) for be, v in seen.items()}


def fips2_takes_all(snap):
    return value(snap, "fips3", "eswitch-pps") == 0 and value(snap, "fips2", "eswitch-pps") >= 0.7 * RATE


def fips3_back(snap):
    return snap["rows"]["fips3"]["state"] == "in-service" and value(snap, "fips3", "eswitch-pps")


def test_lab_up_relays_the_page_to_the_hosts_loopback(lab):
    url = lab.ctl.dashboard_url()
    assert url == "http://127.0.0.1:9302/dashboard/"
    assert lab.ctl.status()["dashboard"] == url
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.status == 200 and b"xf-services" in r.read()


def test_the_page_shows_both_planes_under_load_and_a_drain(lab, load, browser, tmp_path):
    url = lab.ctl.dashboard_url()
    browser.get(url)
    snap, t = wait_page(browser, lambda s: all(value(s, be, "eswitch-pps") for be in ("fips2", "fips3")),
                        20, "eSwitch rates for fips2 and fips3")
    print("\nrates on the page %.1f s after it opened" % t)
    assert set(snap["rows"]) == {"fips2", "fips3"}
    assert snap["banner"] == "ok" and snap["verdict"] == "consistent"
    assert snap["fallback"] == "fallback 0 packets" and snap["alarm"] == "false"
    for be in ("fips2", "fips3"):
        assert snap["rows"][be]["state"] == "in-service"
        assert value(snap, be, "ovs-pps") == 0, "OVS carries service traffic"
        assert value(snap, be, "eswitch-bps") > value(snap, be, "eswitch-pps")
    rates = eswitch_rates(browser)
    print("eSwitch packets/s on the page: %s, offered %.0f queries/s" % (rates, RATE))
    for be in ("fips2", "fips3"):
        assert 0.7 * RATE / 2 <= rates[be] <= 1.3 * RATE / 2, rates
    keep_screenshot(browser, tmp_path, "lab-dashboard.png")

    t0 = time.monotonic()
    code, out = lab.api("POST", "/services/dns/backends/fips3/drain")
    assert code == 200, out
    try:
        _, t_state = wait_page(browser, lambda s: s["rows"]["fips3"]["state"] == "drained", STATE_WITHIN,
                               "fips3 drained")
        snap, t_rates = wait_page(browser, fips2_takes_all, RATES_WITHIN,
                                  "fips3 at 0 pkt/s and fips2 taking the whole load")
        print("drain: on the page after %.1f s, in its rates %.1f s later (API answered in %.1f s)"
              % (t_state, t_rates, time.monotonic() - t0 - t_state - t_rates))
        assert snap["fallback"] == "fallback 0 packets"
        keep_screenshot(browser, tmp_path, "lab-dashboard-drained.png")
    finally:
        code, out = lab.api("POST", "/services/dns/backends/fips3/undrain")
    assert code == 200, out
    wait_page(browser, fips3_back, RATES_WITHIN, "fips3 back in service, carrying traffic")

    code, out = lab.api("PUT", "/services/dns/limits", {"per_bucket_pps": 100000})
    assert code == 200, out
    try:
        snap, _ = wait_page(browser, lambda s: "dns" in s["limits"], STATE_WITHIN, "the limits of dns")
        assert snap["limits"]["dns"]["per-bucket-pps"]["value"] == "100000"
        assert snap["limits"]["dns"]["eswitch-limited"]["value"] == "0"
    finally:
        code, out = lab.api("DELETE", "/services/dns/limits")
    assert code == 200, out
    wait_page(browser, lambda s: not s["limits"], STATE_WITHIN, "no limits")


def grafana_metrics():
    with open(GRAFANA) as f:
        dash = json.load(f)
    panels = [q for p in dash["panels"] for q in [p] + (p.get("panels") or [])]
    exprs = [t["expr"] for p in panels for t in p.get("targets") or ()]
    return {m for e in exprs for m in re.findall(r"\bxenoflow_[a-z0-9_]+", e)}


# exported only with the part of the config or of the moment they show
CONDITIONAL = {
    "xenoflow_alarm": "an alarm standing",
    "xenoflow_limit_pps": "rate limits", "xenoflow_limited_packets_total": "rate limits",
    "xenoflow_limited_bucket_packets_total": "rate limits",
    "xenoflow_fleet_announced": "a fleet", "xenoflow_bgp_peer_up": "a fleet",
}


def test_live_metrics_hold_the_grafana_dashboards_series_and_top_shows_the_backends(lab, load):
    base = lab.ctl.dashboard_url().rsplit("/dashboard/", 1)[0]
    with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
        text = r.read().decode()
    exported = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
                if line.startswith("xenoflow_")}
    queried = grafana_metrics()
    assert set(CONDITIONAL) <= queried, "CONDITIONAL names a metric the dashboard no longer queries"
    missing = sorted(queried - set(CONDITIONAL) - exported)
    assert not missing, "the Grafana dashboard queries series a lab DPU does not export: %s" % missing
    for be in ("fips2", "fips3"):
        for plane in ("eswitch", "ovs"):
            series = r'^xenoflow_backend_packets_total\{[^}]*backend="%s"[^}]*plane="%s"' % (be, plane)
            assert re.search(series, text, re.M), (be, plane)

    p = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "top", "--once", "--url", base,
                        "--interval", "2.5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=30, cwd="/")
    assert p.returncode == 0, p.stderr
    print("\n" + p.stdout)
    assert "verdict consistent" in p.stdout and "fallback 0 packets" in p.stdout
    for be in ("fips2", "fips3"):
        row = [line.split() for line in p.stdout.splitlines() if line.startswith("dns/%s " % be)]
        assert len(row) == 1, p.stdout
        assert row[0][1:3] == ["in", "service"] and row[0][3] not in ("-", "0"), p.stdout

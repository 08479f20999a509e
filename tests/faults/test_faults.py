"""Faults and bad input under steady DNS load through the VIP, with figures.

One paper lab for the module (softdoca, routes mirrored, 2 source bits, health probes every
200 ms from pf1sf0: lab_harness.py), in a private temp run dir; while another lab holds the
fixed namespace names the fixture waits (polls every 10 s, up to 15 min). Each fault is
injected while lab_harness's paced load generator sends `who.example.lab TXT` from 8 source
addresses of fips4 (every bucket) and records every query; the test asserts the behaviour,
and the figures (queries sent, lost, time to recover, state after) go to a table that the
module writes to benchmarks/results/faults.md (XF_FAULTS_MD overrides the path) and prints.

Not here, covered elsewhere (the table's notes say so): API bad input (tests/unit/test_api.py,
tests/unit/test_api_contract.py), the config fuzzer and softdoca's parsers under libFuzzer
(tests/faults/test_config_fuzz.py, tests/faults/test_softdoca_fuzz.py).
"""
from __future__ import annotations

import json
import os
import re
import signal
import time

import lab_harness as fl
import pytest
import yaml

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.lab, pytest.mark.slow]

RATE = 300.0
OUT = os.environ.get("XF_FAULTS_MD") or os.path.join(fl.REPO, "benchmarks", "results", "faults.md")


@pytest.fixture(scope="module")
def table():
    t = fl.Table()
    yield t
    if t.rows:
        write_report(t, OUT)
        print("\n" + t.markdown() + "\n(written to %s)" % OUT)


@pytest.fixture(scope="module")
def lab(table):
    with fl.running_lab("xf-flt-") as lab:
        yield lab


@pytest.fixture(autouse=True)
def consistent_before(lab):
    lab.wait_settled(20)
    yield


def _after(lab, timeout=15.0):
    """'consistent' (check exit 0) once it is, else the verdict and what differs."""
    try:
        lab.wait_consistent(timeout)
    except AssertionError:
        pass
    rc, rep = lab.check_cli()
    if rc == 0:
        return "consistent (check exit 0)"
    return "%s (check exit %d): %s" % (rep.get("verdict"), rc, json.dumps(rep.get("drift"))[:200])


def _health(lab, mark, expected=()):
    """The health transitions the controller logged since `mark`, as a note for the table."""
    ev = lab.health_events(mark)
    if not ev:
        return ""
    if list(ev) == list(expected):
        return "; health: %s" % ", ".join(ev)
    return "; FALSE FAILOVER: probes (through OVS, from pf1sf0) failed meanwhile, health: %s" % (
        ", ".join(ev))


def _doca(body):
    err = str((body or {}).get("error"))
    m = re.search(r"DOCA_ERROR_\w+ in \w+", err)
    return (m.group(0) if m else err[:80]) + (", both planes kept the previous state"
                                              if "kept the previous state" in err else "")


def _bucket_pkts(lab):
    return sum(n for k, n in lab.entry_counters().items() if '"root"' not in k)


# ---------------------------------------------------------------- 1. ovs-vswitchd


def test_ovs_vswitchd_killed_and_restarted(lab, table):
    ovs = lab.ovs()
    flows0 = lab.flows()
    mark = lab.log_mark()
    load = lab.load(lab.sources(8), RATE, 7.0)
    time.sleep(1.0)
    pid = ovs.pid("ovs-vswitchd")
    es0 = _bucket_pkts(lab)
    os.kill(pid, signal.SIGKILL)
    fl.wait_until(lambda: ovs.pid("ovs-vswitchd") is None, 10, 0.02, "ovs-vswitchd gone")
    time.sleep(1.0)
    es1 = _bucket_pkts(lab)
    t_restart = time.monotonic()
    ovs.restart_vswitchd()
    lab.ctl.start_ovs()            # the lab records the new PID
    started = time.monotonic() - t_restart
    fl.wait_until(lambda: set(lab.flows()) == set(flows0), 20, 0.1, "our flows restored")
    restored = time.monotonic() - t_restart
    lab.wait_consistent(20)
    consistent = time.monotonic() - t_restart
    res = load.wait()
    after = _after(lab)
    table.add("1. ovs-vswitchd SIGKILL, restarted 1 s later", res.sent, res.lost,
              "flows restored %.2f s after the restart (daemon up in %.2f s), consistent at %.2f s"
              % (restored, started, consistent), after + _health(lab, mark))
    assert es1 - es0 >= RATE * 0.5, "the eSwitch did not forward while OVS was down: %d" % (es1 - es0)
    assert res.lost == 0, res.lost_records()[:10]
    assert after.startswith("consistent")


# ---------------------------------------------------------------- 2. ovsdb-server


def test_ovsdb_server_restarted(lab, table):
    from xenoflow_ovs.intent import plan as plan_mod
    ovs = lab.ovs()
    flows0, tf0 = lab.flows(), time.monotonic()
    mark = lab.log_mark()
    load = lab.load(lab.sources(8), RATE, 5.0)
    time.sleep(1.0)
    t_restart = time.monotonic()
    t_wall = time.time()
    ovs.restart_ovsdb()
    lab.ctl.start_ovs()

    def reconnected():
        st = lab.api_ok("/status") or {}
        o = st.get("ovsdb") or {}
        return o.get("connected") and (o.get("last_ensure") or 0) > t_wall
    fl.wait_until(reconnected, 30, 0.1, "the controller's OVSDB connection back (ensure after it)")
    recover = time.monotonic() - t_restart
    res = load.wait()
    flows1, elapsed = lab.flows(), time.monotonic() - tf0
    after = _after(lab)
    readded = [k for k, f in flows1.items() if k in flows0
               and f["duration"] < flows0[k]["duration"] + elapsed - 1.5]
    health = lab.health_events(mark)
    kinds = {plan_mod.kind_of_cookie(flows1[k]["cookie"]) for k in readded}
    table.add("2. ovsdb-server restarted", res.sent, res.lost,
              "controller's OVSDB session back and re-ensured %.2f s after the restart; no rule "
              "lost; %s" % (recover, "none re-added" if not readded else
                            "%d service rule(s) rewritten by health transitions" % len(readded)),
              after + _health(lab, mark))
    assert set(flows1) == set(flows0), "rules lost or added across the ovsdb-server restart"
    # a rule may only change through a (health) transition of the controller, never by the restart
    assert not readded or (health and kinds <= {"service"}), (readded, health)
    assert res.lost == 0, res.lost_records()[:10]
    assert after.startswith("consistent")


# ---------------------------------------------------------------- 3. controller


def test_controller_killed_and_restarted(lab, table):
    mark = lab.log_mark()
    out = fl.controller_crash(lab, dead_for=2.0, rate=RATE)
    res = out["load"]
    table.add("3. controller SIGKILL, restarted %.1f s later" % out["dead"], res.sent, res.lost,
              "consistent %.2f s after the restart; entries adopted (same list, no duplicates, "
              "counters kept), no OVS flow re-added" % out["recover"], _after(lab) + _health(lab, mark))
    assert res.lost == 0


# ---------------------------------------------------------------- 4./5. a backend goes away


def test_backend_killed_and_back(lab, table):
    mark = lab.log_mark()
    out = fl.failover(lab, lambda: lab.kill("bind9-fips3", signal.SIGKILL), lab.bind9_restart,
                      rate=RATE, label="bind9 on fips3 SIGKILLed")
    res = out["load"]
    table.add("4. backend dies (bind9 on fips3 SIGKILL), restarted 3 s later", res.sent,
              "%d (fips3's buckets, sent within %.2f s of the kill)" % (res.lost, out["lost_window"]),
              "fips3's buckets on fips2 %.2f s after the kill; original table %.2f s after bind9 "
              "answered again" % (out["failover"], out["back"]),
              _after(lab) + _health(lab, mark, ["fips3 DOWN", "fips3 up"]))


def test_backend_link_down_and_up(lab, table):
    from xenoflow_ovs.lab import netns as nsh

    def link(state):
        return lambda: nsh.run_in_ns(None, ["ip", "-n", "fips3", "link", "set", "eth0", state])
    mark = lab.log_mark()
    try:
        out = fl.failover(lab, link("down"), link("up"), rate=RATE, label="fips3 eth0 down")
    finally:
        link("up")()
    res = out["load"]
    table.add("5. backend link down (fips3 eth0), up 3 s later", res.sent,
              "%d (fips3's buckets, sent within %.2f s of the link going down)" % (
                  res.lost, out["lost_window"]),
              "fips3's buckets on fips2 %.2f s after link down; original table %.2f s after "
              "link up" % (out["failover"], out["back"]),
              _after(lab) + _health(lab, mark, ["fips3 DOWN", "fips3 up"]))


# ---------------------------------------------------------------- 6. eSwitch insertion fails


def test_eswitch_insert_fails_midway(lab, table):
    canon = lambda es: sorted(json.dumps(e, sort_keys=True) for e in es)  # noqa: E731
    plan0 = lab.api_ok("/plan")
    entries0 = lab.entries()
    flows0 = set(lab.flows())
    bad0 = lab.metric("xenoflow_config_reloads_total", result="bad")
    mark = lab.log_mark()
    path = lab.ctl.cfg_path
    with open(path) as f:
        original = f.read()
    data = yaml.safe_load(original)
    data["services"][0]["policy"]["bits"] = 3          # 8 buckets: a new pipe, 8 new entries
    load = lab.load(lab.sources(8), RATE, 5.0)
    time.sleep(1.0)
    try:
        with open(path, "w") as f:
            yaml.safe_dump(data, f, sort_keys=False)
        lab.eswitch("fault", nth=3)                     # the 3rd entry add fails: DOCA_ERROR_FULL
        t0 = time.monotonic()
        code, body = lab.api("POST", "/reload")
        answered = time.monotonic() - t0
    finally:
        with open(path, "w") as f:
            f.write(original)
        lab.eswitch("fault", nth=0)
    plan1, entries1, flows1 = lab.api_ok("/plan"), lab.entries(), set(lab.flows())
    res = load.wait()
    after = _after(lab)
    print("\nreload with bits 3 and the 3rd entry add failing: %d %s" % (code, body))
    table.add("6. eSwitch entry insertion fails midway (3rd add of a reload to 8 buckets)",
              res.sent, res.lost, "API answered %d in %.2f s (%s); /plan, eswitchd's entries and "
              "our OVS flows as before" % (code, answered, _doca(body)),
              after + _health(lab, mark))
    assert code == 503, body
    assert "DOCA_ERROR_FULL" in body["error"], body
    assert plan1 == plan0
    assert canon(entries1) == canon(entries0)
    assert flows1 == flows0
    assert lab.metric("xenoflow_config_reloads_total", result="bad") == bad0 + 1
    assert res.lost == 0, res.lost_records()[:10]
    assert after.startswith("consistent")


# ---------------------------------------------------------------- 7. someone else's flows


def test_foreign_flows_left_alone_ours_repaired(lab, table):
    ovs = lab.ovs()
    foreign = {"ovsbr1": "cookie=0x1234,priority=1000,udp,in_port=p0,tp_dst=9999,actions=drop",
               "ovsbr2": "cookie=0x1235,priority=5,arp,arp_tpa=198.18.0.99,actions=drop"}
    flows0 = lab.flows()
    mark = lab.log_mark()
    try:
        for br, f in foreign.items():
            ovs.ofctl("add-flow", br, f)
        theirs0 = lab.flows(ours=False)
        assert len(theirs0) == 2, theirs0
        load = lab.load(lab.sources(8), RATE, 5.0)
        time.sleep(1.0)
        victim = sorted(k for k in flows0 if k[0] == "ovsbr1" and "nw_src" in k[1])[0]
        modified = sorted(k for k in flows0 if k[0] == "ovsbr2" and "dl_dst" in k[1]
                          and "in_port" in k[1])[0]
        ovs.ofctl("del-flows", "--strict", victim[0], victim[1])
        ovs.ofctl("mod-flows", "--strict", modified[0], "%s,actions=drop" % modified[1])
        t0 = time.monotonic()
        fl.wait_until(lambda: {k: f["actions"] for k, f in lab.flows().items()}
                      == {k: f["actions"] for k, f in flows0.items()}, 15, 0.1, "ours repaired")
        repaired = time.monotonic() - t0
        theirs1 = lab.flows(ours=False)
        res = load.wait()
        after = _after(lab)
        table.add("7. foreign flows (other cookies) on both bridges; one of ours deleted, one "
                  "modified", res.sent, res.lost, "ours repaired %.2f s after; the 2 foreign "
                  "flows untouched" % repaired, after + _health(lab, mark))
        assert set(theirs1) == set(theirs0)
        assert all(theirs1[k]["duration"] >= theirs0[k]["duration"] for k in theirs0)
        assert res.lost == 0, res.lost_records()[:10]
        assert after.startswith("consistent")
    finally:
        for br, f in foreign.items():
            ovs.ofctl("del-flows", br, "%s/-1" % f.split(",")[0], check=False)


# ---------------------------------------------------------------- bad input: packets


def _settled_status(lab):
    """/status once OVS's counters stop moving (datapath stats reach the rules asynchronously)."""
    last = None
    for _ in range(20):
        time.sleep(0.6)
        st = lab.api_ok("/status")
        cur = (st["miss_other_packets"], st["fallback_packets"])
        if cur == last:
            return st
        last = cur
    return st


def _frames(lab):
    topo = lab.ctl.topo
    fips1_mac = [ln.a.mac for ln in topo.links if ln.a.netns == "fips1"][0]
    pf0_mac = [p.wire_peer.mac for p in topo.eswitch_ports if p.name == "pf0hpf"][0]
    vip, vmac = str(lab.svc.vip), lab.svc.vip_mac
    vip6 = str(lab.svc.vip6) if lab.svc.vip6 is not None else None
    # an IPv6 source on no lab segment: the backends cannot answer the frames that reach them,
    # so no Neighbor Solicitation of theirs (flooded by the tor into p0) counts in a kind's window
    src6 = "2001:db8:ff::11"
    return (fl.bad_frames(vmac, fips1_mac, "198.18.0.11", vip, src6, vip6),
            fl.bad_frames(vmac, pf0_mac, "198.18.0.5", vip, src6, vip6))


VLAN = "VLAN-tagged IPv4 query"
VERSION6 = "IPv4 version 6 in an IPv4 frame"
FRAGMENT = "IPv4 non-first fragment to the VIP"
DISAGREE = (VLAN, VERSION6)     # once classified differently: test_frames_both_planes_...
COUNT = 20


def _kind_by_kind(lab, ns, ifc, port, frames):
    """Send each kind COUNT times into `port` (no other traffic): what arrived, and how
    softdoca classified it. Rows: (name, class, rx, malformed, miss, bucket entry hits)."""
    rows = []
    for name, (cls, frame) in frames.items():
        if name in DISAGREE:
            continue
        p0, es0 = lab.port_stats()[port], _bucket_pkts(lab)
        r = fl.send_frames(ns, ifc, [frame], COUNT)
        assert not r["errors"], r
        time.sleep(0.15)
        p1, es1 = lab.port_stats()[port], _bucket_pkts(lab)
        rows.append((name, cls, p1["rx_pkts"] - p0["rx_pkts"], p1["malformed_pkts"] - p0["malformed_pkts"],
                     p1["miss_pkts"] - p0["miss_pkts"], es1 - es0))
    return rows


def test_bad_packets_at_the_eswitch_and_at_ovs(lab, table):
    """Each kind of bad frame, 20 times, straight into p0 (sent on tor's t-p0, where the
    service's entries are) and into pf0hpf (fips5's pf0, a port without entries: everything
    goes on to OVS); then all of them again, also through the tor bridge from fips1, under
    load. Nothing crashes, the counters account for every frame, balanced traffic loses
    nothing, OVS counts the misses as miss_other, never as fallback."""
    via_p0, via_pf0 = _frames(lab)
    pids = {n: lab.pid(n) for n in ("eswitchd", "controller")}
    mark = lab.log_mark()
    st0 = _settled_status(lab)
    p0_rows = _kind_by_kind(lab, "tor", "t-p0", "p0", via_p0)
    pf0_rows = _kind_by_kind(lab, "fips5", "pf0", "pf0hpf", via_pf0)
    # everything again, from three sides, under load
    load = lab.load(lab.sources(8), RATE, 4.0)
    time.sleep(0.5)
    for ns, ifc, frames in (("fips1", "eth0", via_p0), ("tor", "t-p0", via_p0), ("fips5", "pf0", via_pf0)):
        r = fl.send_frames(ns, ifc, [f for n, (c, f) in frames.items() if n not in DISAGREE], COUNT)
        assert not r["errors"], r
    res = load.wait()
    st1 = _settled_status(lab)
    miss_other = st1["miss_other_packets"] - st0["miss_other_packets"]
    fallback = st1["fallback_packets"] - st0["fallback_packets"]
    alive = {n: lab.alive(n) and lab.pid(n) == pids[n] for n in pids}
    after = _after(lab)
    lines = ["| frame (x%d) | class | p0: arrived | malformed | miss (to OVS) | bucket hits "
             "| pf0hpf: arrived | malformed | miss (to OVS) |" % COUNT,
             "|---|---|---|---|---|---|---|---|---|"]
    for r0, r1 in zip(p0_rows, pf0_rows):
        lines.append("| %s | %s | %d | %d | %d | %d | %d | %d | %d |" % (r0 + r1[2:5]))
    table.extra.append(("Bad packets, kind by kind", lines + [
        "", "Over the whole test (kind by kind, then again under load, also from fips1 through "
        "the tor bridge) OVS counted miss_other +%d and fallback +%d." % (miss_other, fallback)]))
    print("\n" + "\n".join(lines))
    print("OVS miss_other +%d, fallback +%d; alive %s; load %s" % (miss_other, fallback, alive,
                                                                  res.summary()))
    table.add("bad packets: %d kinds x %d (malformed, truncated, oversized IPv4/UDP/DNS, IPv6 extension "
              "headers and fragments, non-IP) into "
              "p0 and pf0hpf, then all again under load" % (len(p0_rows), COUNT),
              res.sent, res.lost, "n/a: softdoca and the controller never went down; every frame "
              "counted (table below); OVS miss_other +%d, fallback +%d" % (miss_other, fallback),
              after + _health(lab, mark))
    assert all(alive.values()), alive
    assert res.lost == 0, res.lost_records()[:10]
    for rows, port in ((p0_rows, "p0"), (pf0_rows, "pf0hpf")):
        for name, cls, rx, mal, miss, hits in rows:
            where = (port, name, rx, mal, miss, hits)
            if name == FRAGMENT and rx == 0:
                continue   # DPDK's net_af_packet (fanout with the kernel's defrag flag) holds it
            assert rx == COUNT, where
            if cls == "malformed":
                assert mal == COUNT and miss == COUNT and hits == 0, where
            elif cls == "miss" or port == "pf0hpf":
                assert mal == 0 and miss == COUNT and hits == 0, where
            else:
                assert mal == 0 and miss == 0 and hits == COUNT, where
    # OVS saw every miss and claimed none as service traffic
    misses = sum(r[4] for r in p0_rows + pf0_rows)
    assert miss_other >= 2 * misses, (miss_other, misses)
    assert fallback == 0
    assert after.startswith("consistent")


def test_frames_both_planes_leave_alone_or_both_balance(lab, table):
    """A VLAN-tagged query (the eSwitch matches the outer ethertype, so OVS's rules match
    untagged frames only) and an IPv4 frame with another version nibble (neither parser
    checks it): each plane classifies them as the other does, so no fallback. The same for the
    IPv6 kinds: extension headers before the transport, fragments, a payload length past the
    frame, a cut extension header chain, another version nibble."""
    via_p0, _ = _frames(lab)
    assert all(k in via_p0 for k in fl.IPV6_KINDS), "the lab's service has no vip6"
    found = []
    for name in DISAGREE + fl.IPV6_KINDS:
        st0 = _settled_status(lab)
        p0 = lab.port_stats()["p0"]
        r = fl.send_frames("tor", "t-p0", [via_p0[name][1]], COUNT)
        assert not r["errors"], r
        st1 = _settled_status(lab)
        p1 = lab.port_stats()["p0"]
        fb = st1["fallback_packets"] - st0["fallback_packets"]
        found.append((name, p1["rx_pkts"] - p0["rx_pkts"], p1["miss_pkts"] - p0["miss_pkts"],
                      p1["malformed_pkts"] - p0["malformed_pkts"], fb))
    table.extra.append(("Frames the two planes once classified differently", [
        "| frame (x%d, into p0) | p0 arrived | miss (to OVS) | malformed | OVS fallback |" % COUNT,
        "|---|---|---|---|---|"] + ["| %s | %d | %d | %d | %d |" % f for f in found] + [
        "", "This suite found that the eSwitch missed the first two while OVS balanced them on "
        "the Arm (counted as fallback). Now OVS's service and route rules match untagged frames "
        "only (`vlan_tci=0x0000/0x1fff`) and softdoca, like OVS, does not check the IPv4 version "
        "nibble: a tagged query is nobody's class in both planes (miss_other), a version-6 "
        "one is balanced by the eSwitch. softdoca parses IPv6 as OVS's flow extraction does "
        "(extension headers skipped to the transport, no ports in a non-first fragment, a "
        "payload length past the frame or a cut chain malformed, the version not checked); "
        "fallback stays 0."]))
    print("\nframes the planes classify differently: %s" % found)
    assert all(f[4] == 0 for f in found), found


# ---------------------------------------------------------------- the report


# ---------------------------------------------------------------- 10.-14. running as a service


def _canon(entries):
    return sorted(json.dumps(e, sort_keys=True) for e in entries)


def _in_dpu(lab, *args, timeout=60.0):
    """`xenoflow <args>` in the DPU's namespace, as an operator would type it there."""
    import subprocess
    import sys

    from xenoflow_ovs.lab.pyenv import subprocess_env
    argv = ["ip", "netns", "exec", "dpu", sys.executable, "-m", "xenoflow_ovs.cli"] + list(args)
    t0 = time.monotonic()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                       env=subprocess_env(), cwd="/", timeout=timeout)
    return p, time.monotonic() - t0


def _message(line):
    """A log line without its time, level and logger (the table's cell says what it said)."""
    return re.sub(r"^\S+ [A-Z]+ \S+: ", "", line)


def _drain(lab, backend, on=True):
    code, body = lab.api("POST", "/services/%s/backends/%s/%s" % (lab.svc.name, backend,
                                                                  "drain" if on else "undrain"))
    assert code == 200, body
    lab.wait_consistent(15)


def test_second_controller_started(lab, table):
    """The operator starts a second controller for the same DPU by hand: it must be refused
    before it touches anything, while the first serves on."""
    entries0, flows0 = lab.entries(), lab.flows()
    load = lab.load(lab.sources(8), RATE, 5.0)
    time.sleep(1.0)
    p, took = _in_dpu(lab, "controller", "-c", lab.ctl.cfg_path)
    res = load.wait()
    lines = [_message(ln) for ln in p.stderr.splitlines() if ln.strip()]
    same = _canon(lab.entries()) == _canon(entries0) and set(lab.flows()) == set(flows0)
    reachable = lab.api_ok("/status") is not None
    table.add("10. a second controller for the same DPU started by hand", res.sent, res.lost,
              "refused in %.2f s, exit %d: %s" % (took, p.returncode, lines[-1] if lines else "(nothing)"),
              "entries and flows %s, first controller %s; %s" % (
                  "unchanged" if same else "CHANGED", "reachable" if reachable else "UNREACHABLE",
                  _after(lab)))
    assert p.returncode != 0 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert same and reachable
    assert res.lost == 0, res.lost_records()[:10]


def test_controller_restarted_with_a_drain_in_force(lab, table):
    """A drained resolver stays drained across a controller restart (the operator's state is
    durable): not one query reaches it."""
    _drain(lab, "fips2")
    try:
        load = lab.load(lab.sources(8), RATE, 6.0)
        time.sleep(1.0)
        lab.kill("controller")
        t_restart = time.monotonic()
        lab.restart_controller()
        lab.wait_consistent(20)
        recover = time.monotonic() - t_restart
        res = load.wait()
        drained = lab.backend_state("fips2")
        to_fips2 = res.by_answer().get("fips2", 0)
        table.add("11. controller restarted with fips2 drained", res.sent, res.lost,
                  "consistent %.2f s after the restart" % recover,
                  "fips2 answered %d queries, drained after the restart: %s; %s" % (
                      to_fips2, not drained.get("in_service", True), _after(lab)))
        assert to_fips2 == 0, res.summary()
        assert drained and not drained["in_service"]
        assert res.lost == 0, res.lost_records()[:10]
    finally:
        _drain(lab, "fips2", on=False)
        lab.wait_settled(20)


def test_stale_controller_writes_to_eswitchd(lab, table):
    """A controller of an older generation (one left running after a newer one started)
    tries to put back a table in which a drained backend still has buckets: eswitchd
    refuses it, and the drained backend gets no query."""
    from xenoflow_ovs.eswitch.client import EswitchClient, EswitchError
    from xenoflow_ovs.eswitch.wire import entry_from_wire
    from xenoflow_ovs.intent import plan as plan_mod

    before = lab.entries()        # fips2 still has its buckets here
    _drain(lab, "fips2")
    try:
        load = lab.load(lab.sources(8), RATE, 5.0)
        time.sleep(1.0)
        stale = EswitchClient(lab.es_sock, timeout=5,
                              session={"generation": 1, "who": "a stale controller"})
        refused = ""
        try:
            stale.apply([plan_mod.Change("eswitch", "add", entry_from_wire(e)) for e in before
                         if e not in lab.entries()])
        except EswitchError as exc:
            refused = str(exc)
        finally:
            stale.close()
        res = load.wait()
        to_fips2 = res.by_answer().get("fips2", 0)
        why = refused.splitlines()[0][:90] if refused else "NOT REFUSED"
        table.add("12. a stale controller (older generation) writes its table to eswitchd", res.sent,
                  res.lost, "refused at once: %s" % why,
                  "fips2 (drained) answered %d queries; %s" % (to_fips2, _after(lab)))
        assert refused and "fenced" in refused, refused
        assert to_fips2 == 0, res.summary()
        assert res.lost == 0, res.lost_records()[:10]
    finally:
        _drain(lab, "fips2", on=False)
        lab.wait_settled(20)


def test_openflow_port_taken(lab, table):
    """Another program holds the OpenFlow port: the controller must say so and exit non-zero
    (so Restart=on-failure restarts it), not exit 0 in silence. Run as another DPU (its own
    name and state dir, no eSwitch, an OVS that does not exist), so it cannot reach the lab."""
    import tempfile

    cfg = yaml.safe_load(open(lab.ctl.cfg_path))
    with tempfile.TemporaryDirectory(prefix="xf-oftaken-") as tmp:
        cfg["dpu"]["name"] = "other"
        cfg["dpu"]["state_dir"] = tmp
        cfg["dpu"]["eswitch"] = {"driver": "none"}
        cfg["ovs"]["db"] = "unix:" + os.path.join(tmp, "no-ovs.sock")
        cfg["controller"]["api"] = {"host": "127.0.0.1", "port": 18080,
                                    "socket": os.path.join(tmp, "api.sock")}
        cfg["controller"]["metrics"] = {"host": "127.0.0.1", "port": 19302}
        path = os.path.join(tmp, "other.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f)
        p, took = _in_dpu(lab, "controller", "-c", path)
    lines = [_message(ln) for ln in p.stderr.splitlines() if ln.strip()]
    table.add("13. the OpenFlow port is taken (by the lab's controller)", "-", "-",
              "exit %d after %.2f s" % (p.returncode, took), lines[-1] if lines else "(no error line)")
    assert p.returncode != 0 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert str(cfg["controller"]["openflow"].get("port", 6653)) in lines[0]


def test_stalled_api_clients(lab, table):
    """Clients that open the API and stall (headers half sent) and many idle connections: the
    API still answers within a bound, and the controller keeps both planes consistent."""
    import socket
    import statistics

    def latency():
        t = time.monotonic()
        assert lab.api_ok("/status") is not None
        return time.monotonic() - t
    before = statistics.median(latency() for _ in range(20))
    held = []
    try:
        for i in range(400):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(lab.api_sock)
            if i % 2 == 0:
                s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")   # headers never finished
            held.append(s)
        time.sleep(0.5)
        during = [latency() for _ in range(20)]
    finally:
        for s in held:
            s.close()
    verdict = lab.verdict()
    table.add("14. 400 API clients that stall or idle", "-", "-",
              "GET /status median %.1f ms before, %.1f ms during (max %.1f ms)" % (
                  before * 1e3, statistics.median(during) * 1e3, max(during) * 1e3),
              "verdict %s" % verdict)
    assert max(during) < 2.0, during
    assert verdict == "consistent"


def write_report(t, path):
    lines = [
        "# Faults and bad input: reliability under load",
        "",
        "Written by `tests/faults/test_faults.py` (root, lab) on %s; the paper lab on one 2-core VM "
        "(softdoca eSwitch, private OVS netdev, the os-ken controller, bind9 on fips2/fips3)."
        % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "",
        t.markdown(),
        "",
    ]
    if any("FALSE FAILOVER" in r["state after"] for r in t.rows):
        lines += ["**False failovers.** The health probes leave through pf1sf0, an internal port of "
                  "the Arm's OVS (as on a BlueField). While ovs-vswitchd is down or busy "
                  "reconfiguring (after an ovsdb-server restart) the probes time out (0.15 s), and "
                  "after `fall` of them healthy backends are taken out of both planes; with every "
                  "backend down the table keeps them all. The eSwitch carried the traffic all along "
                  "and nothing was lost, but buckets moved for nothing and back. Longer probe "
                  "timeouts or a management path that does not depend on ovs-vswitchd would avoid it.", ""]
    for title, body in t.extra:
        lines += ["## " + title, ""] + list(body) + [""]
    lines += [
        "## Method",
        "",
        "- Load: `tests/lab_harness.py` loadgen in fips4, `who.example.lab TXT` to the VIP "
        "198.18.0.53, round robin over 8 source addresses (every one of the 4 buckets of `bits: 2`), "
        "paced at %.0f queries/s (smoothly paced: bursts overflow AF_PACKET socket buffers), "
        "5-9 s per fault. Every query is matched to its answer; **lost** = no answer by the end of "
        "the run + 1.5 s. Sources that "
        "have had an answer send with MSG_CONFIRM (as a client seeing replies would), so the "
        "VIP's neighbour entry needs no ARP answer from OVS during a fault." % RATE,
        "- Health checks: DNS probes from pf1sf0 (198.18.0.250) every 0.2 s, timeout 0.15 s, fall 2, "
        "rise 2. Failover time = from the fault to the first query of fips3's buckets answered by "
        "fips2; only queries of fips3's buckets sent in that window may be lost (asserted).",
        "- Time to recover: from the restart (or the change) to what the row names, polled every "
        "0.1 s through the controller's API (`GET /status`, `GET /check`, `GET /services`) and "
        "`ovs-ofctl dump-flows`; **state after** = `xenoflow check` once settled.",
        "- No rule lost / re-added: our flows (by cookie) compared before and after, with their "
        "`duration` going on; eSwitch entries compared with eswitchd's own list (cookies included).",
        "- Fault 6: the lab's config reloaded (`POST /reload`) with `bits: 3` while softdoca is told "
        "to fail the 3rd entry add (`fault nth=3`: DOCA_ERROR_FULL).",
        "- Bad packets: raw AF_PACKET frames to the VIP MAC, each kind 20 times, kind by kind and "
        "with no other traffic: on tor's t-p0 straight into p0 (the service's ingress: softdoca "
        "parses them against its entries) and on fips5's pf0 into pf0hpf (a port without entries: "
        "everything goes on to OVS); then all kinds again under load, also from fips1 through the "
        "tor bridge (which itself drops the malformed IPv4 and the lone fragment before p0). "
        "Counters: softdoca's per-port `rx_pkts`/`malformed_pkts`/`miss_pkts` and the bucket "
        "entries' packets (eswitchd `counters`), OVS's `miss_other` and `fallback` (controller "
        "`/status`). A lone non-first IPv4 fragment never reaches softdoca: DPDK's net_af_packet "
        "(the lab's emulated port) holds it in the kernel's fanout defragmentation; not covered.",
        "- Faults 10-14 (running as a service): `xenoflow controller -c <the lab's config>` typed "
        "in the DPU's namespace while the lab's controller runs (10); the lab's controller "
        "SIGKILLed and restarted with fips2 drained through the API (11); an eSwitch client "
        "claiming generation 1 writes back the entries fips2 had before its drain (12); a "
        "controller for another DPU name (own state dir, no eSwitch, no OVS) whose OpenFlow port "
        "the lab's controller holds (13); 400 connections to the API's unix socket, half of them "
        "with headers never finished, while `GET /status` is timed 20 times (14).",
        "",
        "## Bad input covered elsewhere",
        "",
        "- API: malformed JSON, wrong types, unknown services/backends, huge bodies, bad or missing "
        "token: `tests/unit/test_api.py` (errors are JSON 4xx, bearer token), "
        "`tests/unit/test_api_contract.py::test_bad_requests_are_4xx_and_change_nothing` and "
        "`::test_draining_the_last_backend_is_a_conflict` (4xx, state unchanged), "
        "`::test_reload_good_and_bad_files`.",
        "- Config: `tests/faults/test_config_fuzz.py` (generated broken YAML: exit 2 with a message, "
        "no traceback, a running controller unchanged on reload).",
        "- softdoca's packet and entry parsing under libFuzzer (ASan/UBSan, bounded): "
        "`tests/faults/test_softdoca_fuzz.py`.",
        "",
    ]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines))

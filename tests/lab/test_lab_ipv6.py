"""The paper lab dual stack: IPv6 on where the topology wants it (static addresses, never
tentative, nothing outside 2001:db8::/32), none at all on the DPU's plane interfaces, the tor or
the host; backends answering DNS over IPv6 (UDP and TCP) and IPv4 TCP on their own addresses; the
VIP6 on their lo not answered for in neighbour discovery; every listener of the service (IPv4 and
IPv6, UDP and TCP) balanced by the eSwitch to the backend the plan names, with exact counters; and
the demo over all of them (fallback 0, consistent), with whatever ND/MLD the hosts send reaching
the DPU.

One lab per module, in a private run dir (as tests/lab/test_lab.py). The namespace names are
fixed: run one lab test session at a time (`flock /tmp/xf/lab.lock`).
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import tempfile
import time

import pytest

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.lab, pytest.mark.slow]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOPOLOGY = os.path.join(REPO, "topologies", "paper")
DRIVER = os.environ.get("XF_LAB_ESWITCH", "softdoca")
LAB6 = ipaddress.ip_network("2001:db8::/32")


@pytest.fixture(scope="module")
def lab():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    from xenoflow_ovs.lab.labctl import Demo, LabCtl, Progress
    from xenoflow_ovs.lab.topology import LabBusy

    run_dir = tempfile.mkdtemp(prefix="xf-lab6-")
    args = argparse.Namespace(action="up", topology=TOPOLOGY, run_dir=run_dir, eswitch=DRIVER,
                              mirror_routes=None, eswitch_mode=None)
    ctl = LabCtl(args, Progress(out=open(os.devnull, "w")))
    foreign = ctl.lab.foreign_namespaces()
    if foreign:
        pytest.fail("another lab is up (namespaces %s exist): run `xenoflow lab down` first"
                    % ", ".join(foreign))
    try:
        ctl.up()
        ctl.counters_at_up = Demo(ctl).counters()
    except LabBusy as e:
        pytest.fail(str(e))
    except Exception:
        ctl.down()
        raise
    yield ctl
    ctl.down()
    shutil.rmtree(run_dir, ignore_errors=True)


def _run(ns, argv):
    from xenoflow_ovs.lab import netns as nsh
    return nsh.run_in_ns(ns, argv).stdout


def _inet6(ns):
    """{ifname: [addr_info of each IPv6 address]} of namespace `ns` (``ip -j``)."""
    links = json.loads(_run(ns, ["ip", "-j", "-6", "address", "show"]) or "[]")
    return {li["ifname"]: [a for a in li.get("addr_info", []) if a.get("family") == "inet6"] for li in links}


def _ifnames(ns):
    return [li["ifname"] for li in json.loads(_run(ns, ["ip", "-j", "link", "show"]))]


def _sysctl(ns, ifname, key):
    return _run(ns, ["sysctl", "-n", "net/ipv6/conf/%s/%s" % (ifname, key)]).strip()


def _wanted6(topo):
    """{(netns, ifname): {"addr/len", ...}} the topology puts on interfaces and loopbacks."""
    want = {}
    for e in topo.ends():
        if e.addresses6:
            want[(e.netns, e.ifname)] = set(e.addresses6)
    for ns, addrs in topo.loopback.items():
        v6 = {a for a in addrs if ":" in a}
        if v6:
            want[(ns, "lo")] = v6
    return want


def _snmp6(ns, key):
    for line in _run(ns, ["cat", "/proc/net/snmp6"]).splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value.strip())
    raise KeyError(key)


def test_ipv6_addresses_where_wanted_static_and_never_tentative(lab):
    want = _wanted6(lab.topo)
    assert {ns for ns, _ in want} == {"fips1", "fips2", "fips3", "fips4"}
    for (ns, ifname), addrs in sorted(want.items()):
        have = _inet6(ns)[ifname]
        got = {"%s/%d" % (a["local"], a["prefixlen"]) for a in have if a["scope"] == "global"}
        assert got == {str(ipaddress.ip_interface(a)) for a in addrs}, (ns, ifname, have)
        assert not [a for a in have if a.get("tentative") or a.get("dadfailed")], (ns, ifname, have)
        if ifname != "lo":
            for key in ("accept_ra", "autoconf", "router_solicitations", "dad_transmits"):
                assert _sysctl(ns, ifname, key) == "0", (ns, ifname, key)


def test_no_global_ipv6_outside_the_documentation_prefix(lab):
    for ns in lab.topo.namespaces:
        for ifname, addrs in _inet6(ns).items():
            for a in addrs:
                ip = ipaddress.ip_address(a["local"])
                assert a["scope"] != "global" or ip in LAB6, (ns, ifname, a)
                assert a["scope"] == "global" or ip.is_link_local or ip.is_loopback, (ns, ifname, a)


def test_no_ipv6_on_the_dpu_the_tor_and_the_host(lab):
    """The DPU's eSwitch/OVS veths and taps (which OVS made after the lab's sysctls), the tor's
    ports and the host's PFs: IPv6 off, so their kernels send no RS, MLD or ND into the planes.
    The one exception is the DPU's management port pf1sf0, whose IPv6 address (the config's
    `ip6`, static, no router advertisements) the health probes over IPv6 leave from."""
    dpu = lab.topo.dpu_netns
    plane = {e.ifname for e in lab.topo.ends() if e.netns == dpu} | set(lab.topo.taps)
    present = set(_ifnames(dpu))
    assert plane - {"pf1sf0"} <= present and "pf1sf0" in present, (plane, present)
    mgmt6 = [str(i.ip6) for br in lab.load_cfg().bridges for i in br.internal if i.name == "pf1sf0"]
    assert mgmt6 == ["2001:db8::250/64"], mgmt6
    for ns in (dpu, "tor", lab.topo.host["netns"]):
        have = {ifname: addrs for ifname, addrs in _inet6(ns).items() if addrs}
        if ns == dpu:
            assert set(have) == {"pf1sf0"}, have
            glob = [a for a in have["pf1sf0"] if a["scope"] == "global"]
            assert ["%s/%d" % (a["local"], a["prefixlen"]) for a in glob] == mgmt6, glob
            assert _sysctl(ns, "pf1sf0", "accept_ra") == "0"
        else:
            assert not have, (ns, have)
        for ifname in _ifnames(ns):
            if (ns, ifname) != (dpu, "pf1sf0"):
                assert _sysctl(ns, ifname, "disable_ipv6") == "1", (ns, ifname)


def test_backends_answer_on_their_own_addresses_ipv6_udp_tcp_and_ipv4_tcp(lab):
    from xenoflow_ovs.lab.dnsclient import query_many_in_ns
    from xenoflow_ovs.lab.labctl import Demo

    own = {(e.netns, ipaddress.ip_interface(a).version): str(ipaddress.ip_interface(a).ip)
           for e in lab.topo.ends() for a in e.addresses + e.addresses6 if e.netns in ("fips2", "fips3")}
    demo = Demo(lab)
    before = demo.counters()
    asked = 0
    for b in lab.topo.dns:
        for src, version, tcp in [(s, 6, False) for s in lab.topo.clients6["fips1"]] + \
                                 [(s, 6, True) for s in lab.topo.clients6["fips1"]] + \
                                 [(s, 4, True) for s in lab.topo.clients["fips1"]]:
            r = query_many_in_ns("fips1", own[(b.netns, version)], src=src, count=2, timeout=2.0, tcp=tcp)
            assert r["answers"] == [b.name] * 2, (b.netns, src, tcp, r)
            asked += 2
    after = demo.settled_counters()
    assert sum(after["bind9"].values()) - sum(before["bind9"].values()) == asked
    if after["fallback"] is not None:
        assert after["fallback"] == before["fallback"], (before, after)


def test_the_vip6_on_lo_is_not_answered_for_in_neighbour_discovery(lab):
    """A backend holds the VIP6 on lo (direct server return); Linux answers neighbour
    solicitations only for addresses of the interface asked, so fips1's solicitation for the
    VIP6, flooded by the tor to both backends, gets no advertisement from them (only OVS may
    answer it, on the ingress port, with the VIP MAC)."""
    vip6 = next(str(ipaddress.ip_interface(a).ip) for a in lab.topo.loopback["fips2"] if ":" in a)
    backend_macs = {e.mac for e in lab.topo.ends() if e.netns in ("fips2", "fips3") and e.ifname == "eth0"}
    na0 = {ns: _snmp6(ns, "Icmp6OutNeighborAdvertisements") for ns in ("fips2", "fips3")}
    ns0 = {ns: _snmp6(ns, "Icmp6InNeighborSolicits") for ns in ("fips2", "fips3")}
    from xenoflow_ovs.lab import netns as nsh
    nsh.run_in_ns("fips1", ["ip", "-6", "neigh", "flush", "to", vip6], check=False)
    nsh.run_in_ns("fips1", ["ping", "-6", "-n", "-q", "-c", "2", "-W", "1", vip6], check=False)
    neigh = json.loads(_run("fips1", ["ip", "-j", "-6", "neigh", "show", "to", vip6]) or "[]")
    assert neigh, "fips1 never solicited %s" % vip6
    assert all(n.get("lladdr") not in backend_macs for n in neigh), neigh
    assert {ns: _snmp6(ns, "Icmp6OutNeighborAdvertisements") for ns in na0} == na0
    # the solicitation reached neither backend's IPv6 stack: they never joined its group
    assert {ns: _snmp6(ns, "Icmp6InNeighborSolicits") for ns in ns0} == ns0


def test_the_demo_passes_over_every_listener(lab, capsys):
    from xenoflow_ovs.lab.labctl import Demo, Progress
    quiet, lab.say = lab.say, Progress()
    try:
        rc = Demo(lab).run()
    finally:
        lab.say = quiet
    out = capsys.readouterr().out
    assert rc == 0, out
    for listener in ("IPv4/UDP", "IPv4/TCP", "IPv6/UDP", "IPv6/TCP"):
        assert "service dns over %s:" % listener in out, out
    assert out.count("0 by the wrong backend, 0 lost") == 4, out
    assert "consistency: verdict: consistent" in out, out
    if DRIVER != "none":
        assert "fallback 0 (routes mirrored)" in out, out


def test_ipv6_noise_is_never_fallback(lab):
    """Whatever IPv6 the hosts sent since the lab came up (MLD reports, neighbour solicitations
    flooded by the tor into p0/p1) missed the eSwitch and reached OVS: miss_other may count it,
    fallback may not."""
    from xenoflow_ovs.lab.labctl import Demo
    now = Demo(lab).settled_counters()
    t0 = lab.counters_at_up
    print("since up: miss_other +%s, fallback %s" % (
        (now["miss_other"] or 0) - (t0["miss_other"] or 0),
        None if now["fallback"] is None else now["fallback"] - (t0["fallback"] or 0)))
    if DRIVER != "none":
        assert now["fallback"] == t0["fallback"], (t0, now)


def _through_the_vips(lab, demo, listeners, count):
    """Queries to the VIPs from every client of each listener's family: per backend, the
    queries the plan sends it; asserts each source got the backend its bucket names."""
    cfg = lab.load_cfg()
    svc = cfg.service("dns")
    table = lab.planes.planned().table("dns")
    per_backend = {b.name: 0 for b in svc.backends}
    for family, proto in listeners:
        clients = lab.topo.clients if family == 4 else lab.topo.clients6
        assert sum(len(s) for s in clients.values()) >= 16, clients
        for ns, sources in sorted(clients.items()):
            res = demo.queries(ns, list(sources), str(svc.vip_of(family)), count, tcp=proto == "tcp")
            for src, r in res.items():
                want = demo.expected_backend(svc, table, src)
                assert r["answers"] == [want] * count, (family, proto, src, r)
                per_backend[want] += count
    return per_backend


def test_every_listener_reaches_the_planned_backend_with_exact_counters(lab):
    """The service is dual stack over UDP and TCP: from >= 16 sources per family, each query
    through the VIP (IPv4) or the VIP6 reaches the backend the plan's bucket table names, over
    UDP and over TCP. UDP: the eSwitch's bucket entries count exactly one packet per query, OVS
    none, fallback 0. TCP: every segment of the connections rides the eSwitch too (at least the
    SYN, the query and the closing ACKs: 3 per query), OVS none, fallback 0."""
    from xenoflow_ovs.lab.labctl import Demo, _delta
    cfg = lab.load_cfg()
    svc = cfg.service("dns")
    assert set(svc.listeners) == {(4, "udp"), (4, "tcp"), (6, "udp"), (6, "tcp")}, svc.listeners
    demo = Demo(lab)
    for proto in ("udp", "tcp"):
        before = demo.settled_counters()
        want = _through_the_vips(lab, demo, [(4, proto), (6, proto)], 3)
        d = _delta(before, demo.settled_counters())
        print("%s: sent per backend %s; delta %s" % (proto, want, d))
        assert {b: d["bind9"].get(b, 0) for b in want} == want, (proto, d)
        assert all(d["ovs"].get(b, 0) == 0 for b in want), (proto, d)
        if DRIVER != "none":
            assert d["fallback"] == 0, (proto, d)
            if proto == "udp":
                assert {b: d["eswitch"].get(b, 0) for b in want} == want, d
            else:
                assert all(d["eswitch"].get(b, 0) >= 3 * n for b, n in want.items()), d


def test_a_config_with_only_ipv6_works(lab):
    """The service reloaded as IPv6 only (no `vip`, backends with `ip6` alone): both planes
    check consistent, every IPv6 listener is balanced by the eSwitch to the planned backend with
    exact UDP counters, and the IPv4 VIP is served no more. The dual-stack config comes back
    after (and the check is consistent again)."""
    import yaml

    from xenoflow_ovs.api import server as api_mod
    from xenoflow_ovs.lab.dnsclient import query_many_in_ns
    from xenoflow_ovs.lab.labctl import Demo, _delta
    with open(lab.cfg_path) as f:
        original = f.read()
    data = yaml.safe_load(original)
    svc = data["services"][0]
    del svc["vip"]
    for b in svc["backends"]:
        del b["ip"]
    cfg = lab.load_cfg()
    sock = cfg.path(cfg.api.socket)

    def reload_and_check(text):
        with open(lab.cfg_path, "w") as f:
            f.write(text)
        lab.cfg = None                           # the lab reads its config once: again
        code, body = api_mod.request("POST", "/reload", unix_path=sock, timeout=30)
        assert code == 200, body
        verdict = None
        for _ in range(50):
            code, chk = api_mod.request("GET", "/check", unix_path=sock, timeout=30)
            verdict = chk.get("verdict") if code == 200 else None
            if verdict == "consistent":
                return chk
            time.sleep(0.2)
        raise AssertionError("verdict %s after the reload" % verdict)
    try:
        chk = reload_and_check(yaml.safe_dump(data, sort_keys=False))
        only6 = lab.load_cfg().service("dns")
        assert only6.vip is None and only6.listeners == ((6, "udp"), (6, "tcp")), only6
        assert all(r.get("listener", "all") == "all" for r in chk["buckets"]), chk["buckets"]
        demo = Demo(lab)
        before = demo.settled_counters()
        want = _through_the_vips(lab, demo, [(6, "udp")], 2)
        d = _delta(before, demo.settled_counters())
        assert {b: d["bind9"].get(b, 0) for b in want} == want, d
        assert all(d["ovs"].get(b, 0) == 0 for b in want), d
        if DRIVER != "none":
            assert {b: d["eswitch"].get(b, 0) for b in want} == want and d["fallback"] == 0, d
        _through_the_vips(lab, demo, [(6, "tcp")], 1)
        src = sorted(lab.topo.clients["fips1"])[0]
        r = query_many_in_ns("fips1", "198.18.0.53", src=src, count=1, timeout=1.0)
        assert r["answers"] == [None], r       # the IPv4 VIP is no longer a service
    finally:
        reload_and_check(original)

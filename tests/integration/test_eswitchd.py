"""eswitchd on softdoca, on real veths in namespaces, driven over its unix socket.

Topology (all in namespaces of this test):
    client ns  c0 ==veth== w0 [p0]  eswitch ns (eswitchd)  [p1] w1 ==veth== b1  backend ns
                                    r0 ==veth== o0 (p0's representor, the "OVS side")
"""

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest
import yaml

from xenoflow_ovs.eswitch.client import EswitchClient, EswitchError
from xenoflow_ovs.intent import config, plan
from xenoflow_ovs.lab import netns as N
from xenoflow_ovs.lab.pyenv import subprocess_env

pytestmark = [pytest.mark.root]

VIP, VIP_MAC = "198.18.0.53", "02:00:c6:12:00:35"
BE = [("fips2", "198.18.0.2", "02:00:c6:12:00:02"), ("fips3", "198.18.0.3", "02:00:c6:12:00:03")]

SENDER = """
import socket, sys
src, dst, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
for i in range(n):
    s.sendto(b"x" * 32, (dst, port))
"""


def rx_packets(ns, ifname):
    out = N.run_in_ns(ns, ["cat", "/sys/class/net/%s/statistics/rx_packets" % ifname])
    return int(out.stdout.strip())


def send(ns, src, n, port=53):
    N.run_in_ns(ns, [sys.executable, "-c", SENDER, src, VIP, str(port), str(n)])


@pytest.fixture
def eswitchd(netns, short_tmp):
    es, cl, be = netns("e"), netns("c"), netns("b")
    N.add_veth("w0", "c0", ns=es, peer_ns=cl)
    N.add_veth("w1", "b1", ns=es, peer_ns=be)
    N.add_veth("r0", "o0", ns=es, peer_ns=es)
    N.add_veth("r1", "o1", ns=es, peer_ns=es)
    for ifname in ("w0", "w1", "r0", "o0", "r1", "o1"):
        N.prepare_link(ifname, ns=es)
    N.prepare_link("c0", ns=cl, mac="02:00:c6:12:00:0b", cidr="198.18.0.11/24")
    N.add_address("c0", "198.18.0.12/24", ns=cl)
    N.run_in_ns(cl, ["ip", "neigh", "replace", VIP, "lladdr", VIP_MAC, "dev", "c0", "nud", "permanent"])
    N.prepare_link("b1", ns=be)
    for ifname, ns in (("c0", cl), ("b1", be), ("w0", es), ("w1", es)):
        N.wait_oper_up(ifname, ns)
    data = {
        "dpu": {"name": "t", "state_dir": os.path.join(short_tmp, "state"),
                "eswitch": {"driver": "softdoca", "socket": os.path.join(short_tmp, "es.sock"),
                            "eal_args": ["--no-huge", "-m", "256", "--no-pci", "-l", "0-1",
                                         "--file-prefix", "xf-t-%d" % os.getpid(),
                                         "--log-level", "lib.eal:warning"]},
                "ports": {"p0": {"id": 0, "iface": "w0", "rep_iface": "r0"},
                          "p1": {"id": 1, "iface": "w1", "rep_iface": "r1"}}},
        "ovs": {"bridges": {"br1": {"ports": ["p0", "p1"]}}},
        "services": [{"name": "dns", "vip": VIP, "vip_mac": VIP_MAC, "port": 53, "ingress": "p0",
                      "egress": "p1", "policy": {"kind": "src-ip-bits", "bits": 1},
                      "backends": [{"name": n, "ip": i, "mac": m} for n, i, m in BE]}],
    }
    path = os.path.join(short_tmp, "xf.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    cfg = config.load(path)
    log = open(os.path.join(short_tmp, "eswitchd.log"), "w")
    env = subprocess_env()     # the package from where this test imported it, not the cwd
    proc = N.popen_in_ns(es, [sys.executable, "-m", "xenoflow_ovs.cli", "eswitchd", "-c", path],
                         stdout=log, stderr=subprocess.STDOUT, cwd=short_tmp, env=env)
    sock = cfg.path(cfg.eswitch.socket)
    deadline = time.monotonic() + 30
    while not os.path.exists(sock):
        assert proc.poll() is None, open(log.name).read()
        assert time.monotonic() < deadline, "eswitchd did not start: " + open(log.name).read()
        time.sleep(0.1)
    client = EswitchClient(sock)
    try:
        yield cfg, client, proc, {"client": cl, "backend": be, "eswitch": es}, log.name
    finally:
        client.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def wait_for(fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_eswitchd_installs_counts_rolls_back_and_stops_cleanly(eswitchd):
    cfg, client, proc, ns, logpath = eswitchd
    hello = client.hello()
    assert hello["driver"] == "softdoca" and hello["pid"] == proc.pid
    mode = stat.S_IMODE(os.stat(client.path).st_mode)
    assert mode & 0o077 == 0, oct(mode)

    desired = plan.plan(cfg)
    changes = plan.adoption_changes([], [], desired)
    applied = client.apply(changes)["applied"]
    assert applied["add_pipe"] == 1 and applied["add"] == 3

    pipes, entries = client.installed()
    assert plan.adoption_changes(pipes, entries, desired) == []  # a restarted controller adds nothing
    listing = client.call("list")["entries"]
    assert {e["cookie"] for e in listing} == {e.cookie for e in desired.entries}

    # Real packets: .11 is odd (bucket 1 -> fips3), .12 even (bucket 0 -> fips2); port 54 misses.
    before = rx_packets(ns["backend"], "b1")
    send(ns["client"], "198.18.0.11", 10)
    send(ns["client"], "198.18.0.12", 6)
    send(ns["client"], "198.18.0.12", 3, port=54)

    def counted():
        c = client.counters()
        by_bucket = {e["entry"]["bucket"]: e["pkts"] for e in c["entries"] if e["entry"]["kind"] == "bucket"}
        return c if by_bucket == {0: 6, 1: 10} and c["ports"]["p0"]["miss_pkts"] >= 3 else None
    c = wait_for(counted)
    assert c, client.counters()
    assert wait_for(lambda: rx_packets(ns["backend"], "b1") - before >= 16)
    assert rx_packets(ns["backend"], "b1") - before == 16  # the misses went to the representor
    assert rx_packets(ns["eswitch"], "o0") >= 3

    # All-or-nothing: the 2nd add of a batch fails in the glue; nothing of the request stays.
    data = yaml.safe_load(open(os.path.join(os.path.dirname(client.path), "xf.yaml")))
    svc2 = dict(data["services"][0], name="dns2", vip="198.18.0.54", vip_mac="02:00:c6:12:00:36")
    data["services"].append(svc2)
    bigger = plan.plan(config.parse(yaml.safe_dump(data)))
    before_listing = client.call("list")
    client.call("fault", nth=2)
    with pytest.raises(EswitchError) as exc:
        client.apply(plan.adoption_changes(*client.installed(), bigger))
    assert exc.value.doca_error == "DOCA_ERROR_FULL"
    after = client.call("list")
    assert sorted(map(json.dumps, after["entries"])) == sorted(map(json.dumps, before_listing["entries"]))
    assert after["pipes"] == before_listing["pipes"]
    client.call("fault", nth=0)
    client.apply(plan.adoption_changes(*client.installed(), bigger))
    assert plan.adoption_changes(*client.installed(), bigger) == []

    # A request that is wrong before anything is touched names the problem and changes nothing.
    gone = [c for c in plan.adoption_changes([], [], desired) if c.op == "add"][0]
    with pytest.raises(EswitchError) as exc:
        client.apply([plan.Change("eswitch", "remove", plan.Entry(**{**gone.item.__dict__, "port": "p1"}))])
    assert "no entry" in str(exc.value)
    with pytest.raises(EswitchError):
        client.call("frobnicate")
    assert plan.adoption_changes(*client.installed(), bigger) == []

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0, open(logpath).read()
    assert not os.path.exists(client.path)


def test_runtime_never_applies_half_when_the_eswitch_refuses(eswitchd):
    """A backend add whose eSwitch half fails: OVS is reverted, eswitchd keeps the old entries."""
    from xenoflow_ovs.controller.runtime import Runtime, TransitionError
    cfg, client, proc, ns, logpath = eswitchd
    ovs = {}

    def ovs_apply(changes):
        for c in changes:
            if c.op == "delete":
                del ovs[c.item.key]
            else:
                ovs[c.item.key] = c.item
    rt = Runtime(cfg, ovs_apply, eswitch=client)
    assert rt.start()["eswitch"] == 4             # pipe + 2 buckets + dispatch: adopted nothing
    rt.in_force = plan.Plan((), rt.in_force.pipes, rt.in_force.entries)
    rt.transition(why="install OVS half")
    flows_before, listing_before = dict(ovs), client.call("list")

    def grow(data):
        data["services"][0]["policy"]["bits"] = 2   # a new pipe: 4 bucket adds in one batch
    client.call("fault", nth=3)
    with pytest.raises(TransitionError) as exc:
        rt.edit(grow, "grow")
    assert "DOCA_ERROR_FULL" in str(exc.value)
    assert ovs == flows_before
    after = client.call("list")
    assert (after["pipes"], after["entries"]) == (listing_before["pipes"], listing_before["entries"])
    assert after["table"]["version"] > listing_before["table"]["version"]   # a refused write moves it too
    client.call("fault", nth=0)
    rt.edit(grow, "grow")
    assert len([e for e in client.installed()[1] if e.kind == "bucket"]) == 4
    # A restarted controller adopts: nothing to add, nothing to remove.
    rt2 = Runtime(rt.cfg, ovs_apply, eswitch=client)
    assert rt2.start()["eswitch"] == 0
    # Drift behind our back is repaired by the next reconcile.
    victim = [e for e in client.installed()[1] if e.kind == "bucket"][0]
    client.apply([plan.Change("eswitch", "remove", victim)])
    repaired = rt2.reconcile_eswitch()
    assert len(repaired) == 1 and repaired[0].startswith("add ")
    assert rt2.reconcile_eswitch() == []


SENDER6 = """
import socket, sys
src, dst, sport, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((src, sport))
for i in range(n):
    s.sendto(b"x" * 32, (dst, 53))
"""
VIP6 = "2001:db8::53"


def test_a_dual_stack_source_port_service_through_eswitchd(eswitchd):
    """The same service over IPv4 and IPv6, UDP and TCP, balanced by source port: eswitchd
    installs a pipe per family (the IPv6 one masks the port with its family said, ("l3", 6)),
    reads back exactly what the plan holds, and real IPv6 datagrams from an even and an odd
    source port land in the IPv6 pipe's buckets 0 and 1, counted exactly; IPv4 buckets stay 0."""
    cfg, client, proc, ns, logpath = eswitchd
    data = yaml.safe_load(open(os.path.join(os.path.dirname(client.path), "xf.yaml")))
    data["services"][0].update(vip6=VIP6, protocols=["udp", "tcp"],
                               policy={"kind": "src-port-bits", "bits": 1})
    dual = plan.plan(config.parse(yaml.safe_dump(data)))
    applied = client.apply(plan.adoption_changes([], [], dual))["applied"]
    assert applied["add_pipe"] == 2 and applied["add"] == 2 * 2 + 4, applied
    assert plan.adoption_changes(*client.installed(), dual) == []
    cl = ns["client"]
    N.set_if_sysctls(cl, "c0", [("ipv6.accept_ra", "0"), ("ipv6.autoconf", "0"),
                                ("ipv6.dad_transmits", "0"), ("ipv6.disable_ipv6", "0")])
    N.add_address("c0", "2001:db8::11/64", ns=cl)
    N.run_in_ns(cl, ["ip", "-6", "neigh", "replace", VIP6, "lladdr", VIP_MAC, "dev", "c0",
                     "nud", "permanent"])
    for sport, n in ((40000, 7), (40001, 4)):
        N.run_in_ns(cl, [sys.executable, "-c", SENDER6, "2001:db8::11", VIP6, str(sport), str(n)])

    def counted():
        c = client.counters()
        got = {(e["entry"]["pipe"], e["entry"]["bucket"]): e["pkts"] for e in c["entries"]
               if e["entry"]["kind"] == "bucket"}
        want = {("dns.l4_src1.p1.ip6", 0): 7, ("dns.l4_src1.p1.ip6", 1): 4,
                ("dns.l4_src1.p1", 0): 0, ("dns.l4_src1.p1", 1): 0}
        return got if got == want else None
    assert wait_for(counted), client.counters()["entries"]


def _limited(cfg, limits, bits=2):
    data = config.to_data(cfg)
    data["services"][0]["policy"]["bits"] = bits
    if limits:
        data["services"][0]["limits"] = limits
    return plan.plan(config.parse(yaml.safe_dump(data)))


def test_eswitchd_holds_a_flood_to_its_buckets_limit_and_changes_rates_in_place(eswitchd):
    """Per-bucket and service meters through eswitchd on softdoca: a burst from one source is
    cut to the bucket's burst, the drop stage counts the rest, the service's other buckets
    pass; new rates apply in place; taking the limits away leaves no meter behind."""
    cfg, client, proc, ns, logpath = eswitchd
    limited = _limited(cfg, {"pps": 100000, "per_bucket_pps": 20, "per_bucket_burst": 5})
    client.apply(plan.adoption_changes([], [], limited))
    pipes, entries = client.installed()
    assert plan.adoption_changes(pipes, entries, limited, client.listed_meters) == []
    assert [(m.pps, m.burst) for m in client.listed_meters] == [(100000, 10000)]

    before = rx_packets(ns["backend"], "b1")
    t0 = time.monotonic()
    send(ns["client"], "198.18.0.11", 40)          # bucket 3: 40 packets at once
    took = time.monotonic() - t0
    send(ns["client"], "198.18.0.12", 4)           # bucket 0: within its burst

    def by_kind():
        out = {}
        for e in client.counters()["entries"]:
            w = e["entry"]
            out[(w["kind"], w["bucket"], w["pipe"].endswith(".svc.red"))] = e["pkts"]
        return out
    def flooded():
        c = by_kind()
        return c if c.get(("bucket", 3, False)) == 40 and c.get(("bucket", 0, False)) == 4 else None
    got = wait_for(flooded)
    assert got, by_kind()
    dropped = got[("drop", 3, False)]
    passed = 40 - dropped
    assert 5 <= passed <= 5 + int(20 * (took + 1.0)), (passed, took)
    assert got[("drop", 0, False)] == 0 and got[("drop", None, True)] == 0
    assert got[("meter", None, False)] == passed + 4, "every green packet met the service meter"
    assert wait_for(lambda: rx_packets(ns["backend"], "b1") - before >= passed + 4)
    assert rx_packets(ns["backend"], "b1") - before == passed + 4
    totals = {(t["kind"], t["backend"]): t["pkts"] for t in client.counters(entries=False)["totals"]}
    # a small table totals each bucket's drops apart
    assert totals[("drop", "bucket/3")] == dropped and totals[("drop", "service")] == 0
    assert ("drop", "bucket") not in totals and totals.get(("drop", "bucket/0"), 0) == 0

    # new rates: meters and entries updated in place, counters kept
    faster = _limited(cfg, {"pps": 50000, "per_bucket_pps": 40, "per_bucket_burst": 8})
    changes = [c for c in plan.diff(limited, faster) if c.plane == "eswitch"]
    assert {c.op for c in changes} == {"update", "update_meter"}
    client.apply(changes)
    assert [(m.pps, m.burst) for m in (client.installed() and client.listed_meters)] == [(50000, 5000)]
    after = by_kind()
    assert after[("drop", 3, False)] == dropped and after[("bucket", 3, False)] == 40

    # limits off: a plain pipe again (make-before-break), no meter left in eswitchd
    plain = _limited(cfg, None)
    client.apply([c for c in plan.diff(faster, plain) if c.plane == "eswitch"])
    pipes, entries = client.installed()
    assert client.listed_meters == [] and not any(p.drop or p.meter for p in pipes)
    assert plan.adoption_changes(pipes, entries, plain, client.listed_meters) == []


STREAM = """
import socket, sys, time
srcs, dst, secs = sys.argv[1].split(","), sys.argv[2], float(sys.argv[3])
socks = []
for src in srcs:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    socks.append(s)
n, end = 0, time.monotonic() + secs
while time.monotonic() < end:
    for s in socks:
        s.sendto(b"x" * 32, (dst, 53))
        n += 1
    time.sleep(0.0002)
print(n)
"""


def test_moving_a_services_root_entry_to_new_pipes_opens_no_gap(eswitchd):
    """Limits on and off, again and again, under a steady stream: each change gives the
    service new pipes and moves its root entry to them. The new entry is installed beside
    the old one before the old one goes, so no packet of the service misses the root pipe
    (and none falls back to the representor, where OVS would carry it)."""
    cfg, client, proc, ns, logpath = eswitchd
    plain = _limited(cfg, None)
    limited = _limited(cfg, {"per_bucket_pps": 1000000})
    client.apply(plan.adoption_changes([], [], plain))
    c0 = client.counters()
    miss0, rep0 = c0["ports"]["p0"]["miss_pkts"], rx_packets(ns["eswitch"], "o0")
    be0 = rx_packets(ns["backend"], "b1")
    stream = N.popen_in_ns(ns["client"], [sys.executable, "-c", STREAM, "198.18.0.11,198.18.0.12", VIP, "6"],
                           stdout=subprocess.PIPE)
    try:
        time.sleep(0.5)
        moves = 0
        for _ in range(12):
            for a, b in ((plain, limited), (limited, plain)):
                changes = [c for c in plan.diff(a, b) if c.plane == "eswitch"]
                assert any(c.op == "update" and c.item.pipe == "root" for c in changes)
                client.apply(changes)
                moves += 1
                time.sleep(0.1)
        assert stream.poll() is None, "the stream ended before the moves did: no overlap to show"
        sent = int(stream.communicate(timeout=20)[0])
    finally:
        if stream.poll() is None:
            stream.kill()
            stream.wait()
    assert plan.adoption_changes(*client.installed(), plain, client.listed_meters) == []
    wait_for(lambda: rx_packets(ns["backend"], "b1") - be0 >= sent, timeout=5)
    missed = client.counters()["ports"]["p0"]["miss_pkts"] - miss0
    fell_back, got = rx_packets(ns["eswitch"], "o0") - rep0, rx_packets(ns["backend"], "b1") - be0
    print("\n%d root entry moves under %d packets: %d missed the root pipe, %d reached the representor, "
          "%d the backend" % (moves, sent, missed, fell_back, got))
    assert missed == 0 and fell_back == 0
    assert got == sent

"""The indexed packet classifier (what `xenoflow check` uses) answers exactly as the
scan over every flow and entry does: varied plans, hand-made flows and entries that
overlap, tie on priority or use shapes the index does not express, and many packets."""

import os
import random

from xenoflow_ovs.intent import config, fate, plan
from xenoflow_ovs.intent.plan import ETH_ARP, ETH_IP, Entry, Flow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(ROOT, "topologies", "paper", "xenoflow.yaml")


def variant(kind="src-ip-bits", bits=3, proto="udp", table_miss="normal", extra_routes=()):
    data = config.to_data(config.load(PAPER))
    data["ovs"]["table_miss"] = table_miss
    svc = data["services"][0]
    svc["policy"] = {"kind": kind, "bits": bits}
    svc.pop("protocol", None)
    svc["protocols"] = [proto]          # the paper's service is dual stack: both families stay
    svc["backends"].append({"name": "fips6", "ip": "198.18.0.6", "mac": "02:00:c6:12:00:06",
                            "weight": 2})
    second = dict(svc, name="web", vip="198.18.0.80", vip_mac="02:00:c6:12:00:50", port=80,
                  protocols=["tcp"], policy={"kind": "src-ip-bits", "bits": 2})
    del second["vip6"]                  # IPv4 only
    data["services"].append(second)
    data["routes"] = list(data["routes"]) + list(extra_routes)
    return config.from_data(data, base_dir=os.path.dirname(PAPER))


# Routes with overlapping prefixes (priority = 100 + prefix length) and a default route.
ROUTES = ({"from": "p1", "to": "pf1hpf", "dst": "198.18.0.0/24"},
          {"from": "p1", "to": "pf1hpf", "dst": "198.18.0.0/28"},
          {"from": "pf0hpf", "to": "p1"})

CONFIGS = [variant(), variant("src-port-bits", 4, "tcp"), variant("maglev", 5, table_miss="drop"),
           variant("src-ip-bits", 2, extra_routes=ROUTES)]


def by_bridge(flows):
    out = {}
    for f in flows:
        out.setdefault(f.bridge, []).append(f)
    return out


def hand_made_flows(cfg):
    """Rules no plan writes, in the shapes the index must still get right."""
    br = cfg.bridge_of("p0")
    return [
        # same priority and overlapping: the scan takes the first listed
        Flow(br, 500, (("in_port", "p0"), ("ipv4_src", ("198.18.0.0", "255.255.255.0"))),
             (("output", "p1"),), "route", "tie-a"),
        Flow(br, 500, (("in_port", "p0"), ("ipv4_src", ("198.18.0.0", "255.255.254.0"))),
             (("output", "pf0hpf"),), "route", "tie-b"),
        Flow(br, 500, (("ipv4_src", "198.18.0.7"),), (("output", "pf0hpf"),), "route", "tie-c"),
        # masked L4 and exact L4 of both protocols; a tagged VLAN; a MAC in upper case
        Flow(br, 450, (("in_port", "p0"), ("udp_src", (0x10, 0xF0))), (("output", "p1"),),
             "route", "l4-mask"),
        Flow(br, 440, (("tcp_dst", 80),), (("set_field", "eth_dst", "02:00:00:00:00:99"),
                                           ("output", "p1")), "route", "l4-exact"),
        Flow(br, 430, (("vlan_vid", 0x1005),), (("output", "pf0hpf"),), "route", "vlan5"),
        Flow(br, 420, (("eth_dst", "02:00:C6:12:00:35"), ("arp_op", 2)), (("normal",),),
             "route", "mac-upper"),
        # a value the index leaves to the scan (not an int: tested one by one)
        Flow(br, 410, (("vlan_vid", True),), (), "route", "vlan-odd"),
        Flow(br, 405, (("eth_type", ETH_ARP), ("arp_tpa", ("198.18.0.0", "255.255.255.0"))),
             (("output", "IN_PORT"),), "route", "arp-net"),
    ]


def patch_ports(cfg):
    """Patch port -> the bridge it sits on (packets may start there, as after a hop)."""
    return {cfg.patch_port(a, b): a for x, y in cfg.patches for a, b in ((x, y), (y, x))}


def bridge_of(cfg):
    return lambda port: patch_ports(cfg).get(port) or cfg.bridge_of(port)


def packets(cfg, rng, n):
    ports = [p for br in cfg.bridges for p in br.ports] + list(patch_ports(cfg)) + \
        [i.name for br in cfg.bridges for i in br.internal]
    macs = ["ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01"] + [s.vip_mac for s in cfg.services] + \
        [b.mac for s in cfg.services for b in s.backends] + [s.vip_mac.upper() for s in cfg.services]
    addrs = [str(s.vip) for s in cfg.services] + ["198.18.0.5", "198.18.0.2", "198.18.0.250",
                                                   "198.18.1.9", "10.0.0.1"]
    out = []
    for _ in range(n):
        if rng.random() < 0.15:
            pkt = fate.arp_request(rng.choice(ports), rng.choice(addrs))
            out.append(pkt if rng.random() < 0.7 else fate.Packet(
                **dict(pkt.__dict__, arp_op=2, eth_dst=rng.choice(macs))))
            continue
        if rng.random() < 0.25:     # IPv6: the VIP6s, other addresses, Neighbor Solicitations
            addrs6 = [str(s.vip6) for s in cfg.services if s.vip6] + ["2001:db8::5", "2001:db8:1::9"]
            nd = rng.random() < 0.3
            out.append(fate.ipv6_packet(
                rng.choice(ports), rng.choice(("2001:db8::7", "::", "2001:db8::%x" % rng.randrange(65536))),
                rng.choice(addrs6), eth_dst=rng.choice(macs), ip_proto=58 if nd else rng.choice((17, 6)),
                icmpv6_type=rng.choice((135, 136)) if nd else 0,
                ipv6_nd_target=rng.choice(addrs6) if nd else "",
                l4_src=rng.randrange(65536), l4_dst=rng.choice((53, 80, 9)),
                vlan=rng.choice((None, None, 0, 5))))
            continue
        out.append(fate.Packet(
            in_port=rng.choice(ports), eth_dst=rng.choice(macs), eth_type=ETH_IP,
            ip_proto=rng.choice((17, 6, 1)),
            ipv4_src=rng.choice(("198.18.0.7", "198.18.%d.%d" % (rng.choice((0, 1, 7, 200)),
                                                                  rng.randrange(256)))),
            ipv4_dst=rng.choice(addrs), l4_src=rng.choice((0x15, rng.randrange(65536))),
            l4_dst=rng.choice((53, 80, 54, 9, 40000)), vlan=rng.choice((None, None, None, 0, 1, 5))))
    return out


def aimed_at(flow, pkt, rng):
    """`pkt` changed so that it satisfies `flow`'s match (the free bits of a mask at random)."""
    import netaddr
    got = dict(pkt.__dict__)
    for name, want in flow.match:
        if name in ("ipv4_src", "ipv4_dst", "arp_tpa"):
            if isinstance(want, tuple):
                value, mask = (int(netaddr.IPAddress(w)) for w in want)
                want = str(netaddr.IPAddress(value & mask | rng.randrange(1 << 32) & ~mask))
            got[name] = want
        elif name in ("ipv6_src", "ipv6_dst", "ipv6_nd_target"):
            if isinstance(want, tuple):
                value, mask = (int(netaddr.IPAddress(w, 6)) for w in want)
                want = str(netaddr.IPAddress(value & mask | rng.randrange(1 << 128) & ~mask, 6))
            got[name] = want
        elif name == "vlan_vid":
            got["vlan"] = None if want == 0 else want & 0xFFF
        elif name.startswith(("udp_", "tcp_")):
            got["ip_proto"] = 17 if name.startswith("udp") else 6
            value, mask = want if isinstance(want, tuple) else (want, 0xFFFF)
            got["l4" + name[3:]] = value & mask | rng.randrange(1 << 16) & ~mask
        elif name == "eth_type" and want == ETH_ARP:
            got.update(eth_type=ETH_ARP, ip_proto=0, ipv4_src="", ipv4_dst="", arp_op=1)
        else:
            got[name] = want
    return fate.Packet(**got)


def test_indexed_ovs_lookup_answers_as_the_scan():
    rng = random.Random(7)
    verdicts, decided = set(), set()
    for cfg in CONFIGS:
        planned = list(plan.plan(cfg).flows)
        for flows in (by_bridge(planned), by_bridge(hand_made_flows(cfg) + planned)):
            index = fate.OvsIndex(flows, bridge_of(cfg))
            every = [f for fs in flows.values() for f in fs]
            for pkt in packets(cfg, rng, 1500):
                if rng.random() < 0.6:
                    pkt = aimed_at(rng.choice(every), pkt, rng)
                want = fate.ovs_fate(flows, bridge_of(cfg), pkt)
                assert index.fate(pkt) == want, pkt
                verdicts.add(want.verdict)
                f = index.pick(index.bridge_of(pkt.in_port), pkt)
                decided.add(f.owner if f is not None and f.kind == "route" else f and f.kind)
    # the packets reached every kind of rule, and every hand-made one
    assert {"output", "drop", "normal"} <= verdicts
    assert {"tie-a", "tie-c", "l4-mask", "l4-exact", "vlan5", "vlan-odd", "mac-upper",
            "arp-net"} <= decided
    assert {"service", "arp", "guard", "table_miss", "mgmt", "patch_drop", "patch_in"} <= decided


def test_equal_priority_goes_to_the_first_listed_as_in_the_scan():
    cfg = CONFIGS[0]
    flows = hand_made_flows(cfg)[:3]
    pkt = fate.Packet(in_port="p0", ipv4_src="198.18.0.7")
    for order in (flows, flows[::-1], [flows[1], flows[2], flows[0]]):
        table = {cfg.bridge_of("p0"): order}
        want = fate.ovs_fate(table, cfg.bridge_of, pkt)
        assert fate.OvsIndex(table, cfg.bridge_of).fate(pkt) == want
        assert fate.OvsIndex(table, cfg.bridge_of).pick(cfg.bridge_of("p0"), pkt) is order[0]


def test_a_field_the_model_cannot_match_still_fails_loudly():
    cfg = CONFIGS[0]
    for match in ((("mpls_label", 7),), (("vlan_vid", (0x1000, 0x1000)),)):
        table = {cfg.bridge_of("p0"): [Flow(cfg.bridge_of("p0"), 1, match, (), "route", "odd")]}
        for ask in (lambda p: fate.ovs_fate(table, cfg.bridge_of, p),
                    fate.OvsIndex(table, cfg.bridge_of).fate):
            try:
                ask(fate.Packet(in_port="p0", vlan=5))
            except (ValueError, TypeError):
                continue
            raise AssertionError("a match the model cannot read was ignored: %r" % (match,))


def hand_made_entries():
    return [
        # root: two at one priority (first listed wins), a higher one behind them in the list
        Entry("p0", "root", (("eth_type", ETH_IP, 0xFFFF), ("ipv4_src", 0xC6120000, 0xFFFFFF00)),
              "route", "tie-a", fwd=("port", "pf0hpf"), priority=150),
        Entry("p0", "root", (("ipv4_src", 0xC6120007, 0xFFFFFFFF),), "route", "tie-b",
              fwd=("drop",), priority=150),
        Entry("p0", "root", (("eth_type", ETH_IP, 0xFFFF), ("l4_src", 0x10, 0xF0)), "route",
              "l4", fwd=("pipe", "extra"), priority=160),
        # a pipe whose entries have two masks and one key twice: the first listed wins
        Entry("p0", "extra", (("ipv4_src", 0x07, 0x0F),), "bucket", "x", fwd=("port", "p1"),
              dst_mac="02:00:00:00:00:07"),
        Entry("p0", "extra", (("ipv4_src", 0x07, 0xFF),), "bucket", "x", fwd=("port", "p1"),
              dst_mac="02:00:00:00:00:08"),
        Entry("p0", "extra", (("ipv4_src", 0x07, 0x0F),), "bucket", "x", fwd=("port", "p1"),
              dst_mac="02:00:00:00:00:09"),
    ]


def test_indexed_eswitch_lookup_answers_as_the_scan():
    rng = random.Random(11)
    verdicts = set()
    for cfg in CONFIGS:
        for entries in (list(plan.plan(cfg).entries),
                        hand_made_entries() + list(plan.plan(cfg).entries)):
            index = fate.EswitchIndex(entries)
            for pkt in packets(cfg, rng, 1500):
                if pkt.eth_type != ETH_IP:
                    continue    # the eSwitch model is asked about IPv4 classes only
                want = fate.eswitch_fate(entries, pkt)
                assert index.fate(pkt) == want, pkt
                verdicts.add((want.verdict, want.path))
    assert {("output", ("root",)), ("drop", ("root",)), ("miss", ("root",))} <= verdicts
    assert any(v == "output" and len(p) == 2 for v, p in verdicts)
    assert any(v == "miss" and len(p) == 2 for v, p in verdicts)


def test_every_bucket_of_a_plan_through_the_index():
    for cfg in CONFIGS:
        p = plan.plan(cfg)
        flows, entries = by_bridge(p.flows), list(p.entries)
        ovs, es = fate.OvsIndex(flows, cfg.bridge_of), fate.EswitchIndex(entries)
        for name, tbl in p.tables:
            svc = cfg.service(name)
            for b, backend in enumerate(tbl):
                src, sport = "198.18.9.%d" % b, 40000
                if svc.policy.kind == "src-port-bits":
                    src, sport = "198.18.9.1", 0x4000 | b
                pkt = fate.Packet(in_port=svc.ingress, eth_dst=svc.vip_mac, ip_proto=svc.ip_proto,
                                  ipv4_src=src, ipv4_dst=str(svc.vip), l4_src=sport, l4_dst=svc.port)
                want = (svc.egress, svc.backend(backend).mac)
                for got in (ovs.fate(pkt), es.fate(pkt), fate.ovs_fate(flows, cfg.bridge_of, pkt),
                            fate.eswitch_fate(entries, pkt)):
                    assert (got.verdict, got.port, got.eth_dst) == ("output",) + want, (name, b)


def test_dotted_quads_parse_as_netaddr_does():
    import netaddr
    for s in ("0.0.0.0", "198.18.0.53", "255.255.255.255", "10.0.0.1"):
        assert fate._ip_to_int(s) == int(netaddr.IPAddress(s))
    for bad in ("1.2.3", "256.1.1.1", "a.b.c.d"):
        try:
            fate._ip_to_int(bad)
        except netaddr.AddrFormatError:
            continue
        raise AssertionError(bad)

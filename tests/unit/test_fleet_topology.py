"""The fleet lab's topology file (topologies/fleet), without root: what `xenoflow lab up
--topology fleet` would build, and the loader's located errors for fleet files."""
from __future__ import annotations

import ipaddress
import os

import pytest

from xenoflow_ovs.intent import config as config_mod
from xenoflow_ovs.lab.topology import TopologyError, load_topology

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLEET = os.path.join(REPO, "topologies", "fleet", "topology.yaml")


@pytest.fixture(scope="module")
def topo():
    return load_topology(FLEET)


def test_fleet_topology_names_and_parts(topo):
    assert topo.kind == "fleet"
    assert set(topo.namespaces) == {"fips1", "rtr", "dpu1", "dpu2", "sw", "fips2", "fips3", "mgmt"}
    assert [d.name for d in topo.dpus] == ["dpu1", "dpu2"]
    assert (topo.router.netns, topo.router.asn, topo.router.pathspace) == ("rtr", 65000, "xf-rtr")
    assert topo.store.netns == "mgmt" and (topo.store.client_port, topo.store.raft_port) == (6641, 6643)
    assert [m.address for m in topo.store.members] == ["198.19.100.1", "198.19.100.2", "198.19.100.3"]
    assert os.path.basename(topo.services_path) == "services.yaml"
    assert topo.routes["fips1"] == (("default", "198.18.1.1"),)
    assert {ns for ns, _ in topo.all_taps()} == {"dpu1", "dpu2"}


def test_each_dpu_matches_its_config(topo):
    for d in topo.dpus:
        cfg = config_mod.load(d.config_path)
        view = topo.dpu_view(d.name)
        view.check_against(cfg)
        assert view.namespaces == () and view.dpu_netns == d.netns
        assert cfg.dpu_name == d.name and cfg.fleet is not None and not cfg.services
        bgp, port = cfg.bgp_speaker()
        assert bgp.pathspace == "xf-" + d.name and port.name == "bgp0"
        # the speaker's peer is the router's end of this DPU's uplink
        (p0,) = [p for p in d.eswitch_ports if p.name == "p0"]
        assert p0.wire_peer.netns == "rtr"
        assert str(bgp.peers[0].address) == p0.wire_peer.addresses[0].split("/")[0]
        assert ipaddress.ip_address(str(port.ip.ip)) in ipaddress.ip_network(p0.wire_peer.addresses[0],
                                                                             strict=False)
    prefixes = [config_mod.load(d.config_path).eswitch.eal_args for d in topo.dpus]
    assert len({a[a.index("--file-prefix") + 1] for a in prefixes}) == 2
    assert len({a[a.index("-l") + 1] for a in prefixes}) == 2


def test_names_macs_addresses(topo):
    ends = [e for v in topo.veths(True) for e in (v.a, v.b)]
    macs = [e.mac for e in ends] + [b.mac for b in topo.bridges]
    assert all(m and int(m.split(":")[0], 16) & 3 == 2 for m in macs)
    assert len(set(macs)) == len(macs)
    assert all(len(e.ifname) <= 15 for e in ends)
    lab_net = ipaddress.ip_network("198.18.0.0/15")
    for e in ends:
        assert all(ipaddress.ip_interface(a).ip in lab_net for a in e.addresses)
    assert all(e.netns in topo.namespaces for e in ends)


def test_backend_segment_learning_off_towards_the_dpus(topo):
    sw = next(b for b in topo.bridges if b.name == "sw0")
    assert set(sw.learning_off) == {"s-dpu1", "s-dpu2"}
    fdb = dict(sw.fdb)
    for d in topo.dpus:
        cfg = config_mod.load(d.config_path)
        pf1sf0 = next(ip for br in cfg.bridges for ip in br.internal if ip.name == "pf1sf0")
        assert fdb[pf1sf0.mac] == "s-" + d.name
    assert fdb["02:00:c6:12:00:02"] == "s-fips2" and fdb["02:00:c6:12:00:03"] == "s-fips3"


def test_sources_cover_every_bucket(topo):
    srcs = topo.clients["fips1"]
    assert len(srcs) == 64
    assert {int(ipaddress.ip_address(a)) & 3 for a in srcs} == {0, 1, 2, 3}


def _write(tmp_path, text):
    p = tmp_path / "topology.yaml"
    p.write_text(text)
    return p


FLEET_MIN = ("namespaces: [a, r, m]\n"
             "dpus:\n"
             "  d1:\n"
             "    netns: a\n"
             "    config: d1.yaml\n"
             "    ports:\n"
             "      p0:\n"
             "        wire: {ifname: dpu-p0, peer: {netns: r, ifname: r-d1}}\n"
             "        rep: {ifname: rep-p0, peer: {ifname: p0}}\n"
             "router: {netns: r, asn: 65000, router_id: 198.18.1.1, pathspace: xf-r}\n"
             "store:\n"
             "  netns: m\n"
             "  members:\n"
             "    - {name: s1, address: 198.19.100.1}\n"
             "services: services.yaml\n")


def test_a_minimal_fleet_file_loads(tmp_path):
    t = load_topology(str(_write(tmp_path, FLEET_MIN)))
    assert t.kind == "fleet" and [d.name for d in t.dpus] == ["d1"]
    assert [p.name for p in t.eswitch_ports] == ["p0"]


def test_fleet_errors_name_key_path_and_line(tmp_path):
    text = FLEET_MIN.replace("ifname: dpu-p0", "ifname: this-name-is-too-long") \
                    .replace("asn: 65000", "asn: 0") \
                    .replace("198.19.100.1}", "10.0.0.1}") \
                    .replace("    config: d1.yaml\n", "    config: d1.yaml\n    bogus: 1\n")
    p = _write(tmp_path, text)
    with pytest.raises(TopologyError) as exc:
        load_topology(str(p))
    lines = exc.value.lines()
    assert any(line.startswith("%s:6: dpus.d1.bogus: unknown key 'bogus'" % p) for line in lines), lines
    assert any(line.startswith("%s:9: dpus.d1.ports.p0.wire.ifname: bad interface name" % p)
               for line in lines), lines
    assert any(line.startswith("%s:11: router.asn:" % p) for line in lines), lines
    assert "%s:15: store.members[0].address: 10.0.0.1 is outside 198.18.0.0/15 (the lab's only " \
           "addresses)" % p in lines, lines


def test_fleet_needs_its_parts_and_not_dpu(tmp_path):
    p = _write(tmp_path, FLEET_MIN.replace("services: services.yaml\n", "dpu: {netns: a, ports: {}}\n"))
    with pytest.raises(TopologyError) as exc:
        load_topology(str(p))
    lines = exc.value.lines()
    assert any(": services: missing required key" in line for line in lines), lines
    assert any(line.startswith("%s:15: dpu: a fleet topology (dpus:)" % p) for line in lines), lines


def test_fleet_keys_refused_in_a_one_dpu_file(tmp_path):
    p = _write(tmp_path, "namespaces: [a]\ndpu: {netns: a, ports: {}}\n"
               "router: {netns: a, asn: 1, router_id: 198.18.1.1, pathspace: x}\n")
    with pytest.raises(TopologyError) as exc:
        load_topology(str(p))
    assert exc.value.lines() == [
        "%s:3: router: only a fleet topology (dpus: instead of dpu:) has router:" % p]


def test_two_dpus_in_one_namespace_and_bad_routes(tmp_path):
    text = FLEET_MIN.replace("services: services.yaml\n",
                             "services: services.yaml\n"
                             "routes:\n  a: [{dst: default, via: 10.1.1.1}]\n") \
                    .replace("router: {", "  d2: {netns: a, config: d2.yaml, ports: {}}\nrouter: {")
    p = _write(tmp_path, text)
    with pytest.raises(TopologyError) as exc:
        load_topology(str(p))
    lines = exc.value.lines()
    assert "%s:10: dpus.d2.netns: namespace a is already DPU d1's" % p in lines, lines
    assert any(line.startswith("%s:18: routes.a[0].via: 10.1.1.1 is outside" % p) for line in lines), lines

"""The topology file and the derived config, without root: what the lab would build."""
from __future__ import annotations

import ipaddress
import os

import pytest

from xenoflow_ovs.intent import config as config_mod
from xenoflow_ovs.lab.labctl import write_derived_config
from xenoflow_ovs.lab.topology import TopologyError, load_topology

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(REPO, "topologies", "paper", "topology.yaml")


@pytest.fixture(scope="module")
def topo():
    return load_topology(PAPER)


def test_paper_topology_matches_its_config(topo):
    cfg = config_mod.load(topo.config_path)
    topo.check_against(cfg)
    assert set(topo.namespaces) == {"dpu", "tor", "fips1", "fips2", "fips3", "fips4", "fips5"}
    assert {p.name for p in topo.eswitch_ports} == {"p0", "p1", "pf0hpf", "pf1hpf"}


@pytest.mark.parametrize("eswitch", [True, False])
def test_names_macs_addresses(topo, eswitch):
    ends = [e for v in topo.veths(eswitch) for e in (v.a, v.b)]
    macs = [e.mac for e in ends]
    assert all(m and int(m.split(":")[0], 16) & 3 == 2 for m in macs)   # local, unicast
    assert len(set(macs)) == len(macs)
    assert all(len(e.ifname) <= 15 for e in ends)
    lab_net = ipaddress.ip_network("198.18.0.0/15")
    for e in ends:
        assert all(ipaddress.ip_interface(a).ip in lab_net for a in e.addresses)
    # nothing in the root namespace
    assert all(e.netns in topo.namespaces for e in ends)


def test_wiring_per_driver(topo):
    es = {(v.role, v.a.ifname, v.b.ifname) for v in topo.veths(True) if v.port == "p0"}
    assert es == {("wire", "dpu-p0", "t-p0"), ("rep", "rep-p0", "p0")}
    direct = {(v.role, v.a.ifname, v.b.ifname) for v in topo.veths(False) if v.port == "p0"}
    assert direct == {("direct", "p0", "t-p0")}
    host = {(v.a.ifname, v.b.netns, v.b.ifname) for v in topo.veths(True) if v.role == "wire"
            and v.port.startswith("pf")}
    assert host == {("dpu-pf0hpf", "fips5", "pf0"), ("dpu-pf1hpf", "fips5", "pf1")}


def test_clients_cover_every_bucket(topo):
    cfg = config_mod.load(topo.config_path)
    for svc in cfg.services:
        mask = svc.policy.buckets - 1
        for ns in ("fips1", "fips4"):
            assert ns in topo.clients
        covered = {int(ipaddress.ip_address(a)) & mask for addrs in topo.clients.values() for a in addrs}
        assert covered == set(range(svc.policy.buckets))
    # fips4 alone covers 4 bits (16 buckets): room for bigger policies
    assert {int(ipaddress.ip_address(a)) & 15 for a in topo.clients["fips4"]} == set(range(16))
    # every client source address is configured on that client
    for ns, addrs in topo.clients.items():
        have = {ipaddress.ip_interface(a).ip for v in topo.links for e in (v.a, v.b)
                if e.netns == ns for a in e.addresses}
        assert {ipaddress.ip_address(a) for a in addrs} <= have


def test_tor_learning_off_towards_the_dpu_with_static_fdb(topo):
    (br,) = topo.bridges
    assert br.netns == "tor" and set(br.learning_off) == {"t-p0", "t-p1"}
    fdb = dict(br.fdb)
    assert fdb["02:00:c6:12:00:35"] == "t-p0"             # the VIP
    assert fdb["02:00:c6:12:00:05"] == "t-p1"             # fips5's pf1 side
    assert fdb["02:00:c6:12:00:fa"] == "t-p1"             # pf1sf0


def test_bad_topology_names_the_key(tmp_path):
    p = tmp_path / "topology.yaml"
    p.write_text("namespaces: [a]\ndpu: {netns: a, ports: {}}\nlinks:\n"
                 "  - a: {netns: a, ifname: this-name-is-too-long}\n    b: {netns: a, ifname: x}\n")
    with pytest.raises(TopologyError, match=r"links\[0\]\.a\.ifname"):
        load_topology(str(p))
    p.write_text("namespaces: [a]\ndpu: {netns: a, ports: {}}\nlinks:\n"
                 "  - a: {netns: a, ifname: x, addresses: [10.0.0.1/24]}\n    b: {netns: a, ifname: y}\n")
    with pytest.raises(TopologyError, match="outside 198.18.0.0/15"):
        load_topology(str(p))
    p.write_text("namespaces: [a]\ndpu: {netns: a, ports: {}}\nbogus: 1\n")
    with pytest.raises(TopologyError, match="bogus"):
        load_topology(str(p))


def test_derived_config_overrides_and_sockets(topo, tmp_path):
    run = str(tmp_path / "run")
    path = write_derived_config(topo, run, "none", False)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o600)
    cfg = config_mod.load(path)
    assert cfg.eswitch.driver == "none" and cfg.eswitch.mirror_routes is False
    assert cfg.path(cfg.eswitch.socket) == os.path.join(run, "eswitchd.sock")
    assert cfg.ovs_db == "unix:" + os.path.join(run, "ovs", "db.sock")
    assert cfg.path(cfg.api.socket) == os.path.join(run, "api.sock")
    # without overrides the source config's values stay
    cfg2 = config_mod.load(write_derived_config(topo, run, None, None))
    src = config_mod.load(topo.config_path)
    assert (cfg2.eswitch.driver, cfg2.eswitch.mirror_routes) == (src.eswitch.driver,
                                                                 src.eswitch.mirror_routes)


def test_topology_errors_name_key_path_and_line_like_the_config(tmp_path):
    """Every problem of the file at once, as `xenoflow check-config` reports a config:
    <file>:<line>: <key path>: <message>; unknown keys are errors."""
    p = tmp_path / "topology.yaml"
    p.write_text("namespaces: [a]\n"
                 "dpu:\n"
                 "  netns: a\n"
                 "  ports: {}\n"
                 "  bogus: 1\n"
                 "links:\n"
                 "  - a: {netns: b, ifname: x}\n"
                 "    b: {netns: a, ifname: y, mac: \"02:00:00:00:00:01\", addresses: [10.0.0.1/24]}\n"
                 "  - a: {netns: a, ifname: y}\n"
                 "    b: {netns: a, ifname: z}\n")
    with pytest.raises(TopologyError) as exc:
        load_topology(str(p))
    assert exc.value.lines() == [
        "%s:5: dpu.bogus: unknown key 'bogus' (allowed: netns, ports, taps)" % p,
        "%s:7: links[0].a.netns: namespace 'b' is not in namespaces" % p,
        "%s:8: links[0].b.addresses[0]: 10.0.0.1/24 is outside 198.18.0.0/15 (the lab's only addresses)" % p,
        "%s:9: links[1].a.ifname: interface a/y is already defined at links[0].b" % p,
    ]
    p.write_text("namespaces: [a]\nnamespaces: [b]\n")
    with pytest.raises(TopologyError, match=r"topology.yaml:2: namespaces: duplicate key"):
        load_topology(str(p))


def test_lab_command_reports_topology_errors_with_lines(tmp_path, capsys):
    from xenoflow_ovs.cli import main as cli_main

    p = tmp_path / "topology.yaml"
    p.write_text("namespaces: [a]\ndpu: {netns: a, ports: {}}\nhost: {netns: a, src: 198.18.0.5, dst: x}\n")
    rc = cli_main(["lab", "status", "--topology", str(p), "--run-dir", str(tmp_path / "run")])
    assert rc == 2
    assert capsys.readouterr().err.splitlines() == [
        "xenoflow lab: %s:3: host.dst: unknown key 'dst' (allowed: netns, src, targets)" % p]
    assert not (tmp_path / "run").exists()

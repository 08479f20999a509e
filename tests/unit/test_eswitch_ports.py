"""intent/eswitch_ports.py: e-switches, forwards, vnf pairs and eswitchd's port list."""

import os

import pytest
import yaml

from xenoflow_ovs.intent import config
from xenoflow_ovs.intent import eswitch_ports as ep
from xenoflow_ovs.intent.config import Port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(ROOT, "topologies", "paper", "xenoflow.yaml")


def fwd(src, dst, what=None):
    return ep.Forward(src, dst, what or "%s->%s" % (src, dst), ("x",))


PORTS = (Port("p0", 0), Port("p1", 1), Port("pf0hpf", 2, of="p0"), Port("pf1hpf", 3, of="p1"))


def test_eswitches_one_per_device_or_one_shared():
    assert ep.eswitch_of(PORTS, multiport=False) == {"p0": 0, "p1": 1, "pf0hpf": 0, "pf1hpf": 1}
    assert set(ep.eswitch_of(PORTS, multiport=True).values()) == {0}


def test_bring_up_order_puts_each_device_before_its_representors():
    ports = (Port("pf1hpf", 3, of="p1"), Port("p0", 0), Port("pf0hpf", 2, of="p0"), Port("p1", 1))
    assert [p.name for p in ep.bring_up_order(ports)] == ["p0", "pf0hpf", "p1", "pf1hpf"]


def test_paper_forwards_and_pairs():
    cfg = config.load(PAPER)
    fwds = ep.forwards(cfg)
    assert [(f.src, f.dst, f.path) for f in fwds] == [
        ("p0", "p1", ("services", 0)), ("pf1hpf", "p1", ("routes", 0)), ("p1", "pf1hpf", ("routes", 1))]
    assert ep.vnf_pairs(fwds) == {"p0": "p1", "pf1hpf": "p1", "p1": "pf1hpf"}


def test_unmirrored_routes_are_not_forwards():
    cfg = config.load(PAPER)
    assert [(f.src, f.dst) for f in ep.needed_forwards(cfg.services, cfg.routes, False)] == [("p0", "p1")]


@pytest.mark.parametrize("fwds,pairs", [
    ([], {}),
    ([fwd("a", "b")], {"a": "b", "b": "a"}),                        # the way back comes free
    ([fwd("a", "b"), fwd("b", "c")], {"a": "b", "b": "c", "c": "b"}),  # b needs its own pair
    ([fwd("a", "c"), fwd("b", "c")], {"a": "c", "b": "c", "c": "a"}),  # c paired back once, first
    ([fwd("a", "b"), fwd("a", "b")], {"a": "b", "b": "a"}),
])
def test_vnf_pairs(fwds, pairs):
    assert ep.vnf_pairs(fwds) == pairs


def test_vnf_pairs_refuses_two_targets_naming_both():
    with pytest.raises(ep.PairConflict) as exc:
        ep.vnf_pairs([fwd("a", "b", "service 'x'"), fwd("a", "c", "route a->c")])
    assert exc.value.first.dst == "b" and exc.value.second.dst == "c"
    assert "'b' (service 'x')" in str(exc.value) and "'c' (route a->c)" in str(exc.value)


def test_problems_in_each_mode():
    cross = [fwd("p0", "p1", "service 'dns'"), fwd("pf1hpf", "p1")]
    assert ep.problems(PORTS, cross, "vnf", False) == []
    found = ep.problems(PORTS, cross, "switch", False)
    assert len(found) == 1 and "service 'dns'" in found[0][1]
    assert ep.problems(PORTS, cross, "switch", True) == []
    two = [fwd("p0", "p1"), fwd("p0", "pf0hpf")]
    assert ep.problems(PORTS, two, "switch", False) == [(("x",), found[0][1].replace(
        "service 'dns'", "p0->p1"))]
    assert len(ep.problems(PORTS, two, "vnf", False)) == 1


@pytest.mark.parametrize("addr,key", [
    ("03:00.0", "0000:03:00.0"), ("0000:03:00.1", "0000:03:00.1"), ("0000:B1:1F.7", "0000:b1:1f.7")])
def test_pci_addresses(addr, key):
    assert ep.PCI_RE.match(addr) and ep.pci_key(addr) == key


@pytest.mark.parametrize("devargs,names_pci", [
    ("dv_flow_en=2", False), ("dv_flow_en=2,dv_xmeta_en=4", False), ("03:00.0,dv_flow_en=2", True),
    ("pci/0000:03:00.1", True), ("representor=pf0vf0", False)])
def test_devargs_naming_a_pci_address(devargs, names_pci):
    assert bool(ep.PCI_IN_TEXT_RE.search(devargs)) is names_pci


def _cfg(**eswitch):
    with open(PAPER) as f:
        d = yaml.safe_load(f)
    d["dpu"]["eswitch"].update(eswitch)
    return config.parse(yaml.safe_dump(d))


def test_port_specs_of_the_paper_lab():
    specs = ep.port_specs(config.load(PAPER))
    assert [s["name"] for s in specs] == ["p0", "pf0hpf", "p1", "pf1hpf"]
    by = {s["name"]: s for s in specs}
    assert {n: s["pair"] for n, s in by.items()} == {"p0": "p1", "pf0hpf": None, "p1": "pf1hpf",
                                                       "pf1hpf": "p1"}
    assert by["pf0hpf"]["of"] == "p0" and by["p0"]["of"] is None
    assert all(s["esw"] is None and s["driver"] == "af_packet" for s in specs)
    assert by["p0"]["iface"] == "dpu-p0" and by["p0"]["rep_iface"] == "rep-p0"
    assert set(by["p0"]) == {"name", "id", "iface", "rep_iface", "driver", "devargs", "pci", "of",
                             "pair", "esw", "action_entries"}
    # the paper's one 2-bucket service needs little: every port gets the floor
    assert {s["action_entries"] for s in specs} == {1024}


def test_port_specs_are_what_dpdk_glue_takes():
    """Every key is a PortSpec argument the glue accepts (action_entries a power of two)."""
    binding = pytest.importorskip("dpdk_glue.binding")
    for spec in ep.port_specs(config.load(PAPER)):
        binding.PortSpec(**spec)
    with pytest.raises(ValueError, match="power of two"):
        binding.PortSpec(**dict(ep.port_specs(config.load(PAPER))[0], action_entries=3000))


def test_port_specs_switch_mode_pairs_nothing_and_multiport_shares_esw_0():
    specs = {s["name"]: s for s in ep.port_specs(_cfg(mode="switch", multiport=True))}
    assert all(s["pair"] is None for s in specs.values())
    assert {n: s["esw"] for n, s in specs.items()} == {"p0": 0, "p1": 0, "pf0hpf": None, "pf1hpf": None}


def test_port_specs_for_doca_carry_pci_and_no_interfaces():
    with open(PAPER) as f:
        d = yaml.safe_load(f)
    d["dpu"]["eswitch"].update(driver="doca", mirror_routes=False, multiport=True)
    d["dpu"]["ports"] = {"p0": {"id": 0, "pci": "03:00.0", "devargs": "dv_flow_en=2"},
                         "p1": {"id": 1, "pci": "03:00.1"},
                         "pf0hpf": {"id": 2, "pci": "b1:00.0", "of": "p0"},
                         "pf1hpf": {"id": 3, "pci": "b1:00.1", "of": "p1"}}
    specs = {s["name"]: s for s in ep.port_specs(config.parse(yaml.safe_dump(d)))}
    assert specs["p0"]["pci"] == "03:00.0" and specs["p0"]["devargs"] == "dv_flow_en=2"
    assert specs["pf1hpf"]["pci"] == "b1:00.1" and specs["p1"]["devargs"] == ""
    assert all(s["driver"] == "none" and s["iface"] is None and s["esw"] is None for s in specs.values())
    # vnf without mirrored routes: only the service's pair, and its way back
    assert {n: s["pair"] for n, s in specs.items()} == {"p0": "p1", "p1": "p0", "pf0hpf": None,
                                                          "pf1hpf": None}

"""The config's eSwitch ports: pci, of, multiport, and the shapes DOCA Flow accepts
(forwards within one e-switch in switch mode, one pair per port in vnf mode)."""

import glob
import os

import pytest
from config_samples import PAPER, ROOT, errors_of, paper_data, parse  # noqa: E402  (tests/unit, beside this file)

from xenoflow_ovs.intent import config


def assert_error(data, path, *words):
    problems = errors_of(data)
    assert any(p == path and all(w in msg for w in words) for p, msg, _ in problems), problems


def doca_data():
    """The paper's testbed as it would be written for a BlueField (placeholder addresses)."""
    d = paper_data()
    d["dpu"]["eswitch"] = {"driver": "doca", "mode": "vnf", "mirror_routes": False}
    d["dpu"]["ports"] = {
        "p0": {"id": 0, "pci": "0000:03:00.0", "devargs": "dv_flow_en=2"},
        "p1": {"id": 1, "pci": "0000:03:00.1", "devargs": "dv_flow_en=2"},
        "pf0hpf": {"id": 2, "pci": "b1:00.0", "of": "p0"},
        "pf1hpf": {"id": 3, "pci": "b1:00.1", "of": "p1"},
    }
    return d


def test_every_topology_config_validates_and_names_its_representors():
    paths = sorted(glob.glob(os.path.join(ROOT, "topologies", "*", "xenoflow.yaml")))
    assert PAPER in paths
    for path in paths:
        config.load(path)
    cfg = config.load(PAPER)
    assert cfg.port("pf0hpf").of == "p0" and cfg.port("pf1hpf").of == "p1"
    assert cfg.port("p0").of is None and not cfg.eswitch.multiport


def test_new_keys_round_trip_through_to_data():
    d = doca_data()
    d["dpu"]["eswitch"].update(mode="switch", multiport=True)
    cfg = parse(d)
    again = config.from_data(config.to_data(cfg))
    assert again == cfg
    assert again.port("pf1hpf").pci == "b1:00.1" and again.eswitch.multiport


def test_doca_config_parses():
    cfg = parse(doca_data())
    assert cfg.port("p0").pci == "0000:03:00.0" and cfg.port("p0").devargs == "dv_flow_en=2"


@pytest.mark.parametrize("mutate,path,words", [
    (lambda d: d["dpu"]["ports"]["p1"].pop("pci"), "dpu.ports.p1", ("doca needs pci",)),
    (lambda d: d["dpu"]["ports"]["pf0hpf"].update(pci=None), "dpu.ports.pf0hpf", ("doca needs pci",)),
    (lambda d: d["dpu"]["ports"]["p1"].update(pci="03:00"), "dpu.ports.p1.pci", ("not a PCI address",)),
    (lambda d: d["dpu"]["ports"]["p1"].update(pci="0000:03:00.8"), "dpu.ports.p1.pci",
     ("not a PCI address",)),
    (lambda d: d["dpu"]["ports"]["p1"].update(pci="03:00.0"), "dpu.ports.p1.pci",
     ("already used by port 'p0'",)),
    (lambda d: d["dpu"]["ports"]["pf1hpf"].update(pci="b1:00.0", of="p0"), "dpu.ports.pf1hpf.pci",
     ("already used by port 'pf0hpf'", "functions of 'p0'")),
    (lambda d: d["dpu"]["ports"]["p0"].update(devargs="03:00.0,dv_flow_en=2"), "dpu.ports.p0.devargs",
     ("PCI address", "pci")),
    (lambda d: d["dpu"]["ports"]["pf0hpf"].update(devargs="dv_flow_en=2"), "dpu.ports.pf0hpf.devargs",
     ("probed with its device", "dpu.ports.p0")),
    (lambda d: d["dpu"]["ports"]["pf0hpf"].update(of="p7"), "dpu.ports.pf0hpf.of", ("unknown port 'p7'",)),
    (lambda d: d["dpu"]["ports"]["pf0hpf"].update(of="pf1hpf"), "dpu.ports.pf0hpf.of",
     ("itself a representor", "device port")),
    (lambda d: d["dpu"]["ports"]["pf0hpf"].update(of="pf0hpf"), "dpu.ports.pf0hpf.of", ("its own",)),
    (lambda d: d["dpu"]["eswitch"].update(multiport="yes"), "dpu.eswitch.multiport", ("true or false",)),
])
def test_bad_doca_ports_name_the_key(mutate, path, words):
    d = doca_data()
    mutate(d)
    assert_error(d, path, *words)


def test_a_different_pci_for_a_representor_of_another_device_is_fine():
    d = doca_data()
    d["dpu"]["ports"]["pf1hpf"]["pci"] = "b1:00.0"   # same host address, another device's representor
    parse(d)


def test_softdoca_needs_no_pci_and_accepts_of():
    d = paper_data()
    assert all("pci" not in p for p in d["dpu"]["ports"].values())
    d["dpu"]["ports"]["pf0hpf"]["of"] = "p9"
    assert_error(d, "dpu.ports.pf0hpf.of", "unknown port")


def test_switch_mode_across_eswitches_names_service_ports_and_the_ways_out():
    d = paper_data()
    d["dpu"]["eswitch"]["mode"] = "switch"
    problems = errors_of(d)
    assert [p for p, _, _ in problems] == ["services[0]"], problems
    msg = problems[0][1]
    for words in ("service 'dns'", "'p0'", "'p1'", "different e-switches", "multiport: true", "mode vnf"):
        assert words in msg, msg
    # the routes stay within p1's e-switch (pf1hpf is p1's representor)
    assert not any(p.startswith("routes") for p, _, _ in problems)


def test_switch_mode_with_multiport_is_fine():
    d = paper_data()
    d["dpu"]["eswitch"].update(mode="switch", multiport=True)
    cfg = parse(d)
    assert cfg.eswitch.multiport and cfg.eswitch.mode == "switch"


def test_switch_mode_route_across_eswitches_names_the_route():
    d = paper_data()
    d["dpu"]["eswitch"]["mode"] = "switch"
    d["services"][0]["egress"] = "pf0hpf"        # the service stays on p0's e-switch
    d["routes"].append({"from": "pf0hpf", "to": "p1", "dst": "198.18.1.0/24"})
    problems = errors_of(d)
    assert [p for p, _, _ in problems] == ["routes[2]"], problems
    assert "route pf0hpf->p1 198.18.1.0/24" in problems[0][1]


def test_switch_mode_unmirrored_routes_need_no_forward():
    d = paper_data()
    d["dpu"]["eswitch"].update(mode="switch", mirror_routes=False)
    d["services"][0]["egress"] = "pf0hpf"
    d["routes"].append({"from": "pf0hpf", "to": "p1", "dst": "198.18.1.0/24"})
    parse(d)


def test_vnf_port_with_two_targets_names_both():
    d = paper_data()
    d["routes"].append({"from": "p0", "to": "pf0hpf", "dst": "198.18.1.0/24"})
    problems = errors_of(d)
    assert [p for p, _, _ in problems] == ["routes[2]"], problems
    msg = problems[0][1]
    for words in ("'p0'", "'p1' (service 'dns')", "'pf0hpf' (route p0->pf0hpf 198.18.1.0/24)",
                  "one port only", "mode switch"):
        assert words in msg, msg


def test_vnf_same_target_twice_is_one_pair():
    d = paper_data()
    d["routes"].append({"from": "p0", "to": "p1", "dst": "198.18.1.0/24"})
    parse(d)


def test_driver_none_skips_the_eswitch_checks():
    d = paper_data()
    d["dpu"]["eswitch"] = {"driver": "none", "mode": "switch"}
    d["dpu"]["ports"] = {n: {"id": p["id"]} for n, p in d["dpu"]["ports"].items()}
    parse(d)


def test_eswitch_checks_wait_for_an_otherwise_valid_file():
    """A bad service is reported alone: the e-switch checks would name shifted paths."""
    d = paper_data()
    d["dpu"]["eswitch"]["mode"] = "switch"
    d["services"][0]["vip"] = "nope"
    problems = errors_of(d)
    assert [p for p, _, _ in problems] == ["services[0].vip"], problems


# --- dpu.eswitch.capacity: the eSwitch's declared limits --------------------------------


def test_capacity_is_undeclared_by_default():
    cap = parse(paper_data()).eswitch.capacity
    assert cap.entries_per_pipe is None and cap.pipes is None


def test_capacity_parses_and_round_trips():
    d = paper_data()
    d["dpu"]["eswitch"]["capacity"] = {"entries_per_pipe": 8192, "pipes": 500}
    cfg = parse(d)
    assert (cfg.eswitch.capacity.entries_per_pipe, cfg.eswitch.capacity.pipes) == (8192, 500)
    again = config.from_data(config.to_data(cfg))
    assert again == cfg and again.eswitch.capacity.pipes == 500
    # one key alone is fine; the other stays undeclared
    d["dpu"]["eswitch"]["capacity"] = {"pipes": 7}
    cap = parse(d).eswitch.capacity
    assert (cap.entries_per_pipe, cap.pipes) == (None, 7)
    assert "capacity" not in config.to_data(parse(paper_data()))["dpu"]["eswitch"]


@pytest.mark.parametrize("capacity,path,words", [
    ({"entries_per_pipe": 0}, "dpu.eswitch.capacity.entries_per_pipe", ("between 1 and",)),
    ({"pipes": -3}, "dpu.eswitch.capacity.pipes", ("between 1 and",)),
    ({"pipes": "500"}, "dpu.eswitch.capacity.pipes", ("must be an integer",)),
    ({"entries_per_pipe": True}, "dpu.eswitch.capacity.entries_per_pipe", ("must be an integer",)),
    ({"pipes": 1 << 25}, "dpu.eswitch.capacity.pipes", ("between 1 and 16777216",)),
    ({"entries": 8192}, "dpu.eswitch.capacity.entries", ("unknown key 'entries'", "entries_per_pipe, pipes")),
    ([8192, 500], "dpu.eswitch.capacity", ("must be a mapping",)),
])
def test_bad_capacity_names_the_key(capacity, path, words):
    d = paper_data()
    d["dpu"]["eswitch"]["capacity"] = capacity
    assert_error(d, path, *words)


def test_idle_max_us_is_a_bounded_softdoca_knob(tmp_path):
    import yaml

    from xenoflow_ovs.intent import config
    src = os.path.join(os.path.dirname(__file__), "..", "..", "topologies", "paper", "xenoflow.yaml")
    with open(src) as f:
        data = yaml.safe_load(f)
    data["dpu"]["eswitch"]["idle_max_us"] = 2000
    p = tmp_path / "x.yaml"
    p.write_text(yaml.safe_dump(data))
    cfg = config.load(str(p))
    assert cfg.eswitch.idle_max_us == 2000
    assert config.to_data(cfg)["dpu"]["eswitch"]["idle_max_us"] == 2000
    data["dpu"]["eswitch"]["idle_max_us"] = 0
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(config.ConfigError, match="dpu.eswitch.idle_max_us"):
        config.load(str(p))

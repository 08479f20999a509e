"""What the intent needs of the eSwitch and of OVS (intent/capacity.py), the warnings
check-config prints past the declared limits, and each port's actions memory."""

import copy

import pytest
import yaml
from config_samples import paper_v4_data as paper_data  # noqa: E402  (tests/unit, beside this file)
from config_samples import parse

from xenoflow_ovs.cli import main as cli_main
from xenoflow_ovs.intent import capacity, eswitch_ports


def _services(d, n, bits, ingress="p0", egress="p1", kind="src-ip-bits"):
    """n copies of the paper's service, each its own VIP, all entering at `ingress`."""
    base = d["services"][0]
    d["services"] = []
    for i in range(n):
        s = copy.deepcopy(base)
        s.update(name="svc%d" % i, vip="198.18.0.%d" % (100 + i), vip_mac="02:00:c6:12:01:%02x" % i,
                 ingress=ingress, egress=egress, policy={"kind": kind, "bits": bits})
        d["services"].append(s)
    return d


def _cfg(n=1, bits=1, capacity_=None, **eswitch):
    d = _services(paper_data(), n, bits)
    d["dpu"]["eswitch"].update(eswitch)
    if capacity_ is not None:
        d["dpu"]["eswitch"]["capacity"] = capacity_
    return parse(d)


def test_needs_count_pipes_and_entries_per_port():
    cfg = _cfg(n=3, bits=4)
    need = capacity.needs(cfg)
    p0 = need["p0"]
    assert p0.pipe_entries == (("svc0", 16), ("svc1", 16), ("svc2", 16))
    # three dispatch entries; the paper's two routes start at pf1hpf and p1, not here
    assert p0.root_entries == 3
    assert (p0.pipes, p0.pipes_peak) == (4, 7)
    assert p0.action_entries == 2 * 48 + 3
    routes_from = {r.src_port for r in cfg.routes}
    for port in routes_from:
        assert need[port].root_entries == sum(len(r.families) for r in cfg.routes if r.src_port == port)
        assert need[port].pipes == 1


def test_a_dual_stack_service_needs_a_pipe_per_family_and_a_dispatch_per_listener():
    d = _services(paper_data(), 2, 3)
    d["services"][1].update(vip6="2001:db8::101", protocols=["udp", "tcp"])
    d["services"][1].pop("protocol")
    p0 = capacity.needs(parse(d))["p0"]
    assert p0.pipe_entries == (("svc0", 8), ("svc1", 8), ("svc1", 8))
    assert p0.root_entries == 1 + 4
    assert p0.action_entries == 2 * 24 + 5


def test_unmirrored_routes_take_no_root_entries():
    cfg = _cfg(mirror_routes=False)
    assert all(n.root_entries == 0 for port, n in capacity.needs(cfg).items() if port != "p0")


def test_switch_mode_counts_on_the_eswitch_manager():
    cfg = _cfg(n=2, bits=3, mode="switch", multiport=True)
    assert set(capacity.owners(cfg).values()) == {"p0"}
    need = capacity.needs(cfg)
    assert list(need) == ["p0"]
    n = need["p0"]
    # every port's root entries are in the manager's one root
    assert n.root_entries == 2 + sum(len(r.families) for r in cfg.routes)   # no dst: both families
    assert n.root_limit == capacity.ROOT_ENTRIES * capacity.GLUE_MAX_PORTS


def test_no_warning_without_a_declared_capacity():
    assert capacity.warnings(_cfg(n=8, bits=16), {"ovsbr1": 10}) == []


def test_entries_per_pipe_warns_per_service_and_names_the_limit():
    cfg = _cfg(n=2, bits=14, capacity_={"entries_per_pipe": 8192})
    lines = capacity.warnings(cfg)
    assert len(lines) == 2, lines
    assert all("16384 entries" in ln and "8192 entries per pipe" in ln
               and "dpu.eswitch.capacity.entries_per_pipe" in ln for ln in lines)
    assert "service 'svc0'" in lines[0] and "port 'p0'" in lines[0]
    # at the limit: nothing
    assert capacity.warnings(_cfg(n=2, bits=13, capacity_={"entries_per_pipe": 8192})) == []


def test_root_pipe_entries_warn_past_the_declared_limit():
    cfg = _cfg(n=3, bits=1, capacity_={"entries_per_pipe": 2})
    lines = capacity.warnings(cfg)
    assert any("root pipe holds 3 entries" in ln and "port 'p0'" in ln for ln in lines), lines


def test_pipes_warn_steady_and_during_a_change_of_shape():
    steady = capacity.warnings(_cfg(n=4, capacity_={"pipes": 4}))
    assert len(steady) == 1 and "needs 5 pipes" in steady[0] and "dpu.eswitch.capacity.pipes" in steady[0]
    peak = capacity.warnings(_cfg(n=4, capacity_={"pipes": 6}))
    assert len(peak) == 1 and "up to 9 pipes" in peak[0] and "make" in peak[0]
    assert capacity.warnings(_cfg(n=4, capacity_={"pipes": 9})) == []


def test_root_pipe_past_eswitchds_size_warns_without_a_declared_capacity(monkeypatch):
    monkeypatch.setattr(capacity, "ROOT_ENTRIES", 2)
    lines = [ln for ln in capacity.warnings(_cfg(n=3)) if "ROOT_ENTRIES" in ln]
    assert len(lines) == 1 and "port 'p0'" in lines[0] and "needs 3 entries" in lines[0]


def test_a_full_root_pipe_warns_that_a_move_needs_one_entry_more(monkeypatch):
    monkeypatch.setattr(capacity, "ROOT_ENTRIES", 3)     # p0: 3 dispatch entries, pf1hpf: 2 routes'
    lines = capacity.warnings(_cfg(n=3))
    assert len(lines) == 1 and "port 'p0'" in lines[0] and "is full (3 entries)" in lines[0]
    assert "one entry more" in lines[0]
    monkeypatch.setattr(capacity, "ROOT_ENTRIES", 4)
    assert capacity.warnings(_cfg(n=3)) == []


def test_driver_none_has_no_eswitch_warnings():
    d = _services(paper_data(), 2, 14)
    d["dpu"]["eswitch"] = {"driver": "none", "capacity": {"entries_per_pipe": 8, "pipes": 1}}
    d["dpu"]["ports"] = {n: {"id": p["id"]} for n, p in d["dpu"]["ports"].items()}
    assert capacity.warnings(parse(d)) == []


def test_ovs_warns_past_its_threshold_per_bridge():
    t = capacity.OVS_FLOWS_PER_BRIDGE
    lines = capacity.ovs_warnings({"ovsbr1": t + 1, "ovsbr2": t})
    assert len(lines) == 1 and "bridge 'ovsbr1'" in lines[0] and str(t + 1) in lines[0]


def test_root_entries_constant_matches_eswitchd():
    from xenoflow_ovs.eswitch import daemon
    assert daemon.ROOT_CAPACITY == capacity.ROOT_ENTRIES


@pytest.mark.parametrize("need,expected", [(0, 1024), (1, 1024), (1024, 1024), (1025, 2048),
                                           (2 * 8 * 65536 + 8, 1 << 21)])
def test_pow2_at_least_with_the_floor(need, expected):
    assert min(capacity.ACTION_ENTRIES_MAX,
               capacity.pow2_at_least(max(capacity.ACTION_ENTRIES_FLOOR, need))) == expected


def test_action_entries_follow_the_intent():
    small = capacity.action_entries(_cfg(n=1, bits=1))
    assert set(small.values()) == {capacity.ACTION_ENTRIES_FLOOR}
    big = capacity.action_entries(_cfg(n=8, bits=16))
    # 8 x 2^16 buckets, twice for a make-before-break change, + 8 dispatch entries
    assert big["p0"] == 1 << 21 and big["p1"] == capacity.ACTION_ENTRIES_FLOOR
    # more than the fixed 2^17 entries (16 MiB) every port had before
    assert big["p0"] > 1 << 17
    assert max(capacity.action_entries(_cfg(n=64, bits=16)).values()) == capacity.ACTION_ENTRIES_MAX


def test_port_specs_carry_the_actions_sizing():
    specs = {s["name"]: s for s in eswitch_ports.port_specs(_cfg(n=8, bits=16))}
    assert specs["p0"]["action_entries"] == 1 << 21
    assert specs["pf0hpf"]["action_entries"] == capacity.ACTION_ENTRIES_FLOOR
    # switch mode: the manager holds every port's pipes and gets the room
    switch = _cfg(n=2, bits=12, mode="switch", multiport=True)
    specs = {s["name"]: s for s in eswitch_ports.port_specs(switch)}
    # 2 x 2 x 2^12 buckets + 2 dispatch + 2 route entries: just past 2^14
    assert specs["p0"]["action_entries"] == 1 << 15
    assert specs["p1"]["action_entries"] == capacity.ACTION_ENTRIES_FLOOR


def test_check_config_warns_and_exits_0(tmp_path, capsys):
    d = _services(paper_data(), 2, 14)
    d["dpu"]["eswitch"]["capacity"] = {"entries_per_pipe": 8192, "pipes": 500}
    f = tmp_path / "x.yaml"
    f.write_text(yaml.safe_dump(d, sort_keys=False))
    assert cli_main(["check-config", str(f)]) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "entries per pipe" in ln]
    assert len(lines) == 2 and all(ln.startswith("warning: service 'svc") for ln in lines), err
    d["dpu"]["eswitch"]["capacity"] = {"entries_per_pipe": 16384}
    f.write_text(yaml.safe_dump(d, sort_keys=False))
    assert cli_main(["check-config", str(f)]) == 0
    assert "entries per pipe" not in capsys.readouterr().err


def test_check_config_warns_past_the_ovs_threshold(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(capacity, "OVS_FLOWS_PER_BRIDGE", 10)
    d = _services(paper_data(), 1, 4, kind="maglev")
    f = tmp_path / "x.yaml"
    f.write_text(yaml.safe_dump(d, sort_keys=False))
    assert cli_main(["check-config", str(f)]) == 0
    err = capsys.readouterr().err
    assert "warning: bridge 'ovsbr1'" in err and "OpenFlow rules, past 10" in err, err

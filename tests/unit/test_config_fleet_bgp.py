"""fleet.bgp and dpu.ports.X.pair in the config (intent/config.py)."""

import os

import pytest
import yaml

from xenoflow_ovs.intent import config, eswitch_ports

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DPU1 = os.path.join(REPO, "topologies", "fleet", "dpu1.yaml")


def load(tmp_path, mutate):
    with open(DPU1) as f:
        data = yaml.safe_load(f)
    mutate(data)
    p = tmp_path / "dpu.yaml"
    p.write_text(yaml.safe_dump(data))
    return config.load(str(p))


def errors(tmp_path, mutate):
    with pytest.raises(config.ConfigError) as e:
        load(tmp_path, mutate)
    return "\n".join(e.value.lines())


def test_the_fleet_lab_dpu_has_a_speaker_on_its_uplink_port(tmp_path):
    cfg = config.load(DPU1)
    bgp, port = cfg.bgp_speaker()
    assert (bgp.asn, bgp.port, str(port.ip.ip)) == (65001, "bgp0", "198.18.11.2")
    assert [(str(p.address), p.asn) for p in bgp.peers] == [("198.18.11.1", 65000)]
    assert (bgp.bfd_interval_ms, bgp.bfd_multiplier, bgp.keepalive, bgp.hold) == (300, 3, 1, 3)
    again = tmp_path / "again.yaml"
    data = config.to_data(cfg)
    data.pop("services")
    again.write_text(yaml.safe_dump(data))
    assert config.load(str(again)).fleet.bgp == bgp          # written out and read back: the same


@pytest.mark.parametrize("mutate, where", [
    (lambda d: d["fleet"]["bgp"].update(port="p0"), "fleet.bgp.port: p0 is not an internal port"),
    (lambda d: d["fleet"]["bgp"].update(peers=[]), "fleet.bgp.peers: at least one BGP peer"),
    (lambda d: d["fleet"]["bgp"].update(asn=0), "fleet.bgp.asn"),
    (lambda d: d["fleet"]["bgp"]["peers"].append(dict(d["fleet"]["bgp"]["peers"][0])), "listed twice"),
    (lambda d: d["fleet"]["bgp"].update(timers={"keepalive": 10, "hold": 5}), "fleet.bgp.timers.hold"),
    (lambda d: d["fleet"]["bgp"].update(drain={"quiet": 5, "timeout": 2}), "fleet.bgp.drain.timeout"),
    (lambda d: d["fleet"]["bgp"].update(pathspace="../x"), "fleet.bgp.pathspace"),
    (lambda d: d["fleet"]["bgp"].update(color="red"), "fleet.bgp"),
])
def test_bad_bgp_settings_name_their_key(tmp_path, mutate, where):
    assert where in errors(tmp_path, mutate)


def test_declared_pairs_come_first_and_services_must_agree(tmp_path):
    cfg = config.load(DPU1)
    assert {s["name"]: s["pair"] for s in eswitch_ports.port_specs(cfg)} == {"p0": "p1", "p1": "p0"}

    def bad_pair(d):
        d["dpu"]["ports"]["p0"]["pair"] = "p9"
    assert "dpu.ports.p0.pair: 'p9' is not another port" in errors(tmp_path, bad_pair)

    def switch_mode(d):
        d["dpu"]["eswitch"]["mode"] = "switch"
    assert "ports pair in vnf mode only" in errors(tmp_path, switch_mode)


def test_a_service_that_needs_another_pair_is_refused_at_the_service():
    data = config.to_data(config.load(DPU1))
    data.pop("fleet")
    data["dpu"]["ports"]["p2"] = {"id": 2, "iface": "dpu-p2", "rep_iface": "rep-p2"}
    data["ovs"]["bridges"]["ovsbr2"]["ports"].append("p2")
    data["services"] = [{"name": "dns", "vip": "198.18.0.53", "vip_mac": "02:00:c6:12:00:35", "port": 53,
                         "ingress": "p0", "egress": "p2", "policy": {"kind": "src-ip-bits", "bits": 1},
                         "backends": [{"name": "a", "ip": "198.18.0.2", "mac": "02:00:c6:12:00:02"}]}]
    with pytest.raises(config.ConfigError) as e:
        config.from_plain(data)
    text = "\n".join(e.value.lines())
    assert "services[0]" in text and "dpu.ports.p0.pair" in text, text

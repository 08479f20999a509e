"""Config parsing: many small good and bad YAMLs; errors must name the key path and line."""

import copy
import os

import pytest
import yaml
from config_samples import PAPER, ROOT, errors_of, paper_data, parse  # noqa: E402  (tests/unit, beside this file)

from xenoflow_ovs.cli import main as cli_main
from xenoflow_ovs.intent import config


def test_paper_config_parses_to_frozen_objects():
    cfg = config.load(PAPER)
    assert cfg.dpu_name == "bf3"
    assert cfg.eswitch.driver == "softdoca" and cfg.eswitch.mode == "vnf"
    assert [p.name for p in cfg.ports] == ["p0", "p1", "pf0hpf", "pf1hpf"]
    assert cfg.bridge_of("pf1hpf") == "ovsbr2" and cfg.bridge_of("pf1sf0") == "ovsbr2"
    svc = cfg.service("dns")
    assert str(svc.vip) == "198.18.0.53" and svc.ip_proto == 17 and svc.policy.buckets == 2
    assert [b.name for b in svc.backends] == ["fips2", "fips3"]
    with pytest.raises(Exception):
        svc.port = 54  # frozen
    assert cfg.path("run/x.sock") == os.path.join(ROOT, "topologies", "paper", "run", "x.sock")


@pytest.mark.parametrize("mutate,path,words", [
    (lambda d: d["dpu"].update(colour="red"), "dpu.colour", "unknown key"),
    (lambda d: d["services"][0].update(vip="198.18.0.300"), "services[0].vip", "not an IPv4"),
    (lambda d: d["services"][0].update(vip="fe80::1"), "services[0].vip", "give it as vip6"),
    (lambda d: d["services"][0].update(vip_mac="01:00:5e:00:00:01"), "services[0].vip_mac", "multicast"),
    (lambda d: d["services"][0].update(vip_mac="zz:00"), "services[0].vip_mac", "not a MAC"),
    (lambda d: d["services"][0]["backends"][1].update(name="fips2"),
     "services[0].backends[1].name", "duplicate backend"),
    (lambda d: d["services"][0]["backends"][1].update(ip="198.18.0.2"),
     "services[0].backends[1].ip", "duplicate backend"),
    (lambda d: d["services"][0].update(backends=[]), "services[0].backends", "at least one backend"),
    (lambda d: d["services"][0].update(ingress="p7"), "services[0].ingress", "unknown port"),
    (lambda d: d["services"][0].update(egress="p0"), "services[0].egress", "differ"),
    (lambda d: d["ovs"]["bridges"]["ovsbr2"]["ports"].append("p9"), "ovs.bridges.ovsbr2.ports[2]",
     "unknown port"),
    (lambda d: d["ovs"]["bridges"]["ovsbr2"]["ports"].append("p0"), "ovs.bridges.ovsbr2.ports[2]",
     "already on bridge"),
    (lambda d: d["routes"].append({"from": "pf1hpf", "to": "nowhere"}), "routes[2].to", "unknown port"),
    (lambda d: d["routes"].append({"from": "p1", "to": "pf1hpf", "dst": "198.18.0.5/24"}),
     "routes[2].dst", "host bits"),
    (lambda d: d["routes"].append({"from": "p1", "to": "pf1hpf", "dst": "198.18.0.5/32"}),
     "routes[2]", "duplicates"),
    (lambda d: d["dpu"]["eswitch"].update(driver="fpga"), "dpu.eswitch.driver", "must be one of"),
    (lambda d: d["dpu"]["ports"]["p1"].update(id=0), "dpu.ports.p1.id", "already used"),
    (lambda d: d["dpu"]["ports"]["p1"].pop("rep_iface"), "dpu.ports.p1", "softdoca needs"),
    (lambda d: d["services"][0]["policy"].update(bits=17), "services[0].policy.bits", "between"),
    (lambda d: d["services"][0]["policy"].update(bits=0), "services[0].policy.bits", "cannot hold"),
    (lambda d: d["services"][0]["policy"].update(kind="random"), "services[0].policy.kind", "one of"),
    (lambda d: d["services"][0].update(port="53"), "services[0].port", "integer"),
    (lambda d: d["services"][0].update(protocols=["udp", "sctp"]), "services[0].protocols[1]", "one of"),
    (lambda d: d["services"][0].update(protocols=[]), "services[0].protocols", "non-empty"),
    (lambda d: d["services"][0].update(protocols=["tcp", "tcp"]), "services[0].protocols[1]", "twice"),
    (lambda d: d["services"][0].update(protocol="udp"), "services[0].protocol", "not both"),
    (lambda d: d["services"][0].update(vip6="2001:db8::zz"), "services[0].vip6", "not an IPv6"),
    (lambda d: d["services"][0].update(vip6="ff02::1"), "services[0].vip6", "not a global unicast"),
    (lambda d: d["services"][0]["backends"][0].update(ip6="198.18.0.2"), "services[0].backends[0].ip6",
     "not an IPv6"),
    (lambda d: d["services"][0]["backends"][1].update(ip6="2001:db8::2"), "services[0].backends[1].ip6",
     "duplicate backend ip6"),
    (lambda d: d["routes"].append({"from": "p1", "to": "pf1hpf", "dst": "2001:db8::5/48"}), "routes[2].dst",
     "host bits"),
    (lambda d: d["services"][0].update(health={"families": ["ipv7"]}), "services[0].health.families[0]",
     "one of"),
    (lambda d: [b.update(weight=0) for b in d["services"][0]["backends"]], "services[0].backends",
     "weight 0"),
    (lambda d: d["services"].append(copy.deepcopy(d["services"][0])), "services[1].name",
     "duplicate service"),
    (lambda d: d["ovs"].update(patches=[]), "services[0].egress", "no patch"),
    (lambda d: d["ovs"].update(patches=[["ovsbr1", "ovsbr9"]]), "ovs.patches[0][1]", "unknown bridge"),
    (lambda d: d["ovs"].update(table_miss="flood"), "ovs.table_miss", "one of"),
    (lambda d: d["controller"]["api"].update(host="localhost.example"), "controller.api.host",
     "not an IP"),
    (lambda d: d["dpu"]["eswitch"].update(eal_args=["-l", 1]), "dpu.eswitch.eal_args[1]", "strings"),
    (lambda d: d.pop("services"), "services", "missing required key"),
])
def test_bad_config_names_the_key(mutate, path, words):
    data = paper_data()
    mutate(data)
    problems = errors_of(data)
    assert any(p == path and words in msg for p, msg, _ in problems), problems


def test_errors_carry_line_numbers_and_all_are_reported():
    text = open(PAPER).read()
    text = text.replace("vip: 198.18.0.53", "vip: 198.18.0.999").replace("port: 53", "port: 99999")
    with pytest.raises(config.ConfigError) as exc:
        config.parse(text, source="x.yaml")
    lines = exc.value.lines()
    assert len(lines) == 2
    vip_line = [i + 1 for i, line in enumerate(text.splitlines()) if "198.18.0.999" in line][0]
    assert any(line.startswith("x.yaml:%d: services[0].vip:" % vip_line) for line in lines), lines


def test_duplicate_yaml_key_is_an_error():
    text = open(PAPER).read().replace("    port: 53\n", "    port: 53\n    port: 54\n")
    with pytest.raises(config.ConfigError) as exc:
        config.parse(text)
    assert any("duplicate key 'port'" in msg for _, msg, _ in exc.value.problems)


@pytest.mark.parametrize("text,words", [
    ("", "empty"),
    ("dpu: [unclosed\n", "YAML syntax"),
    ("- 1\n- 2\n", "must be a mapping"),
    ("dpu: {name: x}\n", "missing required key"),
])
def test_unreadable_configs(text, words):
    with pytest.raises(config.ConfigError) as exc:
        config.parse(text)
    assert words in str(exc.value)


def test_unquoted_sexagesimal_mac_is_explained():
    # YAML 1.1 reads 12:34:56 as a base-60 integer: the error must say to quote it.
    text = open(PAPER).read().replace('vip_mac: "02:00:c6:12:00:35"', "vip_mac: 12:34:56")
    with pytest.raises(config.ConfigError) as exc:
        config.parse(text)
    assert "quoted MAC" in str(exc.value)


def test_driver_none_needs_no_interfaces():
    data = paper_data()
    data["dpu"]["eswitch"] = {"driver": "none"}
    data["dpu"]["ports"] = {n: {"id": p["id"]} for n, p in data["dpu"]["ports"].items()}
    cfg = parse(data)
    assert not cfg.has_eswitch


def test_check_config_cli_exit_codes(tmp_path, capsys):
    assert cli_main(["check-config", PAPER]) == 0
    bad = paper_data()
    bad["services"][0]["backends"][0]["mac"] = "nope"
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(bad))
    assert cli_main(["check-config", str(f)]) == 2
    err = capsys.readouterr().err
    assert "services[0].backends[0].mac" in err and str(f) in err
    assert cli_main(["check-config", str(tmp_path / "missing.yaml")]) == 2


def _parser_keys():
    """Every key the parser accepts: the allowed-key tuples of its mapping checks."""
    import ast
    tree = ast.parse(open(config.__file__, encoding="utf-8").read())
    keys = set()

    def strings(node):
        if isinstance(node, ast.Tuple):
            return [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        if isinstance(node, ast.IfExp):
            return strings(node.body) + strings(node.orelse)
        return []

    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "mapping"
                and len(node.args) > 2):
            keys.update(strings(node.args[2]))
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "allowed" for t in node.targets):
            keys.update(strings(node.value))
    return keys


def test_every_config_key_is_documented():
    """docs/configuration.md names every key the parser accepts (in a code span)."""
    import re
    keys = _parser_keys()
    assert {"dpu", "busy_poll", "devargs", "token_file", "expect", "internal", "table_miss"} <= keys
    doc_path = os.path.join(ROOT, "docs", "configuration.md")
    if not os.path.exists(doc_path):
        pytest.skip("no docs/ in this tree (an installed copy)")
    with open(doc_path, encoding="utf-8") as f:
        text = re.sub(r"(?ms)^```.*?^```", "", f.read())       # the example does not count
    spans = " ".join(re.findall(r"`([^`]+)`", text))
    missing = sorted(k for k in keys if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(k), spans))
    assert not missing, "keys not in docs/configuration.md: %s" % ", ".join(missing)


def test_a_reachable_api_needs_a_token_file():
    data = paper_data()
    data["controller"]["api"]["host"] = "0.0.0.0"
    problems = errors_of(data)
    assert any(p[0] == "controller.api.host" and "token_file" in p[1] for p in problems), problems
    data["controller"]["api"]["token_file"] = "api.token"
    assert parse(data).api.host == "0.0.0.0"


def test_metrics_listener_defaults_and_clashes():
    cfg = parse(paper_data())
    assert (cfg.metrics.host, cfg.metrics.port) == ("127.0.0.1", 9302)
    data = paper_data()
    data["controller"]["metrics"] = {"port": data["controller"]["api"]["port"]}
    assert any(p[0] == "controller.metrics.port" for p in errors_of(data))


def test_state_dir_round_trips():
    data = paper_data()
    data["dpu"]["state_dir"] = "run/state"
    cfg = parse(data)
    assert cfg.state_dir == "run/state"
    assert config.to_data(cfg)["dpu"]["state_dir"] == "run/state"

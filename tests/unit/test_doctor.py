"""`xenoflow doctor`'s checks, fed made-up facts (the machine is read elsewhere)."""

import pytest

from xenoflow_ovs import doctor
from xenoflow_ovs.doctor import FAIL, OK, WARN, Facts

SOFTDOCA = {"target": "softdoca", "doca_version": "3.2.0118", "doca_runtime": "3.2.0118",
            "detail": "softdoca modelling DOCA 3.2.0118"}


def doca(compiled, runtime):
    return {"target": "doca", "doca_version": compiled, "doca_runtime": runtime, "detail": "the DOCA SDK"}


def by_name(results):
    return {r.name: r for r in results}


@pytest.mark.parametrize("text,tup", [
    ("3.2.0118", (3, 2, 118)), ("3.3.0", (3, 3, 0)), ("2.9.0072\n", (2, 9, 72)), ("3.1", (3, 1)),
    ("none", None), (None, None)])
def test_version_tuple(text, tup):
    assert doctor.version_tuple(text) == tup


def test_same_release():
    assert doctor.same_release("3.2.0118", "3.2.0118")
    assert doctor.same_release("3.2", "3.2.0118")
    assert not doctor.same_release("3.2.0118", "3.3.0")
    assert not doctor.same_release("3.1.0105", "3.1.0106")


def test_doca_release_prefers_pkgconfig_then_the_version_file():
    assert doctor.check_doca_release(Facts(doca_pkgconfig="3.2.0118", doca_file="3.1.0105")).detail \
        == "3.2.0118 (pkg-config doca-flow)"
    r = doctor.check_doca_release(Facts(doca_file="3.1.0105"))
    assert r.status == OK and r.detail.startswith("3.1.0105 (/opt/mellanox/doca/applications/VERSION")
    r = doctor.check_doca_release(Facts())
    assert r.status == OK and r.detail.startswith("none")


@pytest.mark.parametrize("facts,status,words", [
    (Facts(glue=SOFTDOCA), OK, "without DOCA (it models DOCA 3.2.0118)"),
    (Facts(glue=SOFTDOCA, doca_file="3.2.0118"), WARN, "XF_GLUE_TARGET=doca"),
    (Facts(glue=doca("3.2.0118", "3.2.0118"), doca_pkgconfig="3.2.0118"), OK, "runs with 3.2.0118"),
    (Facts(glue=doca("3.2.0118", "3.3.0"), doca_pkgconfig="3.2.0118"), FAIL, "runs with is 3.3.0"),
    (Facts(glue=doca("3.2.0118", None), doca_file="3.3.0"), FAIL, "installed DOCA is 3.3.0"),
    (Facts(glue=doca("3.2.0118", "3.2.0118")), OK, "runs with 3.2.0118"),
    (Facts(glue=doca("3.2.0118", None)), FAIL, "no DOCA is found"),
    (Facts(glue=doca(None, None), doca_file="3.2.0118"), FAIL, "old build"),
    (Facts(glue={"target": "missing", "detail": "no DPDK"}), FAIL, "see the glue check"),
])
def test_glue_matches(facts, status, words):
    r = doctor.check_glue_matches(facts)
    assert r.status == status and words in r.detail, r


def test_glue_missing_fails_and_a_build_says_its_target():
    assert doctor.check_glue(Facts(glue={"target": "missing", "detail": "x"})).status == FAIL
    assert doctor.check_glue(Facts()).status == FAIL
    r = doctor.check_glue(Facts(glue=SOFTDOCA))
    assert r.status == OK and r.detail == "built for softdoca: softdoca modelling DOCA 3.2.0118"


def test_dpdk():
    assert doctor.check_dpdk(Facts(dpdk="22.11.11")).status == OK
    assert doctor.check_dpdk(Facts(glue=SOFTDOCA, dpdk_note="pkg-config is not installed")).status == WARN
    r = doctor.check_dpdk(Facts(glue={"target": "missing"}))
    assert r.status == FAIL and "PKG_CONFIG_PATH" in r.detail


MEMINFO = "MemTotal: 100 kB\nHugePages_Total:    %d\nHugePages_Free:     %d\nHugepagesize:       2048 kB\n"


@pytest.mark.parametrize("meminfo,status,words", [
    (MEMINFO % (1024, 1000), OK, "1000 of 1024 free, 2048 kB each"),
    (MEMINFO % (0, 0), WARN, "none reserved"),
    (MEMINFO % (8, 0), WARN, "all 8 in use"),
    (None, WARN, "cannot read"),
])
def test_hugepages_only_warn(meminfo, status, words):
    r = doctor.check_hugepages(Facts(meminfo=meminfo))
    assert r.status == status and words in r.detail


def test_config_check_only_with_a_config():
    assert doctor.check_config(Facts()) is None
    r = doctor.check_config(Facts(config_path="x.yaml", config_errors=["e%d" % i for i in range(7)]))
    assert r.status == FAIL and r.detail == "e0; e1; e2; e3; e4 (and 2 more)"
    assert doctor.check_config(Facts(config_path="x.yaml", config_summary="valid")).detail == "x.yaml: valid"


def test_run_checks_is_the_table_in_order():
    names = [r.name for r in doctor.run_checks(Facts(glue=SOFTDOCA, dpdk="22.11"))]
    # without a config the host checks say n/a (one line each) rather than vanish
    assert names == ["doca-release", "glue", "glue-matches", "dpdk", "hugepages", "interfaces",
                     "eswitch-mode", "ovs", "hw-offload", "routes", "ports"]
    assert len(doctor.CHECKS) == 13


def test_eal_args_only_for_doca_configs():
    assert doctor.check_eal_args(Facts(config_driver="softdoca", config_eal=("--no-huge",))) is None
    r = doctor.check_eal_args(Facts(config_driver="doca", config_eal=("--no-huge", "-m", "256", "--no-pci",
                                                                      "-a", "03:00.0", "-a", "03:00.1")))
    assert r.status == WARN and r.detail.count("; ") == 2
    assert "--no-huge: DOCA needs huge pages" in r.detail and "-a: the EAL would probe" in r.detail
    r = doctor.check_eal_args(Facts(config_driver="doca", config_eal=("-l", "0-1")))
    assert r.status == OK and r.detail == "-l 0-1"


def test_main_exit_code_and_json(monkeypatch, capsys):
    import argparse
    import json
    monkeypatch.setattr(doctor, "gather", lambda path: Facts(glue=SOFTDOCA, dpdk="22.11",
                                                             meminfo=MEMINFO % (0, 0)))
    assert doctor.main(argparse.Namespace(config=None, json=False)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ok    doca-release   none") and lines[4].startswith("warn  hugepages")
    assert lines[-1].startswith("n/a   ports          needs a valid config")
    monkeypatch.setattr(doctor, "gather", lambda path: Facts(glue={"target": "missing", "detail": "x"}))
    assert doctor.main(argparse.Namespace(config=None, json=True)) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False
    assert {"name": "glue", "status": "FAIL", "detail": "not built: x", "hint": ""} in out["checks"]

"""The glue against every DOCA release softdoca declares (2.9, 3.0, 3.1, 3.2, 3.3).

Two checks per release: the glue's real-DOCA code path compiles against that release's
prototypes (the calls a BlueField build makes: device opening, probing, set_dev_rep, port
pairing, the default miss, the entry-add forms), and the whole Python API runs on softdoca
built as that release (semantics, IPv6, DOCA-like rejections, update/remove, switch mode,
representors from 3.1 on)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_ROOT = os.path.dirname(os.path.dirname(HERE))
GLUE = os.path.join(SRC_ROOT, "dpdk_glue")
sys.path.insert(0, GLUE)
import build_glue  # noqa: E402

RELEASES = {"209": "2.9.0072", "300": "3.0.0058", "301": "3.1.0105", "302": "3.2.0118", "303": "3.3.0000"}
MAC_A, MAC_B = "0200c6120002", "0200c6120003"


@pytest.mark.parametrize("api", sorted(RELEASES))
def test_doca_code_path_compiles_against_the_release(api):
    proc = subprocess.run(build_glue.prototype_check_cmd(api), capture_output=True, text=True, check=False,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_prototype_check_catches_a_wrong_call_form(tmp_path):
    """The check is not vacuous: a glue built as if 3.1 (9-argument add_entry) against the
    3.2 prototypes does not compile."""
    src = tmp_path / "glue_as_31.c"
    text = open(os.path.join(GLUE, "glue.c"), encoding="utf-8").read()
    src.write_text(text.replace("#elif XF_DOCA_AT_LEAST(3, 2)", "#elif 0"))
    cmd = [a for a in build_glue.prototype_check_cmd("302") if not a.endswith(".c")] + [str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode != 0
    assert "doca_flow_pipe_add_entry" in proc.stderr


def _build(tmp_path, api: str) -> str:
    dest = os.path.join(str(tmp_path), "dpdk_glue")
    shutil.copytree(GLUE, dest, ignore=shutil.ignore_patterns("_glue*.so", "__pycache__", "*.o"))
    env = dict(os.environ, XF_SOFTDOCA_API=api, XF_GLUE_TARGET="softdoca")
    proc = subprocess.run([sys.executable, os.path.join(dest, "build_glue.py")], env=env, capture_output=True,
                          text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "modelling DOCA %s.%d" % (api[0], int(api[1:])) in proc.stderr
    return str(tmp_path)


@pytest.mark.parametrize("api", sorted(RELEASES))
def test_python_api_on_softdoca_as_the_release(glue, tmp_path, api):
    parent = _build(tmp_path, api)
    info = glue.run("info", pkg_parent=parent)
    assert (info["target"], info["doca_version"], info["doca_runtime"]) == ("softdoca", RELEASES[api],
                                                                            RELEASES[api])
    sem = glue.run("semantics", pkg_parent=parent)
    assert sem["res"]["even"] == ["p1", MAC_A] and sem["res"]["odd"] == ["p1", MAC_B]
    assert sem["res"]["tcp53"][0] == "drop" and sem["with_hi"][0] == "p1"
    assert sem["res"]["arp"][0] == "miss"  # the default miss goes to the kernel, not the app's queues
    rej = glue.run("rejects", pkg_parent=parent)
    add_call = "doca_flow_pipe_basic_add_entry" if api == "303" else "doca_flow_pipe_add_entry"
    assert rej["outside_mask"]["call"] == add_call
    assert rej["duplicate"]["doca_error"] == "DOCA_ERROR_ALREADY_EXIST"
    assert rej["after_rollback"] is None
    assert rej["unpaired_fwd"]["doca_error"] == "DOCA_ERROR_INVALID_VALUE"
    upd = glue.run("update_remove", pkg_parent=parent)
    assert upd["after_update"] == [["p1", MAC_B], ["p1", MAC_A]]
    assert upd["after_readd"][1] == ["p1", "0200c6120009"]
    v6 = glue.run("ipv6", pkg_parent=parent)["res"]
    assert v6["u_even"] == ["p1", MAC_A] and v6["u_odd"] == ["p1", MAC_B]
    assert v6["t_odd_port"] == ["p1", MAC_B] and v6["hbh_dst_udp"] == ["p1", MAC_A]
    assert v6["v4_5353"][0] == "miss" and v6["trunc_chain"][0] == "miss"
    met = glue.run("meters", pkg_parent=parent)  # shared meters: set_cfg + bind up to 3.1, port ids from 3.2
    assert met["burst_even"] == {"p1:" + MAC_A: 3, "drop": 2} and met["shared_empty"] == {"drop": 3}
    assert met["after_modify"] == {"p1:" + MAC_B: 15, "drop": 5}
    assert met["after_update"] == {"p1:" + MAC_A: 4, "drop": 2}
    sw = glue.run("switch", pkg_parent=parent)
    assert sw["p0"] == ["p1", MAC_A] and sw["cross_eswitch"]["doca_error"] == "DOCA_ERROR_INVALID_VALUE"
    if api >= "301":
        reps = glue.run("reps", pkg_parent=parent)
        assert reps["p0_even"] == ["p1", MAC_A] and reps["p2"][0] == "p0"
    else:
        refused = glue.run("reps_refused", pkg_parent=parent)["open"]
        assert refused["doca_error"] == "DOCA_ERROR_NOT_SUPPORTED"
        assert "DOCA 3.1" in refused["msg"]

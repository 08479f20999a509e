"""Build-side behaviour: which target build_glue.py picks, the stub when DPDK is missing,
``import dpdk_glue`` without the compiled module, and the Python API against softdoca built
as each DOCA API generation (2.8 names / 3.3 names and flag numbers)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
# the checkout's sources (an installed wheel carries the compiled module, not every header)
SRC_ROOT = os.path.dirname(os.path.dirname(HERE))


def _copy_pkg(src_parent: str, dest_parent: str) -> str:
    dest = os.path.join(dest_parent, "dpdk_glue")
    shutil.copytree(os.path.join(src_parent, "dpdk_glue"), dest,
                    ignore=shutil.ignore_patterns("_glue*.so", "__pycache__", "*.o"))
    return dest


def _no_dpdk_path(tmp_path) -> str:
    """PATH whose pkg-config knows no package (neither libdpdk nor doca-flow)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "pkg-config").write_text("#!/bin/sh\nexit 1\n")
    (fake / "pkg-config").chmod(0o755)
    return "%s:%s" % (fake, os.environ.get("PATH", ""))


def test_stub_when_dpdk_is_missing(tmp_path):
    """pkg-config finds no DPDK: a valid FFI that builds a stub; XF_GLUE_REQUIRE=1 fails."""
    build = os.path.join(SRC_ROOT, "dpdk_glue", "build_glue.py")
    code = ("import runpy; ns = runpy.run_path(%r); f = ns['ffibuilder']; "
            "print('STUB' if 'xf_missing_reason' in ''.join(f._cdefsources) else 'FULL')" % build)
    env = dict(os.environ, PATH=_no_dpdk_path(tmp_path), XF_GLUE_TARGET="auto")
    env.pop("DOCA_HOME", None)
    env.pop("XF_GLUE_REQUIRE", None)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "STUB"
    assert "apt-get install libdpdk-dev" in proc.stderr
    env["XF_GLUE_REQUIRE"] = "1"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "libdpdk-dev" in proc.stderr


def test_stub_module_raises_glue_missing(tmp_path):
    pkg = _copy_pkg(SRC_ROOT, str(tmp_path))
    env = dict(os.environ, PATH=_no_dpdk_path(tmp_path))
    env.pop("XF_GLUE_REQUIRE", None)
    env.pop("DOCA_HOME", None)
    proc = subprocess.run([sys.executable, os.path.join(pkg, "build_glue.py")], env=env, capture_output=True,
                          text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr
    use = ("import dpdk_glue\n"
           "try:\n    dpdk_glue.ESwitch([], [dpdk_glue.PortSpec('p0', 0, driver='none')]).open()\n"
           "except dpdk_glue.GlueMissing as e:\n    print('MISSING', e)\n")
    proc = subprocess.run([sys.executable, "-c", use], cwd="/", capture_output=True, text=True, check=False,
                          env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("MISSING") and "libdpdk-dev" in proc.stdout


def test_import_without_compiled_module(tmp_path):
    _copy_pkg(SRC_ROOT, str(tmp_path))
    use = ("import dpdk_glue\nm = dpdk_glue.GlueMatch(ipv4_src='198.18.0.1')\n"
           "try:\n    dpdk_glue.glue_target()\nexcept dpdk_glue.GlueMissing as e:\n    print('MISSING', e)\n")
    proc = subprocess.run([sys.executable, "-c", use], cwd="/", capture_output=True, text=True, check=False,
                          env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    assert "MISSING" in proc.stdout and "pip install ." in proc.stdout


@pytest.mark.parametrize("api", ["208", "303"])
def test_api_generations(glue, tmp_path, api):
    """The whole Python API on softdoca built as another DOCA generation: other call names
    (rm_entry/query_entry; basic_add_entry/basic_update_entry), other flag numbers, other
    control-entry argument order; error call names follow."""
    pkg = _copy_pkg(SRC_ROOT, str(tmp_path))
    env = dict(os.environ, XF_SOFTDOCA_API=api, XF_GLUE_TARGET="softdoca")
    proc = subprocess.run([sys.executable, os.path.join(pkg, "build_glue.py")], env=env, capture_output=True,
                          text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "DOCA API model %s.%s" % (api[0], int(api[1:])) in proc.stderr
    parent = str(tmp_path)
    sem = glue.run("semantics", pkg_parent=parent)
    assert sem["res"]["even"] == ["p1", "0200c6120002"] and sem["res"]["odd"] == ["p1", "0200c6120003"]
    assert sem["res"]["tcp53"][0] == "drop" and sem["with_hi"][0] == "p2"
    rej = glue.run("rejects", pkg_parent=parent)
    add_call = "doca_flow_pipe_basic_add_entry" if api == "303" else "doca_flow_pipe_add_entry"
    assert rej["outside_mask"]["call"] == add_call
    assert rej["duplicate"]["doca_error"] == "DOCA_ERROR_ALREADY_EXIST"
    assert rej["after_rollback"] is None
    upd = glue.run("update_remove", pkg_parent=parent)
    assert upd["after_update"] == [["p1", "0200c6120003"], ["p1", "0200c6120002"]]
    assert upd["after_readd"][1] == ["p1", "0200c6120009"]

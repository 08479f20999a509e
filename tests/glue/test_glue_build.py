"""Build-side behaviour: which target build_glue.py picks, the stub when DPDK is missing,
``import dpdk_glue`` without the compiled module, the softdoca-only knobs.  Each DOCA release
is built and run in test_glue_releases.py."""
from __future__ import annotations

import json
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


def _ffi_of(tmp_path, target: str, env_extra: dict) -> dict:
    """build_glue's FFI for a target, without compiling: its cdef and C sources."""
    build = os.path.join(SRC_ROOT, "dpdk_glue", "build_glue.py")
    code = ("import json, runpy; f = runpy.run_path(%r)['ffibuilder']; "
            "print(json.dumps({'cdef': ''.join(f._cdefsources), "
            "'sources': [os.path.basename(s) for s in f._assigned_source[3]['sources']]}))" % build)
    env = dict(os.environ, XF_GLUE_TARGET=target, **env_extra)
    proc = subprocess.run([sys.executable, "-c", "import os; " + code], env=env, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_softdoca_knobs_only_in_the_softdoca_build(tmp_path):
    """A DOCA build compiles the glue alone and declares no softdoca knob; the softdoca build
    adds glue_softdoca.c (the knobs) and the model."""
    doca_home = tmp_path / "doca"
    (doca_home / "include").mkdir(parents=True)
    (doca_home / "include" / "doca_flow.h").write_text("")
    doca = _ffi_of(tmp_path, "doca", {"DOCA_HOME": str(doca_home), "PATH": _no_dpdk_path(tmp_path)})
    assert doca["sources"] == ["glue.c", "glue_ports.c"]
    assert "xf_entries_add" in doca["cdef"] and "xf_fault_inject" not in doca["cdef"]
    soft = _ffi_of(tmp_path, "softdoca", {})
    assert soft["sources"][:3] == ["glue.c", "glue_ports.c", "glue_softdoca.c"]
    assert "sd_fwd.c" in soft["sources"]
    for knob in ("xf_fault_inject", "xf_set_poll_mode", "xf_fwd_stats", "xf_bench_bypass", "xf_classify"):
        assert knob in soft["cdef"]


def test_knobs_say_softdoca_only_on_doca(monkeypatch):
    """On a DOCA build every softdoca_ctl knob refuses, naming itself softdoca-only."""
    from dpdk_glue import GlueError, softdoca_ctl

    monkeypatch.setattr(softdoca_ctl, "_load", lambda: (None, None))
    monkeypatch.setattr(softdoca_ctl, "glue_target", lambda: "doca")
    assert not softdoca_ctl.available()
    calls = [lambda: softdoca_ctl.fault_inject(None, 1), lambda: softdoca_ctl.set_busy_poll(None, True),
             lambda: softdoca_ctl.forwarder_stats(None), lambda: softdoca_ctl.bench_bypass(None, True),
             lambda: softdoca_ctl.classify(None, "p0", b"")]
    for call in calls:
        with pytest.raises(GlueError) as err:
            call()
        assert err.value.doca_error == "DOCA_ERROR_NOT_SUPPORTED" and "softdoca-only" in str(err.value)

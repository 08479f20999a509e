"""`pip install` of a wheel gives a working product: a wheel built from the tracked files
of this checkout, installed into a fresh Python 3.11 venv (dependencies from the package
index pip is configured with, or its cache), runs `xenoflow`, imports the controller
under os-ken without any extra, and finds the lab's topology without a checkout."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.slow


def _python311():
    r = subprocess.run([os.path.join(REPO, "scripts", "find-python.sh"), "3.11"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("no Python 3.11 (scripts/find-python.sh 3.11)")
    return r.stdout.strip()


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, "%s\n%s\n%s" % (cmd, r.stdout[-3000:], r.stderr[-3000:])
    return r.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel of the tracked files (a copy: no stale build/ of the checkout leaks in)."""
    tmp = tmp_path_factory.mktemp("pkg")
    src = tmp / "src"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        if os.path.isfile(os.path.join(REPO, rel)):
            os.makedirs(os.path.dirname(str(src / rel)), exist_ok=True)
            shutil.copy2(os.path.join(REPO, rel), str(src / rel))
    py = _python311()
    _run([py, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
          "-w", str(tmp / "dist"), str(src)])
    (whl,) = glob.glob(str(tmp / "dist" / "xenoflow_ovs-*.whl"))
    return py, whl, tmp


def test_wheel_metadata_and_contents(wheel):
    _, whl, _ = wheel
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        meta = z.read([n for n in names if n.endswith(".dist-info/METADATA")][0]).decode()
    assert "xenoflow_ovs/lab/topologies/paper/topology.yaml" in names
    assert "xenoflow_ovs/lab/topologies/paper/xenoflow.yaml" in names
    assert "xenoflow_ovs/api/openapi.yaml" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE")
               for n in names)
    assert not [n for n in names if n.endswith("py.typed")]   # dropped: only intent/ is checked
    assert "License: Apache-2.0" in meta
    # os-ken for 3.10+, nothing for the Ryu environment on 3.9
    assert 'Requires-Dist: os-ken<4.3,>=4.2; python_version >= "3.10"\n' in meta
    units = glob.glob(os.path.join(REPO, "xenoflow_ovs", "systemd", "*.service"))
    assert units and all("xenoflow_ovs/systemd/" + os.path.basename(u) in names for u in units)


def test_installed_wheel_runs_the_controller_and_finds_the_lab(wheel):
    py, whl, tmp = wheel
    venv = tmp / "venv"
    _run([py, "-m", "venv", str(venv)])
    vpy, xf = str(venv / "bin" / "python"), str(venv / "bin" / "xenoflow")
    _run([vpy, "-m", "pip", "install", "-q", "--disable-pip-version-check", whl])
    away = str(tmp)   # no checkout here: nothing may be found through the current directory
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XENOFLOW_RUNTIME")}
    assert "controller" in _run([xf, "--help"], cwd=away, env=env)
    out = _run([vpy, "-c", "import xenoflow_ovs.controller.launcher, xenoflow_ovs.controller.app\n"
                "from xenoflow_ovs.controller import compat\n"
                "print(compat.RUNTIME)"], cwd=away, env=env)
    assert out.split()[-1] == "osken"
    site = _run([vpy, "-c", "import os, xenoflow_ovs; print(os.path.dirname(xenoflow_ovs.__file__))"],
                cwd=away, env=env).strip()
    assert not site.startswith(REPO)
    found = _run([vpy, "-c", "from xenoflow_ovs.lab import labctl\n"
                  "print(labctl.topology_path('paper'))"], cwd=away, env=env).strip()
    assert found == os.path.join(site, "lab", "topologies", "paper", "topology.yaml")
    out = _run([vpy, "-c", "from xenoflow_ovs.lab.topology import load_topology\n"
                "t = load_topology(%r)\nprint(t.name, t.config_path)" % found], cwd=away, env=env)
    name, cfg = out.split()
    assert name == "paper" and os.path.isfile(cfg)
    _run([xf, "check-config", cfg], cwd=away, env=env)


def test_the_ryu_runtime_is_left_alone():
    """Python 3.9 (the Ryu env) never gets os-ken from our requirements."""
    if sys.version_info >= (3, 10):
        pytest.skip("runs in the Ryu env (Python 3.9)")
    from importlib import metadata
    reqs = metadata.requires("xenoflow-ovs") or []
    osken = [r for r in reqs if r.lower().startswith("os-ken")]
    assert osken and all('python_version >= "3.10"' in r for r in osken)
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("os-ken")

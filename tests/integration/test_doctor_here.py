"""`xenoflow doctor` for real on this machine: a softdoca build, and no DOCA installed.

No root, no network: it runs pkg-config, reads /proc/meminfo and loads the glue.
"""

import json
import os
import subprocess
import sys

import pytest

from xenoflow_ovs.lab.pyenv import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(ROOT, "topologies", "paper", "xenoflow.yaml")


def doctor(*args):
    p = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "doctor"] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                       env=subprocess_env(), timeout=60, cwd="/")  # not the checkout: the glue it imports
    return p.returncode, p.stdout, p.stderr


def test_doctor_reports_the_softdoca_build_and_no_doca_release():
    if os.path.exists("/opt/mellanox/doca"):
        pytest.skip("this machine has DOCA installed")
    rc, out, err = doctor("-c", PAPER)
    lines = {line.split()[1]: line for line in out.splitlines() if line.strip()}
    assert lines["doca-release"].startswith("ok") and " none " in lines["doca-release"], out + err
    assert "built for softdoca" in lines["glue"], out + err
    assert lines["glue-matches"].startswith("ok"), out
    assert lines["config"].startswith("ok"), out
    assert rc == (1 if any(line.startswith("FAIL") for line in lines.values()) else 0), out


def test_doctor_json_and_a_bad_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dpu: {name: x}\n")
    rc, out, _ = doctor("--json", "-c", str(bad))
    body = json.loads(out)
    assert rc == 1 and body["ok"] is False
    check = {c["name"]: c for c in body["checks"]}["config"]
    assert check["status"] == "FAIL" and "missing required key" in check["detail"]

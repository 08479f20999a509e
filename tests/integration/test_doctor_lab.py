"""`xenoflow doctor -c FILE` against the running paper lab, in the dpu namespace where its
controller runs: every check that applies passes (n/a for what a softdoca lab has not:
a hardware e-switch, hw-offload), and the host checks see what the lab built."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.lab, pytest.mark.slow]


@pytest.fixture(scope="module")
def lab():
    from lab_harness import running_lab
    with running_lab("xf-doctor-") as lab:
        lab.wait_consistent(30)
        yield lab


def _doctor(lab, *args):
    from xenoflow_ovs.lab.pyenv import subprocess_env
    cfg = lab.ctl.cfg_path
    p = subprocess.run(["ip", "netns", "exec", lab.ctl.topo.dpu_netns, sys.executable, "-m",
                        "xenoflow_ovs.cli", "doctor", "-c", cfg] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, env=subprocess_env(), timeout=120,
                       cwd="/")
    return p.returncode, p.stdout, p.stderr


def test_every_applicable_check_passes_in_the_lab(lab):
    import json
    rc, out, err = _doctor(lab, "--json")
    body = json.loads(out)
    checks = {c["name"]: c for c in body["checks"]}
    failed = [c for c in body["checks"] if c["status"] == "FAIL"]
    assert rc == 0 and body["ok"] and not failed, out + err
    for name in ("interfaces", "ovs", "routes", "port-api", "port-openflow", "api-socket", "config", "glue"):
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["eswitch-mode"]["status"] == checks["hw-offload"]["status"] == "n/a"
    # the listeners are held, by the lab's own controller
    assert "held by XenoFlow" in checks["port-api"]["detail"]
    assert "held by XenoFlow" in checks["port-openflow"]["detail"]
    assert "the controller of %s" % lab.cfg.dpu_name in checks["api-socket"]["detail"]
    assert "route flows present on ovsbr2" in checks["routes"]["detail"]
    rc, text, _ = _doctor(lab)
    assert rc == 0 and len(text.splitlines()) == len(body["checks"])


def test_a_missing_route_flow_is_a_failure_with_a_hint(lab):
    """Delete one route flow while the controller is stopped (SIGSTOP: it cannot repair it
    meanwhile): doctor names the flow; after SIGCONT the controller puts it back."""
    import os
    import signal

    from lab_harness import wait_until

    from xenoflow_ovs.intent import plan as plan_mod
    route = [f for f in plan_mod.plan(lab.cfg).bridge_flows("ovsbr2") if f.kind == "route"][0]
    pid = lab.pid("controller")
    os.kill(pid, signal.SIGSTOP)
    try:
        lab.ovs().ofctl("del-flows", "ovsbr2", "cookie=%#x/-1" % route.cookie)
        rc, out, _ = _doctor(lab)
    finally:
        os.kill(pid, signal.SIGCONT)
    line = [ln for ln in out.splitlines() if ln.split()[1] == "routes"][0]
    assert rc == 1 and line.startswith("FAIL"), out
    assert "cookie=%#x" % route.cookie in line and "hint:" in line
    wait_until(lambda: _doctor(lab)[0] == 0, 30, 1.0, "the controller repairing the route")

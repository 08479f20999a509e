"""End-to-end: the paper's testbed (`xenoflow lab`), up, traffic, down, nothing left.

One lab per module (it takes a few seconds to build); its run dir is a private
temp dir, so a developer's `run/paper` is never touched. The namespace names
are fixed by the topology, so if another lab is up this module fails at once,
saying so, instead of touching it.

The eSwitch driver is softdoca unless XF_LAB_ESWITCH=none (OVS alone balances).
Traffic stays inside the lab's namespaces; addresses are 198.18.0.0/15 only.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.lab, pytest.mark.slow]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOPOLOGY = os.path.join(REPO, "topologies", "paper")
DRIVER = os.environ.get("XF_LAB_ESWITCH", "softdoca")


def _args(run_dir, action="up", **kw):
    return argparse.Namespace(action=action, topology=TOPOLOGY, run_dir=run_dir,
                              eswitch=kw.get("eswitch", DRIVER), mirror_routes=kw.get("mirror_routes"))


def _root_links():
    p = subprocess.run(["ip", "-o", "link", "show"], stdout=subprocess.PIPE, universal_newlines=True,
                       check=True)
    return {line.split(":")[1].strip().split("@")[0] for line in p.stdout.splitlines() if ":" in line}


def _lab_names(topo):
    names = set(topo.taps)
    for wiring in (True, False):
        for v in topo.veths(wiring):
            names |= {v.a.ifname, v.b.ifname}
    names |= {b.name for b in topo.bridges}
    return names


def _quiet():
    from xenoflow_ovs.lab.labctl import Progress
    return Progress(out=open(os.devnull, "w"))


@pytest.fixture(scope="module")
def run_dir():
    d = tempfile.mkdtemp(prefix="xf-lab-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def lab(run_dir):
    """The lab, up (in this process), with the root namespace's links noted before."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    from xenoflow_ovs.lab.labctl import LabCtl
    from xenoflow_ovs.lab.topology import LabBusy

    ctl = LabCtl(_args(run_dir), _quiet())
    foreign = ctl.lab.foreign_namespaces()
    if foreign:
        pytest.fail("another lab is up (namespaces %s exist): run `xenoflow lab down` first"
                    % ", ".join(foreign))
    ctl.root_links_before = _root_links()
    try:
        ctl.up()
    except LabBusy as e:
        pytest.fail(str(e))
    except Exception:
        ctl.down()
        raise
    yield ctl
    ctl.down()  # idempotent: a no-op when test_down_leaves_nothing ran


def _counters(ctl):
    from xenoflow_ovs.lab.labctl import Demo
    return Demo(ctl).counters()


def _settled(ctl):
    from xenoflow_ovs.lab.labctl import Demo
    return Demo(ctl).settled_counters()


def _bucket_counters(ctl):
    """{(service, bucket): pkts} from eswitchd, over the service's pipes (one per family)."""
    from xenoflow_ovs.eswitch.client import EswitchClient
    cfg = ctl.load_cfg()
    c = EswitchClient(cfg.path(cfg.eswitch.socket))
    try:
        res = c.counters()
    finally:
        c.close()
    out = {}
    for e in res["entries"]:
        if e["entry"]["kind"] == "bucket":
            key = (e["entry"]["owner"], e["entry"]["bucket"])
            out[key] = out.get(key, 0) + e["pkts"]
    return out


def test_up_is_idempotent_and_status_shows_it(lab):
    t0 = time.monotonic()
    lab.up()
    assert time.monotonic() - t0 < 20
    st = lab.status()
    assert st["state"] and all(st["namespaces"].values()), st
    assert st["processes"] and all(p["alive"] for p in st["processes"].values()), st["processes"]
    names = set(st["processes"])
    assert {"bind9-fips2", "bind9-fips3", "ovsdb-server", "ovs-vswitchd"} <= names
    if DRIVER != "none":
        assert "eswitchd" in names
    assert set(st["bridges"]) == {"ovsbr1", "ovsbr2"} and all(n > 0 for n in st["bridges"].values())
    # the run dir and its state are owner-only
    assert os.stat(lab.run_dir).st_mode & 0o077 == 0
    assert os.stat(os.path.join(lab.run_dir, "state.json")).st_mode & 0o077 == 0


def test_every_bucket_answered_by_the_planned_backend(lab):
    from xenoflow_ovs.intent import plan as plan_mod
    from xenoflow_ovs.lab.dnsclient import query_txt_in_ns

    cfg = lab.load_cfg()
    p = plan_mod.plan(cfg)
    before = _counters(lab)
    for svc in cfg.services:
        table = p.table(svc.name)
        mask = len(table) - 1
        for bucket, backend in enumerate(table):
            src = ns = None
            for cns, addrs in sorted(lab.topo.clients.items()):
                for a in addrs:
                    if int(ipaddress.ip_address(a)) & mask == bucket:
                        src, ns = a, cns
                        break
                if src:
                    break
            assert src, "the topology's clients do not cover bucket %d" % bucket
            b0 = _bucket_counters(lab) if cfg.has_eswitch else None
            ans = query_txt_in_ns(ns, str(svc.vip), src=src, timeout=2.0)
            assert ans == backend, "bucket %d from %s: answered by %s, plan says %s" % (
                bucket, src, ans, backend)
            if cfg.has_eswitch:
                deadline = time.monotonic() + 3
                while True:
                    b1 = _bucket_counters(lab)
                    grew = b1[(svc.name, bucket)] - b0[(svc.name, bucket)]
                    if grew >= 1 or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                assert grew == 1, "bucket %d entry counter grew by %d" % (bucket, grew)
                others = {k: b1[k] - b0[k] for k in b1 if k != (svc.name, bucket) and b1[k] != b0[k]}
                assert not others, others
    after = _settled(lab)
    assert sum(after["bind9"].values()) - sum(before["bind9"].values()) >= sum(
        len(p.table(s.name)) for s in cfg.services)
    if cfg.has_eswitch:
        assert after["fallback"] == before["fallback"], "fallback grew: %s -> %s" % (
            before["fallback"], after["fallback"])


def test_demo_traffic_counters_agree(lab, capsys):
    from xenoflow_ovs.lab.labctl import Demo, Progress
    quiet, lab.say = lab.say, Progress()   # progress lines to the captured stdout
    try:
        rc = Demo(lab).run()
    finally:
        lab.say = quiet
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "0 by the wrong backend, 0 lost" in out, out
    assert "consistency: verdict: consistent" in out, out
    if DRIVER != "none":
        assert "fallback 0 (routes mirrored)" in out, out


def test_host_traffic_takes_the_mirrored_routes(lab):
    from xenoflow_ovs.lab import netns as nsh
    cfg = lab.load_cfg()
    if not cfg.has_eswitch:
        pytest.skip("no eSwitch: fallback is not applicable")
    host = lab.topo.host
    before = _counters(lab)
    for tgt in host["targets"]:
        r = nsh.run_in_ns(host["netns"], ["ping", "-n", "-q", "-c", "3", "-i", "0.05", "-W", "1",
                                          "-I", host["src"], tgt], check=False)
        assert r.returncode == 0, r.stdout + r.stderr
    after = _settled(lab)
    assert after["fallback"] == before["fallback"]
    grew = {k: v - before["eswitch_routes"].get(k, 0) for k, v in after["eswitch_routes"].items()}
    assert all(n >= 3 * len(host["targets"]) for n in grew.values()), grew


def test_a_second_lab_is_refused_and_untouched(lab):
    from xenoflow_ovs.lab.labctl import LabCtl
    from xenoflow_ovs.lab.topology import LabBusy

    other = tempfile.mkdtemp(prefix="xf-lab2-")
    try:
        ctl2 = LabCtl(_args(other), _quiet())
        with pytest.raises(LabBusy, match="not this lab's"):
            ctl2.up()
        ctl2.down()   # owns nothing: must not remove the first lab's namespaces
        assert all(lab.status()["namespaces"].values())
        assert all(p["alive"] for p in lab.status()["processes"].values())
    finally:
        shutil.rmtree(other, ignore_errors=True)


def _assert_nothing_left(ctl, pids, before_links):
    from xenoflow_ovs.lab import netns as nsh
    from xenoflow_ovs.lab.topology import proc_alive

    left_ns = [ns for ns in ctl.topo.namespaces if nsh.ns_exists(ns)]
    assert not left_ns, "namespaces left: %s" % left_ns
    alive = {n: p for n, (p, s) in pids.items() if proc_alive(p, s)}
    assert not alive, "processes left: %s" % alive
    new_links = (_root_links() - before_links) & _lab_names(ctl.topo)
    assert not new_links, "links/taps left in the root namespace: %s" % sorted(new_links)
    assert not os.path.exists(os.path.join(ctl.run_dir, "state.json"))


def test_down_leaves_nothing(lab):
    pids = {n: (p["pid"], p["start"]) for n, p in lab.state.data["processes"].items()}
    assert pids
    lab.down()
    _assert_nothing_left(lab, pids, lab.root_links_before)
    lab.down()  # idempotent


def test_down_after_a_crashed_up(run_dir):
    """`lab up` killed half-way (SIGKILL, no cleanup of its own): `lab down` from a new
    process still removes every namespace, process and tap it had made."""
    import xenoflow_ovs
    from xenoflow_ovs.lab.labctl import LabCtl
    from xenoflow_ovs.lab.topology import LabState

    before = _root_links()
    # the same xenoflow_ovs this test imported (installed or the checkout), not the cwd's
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(xenoflow_ovs.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([pkg_root, os.environ.get("PYTHONPATH", "")]))
    argv = [sys.executable, "-m", "xenoflow_ovs.cli", "lab", "up", "--topology", TOPOLOGY,
            "--run-dir", run_dir, "--eswitch", DRIVER]
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True, start_new_session=True, cwd=run_dir)
    # wait until the lab has started at least one process of its own, then crash it
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and p.poll() is None:
        if LabState(run_dir).data["processes"]:
            break
        time.sleep(0.05)
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
    p.wait(10)
    st = LabState(run_dir)
    assert st.data["namespaces"], "the crashed up recorded nothing"
    pids = {n: (q["pid"], q["start"]) for n, q in st.data["processes"].items()}
    r = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "lab", "down", "--topology", TOPOLOGY,
                        "--run-dir", run_dir], env=env, cwd=run_dir, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
    assert r.returncode == 0, r.stdout
    _assert_nothing_left(LabCtl(_args(run_dir, "down"), _quiet()), pids, before)


def test_host_traffic_without_mirroring_is_fallback(run_dir):
    """The paper's trap, made visible: routes not mirrored into the eSwitch, the host's
    traffic runs through OVS and shows up as fallback."""
    from xenoflow_ovs.lab import netns as nsh
    from xenoflow_ovs.lab.labctl import LabCtl

    if DRIVER == "none":
        pytest.skip("no eSwitch: fallback is not applicable")
    ctl = LabCtl(_args(run_dir, mirror_routes="off"), _quiet())
    try:
        ctl.up()
        assert not ctl.load_cfg().eswitch.mirror_routes
        host = ctl.topo.host
        before = _counters(ctl)
        r = nsh.run_in_ns(host["netns"], ["ping", "-n", "-q", "-c", "3", "-i", "0.05", "-W", "1",
                                          "-I", host["src"], host["targets"][0]], check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        after = _settled(ctl)
        assert after["fallback"] - before["fallback"] >= 6   # 3 echo requests + 3 replies
        assert not after.get("eswitch_routes")               # no route entries at all
    finally:
        ctl.down()


def test_demo_in_switch_mode(run_dir):
    """DOCA Flow's switch mode: pipes on the e-switch's manager, pf0hpf/pf1hpf as representor
    ports, p0 -> p1 on one (multiport) e-switch. The demo checks every bucket's backend, the
    host's mirrored routes and a consistent verdict, as in vnf mode."""
    import xenoflow_ovs

    if DRIVER == "none":
        pytest.skip("no eSwitch: no DOCA Flow mode")
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(xenoflow_ovs.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([pkg_root, os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "lab", "demo", "--topology", TOPOLOGY,
                        "--run-dir", run_dir, "--eswitch", DRIVER, "--eswitch-mode", "switch"], env=env,
                       cwd=run_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout
    assert "switch mode" in r.stdout and "0 by the wrong backend, 0 lost" in r.stdout
    assert "verdict: consistent" in r.stdout and "fallback 0 (routes mirrored)" in r.stdout


def test_up_without_os_ken_fails_in_one_line_and_builds_nothing(tmp_path, monkeypatch, capsys):
    """The controller cannot start (os-ken missing for this Python): `lab up` says so in
    one line with the way to get it, exits 2 and has built nothing. The lab's import probe
    runs with the package's own origin first on the path (where a wheel install also has
    os-ken), so the missing module is its answer here, not a doctored path."""
    from xenoflow_ovs.lab import labctl
    from xenoflow_ovs.lab.topology import load_topology, run_dirs_in_namespaces

    probed = []

    def os_ken_missing(modules):
        probed.extend(modules)
        return {"os_ken.base.app_manager": "Python module 'os_ken' is missing"}
    monkeypatch.setattr(labctl, "import_problems", os_ken_missing)
    run_dir = str(tmp_path / "run")
    rc = labctl.main(_args(run_dir))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.splitlines() == [
        "xenoflow lab up: the controller cannot start: os-ken is not installed for %s "
        "(pip install 'xenoflow-ovs[osken]')" % sys.executable], err
    assert "os_ken.base.app_manager" in probed and "xenoflow_ovs.controller.app" in probed
    assert not os.path.exists(os.path.join(run_dir, "state.json"))
    topo = load_topology(os.path.join(TOPOLOGY, "topology.yaml"))
    assert run_dir not in run_dirs_in_namespaces(topo.namespaces)


def test_the_import_probe_names_a_module_that_does_not_import():
    """What the preflight relies on: the probe, in the lab's subprocess environment,
    reports a missing module by name and passes one that imports."""
    from xenoflow_ovs.lab.labctl import import_problems
    found = import_problems(["xenoflow_ovs.intent.config", "xf_no_such_module"])
    assert list(found) == ["xf_no_such_module"]
    assert found["xf_no_such_module"] == "Python module 'xf_no_such_module' is missing"


def test_an_up_whose_controller_dies_removes_what_it_built(tmp_path, monkeypatch, capsys):
    """The controller exits at once (after namespaces, bind9, OVS and eswitchd are up):
    `lab up` reports it, exits 2 and leaves no half lab behind."""
    from xenoflow_ovs.lab import labctl
    from xenoflow_ovs.lab.labctl import LabCtl

    run_dir = str(tmp_path / "run")
    ctl = LabCtl(_args(run_dir), _quiet())
    foreign = ctl.lab.foreign_namespaces()
    if foreign:
        pytest.fail("another lab is up (namespaces %s exist): run `xenoflow lab down` first"
                    % ", ".join(foreign))
    before = _root_links()

    def dying_controller(self):
        self.state.drop_process("controller")
        self._spawn("controller", self.topo.dpu_netns,
                    [sys.executable, "-c", "raise SystemExit('this controller cannot start')"],
                    os.path.join(self.run_dir, "controller.log"))
        return "a controller that exits at once"

    seen = {}
    real_down = LabCtl.down

    def down(self):
        seen.update({n: (p["pid"], p["start"]) for n, p in self.state.data["processes"].items()})
        return real_down(self)

    monkeypatch.setattr(LabCtl, "start_controller", dying_controller)
    monkeypatch.setattr(LabCtl, "down", down)
    rc = labctl.main(_args(run_dir))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("xenoflow lab up: the controller exited; its log:"), err
    assert "this controller cannot start" in err and "lab down" not in err, err
    assert {"ovsdb-server", "ovs-vswitchd", "controller"} <= set(seen), seen
    _assert_nothing_left(ctl, seen, before)


"""`xenoflow lab down` ends every process attached to the lab: one started by hand inside
its namespaces (as `ip netns exec dpu xenoflow controller ...` would be) and one outside
them holding a connection to its eswitchd socket, which would otherwise write into the next
lab's eswitchd. A second controller started against the lab is refused and changes nothing.
The paper lab's namespace names are fixed: run under `flock /tmp/xf/lab.lock` beside others."""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.lab, pytest.mark.slow]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOPOLOGY = os.path.join(REPO, "topologies", "paper")

HOLDER = """
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
print("connected", flush=True)
time.sleep(600)
"""


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_down_ends_strays_in_the_namespaces_and_on_the_sockets():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    from xenoflow_ovs.eswitch.client import EswitchClient
    from xenoflow_ovs.lab import netns as N
    from xenoflow_ovs.lab.labctl import LabCtl, Progress
    from xenoflow_ovs.lab.pyenv import subprocess_env
    run_dir = tempfile.mkdtemp(prefix="xf-lab-")
    args = argparse.Namespace(action="up", topology=TOPOLOGY, run_dir=run_dir, eswitch="softdoca",
                              mirror_routes=None, eswitch_mode=None)
    ctl = LabCtl(args, Progress(out=open(os.devnull, "w")))
    if ctl.lab.foreign_namespaces():
        pytest.fail("another lab is up: run this under flock /tmp/xf/lab.lock")
    strays = []
    try:
        ctl.up()
        cfg = ctl.load_cfg()
        assert cfg.state_dir == run_dir     # the lab's locks live in its run dir
        assert os.path.exists(os.path.join(run_dir, "controller.%s.lock" % cfg.dpu_name))
        dpu = ctl.topo.dpu_netns
        es_sock = cfg.path(cfg.eswitch.socket)
        c = EswitchClient(es_sock)
        entries_before = sorted(map(str, c.call("list")["entries"]))
        c.close()

        # a second controller, by hand, in the lab's dpu namespace: refused, nothing touched
        api_inode = os.stat(cfg.path(cfg.api.socket)).st_ino
        second = subprocess.run(N.ns_argv(dpu, [sys.executable, "-m", "xenoflow_ovs.cli", "controller",
                                                "-c", ctl.cfg_path]),
                                capture_output=True, text=True, env=subprocess_env(), timeout=60)
        assert second.returncode == 2 and "already running" in second.stderr, second.stderr
        assert os.stat(cfg.path(cfg.api.socket)).st_ino == api_inode
        c = EswitchClient(es_sock)
        assert sorted(map(str, c.call("list")["entries"])) == entries_before
        c.close()

        # strays: a process in the dpu namespace, and one outside holding eswitchd's socket
        in_ns = N.popen_in_ns(dpu, ["sleep", "600"])
        holder = subprocess.Popen([sys.executable, "-c", HOLDER, es_sock], stdout=subprocess.PIPE,
                                  text=True, start_new_session=True)
        strays = [in_ns, holder]
        assert holder.stdout.readline().strip() == "connected"
        assert in_ns.pid in N.ns_pids(dpu)
        assert holder.pid in N.unix_socket_clients([es_sock], [None, dpu])
        done = ctl.down()
        for p in strays:
            p.wait(20)     # reaped here (our children); the lab stopped them by PID
            assert not _alive(p.pid)
        said = " ".join(done)
        assert "pid %d" % in_ns.pid in said and "pid %d" % holder.pid in said, done
        assert not N.ns_exists(dpu)
    finally:
        for p in strays:
            if p.poll() is None:
                p.kill()
                p.wait()
        ctl.down()
        shutil.rmtree(run_dir, ignore_errors=True)

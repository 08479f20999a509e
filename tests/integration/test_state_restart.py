"""Operator state survives a controller restart: drain a backend through the CLI, stop the
controller, start it again; the backend is still drained, in the eSwitch (which the new
controller adopts without changing an entry) and in its status, and `xenoflow state` shows
the edit. A real controller process over a real eswitchd (softdoca) in this test's own
namespaces; OVS is left unreachable on purpose (the eSwitch is the plane under test)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from process_helpers import controller_argv, free_port
from test_eswitchd import eswitchd  # noqa: F401  (the fixture)

from xenoflow_ovs.lab.pyenv import subprocess_env

pytestmark = [pytest.mark.root, pytest.mark.slow]




def xenoflow(*argv, check=True):
    p = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli"] + list(argv), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, env=subprocess_env(), timeout=60)
    if check:
        assert p.returncode == 0, (argv, p.stdout, p.stderr)
    return p


class Controller:
    def __init__(self, path, log):
        self.path, self.log = path, log
        self.proc = None

    def start(self):
        out = open(self.log, "a")
        env = dict(subprocess_env(), XENOFLOW_CONFIG=self.path)   # ryu-manager reads it there
        self.proc = subprocess.Popen(controller_argv(self.path), stdout=out, stderr=subprocess.STDOUT,
                                     env=env)
        out.close()
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, open(self.log).read()
            p = xenoflow("status", "-c", self.path, "--json", check=False)
            if p.returncode in (0, 1) and p.stdout.strip():
                st = json.loads(p.stdout)
                if st.get("eswitch", {}).get("connected"):
                    return st
            assert time.monotonic() < deadline, open(self.log).read()
            time.sleep(0.3)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def buckets(client):
    return {e.bucket: e.backend for e in client.installed()[1] if e.kind == "bucket"}


def test_a_drain_survives_a_controller_restart(eswitchd, short_tmp):  # noqa: F811
    cfg, client, proc, ns, logpath = eswitchd
    path = os.path.join(short_tmp, "xf.yaml")
    data = yaml.safe_load(open(path))
    data["dpu"]["state_dir"] = os.path.join(short_tmp, "state")
    data["ovs"]["db"] = "unix:" + os.path.join(short_tmp, "no-ovs.sock")
    data["controller"] = {"openflow": {"host": "127.0.0.1", "port": free_port()},
                          "api": {"host": "127.0.0.1", "port": free_port(),
                                  "socket": os.path.join(short_tmp, "api.sock")},
                          "metrics": {"host": "127.0.0.1", "port": free_port()}}
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    overlay = os.path.join(short_tmp, "state", "overlay.json")
    ctl = Controller(path, os.path.join(short_tmp, "controller.log"))
    try:
        ctl.start()
        assert buckets(client) == {0: "fips2", 1: "fips3"}
        xenoflow("backend", "drain", "fips2", "-c", path)
        assert buckets(client) == {0: "fips3", 1: "fips3"}
        assert json.load(open(overlay))["edits"] == [{"op": "drain", "service": "dns", "backend": "fips2"}]

        ctl.stop()
        assert buckets(client) == {0: "fips3", 1: "fips3"}       # eswitchd keeps forwarding
        mark = len(open(ctl.log).read())
        st = ctl.start()
        assert st["services"]["dns"]["fips2"]["drained"] is True
        assert st["overlay"] == {"path": overlay, "edits": 1, "dropped": []}
        assert buckets(client) == {0: "fips3", 1: "fips3"}
        # adopted as it was: the runtime logs "eSwitch adopted N, changed M" only when M > 0
        assert "eSwitch adopted" not in open(ctl.log).read()[mark:]
        shown = xenoflow("state", "show", "-c", path).stdout
        assert "drain dns/fips2" in shown
        planned = xenoflow("plan", "--with-state", path).stdout
        assert "0:fips3 1:fips3" in planned

        xenoflow("backend", "undrain", "fips2", "-c", path)
        assert buckets(client) == {0: "fips2", 1: "fips3"}
        assert json.load(open(overlay))["edits"] == []
    finally:
        ctl.stop()

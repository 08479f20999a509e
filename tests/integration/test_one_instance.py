"""A second controller for the same DPU stops before it opens anything and leaves the first
as it was; every start-up failure is exit 2 and one line; -v gives debug lines in the one
format. No OVS needed: the controller runs on (retrying OVSDB) with `driver: none`."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from process_helpers import RUNTIME, controller_argv, error_lines, write_cfg

from xenoflow_ovs.api import server as api
from xenoflow_ovs.lab.pyenv import subprocess_env

pytestmark = [pytest.mark.slow]


def our_lines(stderr):
    """The lines a failed start printed; under ryu-manager without its own preamble
    ("loading app ...", printed before our app exists)."""
    return [line for line in error_lines(stderr)
            if not (RUNTIME == "ryu" and line.startswith(("loading app ", "instantiating app ")))]


def start(cfg_path, log_path, *extra):
    env = subprocess_env()
    env.update({"XENOFLOW_CONFIG": cfg_path, "XENOFLOW_POLL_INTERVAL": "0.3"})
    log = open(log_path, "ab")
    p = subprocess.Popen(controller_argv(cfg_path, *extra), stdout=log, stderr=log, env=env,
                         start_new_session=True)
    log.close()
    return p


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_api(sock, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "controller exited %s" % proc.returncode
        if os.path.exists(sock):
            try:
                code, body = api.request("GET", "/status", unix_path=sock)
                if code == 200:
                    return body
            except OSError:
                pass
        time.sleep(0.2)
    raise AssertionError("the controller's API did not answer")


def test_second_controller_is_refused_and_the_first_untouched(tmp_path):
    from xenoflow_ovs.intent import config
    cfg_path = write_cfg(str(tmp_path))
    cfg = config.load(cfg_path)
    sock = cfg.path(cfg.api.socket)
    first = start(cfg_path, str(tmp_path / "first.log"), "-v")
    try:
        before = wait_api(sock, first)
        assert before["pid"] == first.pid
        inode = os.stat(sock).st_ino
        env = subprocess_env()
        env["XENOFLOW_CONFIG"] = cfg_path
        t0 = time.monotonic()
        second = subprocess.run(controller_argv(cfg_path), capture_output=True, text=True, env=env,
                                timeout=60)
        assert second.returncode == 2, second.stderr
        lines = our_lines(second.stderr)
        assert len(lines) == 1 and "already running (pid %d)" % first.pid in lines[0], second.stderr
        assert "Traceback" not in second.stderr and time.monotonic() - t0 < 20
        # the first is as it was: its socket (the same one), its API, its lock
        assert first.poll() is None
        assert os.stat(sock).st_ino == inode
        after = wait_api(sock, first)
        assert after["pid"] == first.pid and after["dpu"] == before["dpu"]
        assert after["alarms"] == []
        with open(os.path.join(str(tmp_path / "state"), "controller.bf3.lock")) as f:
            assert f.read().strip() == str(first.pid)
    finally:
        stop(first)
    log = open(str(tmp_path / "first.log")).read()
    # -v under this runtime: debug lines, in the one format (time level logger: message)
    debug = [line for line in log.splitlines() if " DEBUG " in line]
    assert debug, log[-2000:]
    assert all(line[:4].isdigit() and line.split(" ")[2].endswith(":") for line in debug[:20]), debug[:5]
    assert first.returncode == 0, log[-2000:]
    assert not os.path.exists(sock)      # its own socket: removed on its way out


def test_openflow_or_api_port_in_use_is_exit_2_and_one_line(tmp_path):
    from xenoflow_ovs.intent import config
    cfg_path = write_cfg(str(tmp_path))
    cfg = config.load(cfg_path)
    env = subprocess_env()
    env["XENOFLOW_CONFIG"] = cfg_path
    ports = [("API", cfg.api.port)] + ([("OpenFlow", cfg.openflow.port)] if RUNTIME == "osken" else [])
    for what, port in ports:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
        try:
            p = subprocess.run(controller_argv(cfg_path), capture_output=True, text=True, env=env, timeout=60)
        finally:
            s.close()
        lines = our_lines(p.stderr)
        assert p.returncode == 2, (what, p.returncode, p.stderr)
        assert len(lines) == 1 and "%s port in use: 127.0.0.1:%d" % (what, port) in lines[0], p.stderr
        assert not os.path.exists(cfg.path(cfg.api.socket))


def test_eswitchd_unreachable_past_connect_timeout_is_exit_2(tmp_path):
    cfg_path = write_cfg(str(tmp_path), driver="softdoca", connect_timeout=1,
                         socket=str(tmp_path / "nobody.sock"))
    env = subprocess_env()
    env["XENOFLOW_CONFIG"] = cfg_path
    t0 = time.monotonic()
    p = subprocess.run(controller_argv(cfg_path), capture_output=True, text=True, env=env, timeout=60)
    lines = our_lines(p.stderr)
    assert p.returncode == 2 and len(lines) == 1, p.stderr
    assert "eswitchd unreachable at %s after 1 s" % (tmp_path / "nobody.sock") in lines[0]
    assert time.monotonic() - t0 < 20


def test_status_json_has_the_alarms_key(tmp_path):
    from xenoflow_ovs.intent import config
    cfg_path = write_cfg(str(tmp_path))
    cfg = config.load(cfg_path)
    p = start(cfg_path, str(tmp_path / "c.log"))
    try:
        wait_api(cfg.path(cfg.api.socket), p)
        out = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "status", "--json", "-c", cfg_path],
                             capture_output=True, text=True, env=subprocess_env(), timeout=30)
        assert json.loads(out.stdout)["alarms"] == []
        text = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "status", "-c", cfg_path],
                              capture_output=True, text=True, env=subprocess_env(), timeout=30)
        lines = text.stdout.splitlines()
        assert "  alarms: none" in lines, text.stdout
        # the last line: where the dashboard is (this config's metrics listener)
        assert lines[-1] == "  dashboard: http://127.0.0.1:%d/dashboard/" % cfg.metrics.port, text.stdout
    finally:
        stop(p)

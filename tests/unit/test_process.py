"""The daemons' lifecycle, without root: one instance per DPU, the eSwitch session fence,
alarms, the log format, systemd's notify protocol, the unit files, the CLI's exit codes."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
from process_helpers import PAPER, REPO, error_lines, write_cfg, xenoflow

from xenoflow_ovs import instance, logsetup, sdnotify
from xenoflow_ovs.controller import alarms as alarms_mod
from xenoflow_ovs.eswitch.session import Refused, Sessions
from xenoflow_ovs.intent import config
from xenoflow_ovs.lab import netns as N
from xenoflow_ovs.lab.pyenv import subprocess_env

UNITS = os.path.join(REPO, "xenoflow_ovs", "systemd")


# ---------------------------------------------------------------- one instance per DPU

LOCKER = """
import sys, time
from xenoflow_ovs import instance
from xenoflow_ovs.intent import config
cfg = config.load(sys.argv[1])
try:
    instance.acquire(cfg, "controller")
except instance.StartupError as exc:
    print("REFUSED", exc, flush=True)
    sys.exit(2)
print("LOCKED", flush=True)
time.sleep(60)
"""


def test_the_lock_refuses_a_second_process_names_the_first_and_frees_when_it_dies(tmp_path):
    path = write_cfg(str(tmp_path))
    cfg = config.load(path)
    env = subprocess_env()
    first = subprocess.Popen([sys.executable, "-c", LOCKER, path], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert first.stdout.readline().strip() == "LOCKED"
        second = subprocess.run([sys.executable, "-c", LOCKER, path], capture_output=True, text=True,
                                env=env, timeout=30)
        assert second.returncode == 2
        assert "already running (pid %d)" % first.pid in second.stdout, second.stdout
        lock = instance.lock_path(cfg, "controller")
        assert os.path.basename(lock) == "controller.bf3.lock"
        assert os.path.dirname(lock) == str(tmp_path / "state")
        assert os.stat(lock).st_mode & 0o077 == 0
        with open(lock) as f:
            assert f.read().strip() == str(first.pid)      # the refused one wrote nothing
        # another role of the same DPU is another lock
        assert instance.lock_path(cfg, "eswitchd") != lock
    finally:
        first.kill()
        first.wait()
    third = subprocess.Popen([sys.executable, "-c", LOCKER, path], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert third.stdout.readline().strip() == "LOCKED"   # the kernel dropped the dead one's lock
    finally:
        third.kill()
        third.wait()


def test_generations_grow_even_when_the_state_dir_is_wiped(tmp_path):
    cfg = config.load(write_cfg(str(tmp_path)))
    a = instance.next_generation(cfg, now=1000.0)
    b = instance.next_generation(cfg, now=1000.0)      # same clock: still larger
    assert b == a + 1
    shutil.rmtree(str(tmp_path / "state"))
    c = instance.next_generation(cfg, now=1001.0)       # wiped: the clock carries it
    assert c > b


def test_a_port_in_use_is_one_line(tmp_path):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        with pytest.raises(instance.StartupError, match=r"OpenFlow port in use: 127\.0\.0\.1:\d+"):
            instance.check_tcp_free("127.0.0.1", s.getsockname()[1], "OpenFlow port in use:")
    finally:
        s.close()


def test_waiting_for_eswitchd_gives_up_after_the_timeout(tmp_path):
    cfg = config.load(write_cfg(str(tmp_path), driver="softdoca", connect_timeout=1))
    assert cfg.eswitch.connect_timeout == 1
    calls = []

    def hello():
        calls.append(1)
        raise OSError("no such socket")
    t0 = time.monotonic()
    with pytest.raises(instance.StartupError, match="eswitchd unreachable at .* after 1 s"):
        instance.wait_eswitchd(cfg, hello, cfg.eswitch.connect_timeout)
    assert 0.9 < time.monotonic() - t0 < 3 and len(calls) >= 3
    assert instance.wait_eswitchd(cfg, hello, 0) is None       # 0: one try, no error


# ---------------------------------------------------------------- the eSwitch session fence

def test_the_fence_refuses_a_second_session_and_an_older_one_for_ever():
    s = Sessions()
    s.check_write("tool")                          # no session yet: tools write
    s.claim("old", 100, takeover=True, who="controller pid 1")
    s.check_write("old")
    s.check_write("tool")                          # not a session: not fenced (see session.py)
    with pytest.raises(Refused, match="owned by controller pid 1"):
        s.claim("new", 200, takeover=False, who="controller pid 2")
    with pytest.raises(Refused, match="already the owner's"):
        s.claim("twin", 100, takeover=True)
    got = s.claim("new", 200, takeover=True, who="controller pid 2")
    assert got["took_over_from"] == "controller pid 1"
    with pytest.raises(Refused, match="superseded by controller pid 2"):
        s.check_write("old")
    s.check_write("new")
    s.closed("old")
    s.closed("new")                                # the owner went away (restart)
    with pytest.raises(Refused, match="older than 200"):
        s.claim("old-again", 100, takeover=True)   # the stale one reconnects: never again
    s.claim("new-again", 200, takeover=False, who="controller pid 2")   # the same one reconnecting
    assert s.view() == {"owner": "controller pid 2", "generation": 200}


# ---------------------------------------------------------------- alarms

def test_repeated_repairs_of_one_entry_alarm_and_clear_after_the_window():
    a = alarms_mod.Alarms(window=60, threshold=3)
    a.repaired(["update e1"], 0)
    a.repaired(["update e1", "add e2"], 5)
    assert a.active(6) == []                        # twice: drift put right
    a.repaired(["update e1"], 10)
    assert a.active(11) == [{"kind": "repeated_repair", "what": "update e1", "count": 3, "since": 0}]
    a.repaired(["add e2"], 100)                     # e2's repairs were 95 s apart: a new streak
    assert [x["what"] for x in a.active(101)] == []
    a.fenced("fenced: superseded", 102)
    assert a.active(103) == [{"kind": "fenced", "what": "fenced: superseded", "count": 1, "since": 102}]
    a.fenced(None, 104)
    assert a.active(105) == []
    line = alarms_mod.describe({"kind": "repeated_repair", "what": "update e1", "count": 7, "since": 10}, 70)
    assert line == "ALARM repeated_repair: update e1 repaired 7 times in 60 s (something keeps undoing it)"


# ---------------------------------------------------------------- logging

LOGGER = """
import logging, sys
from xenoflow_ovs import logsetup
logsetup.configure(sys.argv[1], None, sys.argv[2], daemon="t")
logging.basicConfig(level=logging.WARNING, format="%(message)s", force=True)   # a framework's own
logsetup.reapply()
logging.getLogger("xenoflow.x").debug("dbg %d", 1)
logging.getLogger("xenoflow.x").info("hello")
"""


def _log_run(level, fmt, env=None, stderr_file=None):
    e = subprocess_env()
    e.pop("JOURNAL_STREAM", None)
    e.pop("INVOCATION_ID", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-c", LOGGER, level, fmt], env=e, timeout=30, text=True,
                          stderr=stderr_file or subprocess.PIPE, stdout=subprocess.PIPE)


def test_one_text_format_and_levels_survive_a_framework_resetting_them():
    p = _log_run("debug", "text")
    lines = p.stderr.splitlines()
    assert len(lines) == 2, p.stderr
    t, level, logger, msg = lines[1].split(" ", 3)
    assert time.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ") and t.endswith("Z")
    assert (level, logger, msg) == ("INFO", "xenoflow.x:", "hello")
    assert lines[0].split(" ", 1)[1] == "DEBUG xenoflow.x: dbg 1"
    assert len(_log_run("info", "text").stderr.splitlines()) == 1


def test_json_format():
    p = _log_run("info", "json")
    rec = json.loads(p.stderr.strip())
    assert rec["level"] == "INFO" and rec["logger"] == "xenoflow.x" and rec["message"] == "hello"
    assert rec["daemon"] == "t" and rec["time"].endswith("Z")


def test_journal_stream_gets_priorities_and_no_time(tmp_path):
    errf = open(str(tmp_path / "err"), "w")
    st = os.fstat(errf.fileno())
    _log_run("debug", "text", env={"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)}, stderr_file=errf)
    errf.close()
    assert open(str(tmp_path / "err")).read().splitlines() == [
        "<7>DEBUG xenoflow.x: dbg 1", "<6>INFO xenoflow.x: hello"]
    # JOURNAL_STREAM inherited by a process whose stderr goes elsewhere: plain lines
    p = _log_run("info", "text", env={"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)})
    assert not p.stderr.startswith("<")


def test_log_level_names_are_checked():
    with pytest.raises(ValueError):
        logsetup.level_of("loud")


# ---------------------------------------------------------------- systemd

def test_sd_notify_sends_one_datagram(tmp_path):
    path = str(tmp_path / "notify")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    srv.settimeout(5)
    try:
        assert sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": path})
        assert srv.recv(4096) == b"READY=1"
        assert not sdnotify.notify("READY=1", env={})           # not under systemd: a no-op
    finally:
        srv.close()


def _unit(name):
    """{section: {key: value}} of a unit file (the last of a repeated key wins)."""
    out, section = {}, None
    with open(os.path.join(UNITS, name)) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("[") and line.endswith("]"):
                section = out.setdefault(line[1:-1], {})
                continue
            key, sep, value = line.partition("=")
            assert sep and section is not None, line
            section[key.strip()] = value.strip()
    return out


def test_unit_files_say_what_the_daemons_need():
    es, ctl = _unit("xenoflow-eswitchd@.service"), _unit("xenoflow-controller@.service")
    for u, cmd in ((es, "eswitchd"), (ctl, "controller")):
        s = u["Service"]
        assert s["Type"] == "notify" and s["NotifyAccess"] == "main"
        assert s["ExecStart"] == "xenoflow %s -c /etc/xenoflow/%%i.yaml" % cmd
        assert s["ExecReload"] == "/bin/kill -HUP $MAINPID"
        assert s["Restart"] == "on-failure"
        assert s["StateDirectory"] == "xenoflow/%i"
        for key, want in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                          ("PrivateTmp", "yes")):
            assert s[key] == want, (cmd, key)
        assert u["Install"]["WantedBy"] == "multi-user.target"
    assert "xenoflow-eswitchd@%i.service" in ctl["Unit"]["Requires"].split()
    assert "xenoflow-eswitchd@%i.service" in ctl["Unit"]["After"].split()
    caps = set(es["Service"]["CapabilityBoundingSet"].split())
    assert {"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_SYS_RAWIO"} <= caps
    assert ctl["Service"]["CapabilityBoundingSet"] == ""


def test_systemd_analyze_verifies_the_units(tmp_path):
    """On the installed systemd-analyze (the test fails, not skips, where it is missing:
    CI's image has systemd). ExecStart names `xenoflow` on systemd's PATH; here it is
    the test's own interpreter's entry point."""
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is not installed (apt-get install systemd)"
    exe = os.path.join(os.path.dirname(sys.executable), "xenoflow")
    assert os.access(exe, os.X_OK), exe
    for name in os.listdir(UNITS):
        with open(os.path.join(UNITS, name)) as f:
            text = f.read()
        (tmp_path / name).write_text(text.replace("ExecStart=xenoflow ", "ExecStart=%s " % exe))
    units = [str(tmp_path / n.replace("@.", "@bf3.")) for n in sorted(os.listdir(UNITS))]
    p = subprocess.run([tool, "verify"] + units, capture_output=True, text=True, timeout=120,
                       cwd=str(tmp_path))
    ours = [line for line in (p.stdout + p.stderr).splitlines() if "xenoflow" in line]
    assert p.returncode == 0 and not ours, p.stdout + p.stderr


# ---------------------------------------------------------------- the command line

def test_version():
    from xenoflow_ovs import __version__
    p = xenoflow("--version")
    assert p.returncode == 0 and p.stdout.strip() == "xenoflow %s" % __version__


def test_daemons_exit_2_with_one_line_on_an_unreadable_config(tmp_path):
    for cmd in ("controller", "eswitchd"):
        p = xenoflow(cmd, "-c", str(tmp_path / "missing.yaml"))
        assert p.returncode == 2, (cmd, p.stderr)
        lines = error_lines(p.stderr)
        assert len(lines) == 1 and "missing.yaml" in lines[0] and "Traceback" not in p.stderr, p.stderr


def test_unix_peer_inodes_parse_ss():
    out = ("Netid State Recv-Q Send-Q Local Address:Port Peer Address:PortProcess\n"
           "u_str ESTAB 0 0 /r/eswitchd.sock 14536577 * 14536576\n"
           "u_str LISTEN 0 128 /r/eswitchd.sock 14536575 * 0\n"
           "u_str ESTAB 0 0 * 14536576 * 14536577\n"
           "u_str ESTAB 0 0 /other.sock 9 * 10\n")
    assert N.unix_peer_inodes(out, ["/r/eswitchd.sock"]) == [14536576]
    assert os.getpid() in N.ancestors() and 1 not in N.ancestors()


def test_log_file_takes_the_lines_stderr_stays_quiet(tmp_path):
    logf = str(tmp_path / "eswitchd.log")
    p = xenoflow("--log-file", logf, "eswitchd", "-c", str(tmp_path / "missing.yaml"))
    assert p.returncode == 2 and p.stderr == ""
    lines = open(logf).read().splitlines()
    assert len(lines) == 1 and " ERROR xenoflow.eswitchd: " in lines[0] and "missing.yaml" in lines[0]
    p = xenoflow("--log-file", str(tmp_path / "no" / "such" / "dir.log"), "--version")
    assert p.returncode == 0          # --version answers before logging is set up
    p = xenoflow("--log-file", str(tmp_path / "no" / "such" / "dir.log"), "check-config", PAPER)
    assert p.returncode == 2 and p.stderr.startswith("cannot log to "), p.stderr

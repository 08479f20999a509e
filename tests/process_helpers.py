"""Helpers of the lifecycle tests (tests/unit/test_process.py, tests/integration/
test_one_instance.py, test_service.py): a config of their own, the command line."""

import os
import socket
import subprocess
import sys

import yaml

from xenoflow_ovs.intent import config
from xenoflow_ovs.lab.pyenv import subprocess_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER = os.path.join(REPO, "topologies", "paper", "xenoflow.yaml")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write_cfg(tmp, **eswitch):
    data = config.to_data(config.load(PAPER))
    data["dpu"]["state_dir"] = os.path.join(tmp, "state")
    data["dpu"]["eswitch"].update(eswitch or {"driver": "none"})
    data["ovs"]["db"] = "unix:" + os.path.join(tmp, "no-ovsdb.sock")
    data["controller"] = {"openflow": {"host": "127.0.0.1", "port": free_port()},
                          "api": {"host": "127.0.0.1", "port": free_port(),
                                  "socket": os.path.join(tmp, "api.sock")}}
    if "metrics" in config.to_data(config.load(PAPER)).get("controller", {}):
        data["controller"]["metrics"] = {"host": "127.0.0.1", "port": free_port()}
    path = os.path.join(tmp, "xf.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    return path


def xenoflow(*argv, timeout=60, env=None):
    e = subprocess_env()
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli"] + list(argv), capture_output=True,
                          text=True, timeout=timeout, env=e)


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.strip()]


def _osken() -> bool:
    try:
        import os_ken.base.app_manager  # noqa: F401
        return True
    except ImportError:
        return False


RUNTIME = "osken" if _osken() else "ryu"


def controller_argv(cfg_path, *extra, apps=(), manager_args=()):
    """The controller as this test runtime runs it: `xenoflow controller` on os-ken,
    ryu-manager (config from XENOFLOW_CONFIG) on Ryu; `apps`: other app modules in the
    same manager; `manager_args`: ryu-manager's own options (Ryu only)."""
    if RUNTIME == "osken":
        return ([sys.executable, "-m", "xenoflow_ovs.cli"] + list(extra) + ["controller", "-c", cfg_path]
                + [a for app in apps for a in ("--app", app)])
    ryu = os.path.join(os.path.dirname(sys.executable), "ryu-manager")
    base = [ryu] if os.path.exists(ryu) else [sys.executable, "-c",
                                               "import sys; from ryu.cmd.manager import main; "
                                               "sys.argv[0] = 'ryu-manager'; main()"]
    cfg = config.load(cfg_path)
    return base + (["--verbose"] if "-v" in extra else []) + [
        "--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", str(cfg.openflow.port)] + list(
        manager_args) + ["xenoflow_ovs.app"] + list(apps)

"""`xenoflow controller -c FILE`: run the app on os-ken >= 4, which has no manager CLI.

Before anything is opened: the config read, the DPU's controller lock taken
(instance.py: a second controller stops here, having touched nothing), the
OpenFlow, API and metrics ports checked free, eswitchd answering (up to
dpu.eswitch.connect_timeout s). Each failure is one line and exit 2.

Then what osken-manager used to do, in a few lines: patch the hub, register and
parse os-ken's options (the OpenFlow listener from the config's
controller.openflow), initialise logging (os-ken's init_log resets it: ours is
applied again after it), run the app. The app reads its config from
XENOFLOW_CONFIG, as it does under ryu-manager.
Other apps given with --app run in the same manager, beside ours (each sees
every switch event; docs/sdn-apps.md says what XenoFlow leaves to them).
SIGTERM/SIGINT stop the apps and exit 0; flows stay in OVS (fail_mode=secure),
and the next start adopts them.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from typing import Any

from .. import instance, logsetup
from ..exitcodes import EXIT_ERROR, EXIT_OK
from ..intent import config as config_mod


class _Stop(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT (BaseException: no handler eats it)."""


def preflight(cfg: config_mod.Config) -> None:
    """The lock first (touch nothing when another controller runs), then the ports and
    eswitchd. Raises instance.StartupError."""
    from .app import wait_for_eswitchd
    instance.acquire(cfg, "controller")
    instance.controller_checks(cfg)
    wait_for_eswitchd(cfg)


def main(args: Any) -> int:
    if not logsetup.configured():
        logsetup.configure("debug" if getattr(args, "verbose", False) else "info", daemon="controller")
    log = logging.getLogger("xenoflow.launcher")
    # eventlet is installed with os-ken (not used by the native hub); `ovs` imports it
    # (first with os_ken.lib.hub): its deprecation notice is no error line of ours
    warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")
    try:
        cfg = config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        for line in exc.lines():
            log.error("%s", line)
        return EXIT_ERROR
    try:
        from os_ken.lib import hub
    except ImportError:
        try:
            import ryu  # noqa: F401
        except ImportError:
            print("xenoflow controller needs os-ken >= 4 (pip install os-ken)", file=sys.stderr)
        else:
            print("os-ken is not installed but Ryu is: run the app with\n  %s=%s ryu-manager "
                  "--ofp-listen-host %s --ofp-tcp-listen-port %d xenoflow_ovs.controller.app"
                  % ("XENOFLOW_CONFIG", os.path.abspath(args.config), cfg.openflow.host,
                     cfg.openflow.port), file=sys.stderr)
        return EXIT_ERROR
    try:
        preflight(cfg)
    except instance.StartupError as exc:
        log.error("%s", exc)
        return EXIT_ERROR
    hub.patch(thread=False)
    from os_ken import cfg as osken_cfg
    from os_ken import log as osken_log
    osken_log.early_init_log(logging.getLogger().level)
    from os_ken.base.app_manager import AppManager
    from os_ken.controller import controller  # noqa: F401  registers the --ofp-* options

    os.environ["XENOFLOW_CONFIG"] = os.path.abspath(args.config)
    osken_cfg.CONF(args=["--ofp-listen-host", cfg.openflow.host,
                         "--ofp-tcp-listen-port", str(cfg.openflow.port)], project="os_ken")
    osken_log.init_log()
    logsetup.reapply()     # init_log replaced our handler and level (-v would do nothing)
    hub.patch(thread=True)

    def on_signal(signum: int, _frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)   # one stop is enough
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise _Stop(signal.Signals(signum).name)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = EXIT_OK
    # AppManager.run_apps without its finally clause (it calls kill() on native
    # threads, which have none)
    app_mgr = AppManager.get_instance()
    try:
        app_mgr.load_apps(["xenoflow_ovs.controller.app"] + list(getattr(args, "app", None) or ()))
        services = app_mgr.instantiate_apps(**app_mgr.create_contexts())
        hub.joinall(services)
        # every service ended without a signal: not a clean stop (systemd restarts it)
        log.error("the controller's services ended by themselves")
        code = EXIT_ERROR
    except _Stop as stop:
        log.info("%s: stopping (flows stay in OVS)", stop)
    except SystemExit as exc:        # the app's start-up refused (it said why)
        code = exc.code if isinstance(exc.code, int) else EXIT_ERROR
    except Exception as exc:
        log.error("controller failed: %s: %s", type(exc).__name__, exc)
        log.debug("controller failure", exc_info=True)
        code = EXIT_ERROR
    finally:
        try:
            app_mgr.close()    # stops the apps; ours writes its last state
        except BaseException:
            log.exception("while stopping the apps")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        # os-ken's native listener and datapath threads are not daemons and cannot
        # be killed: leave without waiting for them.
        os._exit(code)
    return code

"""`xenoflow controller -c FILE`: run the app on os-ken >= 4, which has no manager CLI.

What osken-manager used to do, in a few lines:
patch the hub, register and parse os-ken's options (the OpenFlow listener from
the config's controller.openflow), initialise logging, run the app. The app
reads its config from XENOFLOW_CONFIG, as it does under ryu-manager.
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

from ..exitcodes import EXIT_ERROR, EXIT_OK
from ..intent import config as config_mod


class _Stop(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT (BaseException: no handler eats it)."""


def main(args: Any) -> int:
    try:
        cfg = config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
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
    hub.patch(thread=False)
    # eventlet is installed with os-ken (not used by the native hub); `ovs` imports it
    warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")
    from os_ken import cfg as osken_cfg
    from os_ken import log as osken_log
    osken_log.early_init_log(logging.DEBUG if getattr(args, "verbose", False) else logging.INFO)
    from os_ken.base.app_manager import AppManager
    from os_ken.controller import controller  # noqa: F401  registers the --ofp-* options

    os.environ["XENOFLOW_CONFIG"] = os.path.abspath(args.config)
    osken_cfg.CONF(args=["--ofp-listen-host", cfg.openflow.host,
                         "--ofp-tcp-listen-port", str(cfg.openflow.port)], project="os_ken")
    osken_log.init_log()
    hub.patch(thread=True)

    def on_signal(signum: int, _frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)   # one stop is enough
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise _Stop(signal.Signals(signum).name)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log = logging.getLogger("xenoflow.launcher")
    code = EXIT_OK
    # AppManager.run_apps without its finally clause (it calls kill() on native
    # threads, which have none)
    app_mgr = AppManager.get_instance()
    try:
        app_mgr.load_apps(["xenoflow_ovs.controller.app"])
        services = app_mgr.instantiate_apps(**app_mgr.create_contexts())
        hub.joinall(services)
    except _Stop as stop:
        log.info("%s: stopping (flows stay in OVS)", stop)
    except Exception:
        log.exception("controller failed")
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

"""The environment of the lab's own Python subprocesses (eswitchd, the controller, the
DNS client in a namespace, probes)."""
from __future__ import annotations

import os
from typing import Dict


def subprocess_env() -> Dict[str, str]:
    """os.environ, plus: they import xenoflow_ovs and dpdk_glue from where this process
    did (an installed wheel carries the compiled glue, a checkout may not have it built
    for this Python; the package need not be installed at all), and log unbuffered."""
    env = dict(os.environ)
    import xenoflow_ovs
    origin = os.path.dirname(os.path.dirname(os.path.abspath(xenoflow_ovs.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([origin] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONUNBUFFERED"] = "1"
    return env

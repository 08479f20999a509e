"""Where the benchmarks import xenoflow_ovs and dpdk_glue from: wherever the running
Python has them installed (a wheel in tox, the editable checkout in `make venv`'s
.venv), and this checkout only when it has neither, because a checkout may not have
the glue compiled for this Python. Import it before the package; child processes get
the same origin through xenoflow_ovs.lab.labctl._subprocess_env()."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

try:
    import xenoflow_ovs  # noqa: F401
except ImportError:
    sys.path.insert(0, ROOT)

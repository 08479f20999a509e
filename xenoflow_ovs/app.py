"""The stable name of the controller app: `ryu-manager xenoflow_ovs.app`.

ryu-manager loads only the RyuApp classes *defined* in the module it is given,
so the app is declared here as a subclass; its code is in controller/app.py.
"""

from .controller.app import XenoFlowApp as _XenoFlowApp


class XenoFlowApp(_XenoFlowApp):
    """The XenoFlow controller (controller/app.py), under the name operators run."""

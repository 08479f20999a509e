"""The live dashboard: one read-only page (index.html, dashboard.js, dashboard.css),
served by the metrics listener at /dashboard/. No build step and no third-party code:
the page polls the listener's /status and draws its charts itself.

Only the files named in ASSETS are ever served: a name is looked up, never joined to a
path, so no request can reach another file of the package or the machine.
"""

from __future__ import annotations

from importlib import resources
from typing import Dict, Optional, Tuple

ASSETS: Dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
INDEX = "index.html"


def asset(name: str) -> Optional[Tuple[bytes, str]]:
    """(content, content type) of the asset `name` ("" is the page itself), None for
    any name not in ASSETS."""
    ctype = ASSETS.get(name or INDEX)
    if ctype is None:
        return None
    return resources.files(__name__).joinpath(name or INDEX).read_bytes(), ctype

"""Where tests keep what a person should be able to look at afterwards (screenshots):
$XF_ARTEFACTS when set, else test-artefacts/ in the repository (ignored by git)."""
from __future__ import annotations

import os
import shutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def directory() -> str:
    d = os.environ.get("XF_ARTEFACTS") or os.path.join(REPO, "test-artefacts")
    os.makedirs(d, exist_ok=True)
    return d


def keep(path: str, name: str) -> str:
    """A copy of `path` as `name` among the artefacts (the runtime's name in front when the
    suite runs in one of the two, so the two runs do not overwrite each other)."""
    runtime = os.environ.get("XENOFLOW_RUNTIME")
    dest = os.path.join(directory(), "%s-%s" % (runtime, name) if runtime else name)
    shutil.copy(path, dest)
    return dest

"""Fixtures for the dpdk_glue tests.

Every eSwitch runs in a child process (glue_child.py): the DPDK EAL initialises once per
process.  ``glue`` makes sure the compiled module exists (an in-place build when dpdk_glue
is imported from a checkout without one) and runs scenarios: ``glue.run("semantics")``.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from typing import Any, Dict, List, Optional

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, "glue_child.py")


def _module_built(pkg_parent: str) -> bool:
    proc = subprocess.run([sys.executable, "-c", "import dpdk_glue._glue"], cwd="/",
                          env=dict(os.environ, PYTHONPATH=pkg_parent), capture_output=True, check=False)
    return proc.returncode == 0


class Glue:
    def __init__(self, pkg_parent: str, prefix: str) -> None:
        self.pkg_parent = pkg_parent
        self.prefix = prefix
        self.count = 0

    def env(self, pkg_parent: Optional[str] = None) -> Dict[str, str]:
        return dict(os.environ, PYTHONPATH=pkg_parent or self.pkg_parent)

    def file_prefix(self, tag: str) -> str:
        self.count += 1
        return "%s-g%d%s" % (self.prefix, self.count, tag)

    def run(self, scenario: str, timeout: float = 120, pkg_parent: Optional[str] = None,
            argv_prefix: Optional[List[str]] = None, **kwargs: Any) -> Any:
        """Run a scenario in a child; return its RESULT (or fail with its stderr).
        subprocess.run kills the child (by its PID) if it exceeds the timeout."""
        kwargs.setdefault("prefix", self.file_prefix(scenario[:6]))
        argv = list(argv_prefix or []) + [sys.executable, CHILD, scenario, json.dumps(kwargs)]
        proc = subprocess.run(argv, env=self.env(pkg_parent), capture_output=True, text=True,
                              timeout=timeout, cwd="/", check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            raise AssertionError("child %s failed (rc=%s)\nstdout:\n%s\nstderr:\n%s" % (
                scenario, proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
        return json.loads(lines[-1][len("RESULT "):])


@pytest.fixture(scope="session")
def glue_pkg_parent() -> str:
    """Directory holding the dpdk_glue package this test run imports, with the C module
    built (in place, under a lock, if it was missing)."""
    import dpdk_glue

    parent = os.path.dirname(os.path.dirname(os.path.abspath(dpdk_glue.__file__)))
    if not _module_built(parent):
        build = os.path.join(parent, "dpdk_glue", "build_glue.py")
        lock_path = "/tmp/xf-glue-build-%08x.lock" % (hash(parent) & 0xFFFFFFFF)
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent sessions build once
            if not _module_built(parent):
                subprocess.run([sys.executable, build], check=True, cwd=parent,
                               env=dict(os.environ, XF_GLUE_REQUIRE="1"))
    assert _module_built(parent), "dpdk_glue._glue could not be built"
    return parent


@pytest.fixture(scope="session")
def glue(glue_pkg_parent: str, lab_prefix: str) -> Glue:
    return Glue(glue_pkg_parent, lab_prefix)

"""Shared fixtures. Keep it tidy: one section per concern.

Root-only tests (markers ``root`` / ``ovs``) are skipped, with a reason, only
when not running as root; CI runs as root, so nothing is skipped there.

Names: every namespace a test session creates is ``<prefix>-<suffix>`` with a
random 6-char prefix per session (``lab_prefix``), so two developers running
tests at once never collide; teardown deletes exactly the names created.
Interface names must stay <= 15 chars (``Namespaces.ifname`` checks).
"""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from typing import List

import pytest

IS_ROOT = os.geteuid() == 0
NOT_ROOT = "needs root (network namespaces, veths, private OVS / bind9)"


def pytest_collection_modifyitems(config, items):
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason=NOT_ROOT)
    for item in items:
        if "root" in item.keywords or "ovs" in item.keywords:
            item.add_marker(skip)


def require_root() -> None:
    if not IS_ROOT:
        pytest.skip(NOT_ROOT)


# --- namespaces -----------------------------------------------------------------

class Namespaces:
    """Creates namespaces named ``<prefix>-<suffix>`` and deletes exactly those."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.created: List[str] = []

    def name(self, suffix: str) -> str:
        return "%s-%s" % (self.prefix, suffix)

    def ifname(self, suffix: str) -> str:
        """A prefixed interface name, for ends left in the root namespace."""
        from xenoflow_ovs.lab.netns import check_ifname

        return check_ifname(self.name(suffix))

    def __call__(self, suffix: str) -> str:
        """Create namespace <prefix>-<suffix> (lo up) and return its name."""
        from xenoflow_ovs.lab.netns import create_ns

        require_root()
        name = self.name(suffix)
        create_ns(name)
        self.created.append(name)
        return name

    def cleanup(self) -> None:
        from xenoflow_ovs.lab.netns import delete_ns

        errors = []
        while self.created:
            name = self.created.pop()
            try:
                delete_ns(name)
            except Exception as e:  # keep deleting the others
                errors.append("%s: %s" % (name, e))
        if errors:
            raise RuntimeError("namespace cleanup failed: " + "; ".join(errors))


@pytest.fixture(scope="session")
def lab_prefix() -> str:
    """Random per-session prefix, e.g. 'xa3f9c' (6 chars)."""
    return "x" + secrets.token_hex(3)[:5]


@pytest.fixture(scope="session")
def session_netns(lab_prefix):
    """Namespace factory whose namespaces live until the end of the session:
    ``ns = session_netns("ovs")`` -> '<prefix>-ovs'."""
    ns = Namespaces(lab_prefix)
    yield ns
    ns.cleanup()


@pytest.fixture
def netns(lab_prefix, request):
    """Namespace factory for one test (deleted at the end of the test, even on
    failure): ``a = netns("a")`` -> '<prefix>-t<N>a'. Keep suffixes short."""
    counter = getattr(request.session, "_xf_ns_counter", 0) + 1
    request.session._xf_ns_counter = counter
    ns = Namespaces("%s-t%d" % (lab_prefix, counter))
    yield ns
    ns.cleanup()


@pytest.fixture
def short_tmp():
    """A short temp dir under /tmp (unix socket paths must stay < 108 bytes)."""
    d = tempfile.mkdtemp(prefix="xf-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


# --- private Open vSwitch --------------------------------------------------------

@pytest.fixture(scope="session")
def ovs(session_netns):
    """A started private OvsInstance for the whole session, its daemons running
    inside namespace '<prefix>-ovs' (``ovs.netns``): put the OVS ends of veths
    there. Create bridges with ``ovs.add_bridge(name)`` and delete your own
    bridges when done (``ovs.vsctl("del-br", name)``). Stopped at session end."""
    require_root()
    from xenoflow_ovs.lab.ovs_instance import OvsInstance

    ns = session_netns("ovs")
    rundir = tempfile.mkdtemp(prefix="xf-ovs-")
    inst = OvsInstance(rundir, netns=ns)
    try:
        inst.start()
        yield inst
    finally:
        inst.stop()
        shutil.rmtree(rundir, ignore_errors=True)

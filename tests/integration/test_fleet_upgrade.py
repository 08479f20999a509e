"""`xenoflow fleet upgrade`: a store made with the previous schema (1.0.0: no DPU drains, no
BGP columns) is converted in place and keeps its contents; a second run changes nothing."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

pytestmark = [pytest.mark.ovs]

# the columns added since 1.0.0 (1.1.0: drains and announcements; 1.2.0: backends' ip6)
NEW_COLUMNS = {"Fleet": ("drained_dpus",), "DPU": ("announce_why", "quiet", "bgp"), "Backend": ("ip6",)}


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "fleet"] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)


@pytest.fixture
def old_store():
    if not shutil.which("ovsdb-server"):
        pytest.skip("needs ovsdb-server (scripts/install-deps.sh)")
    from xenoflow_ovs.fleet.store import SCHEMA
    d = tempfile.mkdtemp(prefix="xf-upg-")      # short: a unix socket path < 108 bytes
    with open(SCHEMA) as f:
        schema = json.load(f)
    schema["version"] = "1.0.0"
    for table, cols in NEW_COLUMNS.items():
        for c in cols:
            del schema["tables"][table]["columns"][c]
    old = os.path.join(d, "old.ovsschema")
    with open(old, "w") as f:
        json.dump(schema, f)
    db, sock = os.path.join(d, "s.db"), os.path.join(d, "s.sock")
    subprocess.run(["ovsdb-tool", "create", db, old], check=True)
    p = subprocess.Popen(["ovsdb-server", "--remote=punix:" + sock, "--unixctl=" + os.path.join(d, "s.ctl"),
                          "--log-file=" + os.path.join(d, "s.log"), db])
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            subprocess.run(["sleep", "0.05"])
        txn = ["xenoflow", {"op": "insert", "table": "Fleet",
                            "row": {"version": 7, "health_seq": 3, "health_window": 3}}]
        subprocess.run(["ovsdb-client", "transact", "unix:" + sock, json.dumps(txn)], check=True,
                       stdout=subprocess.PIPE)
        yield "unix:" + sock
    finally:
        p.terminate()
        p.wait(10)
        shutil.rmtree(d, ignore_errors=True)


def test_upgrade_converts_an_older_store_and_keeps_its_contents(old_store):
    r = _cli("upgrade", "--db", old_store)
    assert r.returncode == 0, r.stderr
    from xenoflow_ovs.fleet.store import SCHEMA
    with open(SCHEMA) as f:
        current = json.load(f)["version"]
    assert "from schema 1.0.0 to %s" % current in r.stdout, r.stdout
    r = _cli("status", "--json", "--db", old_store)
    assert r.returncode == 0, r.stderr
    view = json.loads(r.stdout)
    assert view["version"] == 7 and view["drained_dpus"] == [], view
    again = _cli("upgrade", "--db", old_store)
    assert again.returncode == 0 and "already" in again.stdout, again.stdout

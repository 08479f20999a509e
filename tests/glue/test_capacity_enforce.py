"""The eSwitch's limits through eswitchd's own driver and state over softdoca: the declared
capacity (dpu.eswitch.capacity) reaches softdoca, which fails past it as the hardware does
(DOCA_ERROR_DRIVER), and eswitchd refuses the whole change, leaving nothing of it behind;
each port's actions memory follows the intent, and softdoca refuses past it."""
from __future__ import annotations

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, "capacity_child.py")


def run(glue, scenario, timeout=300, **kwargs):
    kwargs.setdefault("prefix", glue.file_prefix("cap"))
    proc = subprocess.run([sys.executable, CHILD, scenario, json.dumps(kwargs)], env=glue.env(),
                          capture_output=True, text=True, timeout=timeout, cwd="/", check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, "rc=%s\n%s\n%s" % (proc.returncode, proc.stdout[-2000:],
                                                               proc.stderr[-3000:])
    return json.loads(lines[-1][len("RESULT "):])


def test_declared_capacity_refuses_whole_changes(glue):
    r = run(glue, "limits")
    # 8 buckets, dispatch, 3 route entries (the route without dst: both families)
    assert r["install"]["done"]["add"] == 8 + 1 + 3, r
    # 2^4 buckets in a pipe of at most 8: the 9th add fails, the new pipe goes again
    assert r["entries"] == {"doca_error": "DOCA_ERROR_DRIVER", "call": r["entries"]["call"],
                            "unchanged": True}, r
    assert "add" in r["entries"]["call"], r
    assert "done" in r["second_service"], r
    # root + 2 service pipes fill the port: a reshaped pipe is refused at create
    assert r["pipes"] == {"doca_error": "DOCA_ERROR_DRIVER", "call": "doca_flow_pipe_create",
                          "unchanged": True}, r
    assert r["fits_after"]["done"]["update"] > 0, r
    assert r["entries_installed"] == 2 * (8 + 1) + 3, r


def test_actions_memory_follows_the_intent(glue):
    """3 services x 2^16 buckets on one port: more entries with actions than the fixed 2^17
    every port had before; eswitchd sizes the port for them and they install."""
    r = run(glue, "actions", start_bits=16, then_bits=16, n=3, timeout=600)
    assert r["action_entries"]["p0"] == 1 << 19 and r["action_entries"]["p1"] == 1024, r
    assert r["install"]["done"]["add"] == 3 * (65536 + 1) + 3, r


def test_actions_memory_is_refused_past_its_size(glue):
    """Started for one 2-bucket service (the floor: 1024 entries with actions), a reload to
    2^11 buckets does not fit: softdoca refuses it (DOCA_ERROR_NO_MEMORY) and nothing of it
    stays; started for 2^11, the same service installs."""
    r = run(glue, "actions", start_bits=1, then_bits=11)
    assert r["action_entries"]["p0"] == 1024 and "done" in r["install"], r
    assert r["reload"]["doca_error"] == "DOCA_ERROR_NO_MEMORY" and r["reload"]["unchanged"], r
    r = run(glue, "actions", start_bits=11, then_bits=11)
    assert r["action_entries"]["p0"] == 1 << 13 and r["install"]["done"]["add"] == 2048 + 1 + 3, r

"""Runtime: transitions apply OVS adds, then the eSwitch, then OVS deletes; failures revert."""

import os

import pytest

from xenoflow_ovs.controller.runtime import Conflict, Runtime, TransitionError
from xenoflow_ovs.intent import config, plan

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(ROOT, "topologies", "paper", "xenoflow.yaml")


class Recorder:
    """The OVS side as a list of applied changes, folded into a flow table."""

    def __init__(self, fail_on=None):
        self.calls = []
        self.flows = {}
        self.fail_on = fail_on

    def __call__(self, changes):
        self.calls.append([(c.op, c.item.kind) for c in changes])
        for c in changes:
            if self.fail_on and self.fail_on(c):
                raise RuntimeError("switch said no")
            if c.op == "delete":
                del self.flows[c.item.key]
            else:
                self.flows[c.item.key] = c.item


def none_cfg():
    data = config.to_data(config.load(PAPER))
    data["dpu"]["eswitch"]["driver"] = "none"
    return config.from_data(data, base_dir=os.path.dirname(PAPER))


def test_first_transition_installs_the_plan_and_drain_moves_buckets():
    rec = Recorder()
    rt = Runtime(none_cfg(), rec)
    rt.start()
    rt.in_force = plan.Plan((), (), ())
    rt.transition(why="initial")
    assert set(rec.flows) == {f.key for f in rt.desired().flows}
    out = rt.drain("dns", "fips3")
    assert out["ovs"] >= 1 and not rt.in_service("dns", "fips3")
    assert {f.backend for f in rec.flows.values() if f.kind == "service"} == {"fips2"}
    with pytest.raises(Conflict):
        rt.drain("dns", "fips2")            # the last one in service
    with pytest.raises(LookupError):
        rt.drain("dns", "nobody")
    rt.drain("dns", "fips3", on=False)
    assert {f.backend for f in rec.flows.values() if f.kind == "service"} == {"fips2", "fips3"}


def test_ovs_failure_reverts_and_keeps_the_old_state():
    rec = Recorder()
    rt = Runtime(none_cfg(), rec)
    rt.transition(why="initial")
    before = dict(rec.flows)
    rec.fail_on = lambda c: c.op in ("add", "modify") and c.item.kind == "service"
    with pytest.raises(TransitionError):
        rt.drain("dns", "fips3")
    rec.fail_on = None
    assert rec.flows == before and rt.in_service("dns", "fips3")


def test_edit_is_validated_like_a_file_and_reload_forgets_vanished_backends():
    rec = Recorder()
    rt = Runtime(none_cfg(), rec)
    rt.transition(why="initial")
    rt.drain("dns", "fips3")

    def add(data):
        data["services"][0]["policy"]["bits"] = 2
        data["services"][0]["backends"].append({"name": "fips6", "ip": "198.18.0.6",
                                                "mac": "02:00:c6:12:00:06", "weight": 1})
    rt.edit(add, "add fips6")
    assert "fips6" in {f.backend for f in rec.flows.values() if f.kind == "service"}
    with pytest.raises(config.ConfigError):
        rt.edit(lambda d: d["services"][0]["backends"].append(
            {"name": "bad", "ip": "nope", "mac": "02:00:c6:12:00:07"}), "bad")
    rt.edit(lambda d: d["services"][0]["backends"].pop(1), "remove fips3")
    assert rt.drained == {"dns": set()}



def test_every_kind_of_change_is_marked_as_a_transition_while_it_applies():
    """The app pauses its own reconcile while `transitions` > 0; drains, health changes,
    API edits and reloads must all say so, or the reconcile (still holding the old plan)
    would "repair" the new flows away mid-change."""
    seen = []
    rt = None

    def apply(changes):
        if changes:
            seen.append(rt.transitions)
    rt = Runtime(none_cfg(), apply)
    rt.transition(why="initial")
    rt.drain("dns", "fips3")
    rt.set_health("dns", "fips2", False)
    rt.set_health("dns", "fips2", True)
    rt.edit(lambda d: d["services"][0]["policy"].update(bits=2), "edit")
    rt.reload(none_cfg())
    assert len(seen) >= 6 and all(n == 1 for n in seen), seen
    assert rt.transitions == 0

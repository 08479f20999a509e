"""The operator's overlay: edits recorded minimally, written atomically (0600), applied on
top of the config file (the overlay wins for what it names), edits of backends the file
no longer has dropped and reported, a bad file refused with one line naming it."""

import json
import os
import stat

import pytest

from xenoflow_ovs import overlay as ov
from xenoflow_ovs.controller import status
from xenoflow_ovs.controller.runtime import Runtime
from xenoflow_ovs.intent import config
from xenoflow_ovs.intent import overlay as pure
from xenoflow_ovs.overlay_cli import cmd_state

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(ROOT, "topologies", "paper", "xenoflow.yaml")
FIPS4 = {"ip": "198.18.0.4", "mac": "02:00:c6:12:00:04"}


def cfg_data(bits=2, extra_backend=False):
    data = config.to_data(config.load(PAPER))
    data["dpu"]["eswitch"]["driver"] = "none"
    data["services"][0]["policy"]["bits"] = bits
    if extra_backend:
        data["services"][0]["backends"].append(dict(FIPS4, name="fips4", weight=1))
    return data


def cfg_of(data):
    return config.from_data(data, base_dir=os.path.dirname(PAPER))


def E(op, backend, service="dns", **kw):
    return dict(kw, op=op, service=service, backend=backend)


class Ovs:
    def __init__(self):
        self.flows = {}

    def __call__(self, changes):
        for c in changes:
            if c.op == "delete":
                self.flows.pop(c.item.key, None)   # start() leaves OVS to the app
            else:
                self.flows[c.item.key] = c.item


def runtime(cfg, file):
    rt = Runtime(cfg, Ovs())
    ov.attach(rt, file)
    rt.start()
    return rt


# -- recording ----------------------------------------------------------------------


def test_record_keeps_one_edit_per_backend_and_kind():
    edits = pure.record([], E("drain", "fips2"))
    edits = pure.record(edits, E("drain", "fips2"))
    edits = pure.record(edits, E("weight", "fips3", weight=2))
    edits = pure.record(edits, E("weight", "fips3", weight=3))
    assert edits == [E("drain", "fips2"), E("weight", "fips3", weight=3)]
    assert pure.record(edits, E("undrain", "fips2")) == [E("weight", "fips3", weight=3)]


def test_removing_a_backend_the_overlay_added_leaves_no_trace_one_from_the_file_is_remembered():
    edits = pure.record([], E("add", "fips4", weight=1, **FIPS4))
    edits = pure.record(edits, E("weight", "fips4", weight=5))
    assert edits == [E("add", "fips4", weight=5, **FIPS4)]      # folded into its add
    assert pure.record(edits, E("remove", "fips4")) == []
    edits = pure.record([E("weight", "fips3", weight=2), E("drain", "fips3")], E("remove", "fips3"))
    assert edits == [E("remove", "fips3")]
    # removed from the file, then added again through the API: replayed in that order
    edits = pure.record(edits, E("add", "fips3", weight=1, ip="198.18.0.33", mac="02:00:c6:12:00:33"))
    assert [e["op"] for e in edits] == ["remove", "add"]


def test_check_refuses_what_is_not_an_overlay():
    for doc in ({}, {"edits": {}}, {"edits": [{"op": "explode", "service": "a", "backend": "b"}]},
                {"edits": [E("weight", "fips2", weight="2")]}, {"edits": [E("drain", "fips2", extra=1)]},
                {"version": 99, "edits": []}, {"edits": [E("add", "fips4", weight=1)]}):
        with pytest.raises(pure.OverlayError):
            pure.check(doc)
    assert pure.check({"version": 1, "edits": [E("drain", "fips2")]}) == [E("drain", "fips2")]


# -- the file -----------------------------------------------------------------------


def test_write_is_atomic_owner_only_and_read_back(tmp_path):
    f = str(tmp_path / "state" / "overlay.json")
    ov.write(f, [E("drain", "fips2")])
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    assert ov.read(f) == [E("drain", "fips2")]
    assert os.listdir(os.path.dirname(f)) == ["overlay.json"]     # no temporary left behind
    ov.write(f, [])
    assert json.load(open(f)) == {"version": 1, "edits": []}
    assert ov.read(str(tmp_path / "nothing.json")) == []


def test_a_failed_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
    f = str(tmp_path / "overlay.json")
    ov.write(f, [E("drain", "fips2")])

    def boom(*a):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(ov.os, "replace", boom)
    with pytest.raises(OSError):
        ov.write(f, [E("drain", "fips3")])
    assert ov.read(f) == [E("drain", "fips2")]
    assert sorted(os.listdir(tmp_path)) == ["overlay.json"]


def test_a_bad_file_is_refused_with_one_line_naming_it(tmp_path):
    f = tmp_path / "overlay.json"
    f.write_text("{not json")
    with pytest.raises(ov.OverlayError) as exc:
        ov.attach(Runtime(cfg_of(cfg_data()), Ovs()), str(f))
    msg = str(exc.value)
    assert str(f) in msg and "\n" not in msg and "state clear" in msg


# -- applied on start, precedence, dropped -------------------------------------------


def test_drain_weight_add_remove_survive_a_restart(tmp_path):
    f = str(tmp_path / "overlay.json")
    cfg = cfg_of(cfg_data(bits=2))
    rt = runtime(cfg, f)
    rt.drain("dns", "fips2")
    rt.edit(lambda d: d["services"][0]["backends"].append(dict(FIPS4, name="fips4", weight=1)),
            "add", E("add", "fips4", weight=1, **FIPS4))
    rt.edit(lambda d: d["services"][0]["backends"][1].update(weight=3), "weight",
            E("weight", "fips3", weight=3))
    before = (rt.in_force.tables, rt.drained)

    again = runtime(cfg, f)                       # a restart: the same file, a new process
    assert (again.in_force.tables, again.drained) == before
    assert again.drained == {"dns": {"fips2"}}
    assert again.cfg.service("dns").backend("fips3").weight == 3
    assert [b.name for b in again.cfg.service("dns").backends] == ["fips2", "fips3", "fips4"]
    st = status.build(again, {}, "consistent")
    assert st["overlay"] == {"path": f, "edits": 3, "dropped": []}
    # undrain and remove are remembered too
    again.drain("dns", "fips2", on=False)
    again.edit(lambda d: d["services"][0]["backends"].pop(2), "remove", E("remove", "fips4"))
    third = runtime(cfg, f)
    assert third.drained == {} and [b.name for b in third.cfg.service("dns").backends] == ["fips2", "fips3"]


def test_the_overlay_wins_over_the_file_for_what_it_names(tmp_path):
    f = str(tmp_path / "overlay.json")
    ov.write(f, [E("weight", "fips3", weight=3)])
    data = cfg_data(bits=2)
    data["services"][0]["backends"][0]["weight"] = 2     # the file changes fips2: kept
    data["services"][0]["backends"][1]["weight"] = 7     # and fips3: the overlay's 3 wins
    rt = runtime(cfg_of(data), f)
    assert [(b.name, b.weight) for b in rt.cfg.service("dns").backends] == [("fips2", 2), ("fips3", 3)]


def test_a_reload_that_drops_a_backend_drops_its_edits_and_reports_them(tmp_path):
    f = str(tmp_path / "overlay.json")
    rt = runtime(cfg_of(cfg_data(extra_backend=True)), f)
    rt.drain("dns", "fips4")
    rt.edit(lambda d: d["services"][0]["backends"][1].update(weight=2), "w", E("weight", "fips3", weight=2))
    out = rt.reload(cfg_of(cfg_data()), why="reload")     # the file no longer has fips4
    assert out["overlay_dropped"] == ["dns/fips4"]
    assert rt.drained == {}
    assert ov.read(f) == [E("weight", "fips3", weight=2)]  # the file forgot it
    assert status.build(rt, {}, "consistent")["overlay"]["dropped"] == ["dns/fips4"]
    # fips4 back in the file: it is not drained again (its edit is gone for good)
    rt.reload(cfg_of(cfg_data(extra_backend=True)), why="reload")
    assert rt.drained == {} and rt.cfg.service("dns").backend("fips3").weight == 2


def test_a_refused_reload_keeps_the_overlay(tmp_path):
    f = str(tmp_path / "overlay.json")
    rt = runtime(cfg_of(cfg_data(extra_backend=True)), f)
    rt.drain("dns", "fips4")

    def refuse(changes):
        if changes:
            raise RuntimeError("switch said no")
    rt.ovs_apply = refuse
    with pytest.raises(Exception):
        rt.reload(cfg_of(cfg_data()), why="reload")
    assert ov.read(f) == [E("drain", "fips4")] and rt.drained == {"dns": {"fips4"}}


def test_edits_the_config_cannot_take_are_dropped_on_start_the_rest_applies(tmp_path):
    f = str(tmp_path / "overlay.json")
    ov.write(f, [E("drain", "ghost"), E("weight", "fips2", service="nosuch", weight=2),
                 E("add", "fips4", ip="198.18.0.3", mac="02:00:c6:12:00:03", weight=1),   # fips3's address
                 E("add", "fips2", weight=1, **FIPS4),                                     # the file has it
                 E("drain", "fips3")])
    rt = runtime(cfg_of(cfg_data()), f)
    assert rt.drained == {"dns": {"fips3"}}
    assert [b.name for b in rt.cfg.service("dns").backends] == ["fips2", "fips3"]
    assert rt.overlay.dropped == ["dns/ghost", "nosuch/fips2", "dns/fips4", "dns/fips2"]
    assert ov.read(f) == [E("drain", "fips3")]


def test_a_write_that_fails_is_reported_not_hidden(tmp_path):
    rt = runtime(cfg_of(cfg_data()), str(tmp_path / "dir" / "overlay.json"))
    (tmp_path / "dir").write_text("a file where the directory should be")   # fails even as root
    out = rt.drain("dns", "fips2")
    assert "cannot write" in out["overlay_error"]
    assert "error" in status.build(rt, {}, "consistent")["overlay"]
    assert rt.drained == {"dns": {"fips2"}}        # applied, though not durable


def test_state_show_and_clear(tmp_path, monkeypatch, capsys):
    f = tmp_path / "overlay.json"
    monkeypatch.setenv("XENOFLOW_OVERLAY", str(f))
    ov.write(str(f), [E("drain", "fips2"), E("drain", "ghost")])
    args = type("A", (), {"config": PAPER, "action": "show", "json": False})
    assert cmd_state(args) == 0
    out = capsys.readouterr().out
    assert "drain dns/fips2" in out and "ghost" in out and "dropped on start" in out
    args.json = True
    assert cmd_state(args) == 0
    assert json.loads(capsys.readouterr().out)["drained"] == {"dns": ["fips2"]}
    args.action = "clear"
    assert cmd_state(args) == 0 and not f.exists()
    assert cmd_state(args) == 0 and "nothing to clear" in capsys.readouterr().out
    f.write_text("[]")
    args.action, args.json = "show", False
    assert cmd_state(args) == 2


def test_the_lab_expects_what_the_controller_runs_overlay_included(tmp_path):
    """`lab up` waits for, and `lab demo` checks against, the plan with the operator's
    changes on top: a drain kept in the run dir is not 'not programmed'."""
    from xenoflow_ovs.intent import plan as plan_mod
    from xenoflow_ovs.lab.planes import PlaneReadings
    data = cfg_data(bits=1)
    data["dpu"]["state_dir"] = str(tmp_path)
    cfg = cfg_of(data)
    readings = PlaneReadings(lambda: cfg, str(tmp_path), lambda: None)
    plain = plan_mod.plan(cfg)
    assert readings.planned().table("dns") == plain.table("dns")     # no overlay: the file's
    ov.write(ov.path(cfg), [E("drain", "fips2")])
    assert set(readings.planned().table("dns")) == {"fips3"}
    assert readings.planned_counts() != {br.name: len(plain.bridge_flows(br.name)) for br in cfg.bridges}

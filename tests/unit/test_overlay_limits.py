"""Rate limits set at run time are operator edits: kept in the overlay, replayed on a restart,
winning over the file, one per service; a limits edit the config cannot take is dropped."""
from __future__ import annotations

import os

import pytest

from xenoflow_ovs import overlay as ov
from xenoflow_ovs.controller.runtime import Runtime
from xenoflow_ovs.intent import config
from xenoflow_ovs.intent import overlay as pure

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(ROOT, "topologies", "paper", "xenoflow.yaml")


def cfg_of(limits=None):
    data = config.to_data(config.load(PAPER))
    data["dpu"]["eswitch"]["driver"] = "none"
    data["services"][0]["policy"]["bits"] = 2
    if limits is not None:
        data["services"][0]["limits"] = limits
    return config.from_data(data, base_dir=os.path.dirname(PAPER))


def L(limits, service="dns"):
    return {"op": "limits", "service": service, "limits": limits}


def runtime(cfg, file):
    rt = Runtime(cfg, lambda changes: None)
    ov.attach(rt, file)
    rt.start()
    return rt


def set_limits(rt, limits):
    def mutate(data):
        if limits is None:
            data["services"][0].pop("limits", None)
        else:
            data["services"][0]["limits"] = limits
    return rt.edit(mutate, "limits", L(limits))


def test_record_keeps_the_last_limits_edit_per_service_beside_backend_edits():
    edits = pure.record([], {"op": "weight", "service": "dns", "backend": "fips3", "weight": 2})
    edits = pure.record(edits, L({"pps": 100}))
    edits = pure.record(edits, L({"per_bucket_pps": 5}))
    assert edits == [{"op": "weight", "service": "dns", "backend": "fips3", "weight": 2},
                     L({"per_bucket_pps": 5})]
    assert pure.names([L(None)]) == ["dns limits"]
    assert pure.describe(L({"pps": 100, "burst": 9})) == "limits dns burst=9 pps=100"


@pytest.mark.parametrize("edit,words", [
    ({"op": "limits", "service": "dns"}, "limits must be a mapping or null"),
    ({"op": "limits", "service": "dns", "limits": 5}, "limits must be a mapping or null"),
    ({"op": "limits", "service": "", "limits": None}, "service must be"),
    ({"op": "limits", "service": "dns", "backend": "fips2", "limits": None}, "unknown key(s) backend"),
])
def test_check_refuses_malformed_limits_edits(edit, words):
    with pytest.raises(pure.OverlayError) as exc:
        pure.check({"version": 1, "edits": [edit]})
    assert words in str(exc.value)


def test_limits_set_and_removed_at_run_time_survive_a_restart_and_win_over_the_file(tmp_path):
    f = str(tmp_path / "overlay.json")
    rt = runtime(cfg_of(), f)
    set_limits(rt, {"per_bucket_pps": 200, "per_bucket_burst": 20})
    again = runtime(cfg_of(), f)
    assert again.cfg.service("dns").limits.bucket == (200, 20)
    assert len(list(again.in_force.meters())) == 8, "4 buckets, 2 families: the meters are planned"
    # the file now says another limit: the operator's edit wins for what it names
    assert runtime(cfg_of({"pps": 9}), f).cfg.service("dns").limits.service is None
    set_limits(again, None)                        # removed at run time, though the file had none
    third = runtime(cfg_of({"pps": 9}), f)
    assert third.cfg.service("dns").limits.kind == "", "a removal is an edit too"


def test_a_limits_edit_the_config_cannot_take_is_dropped_the_rest_applies(tmp_path):
    f = str(tmp_path / "overlay.json")
    ov.write(f, [L({"burst": 5}), {"op": "weight", "service": "dns", "backend": "fips3", "weight": 3}])
    rt = runtime(cfg_of(), f)
    assert rt.cfg.service("dns").limits.kind == ""
    assert rt.cfg.service("dns").backend("fips3").weight == 3
    assert rt.overlay.view()["dropped"] == ["dns limits"]

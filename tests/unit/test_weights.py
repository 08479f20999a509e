"""Weights the bucket table cannot express: warned about, naming the bits that would; a
weight change that cannot change the split changes no bucket; moved_buckets counts every
bucket whose backend changes, in either plane."""

import os

from xenoflow_ovs.controller.runtime import Runtime
from xenoflow_ovs.intent import buckets, config, plan

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(ROOT, "topologies", "paper", "xenoflow.yaml")


def cfg(bits=1, weights=(1, 1), driver="softdoca", kind="src-ip-bits"):
    data = config.to_data(config.load(PAPER))
    data["dpu"]["eswitch"]["driver"] = driver
    data["services"][0]["policy"] = {"kind": kind, "bits": bits}
    for b, w in zip(data["services"][0]["backends"], weights):
        b["weight"] = w
    return config.from_data(data, base_dir=os.path.dirname(PAPER))


class FakeEswitch:
    def __init__(self):
        self.applied = []

    def installed(self):
        return [], []

    def apply(self, changes):
        self.applied.append(list(changes))
        return {"ok": True}

    def counters(self):
        return {"entries": [], "ports": {}}


def test_realisable_weights_warn_nothing():
    assert buckets.weight_warnings(cfg(1).services[0]) == []
    assert buckets.weight_warnings(cfg(2, (1, 3)).services[0]) == []
    assert buckets.weight_warnings(cfg(1, (1, 0)).services[0]) == []     # one backend in service


def test_unrealisable_weights_name_the_exact_bits():
    (w,) = buckets.weight_warnings(cfg(1, (1, 3)).services[0])
    assert "fips2=1 fips3=3" in w and "2 bucket(s)" in w and "fips2=1/2 fips3=1/2" in w
    assert "bits: 2 expresses them exactly" in w
    (w,) = buckets.weight_warnings(cfg(2, (3, 5), kind="src-port-bits").services[0])
    assert "bits: 3 expresses them exactly" in w


def test_weights_no_power_of_two_expresses_name_the_bits_that_come_close():
    (w,) = buckets.weight_warnings(cfg(1, (1, 2)).services[0])
    assert "no number of bits expresses them exactly" in w
    assert "bits: 6 comes within 1%" in w                 # 21/64 vs 1/3: 0.5%; 10/32: 2%


def test_weights_that_give_the_same_shares_give_the_same_table():
    assert buckets.table(cfg(1, (1, 2)).services[0]) == buckets.table(cfg(1, (1, 1)).services[0])
    assert buckets.table(cfg(2, (1, 2)).services[0]) == buckets.table(cfg(2, (1, 3)).services[0])
    # realisable weights keep the table they always had (the paper's split)
    assert buckets.table(cfg(1).services[0]) == ("fips2", "fips3")
    assert buckets.table(cfg(2, (1, 3)).services[0]) == ("fips3", "fips2", "fips3", "fips3")


def test_a_weight_change_that_cannot_change_the_split_changes_nothing():
    es = FakeEswitch()
    rt = Runtime(cfg(1), lambda changes: None, eswitch=es)
    rt.start()
    out = rt.reload(cfg(1, (1, 2)), why="weight fips3=2")
    assert (out["ovs"], out["eswitch"], out["moved_buckets"]) == (0, 0, 0)
    assert len(out["warnings"]) == 1 and "bits: 6" in out["warnings"][0]


def test_moved_buckets_counts_in_either_plane():
    rt = Runtime(cfg(2, driver="none"), lambda changes: None)     # OVS alone: no eSwitch updates
    rt.start()
    # (fips2 fips3 fips2 fips3) -> (fips3 fips2 fips3 fips3): three sources change backend
    assert rt.reload(cfg(2, (1, 3), driver="none"))["moved_buckets"] == 3
    assert rt.drain("dns", "fips2")["moved_buckets"] == 1
    es = FakeEswitch()
    rt = Runtime(cfg(1), lambda changes: None, eswitch=es)
    rt.start()
    # bits 1 -> 2: a new pipe (adds, no eSwitch update), yet sources move:
    # (fips2 fips3) -> (fips3 fips2 fips3 fips3), bucket i of 4 was bucket i mod 2
    out = rt.reload(cfg(2, (1, 3)))
    assert out["moved_buckets"] == 3 and not any(c.op == "update" and c.item.kind == "bucket"
                                             for c in es.applied[-1])


def test_moved_compares_tables_of_different_sizes_on_the_finer():
    assert buckets.moved(("a", "b"), ("a", "b", "a", "b")) == 0
    assert buckets.moved(("a", "b"), ("b", "b", "a", "b")) == 1
    assert buckets.moved(("a", "b", "a", "a"), ("a", "b")) == 1
    p1 = plan.plan(cfg(1))
    assert plan.moved_buckets(plan.Plan((), (), ()), p1) == 0     # a new service moves nothing

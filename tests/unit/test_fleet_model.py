"""The fleet's pure parts: the store's rows <-> config data, validation against every DPU's
facts, the edits, the health agreement rule, the digests, and the follower's choices
(apply, reject and keep the last good version, local health while cut off)."""

import json

import pytest
import yaml

from xenoflow_ovs.fleet import agreement, edits, follower, model
from xenoflow_ovs.intent import config
from xenoflow_ovs.intent.plan import plan

PAPER = "topologies/paper/xenoflow.yaml"


def paper():
    return config.load(PAPER)


def snapshot(cfg=None, version=1, dpus=None):
    cfg = cfg or paper()
    rows = model.rows_of(config.to_data(cfg)["services"])
    for s in rows:
        for b in s["backends"]:
            b.update(drained=False, health="up", health_seq=0, health_why="")
    return {"version": version, "health_seq": 0, "health_window": 3, "external_ids": {},
            "services": rows, "dpus": dpus if dpus is not None else {"dpu1": {"facts": model.facts_of(cfg)}}}


# ---------------------------------------------------------------- mapping


def test_services_round_trip_through_the_store_rows():
    data = config.to_data(paper())
    rows = model.rows_of(data["services"])
    # the store holds the transports as a set, an IPv6 VIP and the backends' ip6 as optional columns
    assert rows[0]["protocols"] == ["tcp", "udp"]
    assert rows[0]["policy_kind"] == data["services"][0]["policy"]["kind"]
    assert rows[0]["vip6"] == ["2001:db8::53"] and rows[0]["backends"][0]["ip6"] == ["2001:db8::2"]
    assert rows[0]["health"]["enabled"] in ("true", "false")       # a map of strings in the store
    back = model.services_of(rows)
    assert back == data["services"]
    # the DPU's config from its local part and the store's services is the file's config
    again = model.compose(model.local_data(paper()), back)
    assert config.to_data(again) == data


def test_store_order_is_kept_and_drains_and_health_become_the_intent():
    snap = snapshot()
    svc = snap["services"][0]
    svc["backends"].reverse()                 # rows come in any order: position decides
    svc["backends"][0].update(drained=True)
    svc["backends"][1].update(health="down")
    intent = model.intent_of(snap)
    assert [b["name"] for b in intent.services[0]["backends"]] == ["fips2", "fips3"]
    names = {b["name"] for b in svc["backends"]}
    assert set().union(*intent.drained.values(), *intent.down.values()) == names


def test_limits_map_through_the_store_and_bad_ones_are_refused_naming_the_key():
    rows = model.rows_of(config.to_data(paper())["services"])
    rows[0]["limits"] = {"pps": 1000, "per_bucket_pps": 50}
    services = model.services_of(rows)
    ctx = {"dpu1": {"facts": model.facts_of(paper())}}
    assert model.validate(services, ctx) == []
    assert model.rows_of(services)[0]["limits"] == {"pps": 1000, "per_bucket_pps": 50}
    cfg = model.compose(json.loads(model.facts_of(paper())), services)
    assert cfg.services[0].limits.service == (1000, 100) and cfg.services[0].limits.bucket == (50, 5)
    rows[0]["limits"] = {"burst": 10}
    lines = model.validate(model.services_of(rows), ctx)
    assert lines == ["dpu dpu1: services[0].limits.burst: a burst needs its rate: set pps too"]


def test_a_limits_edit_is_validated_then_written_and_removed():
    snap = snapshot()
    rows = edits.limits_edit("dns", {"per_bucket_pps": 100})(snap["services"], snap)
    assert rows[0]["limits"] == {"per_bucket_pps": 100}
    assert all(b.get("health") == "up" for b in rows[0]["backends"]), "drain and health carried"
    with pytest.raises(model.FleetError) as bad:
        edits.limits_edit("dns", {"pps": 0})(snapshot()["services"], snapshot())
    assert "services[0].limits.pps" in bad.value.lines[0]
    with pytest.raises(model.FleetError):
        edits.limits_edit("dns", {"pps": "fast"})(snapshot()["services"], snapshot())
    with pytest.raises(LookupError):
        edits.limits_edit("nope", {"pps": 1})(snapshot()["services"], snapshot())
    snap["services"] = rows
    assert edits.limits_edit("dns", None)(rows, snap)[0]["limits"] == {}


def test_validation_names_every_dpu_and_the_key_path():
    cfg = paper()
    services = config.to_data(cfg)["services"]
    services[0]["ingress"] = "p9"
    lines = model.validate(services, {"dpu1": {"facts": model.facts_of(cfg)},
                                      "dpu2": {"facts": model.facts_of(cfg)}, "new": {"facts": ""}})
    assert lines == ["dpu dpu1: services[0].ingress: unknown port 'p9' (not in dpu.ports)",
                     "dpu dpu2: services[0].ingress: unknown port 'p9' (not in dpu.ports)"]


def test_declared_eswitch_capacity_of_a_dpu_refuses_an_edit():
    cfg = paper()
    data = config.to_data(cfg)
    data["dpu"]["eswitch"]["capacity"] = {"entries_per_pipe": 4}
    small = config.from_data(data)
    services = data["services"]
    services[0]["policy"] = {"kind": "maglev", "bits": 4}
    lines = model.validate(services, {"small": {"facts": model.facts_of(small)}})
    assert lines and all(line.startswith("dpu small: ") for line in lines)


# ---------------------------------------------------------------- edits


def run(mutate, snap):
    before = [dict(s, backends=[dict(b) for b in s["backends"]]) for s in snap["services"]]
    return mutate(before, snap)


def test_drain_marks_the_row_and_refuses_the_last_backend():
    snap = snapshot()
    after = run(edits.drain("dns", "fips2"), snap)
    assert [b["drained"] for b in after[0]["backends"]] == [True, False]
    snap["services"] = after
    with pytest.raises(edits.Conflict, match="last backend in service"):
        run(edits.drain("dns", "fips3"), snap)
    with pytest.raises(LookupError, match="no backend 'x'"):
        run(edits.drain("dns", "x"), snap)


def test_backend_edits_are_validated_and_keep_drains():
    snap = snapshot()
    with pytest.raises(model.FleetError, match="2 bucket.s. cannot hold 3 backends"):
        run(edits.backend_edit("add", "dns", "fips4", ip="198.18.0.4", mac="02:00:c6:12:00:04"), snap)
    snap["services"][0]["policy_bits"] = 2
    snap["services"][0]["backends"][1]["drained"] = True
    after = run(edits.backend_edit("add", "dns", "fips4", ip="198.18.0.4", mac="02:00:c6:12:00:04"), snap)
    assert [b["name"] for b in after[0]["backends"]] == ["fips2", "fips3", "fips4"]
    assert after[0]["backends"][1]["drained"] is True                 # kept across the edit
    with pytest.raises(model.FleetError) as e:
        run(edits.backend_edit("add", "dns", "x", ip="198.18.0.2", mac="02:00:c6:12:00:09"), snap)
    assert e.value.lines == ["dpu dpu1: services[0].backends[2].ip: duplicate backend ip 198.18.0.2 "
                             "(also backends[0])"]
    with pytest.raises(edits.Conflict):
        run(edits.backend_edit("add", "dns", "fips2", ip="198.18.0.9", mac="02:00:c6:12:00:09"), snap)
    after = run(edits.backend_edit("weight", "dns", "fips2", weight=3), snap)
    assert after[0]["backends"][0]["weight"] == 3
    after = run(edits.backend_edit("remove", "dns", "fips3"), snap)
    assert [b["name"] for b in after[0]["backends"]] == ["fips2"]


def test_import_validates_against_its_own_file_and_keeps_surviving_state():
    cfg = paper()
    snap = snapshot(dpus={})
    snap["services"][0]["backends"][0]["drained"] = True
    data = config.to_data(cfg)
    after = run(edits.import_services(data["services"], model.facts_of(cfg)), snap)
    assert after[0]["backends"][0]["drained"] is True
    assert snap["external_ids"]["facts"] == model.facts_of(cfg)      # the next edits' context
    bad = json.loads(json.dumps(data["services"]))
    bad[0]["egress"] = bad[0]["ingress"]
    with pytest.raises(model.FleetError, match="dpu <imported file>: services"):
        run(edits.import_services(bad), snap)


# ---------------------------------------------------------------- agreement


def health_snap(observations, seqs, health="up"):
    snap = snapshot(dpus={n: {"observations": {"dns/fips2": o} if o else {}, "observed_seq": s}
                          for (n, o), s in zip(observations.items(), seqs)})
    snap["health_seq"] = max(seqs)
    snap["services"][0]["backends"][0]["health"] = health
    return snap


def verdicts(snap):
    return [(v.backend, v.up) for v in agreement.decide(snap)]


def test_two_dpus_change_a_backend_only_when_both_agree():
    assert verdicts(health_snap({"a": "down", "b": "up"}, [5, 6])) == []
    assert verdicts(health_snap({"a": "down", "b": "down"}, [5, 6])) == [("fips2", False)]
    assert verdicts(health_snap({"a": "up", "b": "down"}, [5, 6], health="down")) == []
    assert verdicts(health_snap({"a": "up", "b": "up"}, [5, 6], health="down")) == [("fips2", True)]


def test_a_majority_decides_and_abstentions_do_not_count():
    assert verdicts(health_snap({"a": "down", "b": "down", "c": "up"}, [4, 5, 6])) == [("fips2", False)]
    assert verdicts(health_snap({"a": "down", "b": None, "c": None}, [4, 5, 6])) == [("fips2", False)]


def test_observations_go_stale_by_the_stores_sequence_not_by_clocks():
    # window 3 x 2 writers: an observation 6 or more writes old no longer counts
    snap = health_snap({"a": "down", "b": "down"}, [1, 7])
    assert agreement.fresh(snap["dpus"], 7, 3) == ["b"]
    assert verdicts(snap) == [("fips2", False)]                      # b alone decides
    snap = health_snap({"a": "down", "b": "up"}, [1, 7])
    assert verdicts(snap) == []


def test_a_verdict_is_written_once():
    snap = health_snap({"a": "down", "b": "down"}, [5, 6])
    after = run(edits.agree_health(), snap)
    be = after[0]["backends"][0]
    assert be["health"] == "down" and be["health_seq"] == 6 and "a down, b down" in be["health_why"]
    snap["services"] = after
    assert run(edits.agree_health(), snap) == after                  # nothing left to change


# ---------------------------------------------------------------- identical tables


def test_digests_ignore_local_facts_and_see_the_table():
    cfg = paper()
    other = config.to_data(cfg)
    other["dpu"]["name"] = "elsewhere"
    other["dpu"]["ports"]["p0"]["id"] = 7
    cfg2 = config.from_data(other)
    t1 = dict(plan(cfg).tables)
    t2 = dict(plan(cfg2).tables)
    assert model.digests(cfg, t1) == model.digests(cfg2, t2)
    drained = dict(plan(cfg, exclude={"dns": {"fips2"}}).tables)
    assert model.digests(cfg, drained) != model.digests(cfg, t1)


def test_differing_names_the_minority():
    dpus = {n: {"applied_version": 3, "digests": {"dns": d}} for n, d in
            (("a", "x"), ("b", "x"), ("c", "y"), ("d", "x"))}
    dpus["e"] = {"applied_version": 2, "digests": {"dns": "z"}}
    assert model.differing(dpus, 3) == {"dns": ["c"]}
    assert model.lagging(dpus, 3) == {"e": "on version 2 of 3"}


def dpu_row(version, observed_seq, **over):
    row = {"applied_version": version, "state": "ok", "stale": False, "verdict": "consistent",
           "announced": True, "announce_why": "announced", "error": "", "rejected_version": [],
           "observed_seq": observed_seq, "digests": {"dns": "x"}, "observations": {}, "counters": {},
           "quiet": False, "bgp": {"198.18.1.1": "Established, bfd up"}}
    row.update(over)
    return row


def test_dpu_rows_judge_every_dpu_of_a_snapshot():
    snap = snapshot(version=4, dpus={
        "dpu1": dpu_row(4, 30),
        "dpu2": dpu_row(3, 12, state="rejected", rejected_version=[4], error="ports: p9 missing",
                        verdict="drift", announced=False, announce_why="not forwarding the VIPs", bgp={})})
    snap.update(health_seq=31, drained_dpus=["dpu2"])
    rows = model.dpu_rows(snap)
    assert sorted(rows) == ["dpu1", "dpu2"]
    one, two = rows["dpu1"], rows["dpu2"]
    assert (one["applied_version"], one["verdict"], one["announced"]) == (4, "consistent", True)
    assert one["heard"]
    assert one["bgp"] == {"198.18.1.1": "Established, bfd up"} and not one["drained"] and one["error"] is None
    assert (two["state"], two["rejected_version"], two["error"]) == ("rejected", 4, "ports: p9 missing")
    assert two["drained"] and not two["heard"] and two["behind_by"] == 19
    assert two["announce_why"] == "not forwarding the VIPs"


# ---------------------------------------------------------------- config


def fleet_file(tmp_path, services=False, **fleet):
    data = config.to_data(paper())
    if not services:
        del data["services"]
    data["fleet"] = dict({"remotes": ["tcp:127.0.0.1:6640"]}, **fleet)
    path = tmp_path / "f.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_a_fleet_file_has_no_services(tmp_path):
    cfg = config.load(fleet_file(tmp_path, heartbeat=0.5))
    assert cfg.services == () and cfg.fleet.remotes == ("tcp:127.0.0.1:6640",) and cfg.fleet.heartbeat == 0.5
    with pytest.raises(config.ConfigError, match="services: with fleet: the services come from the store"):
        config.load(fleet_file(tmp_path, services=True))
    assert config.load(fleet_file(tmp_path, services=True), fleet_services=True).services
    for bad in ("db1:6640", "ssl:198.18.100.1:6640"):     # no TLS set up by the client: refused early
        with pytest.raises(config.ConfigError, match=r"fleet.remotes\[0\]: '%s' is not a store remote" % bad):
            config.load(fleet_file(tmp_path, remotes=[bad]))


# ---------------------------------------------------------------- the follower


class FakeRuntime:
    def __init__(self, cfg, refuse=False):
        self.cfg, self.refuse, self.started = cfg, refuse, True
        self.drained, self.down, self.calls = {}, {}, []

    def transition(self, cfg=None, drained=None, down=None, why=""):
        self.calls.append((why, down))
        if self.refuse:
            raise RuntimeError("eSwitch refused the change: DOCA_ERROR_NO_MEMORY")
        self.cfg = cfg or self.cfg
        if down is not None:
            self.down = down
        return {"ovs": 1, "eswitch": 0, "moved_buckets": 0}


class FakeMonitor:
    on_change = None
    states = {}

    def set_services(self, services):
        self.services = services


def make_follower(tmp_path, refuse=False):
    cfg = config.load(fleet_file(tmp_path))
    intent = model.intent_of(snapshot(version=4))
    f = follower.Follower(cfg, None, intent, str(tmp_path / "cache.json"))
    rt = FakeRuntime(model.compose(model.local_data(cfg), intent.services), refuse)
    f.attach(rt, FakeMonitor(), lambda: "consistent", lambda: None)
    return f, rt


def test_a_version_the_dpu_cannot_apply_is_rejected_and_the_last_good_one_stays(tmp_path):
    f, rt = make_follower(tmp_path, refuse=True)
    f.applied_version = 4
    snap = snapshot(version=5)
    f._follow(snap)
    assert f.state == "rejected" and f.rejected_version == 5 and f.applied_version == 4
    assert "DOCA_ERROR_NO_MEMORY" in f.error
    f._follow(snap)                                 # not retried until the store moves on
    assert len(rt.calls) == 1
    rt.refuse = False
    f._follow(snapshot(version=6))
    assert (f.state, f.applied_version, f.rejected_version) == ("ok", 6, None)
    assert follower.read_cache(f.cache).version == 6


class FakeStore:
    def __init__(self):
        self.live = True

    def connected(self):
        return self.live


def test_local_health_applies_only_while_cut_off(tmp_path):
    f, rt = make_follower(tmp_path)
    f.local_health("dns", "fips2", False, "timeout")          # no store: applied here
    assert rt.calls[-1][1] == {"dns": {"fips2"}} and f.local_down == {"dns": {"fips2"}}
    f.applied_version = 4
    f.store, f.write_failed = FakeStore(), "no answer"        # a relay's copy, writes failing
    f._follow(snapshot(version=4))
    assert len(rt.calls) == 1                                 # still cut off: kept
    f._follow(snapshot(version=5))                            # a new version meanwhile: kept on top
    assert rt.calls[-1][1] == {"dns": {"fips2"}} and f.local_down == {"dns": {"fips2"}}
    f.write_failed = None                                     # back: the agreed state wins
    f._follow(snapshot(version=5))
    assert rt.down == {} and f.local_down == {}

"""counters: totals are sums of deltas and survive flow replacement and removal."""

from xenoflow_ovs.controller.counters import Attribution, Counters
from xenoflow_ovs.intent import plan
from xenoflow_ovs.intent.plan import kind_of_cookie

SVC = ("service", "dns", "fips2")
SVC3 = ("service", "dns", "fips3")
ARP = ("arp", "dns", None)
ROUTE = ("route", "pf1hpf->p1 0.0.0.0/0", None)
F1 = ("ovsbr1", 0, 201, (("x", 0, None),))
F2 = ("ovsbr1", 0, 201, (("x", 1, None),))
R1 = ("ovsbr2", 0, 100, ())


def test_deltas_accumulate_per_attribution():
    c = Counters()
    c.poll("ovsbr1", [(F1, SVC, 10, 1000), (F2, SVC3, 5, 500)])
    c.poll("ovsbr1", [(F1, SVC, 15, 1500), (F2, SVC3, 5, 500)])
    assert c.totals() == {SVC: (15, 1500), SVC3: (5, 500)}


def test_a_reset_flow_counts_from_zero_and_keeps_the_past():
    c = Counters()
    c.poll("ovsbr1", [(F1, SVC, 10, 1000)])
    c.poll("ovsbr1", [(F1, SVC, 3, 300)])          # re-added between polls
    assert c.totals()[SVC] == (13, 1300)


def test_removed_flow_reports_its_final_delta_then_a_new_one_starts_at_zero():
    c = Counters()
    c.poll("ovsbr1", [(F1, SVC, 10, 1000)])
    c.removed(F1, 12, 1200)                        # FlowRemoved: attribution from the last poll
    assert c.totals()[SVC] == (12, 1200) and not c.known(F1)
    c.poll("ovsbr1", [(F1, SVC, 4, 400)])
    assert c.totals()[SVC] == (16, 1600)
    c.removed(F2, 7, 70, attr=SVC3)                # lived and died between two polls
    assert c.totals()[SVC3] == (7, 70)


def test_a_vanished_flow_is_forgotten_only_on_its_bridge():
    c = Counters()
    c.poll("ovsbr1", [(F1, SVC, 10, 1000)])
    c.poll("ovsbr2", [(R1, ROUTE, 2, 200)])
    c.poll("ovsbr1", [])
    assert not c.known(F1) and c.known(R1)
    c.poll("ovsbr1", [(F1, SVC, 1, 100)])          # same match again: a new flow
    assert c.totals()[SVC] == (11, 1100)


def test_a_modified_bucket_counts_for_its_new_backend_from_then_on():
    c = Counters()
    c.poll("ovsbr1", [(F1, SVC, 10, 1000)])
    c.poll("ovsbr1", [(F1, SVC3, 14, 1400)])       # MODIFY kept the counts, new backend
    assert c.totals() == {SVC: (10, 1000), SVC3: (4, 400)}


def test_view_fallback_miss_other_and_not_applicable_without_eswitch():
    c = Counters()
    c.poll("ovsbr1", [(F1, SVC, 10, 1000), (F2, ARP, 3, 180)])
    c.poll("ovsbr2", [(R1, ROUTE, 2, 200), (("ovsbr2", 0, 0, ()), ("table_miss", "ovsbr2", None),
                                            5, 500), (("ovsbr2", 0, 250, ()),
                                                      ("patch_in", "dns", "fips2"), 10, 1000)])
    v = c.view(has_eswitch=True)
    assert v["services"] == {"dns": {"fips2": {"packets": 10, "bytes": 1000}}}
    assert v["routes"] == {"pf1hpf->p1 0.0.0.0/0": {"packets": 2, "bytes": 200}}
    assert v["fallback"] == 12                     # service + route rules; patch_in not twice
    assert v["miss_other"] == 8                    # ARP + table miss
    assert c.view(has_eswitch=False)["fallback"] is None


def test_attribution_names_flows_by_cookie_and_backend_by_mac():
    cfg_flows = [plan.Flow("ovsbr1", 201, (), (("set_field", "eth_dst", "02:00:c6:12:00:03"),),
                           "service", "dns", backend="fips3")]
    a = Attribution()
    a.learn([(f.cookie, f.kind, f.owner) for f in cfg_flows],
            {("dns", "fips2"): "02:00:c6:12:00:02", ("dns", "fips3"): "02:00:c6:12:00:03"})
    ck = cfg_flows[0].cookie
    assert kind_of_cookie(ck) == "service" and kind_of_cookie(0x1234) is None
    assert a(ck, [("set_field", "eth_dst", 0x0200C6120002), ("output", 200)]) == SVC
    assert a(0x1234, []) is None
    stale = plan.cookie("route", "gone")
    assert a(stale, [("output", 1)])[0] == "route"

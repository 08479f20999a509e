"""Adaptive polling: aggregates every poll, a full dump only when needed, and counters
that stay exact across the switch between the two (counters.DumpPolicy, bridge.Bridge).

The pure part is driven with a simulated switch and clock; the app part with the fake
switch of test_app_smoke, taught here to answer aggregate requests and to take encoded
messages (the send path's raw bytes), so the policy runs as it does against OVS."""

import importlib
import os
import random
import struct

import pytest

from xenoflow_ovs.controller.counters import AUDIT_RATE, Counters, DumpPolicy, kind_filter, kind_sums
from xenoflow_ovs.intent import config, plan

SVC = plan.cookie("service", "dns")
ROUTE = plan.cookie("route", "r1")
MISS = plan.cookie("table_miss", "br")
FOREIGN = 0x1234


# ---------------------------------------------------------------- the policy, pure


def big_policy(n=100000, interval=1.0):
    """A policy that has seen a full dump of n service flows at t=0."""
    p = DumpPolicy(interval)
    assert p.at_poll(0.0) == "first"
    p.asked()
    p.dumped({"service": (0, 0, n)}, 0, n, 0.0)
    return p


def test_first_contact_sends_and_removals_ask_for_a_full_dump_at_the_next_poll():
    p = big_policy()
    assert p.at_poll(0.5) is None                       # aggregates only
    for reason in ("sent", "flow removed", "connect"):
        p.need(reason)
        assert p.at_poll(0.6) == reason
        p.asked()
        p.dumped({"service": (0, 0, 100000)}, 0, 100000, 0.6)
        assert p.at_poll(0.7) is None
    p.need("sent")
    p.asked()
    p.need("sent")                                      # sent while the dump is in flight
    p.dumped({"service": (0, 0, 100000)}, 0, 100000, 0.8)
    assert p.at_poll(0.9) == "sent"                     # that dump may not show them


def test_small_bridges_are_dumped_in_full_every_poll():
    p = DumpPolicy(1.0)
    p.asked()
    p.dumped({"service": (0, 0, 10), "arp": (0, 0, 1)}, 3, 11, 0.0)
    assert p.at_poll(0.01) == "small" and p.at_poll(0.02) == "small"


def test_the_audit_period_grows_with_the_table():
    p = big_policy(100000, interval=1.0)
    assert p.period(p.audit_rate) == pytest.approx(100000 / AUDIT_RATE)
    assert p.at_poll(100000 / AUDIT_RATE - 1) is None
    assert p.at_poll(100000 / AUDIT_RATE) == "audit"
    q = big_policy(3000, interval=20.0)                 # 3000 / AUDIT_RATE s < interval
    assert q.period(q.audit_rate) == 20.0
    assert q.at_poll(19.0) is None and q.at_poll(20.0) == "audit"


def test_aggregates_that_did_not_move_ask_for_nothing():
    p = big_policy()
    assert p.on_aggregates({"service": (0, 0, 100000)}, 100000, 100000, 1.0) is None
    assert p.pending({"service": (0, 0, 100000)}) == {}


def test_a_flow_gone_or_added_behind_our_back_is_dumped_at_once():
    p = big_policy()
    assert p.on_aggregates({"service": (0, 0, 99999)}, 99999, 100000, 1.0) == "count"
    assert p.on_aggregates({"service": (0, 0, 100001)}, 100001, 100000, 1.0) == "count"


def test_a_plan_mismatch_is_dumped_once_not_every_poll():
    p = big_policy()
    # the plan grew (its changes are on their way) while the bridge still holds the old
    assert p.on_aggregates({"service": (0, 0, 100000)}, 100000, 100002, 1.0) == "plan"
    p.dumped({"service": (0, 0, 100000)}, 0, 100002, 1.5)   # that dump saw the mismatch
    assert p.on_aggregates({"service": (0, 0, 100000)}, 100000, 100002, 2.0) is None


def test_a_foreign_flow_appearing_asks_for_a_dump():
    p = big_policy()
    assert p.on_aggregates({"service": (0, 0, 100000)}, 100001, 100000, 1.0) == "foreign"


def test_traffic_is_read_in_full_at_most_at_the_traffic_pace_and_pending_meanwhile():
    p = big_policy(100000)                               # 100000 / 2000 flows/s = 50 s
    moved = {"service": (7, 700, 100000)}
    assert p.on_aggregates(moved, 100000, 100000, 10.0) is None
    assert p.pending(moved) == {"service": (7, 700)}
    assert p.on_aggregates(moved, 100000, 100000, 50.0) == "traffic"
    small = big_policy(3000, interval=2.0)               # 1.5 s: the interval is longer
    assert small.on_aggregates({"service": (1, 60, 3000)}, 3000, 3000, 1.9) is None
    assert small.on_aggregates({"service": (1, 60, 3000)}, 3000, 3000, 2.0) == "traffic"


def test_kind_filters_select_exactly_one_kind_of_ours():
    for kind in plan.KINDS:
        ck, mask = kind_filter(kind)
        for other in plan.KINDS:
            hit = plan.cookie(other, "x") & mask == ck & mask
            assert hit == (other == kind)
        assert FOREIGN & mask != ck & mask
    sums = kind_sums([(SVC, 3, 300), (SVC, 0, 0), (ROUTE, 1, 100), (FOREIGN, 9, 900)])
    assert sums == {"service": (3, 300, 2), "route": (1, 100, 1)}


# ------------------------------------------ exact counting across the switch, simulated


class SimSwitch:
    """Flows with monotonic counters; some traffic per tick; a deletion reports its
    final counts as OVS's FlowRemoved does."""

    def __init__(self, n, rng):
        self.rng = rng
        self.flows = {("b", 0, 200, i): [SVC if i % 10 else ROUTE, 0, 0] for i in range(n)}
        self.flows[("b", 0, 0, -1)] = [MISS, 0, 0]
        self.truth = {}          # attribution -> packets ever

    @staticmethod
    def attr(fid, ck):
        return (plan.kind_of_cookie(ck), "o", str(fid[3] % 3))

    def traffic(self, k):
        for fid in self.rng.sample(sorted(self.flows), k):
            f = self.flows[fid]
            n = self.rng.randint(1, 5)
            f[1] += n
            f[2] += 100 * n
            a = self.attr(fid, f[0])
            self.truth[a] = self.truth.get(a, 0) + n

    def aggregates(self):
        sums = kind_sums((ck, p, b) for ck, p, b in self.flows.values())
        return sums, len(self.flows)

    def dump(self):
        return [(fid, self.attr(fid, ck), p, b) for fid, (ck, p, b) in self.flows.items()]

    def sums_of(self, dumped):
        return kind_sums((self.flows[fid][0], p, b) for fid, _, p, b in dumped)


def test_counters_stay_exact_whichever_way_each_poll_reads():
    """Polls read aggregates, and a full dump when the policy says so (here: traffic at a
    slow pace, and deletions). At every full dump the per-flow totals equal every packet
    the switch ever counted; at every poll fallback (counted + pending) does too."""
    rng = random.Random(7)
    sw = SimSwitch(4000, rng)                    # > FULL_EVERY_POLL: aggregates mostly
    c, p = Counters(), DumpPolicy(1.0, traffic_rate=400.0)   # a full dump every 10 s of traffic
    full = aggs = 0
    pending = {}

    def full_dump(now):
        nonlocal pending
        p.asked()
        d = sw.dump()
        c.poll("b", d)
        p.dumped(sw.sums_of(d), 0, len(d), now)
        pending = {}

    for tick in range(60):
        now = float(tick)
        if tick % 3:
            sw.traffic(rng.randint(0, 40))
        if tick == 25:                           # a flow deleted: its final counts reported
            fid = sorted(sw.flows)[5]
            ck, pk, by = sw.flows.pop(fid)
            sw.truth[sw.attr(fid, ck)] = sw.truth.get(sw.attr(fid, ck), 0)
            c.removed(fid, pk, by, sw.attr(fid, ck))
            p.need("flow removed")
        reason = p.at_poll(now)
        if reason:
            full += 1
            full_dump(now)
        else:
            aggs += 1
            sums, total = sw.aggregates()
            pending = p.pending(sums)
            if p.on_aggregates(sums, total, total, now):
                full += 1
                full_dump(now)
        view = c.view(True, pending)
        want_fallback = sum(v for a, v in sw.truth.items() if a[0] in plan.FALLBACK_KINDS)
        assert view["fallback"] == want_fallback, tick
        if not pending:                          # just dumped, or nothing moved since
            assert {a: t[0] for a, t in c.totals().items() if t[0]} == {
                a: v for a, v in sw.truth.items() if v}, tick
    assert aggs > 30 and 3 <= full < 20, (aggs, full)


# ---------------------------------------------------------------- the app, fake switches

compat = pytest.importorskip("xenoflow_ovs.controller.compat")
import oftable  # noqa: E402

OFP, PARSER = compat.ofproto_v1_3, compat.ofproto_v1_3_parser
_WIRE = importlib.import_module(PARSER.__name__.rsplit(".", 1)[0] + ".ofproto_parser")


class AggDatapath(oftable.FakeDatapath):
    """The fake switch, answering aggregate requests and taking encoded messages."""

    def send(self, buf):
        off = 0
        while off < len(buf):
            version, msg_type, length, xid = _WIRE.header(buf[off:])
            one = bytes(buf[off:off + length])
            off += length
            if msg_type == OFP.OFPT_BARRIER_REQUEST:
                msg = PARSER.OFPBarrierRequest(self)
                msg.xid = xid
            else:
                msg = _WIRE.msg(self, version, msg_type, length, xid, one)
            self.send_msg(msg)
        return True

    def send_msg(self, msg):
        if not isinstance(msg, PARSER.OFPAggregateStatsRequest):
            return super().send_msg(msg)
        if msg.xid is None:
            self.set_xid(msg)
        self.sent.append(msg)
        es = [e for e in self.table.entries.values()
              if e.cookie & msg.cookie_mask == msg.cookie & msg.cookie_mask]
        reply = PARSER.OFPAggregateStatsReply(self)
        reply.xid, reply.flags = msg.xid, 0
        reply.body = PARSER.OFPAggregateStats(sum(e.packets for e in es),
                                              sum(e.bytes for e in es), len(es))
        self.deliver("aggregate_stats_reply", reply)


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(ROOT, "topologies", "paper", "xenoflow.yaml")


@pytest.fixture
def h(tmp_path, monkeypatch):
    from test_app_smoke import Harness

    from xenoflow_ovs.controller import ovsdb
    from xenoflow_ovs.controller.app import XenoFlowApp

    monkeypatch.setenv("XENOFLOW_STATE", str(tmp_path / "state.json"))
    data = config.to_data(config.load(PAPER))
    data["dpu"]["eswitch"]["driver"] = "none"
    data["services"][0]["policy"] = {"kind": "maglev", "bits": 4}
    cfg = config.from_data(data, base_dir=os.path.dirname(PAPER))
    app = XenoFlowApp(xenoflow_cfg=cfg)
    app.kill_on_exception = False
    app.dispatch = lambda ev: {"EventPoll": app.poll, "EventCall": app.call}[type(ev).__name__](ev)
    h = Harness(app, cfg)
    for spec in ovsdb.desired(cfg):
        ports = {i.name: i.ofport_request for i in spec.ifaces}
        h.dps[spec.name] = AggDatapath(spec.dpid, spec.name, ports, OFP, PARSER, deliver=h.deliver)
    for b in app.bridges:
        b.policy.full_every_poll = 0        # behave as a big bridge: aggregates first
    for name in h.dps:
        h.connect(name)
    app.runtime.start()
    h.poll()                                # verifies what connecting sent
    return h


def kinds_sent(dp):
    full = sum(1 for m in dp.sent if isinstance(m, PARSER.OFPFlowStatsRequest))
    agg = sum(1 for m in dp.sent if isinstance(m, PARSER.OFPAggregateStatsRequest))
    return full, agg


def test_connect_installs_by_raw_bytes_and_quiet_polls_read_only_aggregates(h):
    from test_app_smoke import same
    for name, dp in h.dps.items():
        assert same(h.ours(name), h.planned(name))
        dp.clear_sent()
    for _ in range(3):
        h.poll()
    for dp in h.dps.values():
        assert kinds_sent(dp) == (0, 3 * (len(plan.KINDS) + 1))
        assert dp.flow_mods() == []
    st = h.app.status.app_view()
    assert all(b["in_sync"] and b["flows"] == b["planned"] for b in st["bridges"].values())


def test_a_flow_deleted_behind_our_back_is_repaired_from_the_aggregates(h):
    from test_app_smoke import same
    dp = h.dps["ovsbr1"]
    svc = sorted((k for k, e in h.ours("ovsbr1").items()
                  if plan.kind_of_cookie(e.cookie) == "service"), key=str)
    del dp.table.entries[svc[0]]
    dp.clear_sent()
    h.poll()                                 # aggregates: one flow fewer -> a dump, a repair
    assert kinds_sent(dp)[0] == 1
    assert [m.command for m in dp.flow_mods()] == [OFP.OFPFC_ADD]
    assert same(h.ours("ovsbr1"), h.planned("ovsbr1"))
    assert h.app.status.app_view()["repairs"] == 1


def test_traffic_moves_the_aggregates_and_the_full_dump_counts_it_exactly(h):
    dp = h.dps["ovsbr1"]
    by_mac = {}
    for e in h.ours("ovsbr1").values():
        for a in e.actions:
            if a[:2] == ("set_field", "eth_dst"):
                by_mac.setdefault(a[2], []).append(e)
    f2, f3 = by_mac[0x0200C6120002], by_mac[0x0200C6120003]
    f2[0].packets, f2[0].bytes = 10, 800
    f2[1].packets, f2[1].bytes = 1, 80
    f3[0].packets, f3[0].bytes = 4, 320
    b = h.app.bridges["ovsbr1"]
    dp.clear_sent()
    h.poll()                                 # moved within the traffic pace: pending only
    assert kinds_sent(dp)[0] == 0 and b.pending == {"service": (15, 1200)}
    b.policy.last_full -= b.policy.period(b.policy.traffic_rate)
    h.poll()                                 # moved, the pace allows: dumped at once
    assert kinds_sent(dp)[0] == 1 and b.pending == {}
    svc = h.app.status.app_view()["services"]["dns"]
    assert svc == {"fips2": {"ovs_packets": 11, "ovs_bytes": 880},
                   "fips3": {"ovs_packets": 4, "ovs_bytes": 320}}
    # the traffic pace holds the next dump back: pending, then exact
    f3[1].packets, f3[1].bytes = 5, 400
    dp.clear_sent()
    h.poll()
    assert kinds_sent(dp)[0] == 0 and b.pending == {"service": (5, 400)}
    assert h.app.status.app_view()["services"]["dns"]["fips3"]["ovs_packets"] == 4
    assert h.app.status.app_view()["miss_other_packets"] == 0
    b.policy.need("asked")
    h.poll()
    svc = h.app.status.app_view()["services"]["dns"]
    assert svc["fips3"] == {"ovs_packets": 9, "ovs_bytes": 720} and b.pending == {}
    assert svc["fips2"] == {"ovs_packets": 11, "ovs_bytes": 880}


def test_a_flow_modified_in_place_is_caught_by_the_audit(h):
    from test_app_smoke import same
    dp = h.dps["ovsbr1"]
    svc = sorted((k for k, e in h.ours("ovsbr1").items()
                  if plan.kind_of_cookie(e.cookie) == "service"), key=str)
    changed = dp.table.entries[svc[1]]
    changed.actions, changed.raw_instructions = (), []
    dp.clear_sent()
    h.poll()
    assert kinds_sent(dp)[0] == 0            # no count moved: not seen yet
    b = h.app.bridges["ovsbr1"]
    b.policy.last_full -= b.policy.period(b.policy.audit_rate)
    h.poll()
    assert kinds_sent(dp)[0] == 1 and [m.command for m in dp.flow_mods()] == [OFP.OFPFC_MODIFY_STRICT]
    assert same(h.ours("ovsbr1"), h.planned("ovsbr1"))


def test_a_read_before_a_backend_move_dumps_only_bridges_whose_counts_moved(h):
    from xenoflow_ovs.controller import counters
    dp1, dp2 = h.dps["ovsbr1"], h.dps["ovsbr2"]
    e = next(e for e in h.ours("ovsbr1").values() if plan.kind_of_cookie(e.cookie) == "service")
    e.packets, e.bytes = 3, 180
    dp1.clear_sent()
    dp2.clear_sent()
    late = counters.read_now(h.app.bridges, h.app.run_in_app, timeout=0.5, full=False)
    assert late == []
    assert kinds_sent(dp1)[0] == 1 and kinds_sent(dp2) == (0, len(plan.KINDS) + 1)
    assert sum(c["ovs_packets"] for c in h.app.status.app_view()["services"]["dns"].values()) == 3


def test_a_read_before_a_move_takes_a_dump_owed_now_not_at_the_next_poll(h):
    """Right after our own sends a full dump is owed (at the next poll); a read before the
    next change takes it at once instead of waiting for that poll."""
    from xenoflow_ovs.controller import counters
    for b in h.app.bridges:
        b.policy.need("sent")
    late = counters.read_now(h.app.bridges, h.app.run_in_app, timeout=0.5, full=False)
    assert late == []
    assert all(not b.policy.reasons for b in h.app.bridges)


def test_raw_bytes_match_the_framework_messages(h):
    """Every message the send path encodes itself is byte for byte what the framework
    would serialize (for every flow of a plan with several services and policies)."""
    from xenoflow_ovs.controller import ofrules
    from xenoflow_ovs.intent.plan import Change
    rules = h.app.rules
    ports = {"p0": 1, "pf0hpf": 2, "patch-ovsbr2": 200, "p1": 1, "pf1hpf": 2,
             "patch-ovsbr1": 200, "pf1sf0": 3}
    data = config.to_data(config.load(PAPER))
    svc = dict(data["services"][0])
    data["services"].append(dict(svc, name="web", vip="198.18.0.80", vip6="2001:db8::80",
                                 vip_mac="02:00:c6:12:00:50", protocols=["tcp"], port=80,
                                 policy={"kind": "src-port-bits", "bits": 3}))
    data["services"].append(dict(svc, name="mg", vip="198.18.0.81", vip6="2001:db8::81",
                                 vip_mac="02:00:c6:12:00:51", policy={"kind": "maglev", "bits": 6}))
    cfg = config.from_data(data, base_dir=os.path.dirname(PAPER))
    flows = list(plan.plan(cfg).iter_flows())
    assert len(flows) > 60
    stub = ofrules._Stub(OFP, PARSER)
    for f in flows:
        assert rules.key(f, ports) == (f.table, f.priority,
                                       ofrules.canon_match(rules.match(f, ports)))
        assert rules.canon_plan_actions(f, ports) == ofrules.canon_actions(
            rules.instructions(f, ports), OFP)
        for op in ("add", "modify", "delete"):
            m = rules.message(op, f, ports)
            m.datapath = stub
            m.set_xid(0)
            m.serialize()
            assert rules.encode(op, f, ports) == bytes(m.buf), (op, f)
    one = [f for f in flows if f.bridge == "ovsbr1"]
    wire = rules.wire([Change("ovs", "add", f) for f in one], ports)
    assert len(wire) == len(one) + 1 and struct.unpack("!BBHI", wire[-1]) == (
        OFP.OFP_VERSION, OFP.OFPT_BARRIER_REQUEST, 8, 0)
    held = []
    ported = next(f for f in flows if dict(f.match).get("in_port"))
    assert rules.wire([Change("ovs", "add", ported)], {}, held) == []
    assert held and held[0][1] in ("p0", "pf0hpf", "p1", "pf1hpf", "patch-ovsbr1", "patch-ovsbr2")


def test_idle_flows_cost_the_counters_no_memory(h):
    c = h.app.bridges.counters
    h.app.bridges["ovsbr1"].policy.need("asked")
    h.poll()
    assert not any(c.known(f) for f in [("ovsbr1",) + k for k in h.ours("ovsbr1")])


def test_a_flow_idle_at_the_last_dump_then_removed_counts_for_its_backend(h):
    """Idle flows are not remembered by the counters; the final counts of one removed
    after it got traffic are attributed from the last dump's copy of it."""
    from types import SimpleNamespace
    dp = h.dps["ovsbr1"]
    h.app.bridges["ovsbr1"].policy.need("asked")
    h.poll()
    e = next(e for e in h.ours("ovsbr1").values()
             if ("set_field", "eth_dst", 0x0200C6120003) in e.actions)
    assert not h.app.bridges.counters.known(("ovsbr1",) + e.key)
    rem = PARSER.OFPFlowRemoved(dp, e.cookie, e.priority, OFP.OFPRR_DELETE, e.table, 1, 0, 0, 0,
                                7, 560, e.raw_match)
    h.app.flow_removed(SimpleNamespace(msg=rem))
    h.app.status.refresh()
    assert h.app.status.app_view()["services"]["dns"]["fips3"] == {"ovs_packets": 7,
                                                                   "ovs_bytes": 560}
    assert "flow removed" in h.app.bridges["ovsbr1"].policy.reasons

"""The app, driven by calling its handlers with fake switches (faucet's smoke-test
idiom: set_ev_cls leaves methods callable). The fake switches parse every FlowMod
from the wire and answer stats and barriers, so what is asserted is what a switch
would hold. Runs under os-ken 4 and Ryu 4.34."""

import json
import os
from types import SimpleNamespace as Ev

import pytest

from xenoflow_ovs.controller import ovsdb
from xenoflow_ovs.intent import config, plan

compat = pytest.importorskip("xenoflow_ovs.controller.compat")
import oftable  # noqa: E402

from xenoflow_ovs.controller.app import EventPoll, XenoFlowApp  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(ROOT, "topologies", "paper", "xenoflow.yaml")
OFP, PARSER = compat.ofproto_v1_3, compat.ofproto_v1_3_parser


def none_cfg():
    data = config.to_data(config.load(PAPER))
    data["dpu"]["eswitch"]["driver"] = "none"
    return config.from_data(data, base_dir=os.path.dirname(PAPER))


class Harness:
    def __init__(self, app, cfg):
        self.app, self.cfg = app, cfg
        self.dps = {}
        for spec in ovsdb.desired(cfg):
            ports = {i.name: i.ofport_request for i in spec.ifaces}
            self.dps[spec.name] = oftable.FakeDatapath(spec.dpid, spec.name, ports, OFP, PARSER,
                                                       deliver=self.deliver)

    def deliver(self, handler, msg):
        getattr(self.app, handler)(Ev(msg=msg))

    def connect(self, name, dp=None):
        dp = dp or self.dps[name]
        self.app.switch_features(Ev(msg=Ev(datapath=dp)))
        self.app.state_change(Ev(datapath=dp, state=compat.MAIN_DISPATCHER))
        return dp

    def poll(self):
        self.app.poll(EventPoll())

    def ours(self, name):
        return {k: e for k, e in self.dps[name].table.entries.items() if plan.is_ours(e.cookie)}

    def planned(self, name):
        return oftable.Table.from_flows(self.app.runtime.in_force.bridge_flows(name), self.app.rules,
                                        {i.name: i.ofport_request for s in ovsdb.desired(self.cfg)
                                         if s.name == name for i in s.ifaces}).entries


def same(got, want):
    return ({k: (e.cookie, e.actions) for k, e in got.items()}
            == {k: (e.cookie, e.actions) for k, e in want.items()})


@pytest.fixture
def h(tmp_path, monkeypatch):
    monkeypatch.setenv("XENOFLOW_STATE", str(tmp_path / "state.json"))
    cfg = none_cfg()
    app = XenoFlowApp(xenoflow_cfg=cfg)
    app.kill_on_exception = False

    def dispatch(ev):   # the event loop, inline
        {"EventPoll": app.poll, "EventCall": app.call}[type(ev).__name__](ev)
    app.dispatch = dispatch
    return Harness(app, cfg)


def test_connect_installs_exactly_the_plan_then_polls_change_nothing(h):
    for name in h.dps:
        dp = h.connect(name)
        mods = dp.flow_mods()
        assert mods and all(m.command == OFP.OFPFC_ADD and plan.is_ours(m.cookie) for m in mods)
        assert isinstance(dp.sent[0], PARSER.OFPFlowStatsRequest)      # dump first
        assert isinstance(dp.sent[-1], PARSER.OFPBarrierRequest)       # barrier last
        assert same(h.ours(name), h.planned(name))
        dp.clear_sent()
    h.poll()
    for dp in h.dps.values():
        assert dp.flow_mods() == [] and len(dp.sent) == 1              # just the dump
    st = h.app.status.app_view()
    assert all(b["connected"] and b["in_sync"] and b["flows"] == b["planned"]
               for b in st["bridges"].values())
    assert st["last_reconcile"]["kind"] == "synced" and st["repairs"] == 0
    assert st["fallback_packets"] is None and st["packet_ins"] == 0
    with open(os.environ["XENOFLOW_STATE"]) as f:
        assert json.load(f)["bridges"] == st["bridges"]


def test_drift_is_repaired_and_foreign_flows_are_never_touched(h):
    for name in h.dps:
        h.connect(name)
    dp = h.dps["ovsbr1"]
    ours = h.ours("ovsbr1")
    svc = sorted((k for k, e in ours.items() if plan.kind_of_cookie(e.cookie) == "service"), key=str)
    del dp.table.entries[svc[0]]                                     # deleted behind our back
    changed = dp.table.entries[svc[1]]                                # changed behind our back
    changed.actions, changed.raw_instructions = (), []
    alien = oftable.Entry(0, 7, (("eth_type", 0x800, None), ("ipv4_dst", 0xC6120063, None)), (),
                          cookie=0x1234)
    dp.table.entries[alien.key] = alien
    squat = oftable.Entry(0, 40, (("eth_dst", 0x0200C6120035, None),), (), cookie=0x99)
    del dp.table.entries[squat.key]                                   # our guard gone and
    dp.table.entries[squat.key] = squat                               # a foreign one in its place
    dp.clear_sent()
    h.poll()
    mods = dp.flow_mods()
    assert sorted(m.command for m in mods) == sorted([OFP.OFPFC_ADD, OFP.OFPFC_MODIFY_STRICT])
    assert same(h.ours("ovsbr1"), {k: e for k, e in h.planned("ovsbr1").items() if k != squat.key})
    assert dp.table.entries[alien.key].cookie == 0x1234
    assert dp.table.entries[squat.key].cookie == 0x99
    st = h.app.status.app_view()
    assert st["repairs"] == 2 and st["last_reconcile"]["kind"] == "repaired"
    assert st["last_reconcile"]["actions"]["conflict"] == 1
    assert st["bridges"]["ovsbr1"]["foreign_flows"] == 2


def test_counters_per_backend_survive_a_drain_that_replaces_the_flows(h):
    for name in h.dps:
        h.connect(name)
    h.app.runtime.start()
    dp = h.dps["ovsbr1"]
    by_mac = {}
    for e in h.ours("ovsbr1").values():
        for a in e.actions:
            if a[:2] == ("set_field", "eth_dst"):
                by_mac[a[2]] = e
    e2, e3 = by_mac[0x0200C6120002], by_mac[0x0200C6120003]
    e2.packets, e2.bytes, e3.packets, e3.bytes = 10, 800, 4, 320
    h.poll()
    svc = h.app.status.app_view()["services"]["dns"]
    assert svc == {"fips2": {"ovs_packets": 10, "ovs_bytes": 800},
                   "fips3": {"ovs_packets": 4, "ovs_bytes": 320}}
    e3.packets, e3.bytes = 6, 480                                      # after the last poll
    dp.clear_sent()
    out = h.app.runtime.drain("dns", "fips3")                          # make-before-break
    assert out["ovs"] >= 3
    cmds = [m.command for m in dp.flow_mods()]
    deletes = [i for i, c in enumerate(cmds) if c == OFP.OFPFC_DELETE_STRICT]
    installs = [i for i, c in enumerate(cmds) if c != OFP.OFPFC_DELETE_STRICT]
    assert deletes and installs and max(installs) < min(deletes)
    assert same(h.ours("ovsbr1"), h.planned("ovsbr1"))
    assert {a[2] for e in h.ours("ovsbr1").values() for a in e.actions
            if a[:2] == ("set_field", "eth_dst")} == {0x0200C6120002}
    h.poll()
    svc = h.app.status.app_view()["services"]["dns"]
    assert svc["fips3"] == {"ovs_packets": 6, "ovs_bytes": 480}       # FlowRemoved's last delta
    assert svc["fips2"] == {"ovs_packets": 10, "ovs_bytes": 800}
    h.app.runtime.drain("dns", "fips3", on=False)
    assert same(h.ours("ovsbr1"), h.planned("ovsbr1"))
    assert h.app.status.app_view()["services"]["dns"]["fips3"]["ovs_packets"] == 6


def test_a_refused_flow_mod_fails_the_transition_and_the_old_state_stays(h):
    from xenoflow_ovs.controller.runtime import TransitionError
    for name in h.dps:
        h.connect(name)
    h.app.runtime.start()
    before = {n: dict(h.ours(n)) for n in h.dps}
    old_plan = h.app.runtime.in_force
    dp = h.dps["ovsbr1"]
    dp.refuse = lambda m: m.command == OFP.OFPFC_ADD and m.priority == 200   # the merged bucket
    with pytest.raises(TransitionError):
        h.app.runtime.drain("dns", "fips3")
    dp.refuse = None
    assert h.app.runtime.in_force is old_plan and h.app.runtime.in_service("dns", "fips3")
    for n in h.dps:
        assert same(h.ours(n), before[n])
    # the merged bucket's add is refused once per listener (family x transport)
    assert h.app.status.app_view()["of_errors"] == len(h.app.runtime.cfg.service("dns").listeners)


def test_a_disconnected_bridge_is_skipped_and_reconciled_when_it_returns(h):
    for name in h.dps:
        h.connect(name)
    h.app.runtime.start()
    dp1 = h.dps["ovsbr1"]
    h.app.state_change(Ev(datapath=dp1, state=compat.DEAD_DISPATCHER))
    dp1.connected = False
    assert h.app.status.app_view()["bridges"]["ovsbr1"]["connected"] is False
    assert h.app.bridges.installed_flows() is None
    h.app.runtime.drain("dns", "fips2")                               # ovsbr1 is away
    h.poll()
    dp1.connected = True
    dp1.clear_sent()
    h.connect("ovsbr1")                                                # comes back
    assert same(h.ours("ovsbr1"), h.planned("ovsbr1"))
    h.poll()                                                           # a dump after the repair
    flows = h.app.bridges.installed_flows()
    want = h.app.runtime.in_force
    for br in ("ovsbr1", "ovsbr2"):
        assert {(f.key, f.actions) for f in flows[br]} == \
            {(f.key, f.actions) for f in want.bridge_flows(br)}


def test_an_unknown_datapath_id_is_identified_by_its_local_port_others_left_alone(h):
    spec = [s for s in ovsdb.desired(h.cfg) if s.name == "ovsbr2"][0]
    ports = {i.name: i.ofport_request for i in spec.ifaces}
    dp = oftable.FakeDatapath(42, "ovsbr2", ports, OFP, PARSER, deliver=h.deliver)
    h.connect("ovsbr2", dp)
    assert h.app.status.app_view()["bridges"]["ovsbr2"]["connected"]
    assert dp.flow_mods()
    stranger = oftable.FakeDatapath(43, "br-other", {"eth9": 9}, OFP, PARSER, deliver=h.deliver)
    h.connect("x", stranger)
    assert stranger.sent == []


def test_packet_ins_are_counted_and_handler_errors_logged_not_raised(h):
    dp = h.connect("ovsbr1")
    h.app.packet_in(Ev(msg=PARSER.OFPPacketIn(dp, OFP.OFP_NO_BUFFER, 60, OFP.OFPR_NO_MATCH, 0, 0,
                                              PARSER.OFPMatch(in_port=1), b"\x00" * 60)))
    broken = PARSER.OFPFlowStatsReply(dp)
    broken.xid, broken.flags, broken.body = None, 0, [object()]
    h.app.bridges["ovsbr1"].dump_xid = None
    h.app.flow_stats_reply(Ev(msg=broken))                            # xid not ours: ignored
    h.app.bridges["ovsbr1"].dump_xid = broken.xid = 77
    h.app.flow_stats_reply(Ev(msg=broken))                            # a bad body: logged
    h.poll()
    st = h.app.status.app_view()
    assert st["packet_ins"] == 1 and st["handler_errors"] == 1


def test_to_plan_flow_attributes_backends(h):
    for name in h.dps:
        h.connect(name)
    h.poll()
    flows = h.app.bridges.installed_flows()
    svc = [f for f in flows["ovsbr1"] if f.kind == "service"]
    assert {f.backend for f in svc} == {"fips2", "fips3"}
    assert all(isinstance(f, plan.Flow) for f in flows["ovsbr2"])
    assert {f.key for f in flows["ovsbr2"]} == {f.key for f in
                                                h.app.runtime.in_force.bridge_flows("ovsbr2")}


def test_the_status_verdict_is_the_last_check_and_a_scrape_never_checks(h, monkeypatch):
    from xenoflow_ovs.intent import consistency
    status = h.app.status
    assert status.snapshot()["verdict"] == "drift"                    # nothing confirmed yet
    for name in h.dps:
        h.connect(name)
    h.app.runtime.start()
    h.poll()
    status.refresh_verdict()                                           # the worker's, off the scrape path
    assert status.snapshot()["verdict"] == "consistent"
    checks = []
    real = consistency.check
    monkeypatch.setattr(consistency, "check", lambda *a, **kw: checks.append(1) or real(*a, **kw))
    h.app.metrics.exposition()
    status.snapshot()
    status.refresh_verdict()                                           # nothing changed: not again
    assert checks == []
    h.app.runtime.drain("dns", "fips3")
    h.poll()
    status.refresh_verdict()
    assert checks == [1] and status.snapshot()["verdict"] == "consistent"
    assert status.check()["verdict"] == "consistent" and checks == [1, 1]


def test_launcher_under_ryu_points_to_ryu_manager_and_rejects_a_bad_config(tmp_path):
    import subprocess
    import sys

    from xenoflow_ovs.lab.pyenv import subprocess_env
    env = subprocess_env()
    bad = tmp_path / "bad.yaml"
    bad.write_text("dpu: {name: x}\n")
    p = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "controller", "-c", str(bad)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                       env=env, timeout=60)
    assert p.returncode == 2 and "dpu.ports" in p.stderr
    if compat.RUNTIME == "ryu":
        p = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "controller", "-c", PAPER],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                           env=env, timeout=60)
        assert p.returncode == 2
        assert "ryu-manager" in p.stderr and "XENOFLOW_CONFIG=" in p.stderr


def test_large_batches_get_more_time_for_their_barriers():
    from xenoflow_ovs.controller import app as app_mod
    assert app_mod.barrier_timeout(0) == app_mod.BARRIER_TIMEOUT
    assert app_mod.barrier_timeout(16000) > app_mod.barrier_timeout(100) > app_mod.BARRIER_TIMEOUT

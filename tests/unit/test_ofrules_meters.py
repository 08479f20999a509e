"""OpenFlow meters in the OVS plane: the meter instruction through the wire and back (the
framework's parse and the raw reader), meter mods in the OF 1.3 layout, the meter replies'
readers, the meter reconcile by id, the send order around flows, the ofctl text, and a Bridge
reading and reconciling meters (its messages serialized and parsed back as a switch would).

Runs under both runtimes (os-ken 4 / Ryu 4.34): the parser comes from compat."""
from __future__ import annotations

import copy
import struct

import pytest
from config_samples import paper_v4_data, parse

from xenoflow_ovs.controller import ofrules, ovsdb
from xenoflow_ovs.intent import plan as plan_mod
from xenoflow_ovs.intent import render
from xenoflow_ovs.intent.plan import Change

compat = pytest.importorskip("xenoflow_ovs.controller.compat")
from xenoflow_ovs.controller import bridge as bridge_mod  # noqa: E402  (needs a runtime)

OFP, PARSER = compat.ofproto_v1_3, compat.ofproto_v1_3_parser
FLAGS = OFP.OFPMF_PKTPS | OFP.OFPMF_BURST | OFP.OFPMF_STATS
LIMITS = {"bucket+service": {"pps": 900, "per_bucket_pps": 60, "per_bucket_burst": 7},
          "service": {"pps": 500}, "bucket": {"per_bucket_pps": 40}}


def limited(limits, bits=2):
    data = copy.deepcopy(paper_v4_data())
    svc = data["services"][0]
    svc["policy"] = {"kind": "src-ip-bits", "bits": bits}
    if limits is not None:
        svc["limits"] = limits
    return parse(data)


def ports_of(cfg):
    return {s.name: {i.name: i.ofport_request for i in s.ifaces} for s in ovsdb.desired(cfg)}


@pytest.fixture(scope="module")
def rules():
    return ofrules.Rules(OFP, PARSER)


def parsed(msg):
    """Serialize as the send path does, parse back as a switch would."""
    from importlib import import_module
    mod = import_module(PARSER.__name__.rsplit(".", 1)[0] + ".ofproto_parser")
    buf = ofrules.Rules(OFP, PARSER).serialized(msg)
    version, msg_type, msg_len, xid = mod.header(buf)
    return mod.msg(ofrules._Stub(OFP, PARSER), version, msg_type, msg_len, xid, buf)


def metered_flows(cfg):
    return [f for f in plan_mod.plan(cfg).flows if any(a[0] == "meter" for a in f.actions)]


# ---------------------------------------------------------------- the meter instruction


@pytest.mark.parametrize("kind", sorted(LIMITS))
def test_metered_flows_survive_the_wire_and_come_back_as_the_plan_flows(rules, kind):
    cfg = limited(LIMITS[kind])
    ports = ports_of(cfg)
    flows = metered_flows(cfg)
    assert flows, "a limited service plans metered flows"
    for f in flows:
        p = ports[f.bridge]
        back = parsed(rules.add(f, p))
        assert back.instructions[0].type == OFP.OFPIT_METER      # the meter runs first
        assert back.instructions[0].meter_id == dict([f.actions[0]])["meter"]
        key, acts = rules.desired(f, p)
        assert acts[0] == f.actions[0] and ofrules.canon_actions(back.instructions, OFP) == acts
        stat = PARSER.OFPFlowStats(f.table, 5, 0, f.priority, 0, 0, 0, f.cookie, 3, 300,
                                   back.match, back.instructions)
        again = ofrules.to_plan_flow(rules.installed(f.bridge, stat), {n: k for k, n in p.items()})
        assert again.key == f.key and again.actions == f.actions
        assert "meter:%d" % f.actions[0][1] in render.to_ofctl(f)


@pytest.mark.parametrize("kind", sorted(LIMITS))
def test_the_fast_encoder_writes_the_framework_bytes_and_the_raw_reader_reads_them(rules, kind):
    cfg = limited(LIMITS[kind])
    ports = ports_of(cfg)
    framework = PARSER.OFPFlowStatsReply.cls_stats_body_cls
    framework = getattr(framework, "framework", None) or framework
    for f in plan_mod.plan(cfg).flows:
        p = ports[f.bridge]
        for op in ("add", "modify", "delete"):
            assert rules.encode(op, f, p) == rules.serialized(rules.message(op, f, p)), (op, f)
        fm = rules.encode("add", f, p)
        body = fm[48:]
        entry = struct.pack("!HBxIIHHHH4xQQQ", 48 + len(body), f.table, 7, 500, f.priority, 0, 0,
                            1, f.cookie, 4, 240) + body
        raw = ofrules.RawFlowStats.parser(entry, 0)
        cm, ca = ofrules._raw_canon(raw.raw, OFP)
        slow = rules.installed(f.bridge, framework.parser(entry, 0))
        if f.actions and f.actions[0][0] == "meter":
            assert ca is not None, "a metered flow is read from its bytes"
        if ca is not None:      # else (Nicira moves) the framework reads it
            key, acts = rules.desired(f, p)
            assert (cm, ca) == (slow.canon_match, slow.canon_actions) == (key[2], acts)


def test_a_flow_whose_meter_differs_is_modified_and_an_unmetered_one_gets_its_meter(rules):
    cfg = limited(LIMITS["bucket"])
    ports = ports_of(cfg)
    f = metered_flows(cfg)[0]
    p = ports[f.bridge]
    mid = f.actions[0][1]
    other = plan_mod.Flow(f.bridge, f.priority, f.match, (("meter", mid + 1),) + f.actions[1:],
                          f.kind, f.owner, table=f.table)
    bare = plan_mod.Flow(f.bridge, f.priority, f.match, f.actions[1:], f.kind, f.owner, table=f.table)
    for installed_as in (other, bare):
        back = parsed(rules.add(installed_as, p))
        stat = PARSER.OFPFlowStats(f.table, 5, 0, f.priority, 0, 0, 0, f.cookie, 0, 0,
                                   back.match, back.instructions)
        r = ofrules.reconcile(rules, [f], [rules.installed(f.bridge, stat)], p)
        assert [(c.op, c.item) for c in r.changes] == [("modify", f)]


# ---------------------------------------------------------------- meter mods and replies


def meter(mid, pps=100, burst=10, where="ovsbr1"):
    return plan_mod.Meter("ovs", where, mid, pps, burst, "dns", "service")


def test_meter_mods_in_the_of13_layout(rules):
    m = meter(plan_mod.meter_id(5, 4, 3), pps=1234, burst=56)
    for op, command in (("add", OFP.OFPMC_ADD), ("modify", OFP.OFPMC_MODIFY)):
        buf = rules.serialized(rules.meter_mod(op, m))
        version, mtype, length, _ = struct.unpack_from("!BBHI", buf, 0)
        assert (version, mtype, length) == (4, OFP.OFPT_METER_MOD, 32)
        assert struct.unpack_from("!HHI", buf, 8) == (command, FLAGS, m.meter_id)
        assert struct.unpack_from("!HHII", buf, 16) == (OFP.OFPMBT_DROP, 16, 1234, 56)
    buf = rules.serialized(rules.meter_mod("delete", ofrules.InstalledMeter("ovsbr1", m.meter_id)))
    assert struct.unpack_from("!HHI", buf, 8) == (OFP.OFPMC_DELETE, 0, m.meter_id) and len(buf) == 16
    assert rules.encode("add_meter", m, {}) == rules.serialized(rules.meter_mod("add", m))


def config_entry(mid, flags, bands):
    body = b"".join(struct.pack("!HHII4x", OFP.OFPMBT_DROP, 16, r, b) for r, b in bands)
    return struct.pack("!HHI", 8 + len(body), flags, mid) + body


def stats_entry(mid, pkts, nbytes, drops):
    bands = b"".join(struct.pack("!QQ", d, d * 60) for d in drops)
    return struct.pack("!IH6xIQQII", mid, 40 + len(bands), 1, pkts, nbytes, 2, 0) + bands


def test_the_replies_read_as_meter_configs_and_counts(rules):
    ours, foreign = plan_mod.meter_id(9, 6, 0), 7
    blob = (config_entry(ours, FLAGS, [(100, 10)]) + config_entry(foreign, OFP.OFPMF_KBPS, [(5, 0)])
            + config_entry(ours + 1, FLAGS, [(100, 10), (200, 20)]))
    entries, off = [], 0
    while off < len(blob):
        e = PARSER.OFPMeterConfigStats.parser(blob, off)
        entries.append(e)
        off += struct.unpack_from("!H", blob, off)[0]
    got = rules.meter_configs(entries)
    assert got == {ours: (100, 10, FLAGS), foreign: (5, 0, OFP.OFPMF_KBPS), ours + 1: (None, None, FLAGS)}
    blob = stats_entry(ours, 500, 30000, [120]) + stats_entry(foreign, 9, 540, [])
    entries = [PARSER.OFPMeterStats.parser(blob, 0),
               PARSER.OFPMeterStats.parser(blob, len(stats_entry(ours, 0, 0, [0])))]
    assert rules.meter_counts(entries) == {ours: (500, 30000, 120), foreign: (9, 540, 0)}


def test_meter_reconcile_adds_modifies_deletes_ours_and_leaves_foreign_ids_alone(rules):
    a, b, c, d = (plan_mod.meter_id(3, 4, i) for i in range(4))
    installed = {a: ofrules.MeterConfig(100, 10, FLAGS),        # as planned
                 b: ofrules.MeterConfig(100, 99, FLAGS),        # other burst
                 d: ofrules.MeterConfig(5, 1, FLAGS),           # ours, planned by none
                 42: ofrules.MeterConfig(1, 1, OFP.OFPMF_KBPS),  # another controller's
                 (1 << 18) - 1: ofrules.MeterConfig(1, 1, FLAGS)}
    want = [meter(a), meter(b), meter(c)]
    changes = ofrules.reconcile_meters(rules, "ovsbr1", want, installed)
    assert [(ch.op, ch.item.meter_id) for ch in changes] == [
        ("modify_meter", b), ("add_meter", c), ("delete_meter", d)]
    assert changes[0].old.burst == 99 and changes[2].item.where == "ovsbr1"
    installed[b] = ofrules.MeterConfig(100, 10, OFP.OFPMF_PKTPS)   # no stats flag: not ours as is
    assert [ch.op for ch in ofrules.reconcile_meters(rules, "ovsbr1", want[:2], installed)] == [
        "modify_meter", "delete_meter"]
    installed = {a: ofrules.MeterConfig(100, 10, FLAGS)}
    assert ofrules.reconcile_meters(rules, "ovsbr1", [meter(a)], installed) == []


# ---------------------------------------------------------------- order on the wire


def ops_of(rules, changes, ports):
    return [(op, getattr(item, "meter_id", None)) for op, item, _ in rules.ops(changes, ports)]


def test_meters_are_added_before_the_flows_that_use_them_and_deleted_after(rules):
    bare, lim = limited(None), limited(LIMITS["bucket+service"])
    old, new = plan_mod.plan(bare), plan_mod.plan(lim)
    for bridge, ports in ports_of(lim).items():
        up = [c for c in plan_mod.diff(old, new) if c.plane == "ovs"
              and ofrules.change_bridge(c) == bridge]
        seq = [op for op, _ in ops_of(rules, up, ports)]
        if "add_meter" not in seq:
            continue
        first_flow = min(i for i, op in enumerate(seq) if op in ("add", "modify"))
        assert max(i for i, op in enumerate(seq) if op == "add_meter") < first_flow
        down = [c for c in plan_mod.diff(new, old) if c.plane == "ovs"
                and ofrules.change_bridge(c) == bridge]
        seq = [op for op, _ in ops_of(rules, down, ports)]
        assert seq[-1] == "barrier" and seq[-2] == "delete_meter"
        last_flow = max(i for i, op in enumerate(seq) if op in ("add", "modify", "delete"))
        assert min(i for i, op in enumerate(seq) if op == "delete_meter") > last_flow
        break
    else:
        pytest.fail("no bridge holds a meter")


def test_a_meter_deleted_and_reinstalled_in_one_batch_is_only_installed(rules):
    m = meter(plan_mod.meter_id(4, 4, 0))
    changes = [Change("ovs", "delete_meter", ofrules.InstalledMeter("ovsbr1", m.meter_id)),
               Change("ovs", "add_meter", m), Change("ovs", "modify_meter", m)]
    assert ops_of(rules, changes, {}) == [("modify_meter", m.meter_id), ("barrier", None)]
    assert ofrules.split_by_bridge(changes) == {"ovsbr1": changes}
    assert ofrules.describe_change(changes[0]) == "delete_meter ovsbr1: meter=%d" % m.meter_id


def test_ofctl_text_of_a_meter():
    m = meter(plan_mod.meter_id(1, 6, 2), pps=2000, burst=200)
    assert render.meter_to_ofctl(m) == (
        "meter=%d,pktps,burst,stats,bands=type=drop,rate=2000,burst_size=200" % m.meter_id)
    assert render.ofctl_actions((("meter", 9), ("output", "p1"))) == "meter:9,output:p1"


# ---------------------------------------------------------------- a Bridge and its meters


class WireDatapath:
    """What a Bridge needs of a datapath; every message is kept as the bytes a switch would
    receive (`sent`: (kind, xid, bytes), kind the message type or the multipart type)."""

    KINDS = {OFP.OFPT_METER_MOD: "meter_mod", OFP.OFPT_BARRIER_REQUEST: "barrier",
             OFP.OFPT_FLOW_MOD: "flow_mod"}
    MULTIPART = {OFP.OFPMP_METER_CONFIG: "meter_config", OFP.OFPMP_METER: "meter_stats",
                 OFP.OFPMP_FLOW: "flow_stats", OFP.OFPMP_AGGREGATE: "aggregate"}

    def __init__(self, ports):
        self.id, self.xid, self.sent = 1, 0, []
        self.ofproto, self.ofproto_parser = OFP, PARSER
        self.ports = {no: PARSER.OFPPort(no, "02:00:00:00:00:%02x" % no, name.encode(),
                                         0, 0, 0, 0, 0, 0, 0, 0) for name, no in ports.items()}

    def set_xid(self, msg):
        self.xid += 1
        msg.set_xid(self.xid)

    def send_msg(self, msg):
        msg.serialize()
        self.send(bytes(msg.buf))

    def send(self, buf):
        while buf:
            _, mtype, length, xid = struct.unpack_from("!BBHI", buf, 0)
            kind = self.KINDS.get(mtype)
            if mtype == OFP.OFPT_MULTIPART_REQUEST:
                kind = self.MULTIPART[struct.unpack_from("!H", buf, 8)[0]]
            self.sent.append((kind, xid, buf[:length]))
            buf = buf[length:]

    def kinds(self):
        return [k for k, _, _ in self.sent]

    def meter_mods(self):
        """(command, meter id, rate, burst) of every meter mod sent."""
        out = []
        for kind, _, buf in self.sent:
            if kind == "meter_mod":
                command, _, mid = struct.unpack_from("!HHI", buf, 8)
                rate, burst = struct.unpack_from("!II", buf, 20) if len(buf) > 16 else (None, None)
                out.append((command, mid, rate, burst))
        return out


def config_reply(dp, xid, entries, more=False):
    body = b"".join(config_entry(*e) for e in entries)
    buf = struct.pack("!BBHIHH4x", 4, OFP.OFPT_MULTIPART_REPLY, 16 + len(body), xid,
                      OFP.OFPMP_METER_CONFIG, OFP.OFPMPF_REPLY_MORE if more else 0) + body
    from importlib import import_module
    mod = import_module(PARSER.__name__.rsplit(".", 1)[0] + ".ofproto_parser")
    return mod.msg(dp, 4, OFP.OFPT_MULTIPART_REPLY, len(buf), xid, buf)


def test_a_bridge_reads_meters_before_flows_and_reconciles_them_by_id(rules):
    cfg = limited(LIMITS["bucket+service"])
    p = plan_mod.plan(cfg)
    bridges = bridge_mod.Bridges(rules)
    bridges.follow(cfg, p)
    name = next(b.name for b in bridges if list(p.meters(b.name)))
    b = bridges[name]
    assert b.metered
    dp = WireDatapath(ports_of(cfg)[name])
    b.attach(dp)
    assert dp.kinds() == ["meter_config", "flow_stats"], dp.kinds()
    xid = dp.sent[0][1]
    want = list(p.meters(name))
    stale, foreign = plan_mod.meter_id(plan_mod.METER_TAGS, 4, 0), 3
    entries = [(want[0].meter_id, FLAGS, [(want[0].pps, want[0].burst)]),
               (foreign, OFP.OFPMF_KBPS, [(10, 0)])]
    more = [(stale, FLAGS, [(1, 1)])] + [(m.meter_id, FLAGS, [(m.pps + 1, m.burst)]) for m in want[1:]]
    dp.sent = []
    bridges.meter_reply(b, config_reply(dp, xid, entries, more=True), p, may_reconcile=True)
    assert dp.sent == [], "nothing before the last part"
    bridges.meter_reply(b, config_reply(dp, xid, more), p, may_reconcile=True)
    assert dp.meter_mods() == [(OFP.OFPMC_MODIFY, m.meter_id, m.pps, m.burst) for m in want[1:]] + [
        (OFP.OFPMC_DELETE, stale, None, None)]
    assert dp.kinds()[-1] == "barrier" and not b.meters_in_sync
    assert b.report()["meters"] == 2 + len(want[1:]) and b.report()["foreign_meters"] == 1
    # the next dump's meter config predates nothing: a config asked before sends is not used
    dp.sent = []
    b.request_meters("config")
    b.request_meters("config")
    assert dp.kinds() == ["meter_config"], "one question in flight"
    xid = dp.sent[0][1]
    b.send([Change("ovs", "add_meter", want[0])])
    dp.sent = []
    bridges.meter_reply(b, config_reply(dp, xid, []), p, may_reconcile=True)
    assert dp.sent == [], "a meter config older than our sends is not reconciled"


def test_a_bridge_polls_meter_stats_and_reports_the_drops_of_ours(rules):
    cfg = limited(LIMITS["service"])
    p = plan_mod.plan(cfg)
    bridges = bridge_mod.Bridges(rules)
    bridges.follow(cfg, p)
    name = next(b.name for b in bridges if list(p.meters(b.name)))
    b = bridges[name]
    dp = WireDatapath(ports_of(cfg)[name])
    b.attach(dp)
    dp.sent = []
    b.poll(1000.0)
    req = [(xid, buf) for kind, xid, buf in dp.sent if kind == "meter_stats"]
    assert len(req) == 1 and struct.unpack_from("!I", req[0][1], 16)[0] == OFP.OFPM_ALL
    ours = next(iter(p.meters(name))).meter_id
    body = stats_entry(ours, 800, 48000, [300]) + stats_entry(5, 10, 600, [4])
    buf = struct.pack("!BBHIHH4x", 4, OFP.OFPT_MULTIPART_REPLY, 16 + len(body), req[0][0],
                      OFP.OFPMP_METER, 0) + body
    from importlib import import_module
    mod = import_module(PARSER.__name__.rsplit(".", 1)[0] + ".ofproto_parser")
    bridges.meter_reply(b, mod.msg(dp, 4, OFP.OFPT_MULTIPART_REPLY, len(buf), req[0][0], buf), p, True)
    assert bridges.meter_drops(name) == {ours: 300}
    assert bridges.meter_drops("nosuchbridge") == {}
    unmetered = next((x for x in bridges if not list(p.meters(x.name))), None)
    if unmetered is not None:
        assert not unmetered.metered


def test_a_bridge_without_planned_meters_reads_them_at_connection_and_after_our_sends_only(rules):
    cfg = limited(None)
    p = plan_mod.plan(cfg)
    bridges = bridge_mod.Bridges(rules)
    bridges.follow(cfg, p)
    b = next(iter(bridges))
    assert not b.metered
    dp = WireDatapath(ports_of(cfg)[b.name])
    b.attach(dp)
    assert dp.kinds() == ["flow_stats"], "the dump first: no flow needs a meter"
    reply = PARSER.OFPFlowStatsReply(dp)
    reply.xid, reply.flags, reply.body = dp.sent[0][1], 0, []
    assert b.dump_reply(reply) == []
    assert dp.kinds() == ["flow_stats", "meter_config"]
    left = plan_mod.meter_id(7, 4, 1)
    dp.sent, xid = [], dp.sent[1][1]
    bridges.meter_reply(b, config_reply(dp, xid, [(left, FLAGS, [(5, 1)]), (9, FLAGS, [(5, 1)])]), p, True)
    assert dp.meter_mods() == [(OFP.OFPMC_DELETE, left, None, None)]
    dp.sent = []
    b.request_dump("asked")
    assert dp.kinds() == ["meter_config", "flow_stats"], "our delete made the last read stale"
    bridges.meter_reply(b, config_reply(dp, dp.sent[0][1], [(9, FLAGS, [(5, 1)])]), p, True)
    assert list(b.meters) == [9] and dp.meter_mods() == [], "what the check compares is what is there"
    reply.xid = dp.sent[1][1]
    b.dump_reply(reply)
    dp.sent = []
    b.request_dump("asked")
    assert dp.kinds() == ["flow_stats"], "nothing sent since: not read again"

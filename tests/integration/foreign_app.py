"""Another OpenFlow app, as a third party writes one, run in the same manager as
XenoFlow (tests/integration/test_sdn_apps.py): it owns table 0, where it keeps a rule of
its own and sends everything else to XenoFlow's first table (XF_FOREIGN_GOTO), and it
reads every flow of the bridge twice a second, writing what it saw to XF_FOREIGN_OUT
(JSON). It imports its framework directly (os-ken 4 or Ryu 4.34), as such an app would."""

import json
import os

try:
    from os_ken.base import app_manager
    from os_ken.controller import ofp_event
    from os_ken.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
    from os_ken.lib import hub
    from os_ken.ofproto import ofproto_v1_3
    Base = app_manager.OSKenApp
except ImportError:
    from ryu.base import app_manager
    from ryu.controller import ofp_event
    from ryu.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
    from ryu.lib import hub
    from ryu.ofproto import ofproto_v1_3
    Base = app_manager.RyuApp

COOKIE = 0xF0F0          # outside XenoFlow's cookie space (top 16 bits 0x5846)
OWN_PRIORITY = 500       # its own rule: UDP to port 9 dropped


class ForeignApp(Base):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.goto = int(os.environ.get("XF_FOREIGN_GOTO", "0"))
        self.out = os.environ["XF_FOREIGN_OUT"]
        self.dps, self.asked, self.parts, self.errors = {}, {}, {}, []
        self.reader = hub.spawn(self._read_loop)

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state(self, ev):
        dp = ev.datapath
        if ev.state == DEAD_DISPATCHER:
            self.dps.pop(dp.id, None)
            return
        self.dps[dp.id] = dp
        p = dp.ofproto_parser
        own = p.OFPMatch(eth_type=0x0800, ip_proto=17, udp_dst=9)
        dp.send_msg(p.OFPFlowMod(dp, cookie=COOKIE, table_id=0, priority=OWN_PRIORITY, match=own,
                                 instructions=[]))
        if self.goto:
            dp.send_msg(p.OFPFlowMod(dp, cookie=COOKIE, table_id=0, priority=0, match=p.OFPMatch(),
                                     instructions=[p.OFPInstructionGotoTable(self.goto)]))
        dp.send_msg(p.OFPBarrierRequest(dp))

    def _read_loop(self):
        while True:
            hub.sleep(0.5)
            for dp in list(self.dps.values()):
                req = dp.ofproto_parser.OFPFlowStatsRequest(dp)
                dp.set_xid(req)
                self.asked[req.xid] = dp.id
                self.parts[req.xid] = []
                dp.send_msg(req)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def _flows(self, ev):
        msg = ev.msg
        if msg.xid not in self.asked:      # another app's request: none of ours
            return
        self.parts[msg.xid].extend(msg.body)
        if msg.flags & msg.datapath.ofproto.OFPMPF_REPLY_MORE:
            return
        dpid, body = self.asked.pop(msg.xid), self.parts.pop(msg.xid)
        seen = [{"cookie": s.cookie, "table": s.table_id, "priority": s.priority} for s in body]
        tmp = self.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"dpid": dpid, "flows": seen, "errors": self.errors}, f)
        os.replace(tmp, self.out)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    def _error(self, ev):
        self.errors.append([ev.msg.type, ev.msg.code, ev.msg.xid])

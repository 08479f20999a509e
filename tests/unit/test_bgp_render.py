"""fleet/bgp.py: the FRR files of a DPU's speaker and of the lab router, the vtysh lines
that announce, withdraw and set the MED, and the parsing of what FRR 8.4 prints (the
samples below are its real output, captured from daemons in network namespaces)."""

import netaddr
import pytest

from xenoflow_ovs.fleet import bgp
from xenoflow_ovs.intent.config import Bgp, BgpPeer

# the router `show bgp ipv4 unicast summary json` 1 s after speaker 198.18.12.2 went silent
# (its bgpd and bfdd stopped): BFD took the session down, BGP is Idle
ROUTER_SUMMARY_ONE_DOWN = r"""
{
  "routerId":"198.18.11.1",
  "as":65000,
  "vrfId":0,
  "vrfName":"default",
  "tableVersion":5,
  "ribCount":1,
  "ribMemory":192,
  "peerCount":2,
  "peerMemory":1482928,
  "peers":{
    "198.18.11.2":{
      "hostname":"s1",
      "remoteAs":65001,
      "localAs":65000,
      "version":4,
      "msgRcvd":40,
      "msgSent":37,
      "tableVersion":0,
      "outq":0,
      "inq":0,
      "peerUptime":"00:00:32",
      "peerUptimeMsec":32000,
      "peerUptimeEstablishedEpoch":1796223415,
      "pfxRcd":1,
      "pfxSnt":1,
      "state":"Established",
      "peerState":"OK",
      "connectionsEstablished":1,
      "connectionsDropped":0,
      "idType":"ipv4"
    },
    "198.18.12.2":{
      "hostname":"s2",
      "remoteAs":65001,
      "localAs":65000,
      "version":4,
      "msgRcvd":35,
      "msgSent":38,
      "tableVersion":0,
      "outq":0,
      "inq":0,
      "peerUptime":"00:00:01",
      "peerUptimeMsec":1000,
      "peerUptimeEstablishedEpoch":1796223446,
      "pfxRcd":0,
      "pfxSnt":0,
      "state":"Idle",
      "peerState":"OK",
      "connectionsEstablished":1,
      "connectionsDropped":1,
      "idType":"ipv4"
    }
  },
  "failedPeers":1,
  "displayedPeers":2,
  "totalPeers":2,
  "dynamicPeers":0,
  "bestPath":{
    "multiPathRelax":"true"
  }
}
"""

# `show bfd peers json` at the same moment
ROUTER_BFD_ONE_DOWN = r"""
[
  {
    "multihop":false,
    "peer":"198.18.11.2",
    "local":"198.18.11.1",
    "vrf":"default",
    "interface":"r1",
    "id":3233326440,
    "remote-id":1595337272,
    "passive-mode":false,
    "status":"up",
    "uptime":30,
    "diagnostic":"ok",
    "remote-diagnostic":"ok",
    "receive-interval":300,
    "transmit-interval":300,
    "echo-receive-interval":50,
    "echo-transmit-interval":0,
    "detect-multiplier":3,
    "remote-receive-interval":300,
    "remote-transmit-interval":300,
    "remote-echo-receive-interval":50,
    "remote-detect-multiplier":3,
    "rtt-min":0,
    "rtt-avg":0,
    "rtt-max":0
  },
  {
    "multihop":false,
    "peer":"198.18.12.2",
    "local":"198.18.12.1",
    "vrf":"default",
    "interface":"r2",
    "id":3025735153,
    "remote-id":0,
    "passive-mode":false,
    "status":"down",
    "downtime":1,
    "diagnostic":"control detection time expired",
    "remote-diagnostic":"ok",
    "receive-interval":300,
    "transmit-interval":300,
    "echo-receive-interval":50,
    "echo-transmit-interval":0,
    "detect-multiplier":3,
    "remote-receive-interval":300,
    "remote-transmit-interval":300,
    "remote-echo-receive-interval":50,
    "remote-detect-multiplier":3,
    "rtt-min":0,
    "rtt-avg":0,
    "rtt-max":0
  }
]
"""

# the router again, with a neighbor 198.18.11.9 that never answered (BGP Connect, BFD down)
ROUTER_SUMMARY_NEVER_UP = r"""
{
  "routerId":"198.18.11.1",
  "as":65000,
  "vrfId":0,
  "vrfName":"default",
  "tableVersion":6,
  "ribCount":1,
  "ribMemory":192,
  "peerCount":3,
  "peerMemory":2224392,
  "peers":{
    "198.18.11.2":{
      "hostname":"s1",
      "remoteAs":65001,
      "localAs":65000,
      "version":4,
      "msgRcvd":53,
      "msgSent":50,
      "tableVersion":0,
      "outq":0,
      "inq":0,
      "peerUptime":"00:00:44",
      "peerUptimeMsec":44000,
      "peerUptimeEstablishedEpoch":1796223415,
      "pfxRcd":1,
      "pfxSnt":1,
      "state":"Established",
      "peerState":"OK",
      "connectionsEstablished":1,
      "connectionsDropped":0,
      "idType":"ipv4"
    },
    "198.18.11.9":{
      "remoteAs":65009,
      "localAs":65000,
      "version":4,
      "msgRcvd":0,
      "msgSent":0,
      "tableVersion":0,
      "outq":0,
      "inq":0,
      "peerUptime":"never",
      "peerUptimeMsec":0,
      "pfxRcd":0,
      "pfxSnt":0,
      "state":"Connect",
      "peerState":"OK",
      "connectionsEstablished":0,
      "connectionsDropped":0,
      "idType":"ipv4"
    },
    "198.18.12.2":{
      "hostname":"s2",
      "remoteAs":65001,
      "localAs":65000,
      "version":4,
      "msgRcvd":49,
      "msgSent":54,
      "tableVersion":0,
      "outq":0,
      "inq":0,
      "peerUptime":"00:00:09",
      "peerUptimeMsec":9000,
      "peerUptimeEstablishedEpoch":1796223450,
      "pfxRcd":1,
      "pfxSnt":1,
      "state":"Established",
      "peerState":"OK",
      "connectionsEstablished":2,
      "connectionsDropped":1,
      "idType":"ipv4"
    }
  },
  "failedPeers":1,
  "displayedPeers":3,
  "totalPeers":3,
  "dynamicPeers":0,
  "bestPath":{
    "multiPathRelax":"true"
  }
}
"""

ROUTER_BFD_NEVER_UP = r"""
[
  {
    "multihop":false,
    "peer":"198.18.11.2",
    "local":"198.18.11.1",
    "vrf":"default",
    "interface":"r1",
    "id":3233326440,
    "remote-id":1595337272,
    "passive-mode":false,
    "status":"up",
    "uptime":42,
    "diagnostic":"ok",
    "remote-diagnostic":"ok",
    "receive-interval":300,
    "transmit-interval":300,
    "echo-receive-interval":50,
    "echo-transmit-interval":0,
    "detect-multiplier":3,
    "remote-receive-interval":300,
    "remote-transmit-interval":300,
    "remote-echo-receive-interval":50,
    "remote-detect-multiplier":3,
    "rtt-min":0,
    "rtt-avg":0,
    "rtt-max":0
  },
  {
    "multihop":false,
    "peer":"198.18.12.2",
    "local":"198.18.12.1",
    "vrf":"default",
    "interface":"r2",
    "id":3025735153,
    "remote-id":2605298194,
    "passive-mode":false,
    "status":"up",
    "uptime":9,
    "diagnostic":"ok",
    "remote-diagnostic":"ok",
    "receive-interval":300,
    "transmit-interval":300,
    "echo-receive-interval":50,
    "echo-transmit-interval":0,
    "detect-multiplier":3,
    "remote-receive-interval":300,
    "remote-transmit-interval":300,
    "remote-echo-receive-interval":50,
    "remote-detect-multiplier":3,
    "rtt-min":0,
    "rtt-avg":0,
    "rtt-max":0
  },
  {
    "multihop":false,
    "peer":"198.18.11.9",
    "vrf":"default",
    "id":2930817383,
    "remote-id":0,
    "passive-mode":false,
    "status":"down",
    "downtime":2,
    "diagnostic":"ok",
    "remote-diagnostic":"ok",
    "receive-interval":300,
    "transmit-interval":300,
    "echo-receive-interval":50,
    "echo-transmit-interval":0,
    "detect-multiplier":3,
    "remote-receive-interval":1000,
    "remote-transmit-interval":1000,
    "remote-echo-receive-interval":0,
    "remote-detect-multiplier":3,
    "rtt-min":0,
    "rtt-avg":0,
    "rtt-max":0
  }
]
"""

# a speaker's `show running-config` after `network 198.18.0.53/32` (real), with a VRF
# instance of the same AS and an IPv6 family added: neither is ours to read
SPEAKER_RUNNING = """Building configuration...

Current configuration:
!
frr version 8.4.4
frr defaults traditional
hostname s1
no ip forwarding
no ipv6 forwarding
no zebra nexthop kernel enable
!
router bgp 65001
 bgp router-id 198.18.11.2
 no bgp ebgp-requires-policy
 no bgp network import-check
 timers bgp 1 3
 neighbor 198.18.11.1 remote-as 65000
 neighbor 198.18.11.1 bfd
 neighbor 198.18.11.1 bfd profile xf
 neighbor 198.18.11.1 update-source 198.18.11.2
 neighbor 198.18.11.1 advertisement-interval 0
 neighbor 198.18.11.1 timers connect 1
 !
 address-family ipv4 unicast
  network 198.18.0.53/32
  network 198.18.0.54/32 route-map X
  neighbor 198.18.11.1 route-map XF-IN in
  neighbor 198.18.11.1 route-map XF-OUT out
 exit-address-family
 !
 address-family ipv6 unicast
  network 2001:db8::53/128
 exit-address-family
exit
!
router bgp 65001 vrf blue
 address-family ipv4 unicast
  network 198.18.9.9/32
 exit-address-family
exit
!
route-map XF-IN deny 10
exit
!
route-map XF-OUT permit 10
exit
!
end
"""


def speaker_bgp(**kw):
    args = dict(asn=65001, port="bgp0", peers=(BgpPeer(netaddr.IPAddress("198.18.11.1"), 65000),
                                             BgpPeer(netaddr.IPAddress("198.18.12.1"), 65010)))
    args.update(kw)
    return Bgp(**args)


def lines(text):
    return [x.strip() for x in text.splitlines()]


def test_speaker_files_hold_sessions_bfd_and_policy_but_no_network():
    files = bgp.speaker_files(speaker_bgp(), netaddr.IPNetwork("198.18.11.2/24"), "dpu1")
    assert set(files) == {"zebra.conf", "bfdd.conf", "bgpd.conf"}
    conf = lines(files["bgpd.conf"])
    for want in ("hostname dpu1", "router bgp 65001", "bgp router-id 198.18.11.2",
                 "no bgp ebgp-requires-policy", "no bgp network import-check", "timers bgp 1 3",
                 "address-family ipv4 unicast", "route-map XF-OUT permit 10", "route-map XF-IN deny 10"):
        assert want in conf, want
    for peer, asn in (("198.18.11.1", 65000), ("198.18.12.1", 65010)):
        n = "neighbor %s " % peer
        for want in ("remote-as %d" % asn, "update-source 198.18.11.2", "timers connect 1",
                     "advertisement-interval 0", "bfd", "bfd profile xf", "activate",
                     "route-map XF-OUT out", "route-map XF-IN in"):
            assert n + want in conf, n + want
    assert not any(x.startswith("network") for x in conf)
    assert "set metric" not in files["bgpd.conf"]
    # the sessions come up before the family lines that refer to them
    assert conf.index("neighbor 198.18.12.1 remote-as 65010") < conf.index("neighbor 198.18.12.1 activate")
    assert "router bgp" not in files["zebra.conf"] and "router bgp" not in files["bfdd.conf"]


def test_speaker_bfd_timers_med_and_router_id_come_from_the_config():
    b = speaker_bgp(router_id=netaddr.IPAddress("198.18.99.1"), keepalive=2, hold=6,
                    bfd_interval_ms=100, bfd_multiplier=5, med=50)
    files = bgp.speaker_files(b, netaddr.IPAddress("198.18.11.2"), "dpu2")
    conf = lines(files["bgpd.conf"])
    assert "bgp router-id 198.18.99.1" in conf and "timers bgp 2 6" in conf
    # MED inside the outbound route-map
    i = conf.index("route-map XF-OUT permit 10")
    assert conf[i + 1] == "set metric 50"
    bfdd = lines(files["bfdd.conf"])
    assert bfdd[bfdd.index("bfd") + 1:bfdd.index("bfd") + 5] == [
        "profile xf", "receive-interval 100", "transmit-interval 100", "detect-multiplier 5"]


def test_zebra_conf_keeps_kernel_nexthop_groups_off():
    for files in (bgp.speaker_files(speaker_bgp(), netaddr.IPNetwork("198.18.11.2/24"), "d"),
                  bgp.router_files(65000, "198.18.11.1", [("198.18.11.2", 65001)])):
        assert "no zebra nexthop kernel enable" in lines(files["zebra.conf"])


def test_router_files_spread_over_every_neighbor_with_bfd():
    files = bgp.router_files(65000, "198.18.11.1", [("198.18.11.2", 65001), ("198.18.12.2", 65002)],
                             bfd_interval_ms=200, bfd_multiplier=4, maximum_paths=4, hostname="r1")
    conf = lines(files["bgpd.conf"])
    for want in ("hostname r1", "router bgp 65000", "bgp router-id 198.18.11.1",
                 "no bgp ebgp-requires-policy", "timers bgp 1 3", "maximum-paths 4",
                 "bgp bestpath as-path multipath-relax",
                 "neighbor 198.18.11.2 remote-as 65001", "neighbor 198.18.12.2 remote-as 65002",
                 "neighbor 198.18.11.2 bfd", "neighbor 198.18.12.2 bfd profile xf",
                 "neighbor 198.18.12.2 activate", "neighbor 198.18.12.2 advertisement-interval 0"):
        assert want in conf, want
    assert "receive-interval 200" in lines(files["bfdd.conf"])
    assert "detect-multiplier 4" in lines(files["bfdd.conf"])


@pytest.mark.parametrize("call", [
    lambda: bgp.router_files(0, "198.18.0.1", []),
    lambda: bgp.router_files(65000, "not-an-ip", []),
    lambda: bgp.router_files(65000, "198.18.0.1", [("198.18.0.2", 65001)], hold=2),
    lambda: bgp.router_files(65000, "198.18.0.1", [], hostname="a b"),
    lambda: bgp.speaker_files(speaker_bgp(peers=()), netaddr.IPAddress("198.18.0.2"), "d"),
    lambda: bgp.speaker_files(speaker_bgp(bfd_multiplier=0), netaddr.IPAddress("198.18.0.2"), "d"),
    lambda: bgp.network_commands(65001, "2001:db8::1/128", True),
    lambda: bgp.network_commands(65001, "bogus", True),
    lambda: bgp.med_commands(65001, -1),
])
def test_bad_input_is_refused(call):
    with pytest.raises(bgp.BgpError):
        call()


def test_network_commands():
    assert bgp.network_commands(65001, "198.18.0.53/32", True) == [
        "router bgp 65001", "address-family ipv4 unicast", "network 198.18.0.53/32"]
    assert bgp.network_commands(65001, netaddr.IPAddress("198.18.0.53"), False) == [
        "router bgp 65001", "address-family ipv4 unicast", "no network 198.18.0.53/32"]


def test_med_commands():
    assert bgp.med_commands(65001, 100) == ["route-map XF-OUT permit 10", "set metric 100"]
    assert bgp.med_commands(65001, None) == ["route-map XF-OUT permit 10", "no set metric"]


def test_parse_peers_one_up_one_down():
    peers = bgp.parse_peers(ROUTER_SUMMARY_ONE_DOWN, ROUTER_BFD_ONE_DOWN)
    assert peers == {
        "198.18.11.2": {"bgp": "Established", "bfd": "up", "uptime": "00:00:32", "prefixes_sent": 1},
        "198.18.12.2": {"bgp": "Idle", "bfd": "down", "uptime": None, "prefixes_sent": 0},
    }


def test_parse_peers_never_up_and_without_bfd():
    peers = bgp.parse_peers(ROUTER_SUMMARY_NEVER_UP, ROUTER_BFD_NEVER_UP)
    assert peers["198.18.11.9"] == {"bgp": "Connect", "bfd": "down", "uptime": None, "prefixes_sent": 0}
    assert peers["198.18.12.2"]["bgp"] == "Established" and peers["198.18.12.2"]["bfd"] == "up"
    # bfdd not answering, or a peer without bfd: no BFD state
    assert bgp.parse_peers(ROUTER_SUMMARY_NEVER_UP, "[]")["198.18.11.2"]["bfd"] is None


def test_parse_peers_without_a_bgp_instance_and_nested_summary():
    assert bgp.parse_peers("{}", "[]") == {}
    assert bgp.parse_peers("", "") == {}
    nested = '{"ipv4Unicast": %s}' % ROUTER_SUMMARY_ONE_DOWN
    assert set(bgp.parse_peers(nested, ROUTER_BFD_ONE_DOWN)) == {"198.18.11.2", "198.18.12.2"}
    with pytest.raises(bgp.BgpError):
        bgp.parse_peers("% Unknown command", "[]")


def test_parse_networks_reads_only_this_as_default_vrf_ipv4():
    assert bgp.parse_networks(SPEAKER_RUNNING, 65001) == {"198.18.0.53/32", "198.18.0.54/32"}
    assert bgp.parse_networks(SPEAKER_RUNNING, 65002) == set()
    assert bgp.parse_networks("", 65001) == set()
    # what a restarted bgpd shows: its file's configuration, no network
    restarted = SPEAKER_RUNNING.replace("  network 198.18.0.53/32\n", "").replace(
        "  network 198.18.0.54/32 route-map X\n", "")
    assert bgp.parse_networks(restarted, 65001) == set()

"""XenoFlow's DNS service as a Mininet topology (`mn --custom`); its intent is xenoflow.yaml beside it.

    sudo mn --custom topologies/mininet/xenoflow_topo.py --topo xenoflow \\
            --switch ovs,datapath=user --controller remote,port=6653
    xenoflow controller -c topologies/mininet/xenoflow.yaml          # in a second shell

      c1 198.18.0.11-14 --+                                              +-- b1 198.18.0.2  (bind9)
                          +-- s3 -- s1-eth1 [ s1 ] s1-eth2 -- s2 -------+
      c2 198.18.0.21-24 --+         (ingress)  XenoFlow  (egress)         +-- b2 198.18.0.3  (bind9)

s1 is the switch XenoFlow programs (the class `--switch` names; its ports keep Mininet's numbers,
s1-eth1 = 1 and s1-eth2 = 2, the `id` + 1 of xenoflow.yaml's ports). s2 and s3 are standalone
learning bridges (no controller). Every switch uses OVS's userspace datapath and opens no TCP
listener of its own. The clients query the VIP 198.18.0.53 from several source addresses each; s1
answers their ARP for the VIP, picks a backend by the source address's low bit and rewrites only
the destination MAC. The backends hold the VIP on `lo` and answer from it, straight back (direct
server return); arp_ignore/arp_announce keep them from answering ARP for it. bind9 on each backend
answers `who.example.lab TXT` with the backend's name.

Addresses come from 198.18.0.0/15 only, MACs are fixed (02:00:c6:12:00:<host octet in hex>), TX
checksum offload is off on every host interface (OVS's userspace datapath reads veths with
AF_PACKET, and a partial UDP checksum would reach the other side as a bad one).

`mn ... --test xenoflow_dns` waits until the VIP answers, then asks 5 times from every client
address and prints which backend answered each (compare with `xenoflow plan`'s bucket table).

This file runs in mn's own Python (the system python3 with Debian's mininet): the standard
library and mininet only. mn copies every top-level name of a --custom file into its own
globals, hence the XF_ / Xf prefixes.
"""

import json
import os
import shlex
import shutil
import signal
import tempfile
import time

from mininet.log import error, info, output
from mininet.node import Host, OVSBridge
from mininet.topo import Topo

XF_VIP = "198.18.0.53"
XF_NAME = "who.example.lab"
XF_PREFIX = 24
XF_CLIENTS = {"c1": ["198.18.0.11", "198.18.0.12", "198.18.0.13", "198.18.0.14"],
              "c2": ["198.18.0.21", "198.18.0.22", "198.18.0.23", "198.18.0.24"]}
XF_BACKENDS = {"b1": "198.18.0.2", "b2": "198.18.0.3"}
XF_STATS_PORT = 8053            # bind9's statistics channel, on each backend's own loopback

XF_NAMED_CONF = """\
options {{
    directory "{wd}";
    pid-file "{wd}/named.pid";
    lock-file "{wd}/named.lock";
    session-keyfile "{wd}/session.key";
    managed-keys-directory "{wd}";
    listen-on port 53 {{ any; }};
    listen-on-v6 {{ none; }};
    recursion no;
    allow-query {{ any; }};
    dnssec-validation no;
    minimal-responses yes;
    notify no;
}};
controls {{ }};
statistics-channels {{ inet 127.0.0.1 port {stats} allow {{ 127.0.0.1; }}; }};
zone "example.lab" {{ type primary; file "{wd}/example.lab.zone"; }};
"""

XF_ZONE = """\
$TTL 300
@   IN SOA ns.example.lab. admin.example.lab. ( 1 3600 600 86400 300 )
@   IN NS  ns.example.lab.
ns  IN A   {vip}
who IN TXT "{name}"
"""


def xf_mac(ip):
    """02:00:c6:12:00:<last octet in hex>: the lab's MAC scheme."""
    return "02:00:c6:12:00:%02x" % int(ip.split(".")[-1])


def xf_dig(host, server, src=None, name=XF_NAME, timeout=2):
    """One TXT query (one packet, no retry) from `host`; the answer's text or None."""
    argv = ["dig", "@" + server, name, "TXT", "+short", "+tries=1", "+time=%d" % timeout]
    if src:
        argv += ["-b", src]
    out, _err, code = host.pexec(argv)
    for line in out.splitlines():
        if code == 0 and line.startswith('"'):
            return line.strip().strip('"')
    return None


class XfHost(Host):
    """A host as the lab wants it: no IPv6, TX checksum offload off, extra addresses."""

    def config(self, extra_ips=(), **params):
        r = super().config(**params)
        self.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
        for intf in self.intfList():
            if intf.name != "lo":
                self.cmd("ethtool -K %s tx off" % intf.name)
        for ip in extra_ips:
            self.cmd("ip address add %s/%d dev %s" % (ip, XF_PREFIX, self.defaultIntf().name))
        return r


class XfBackend(XfHost):
    """A DNS backend for direct server return: the VIP on lo, arp_ignore=1/arp_announce=2, and
    bind9 answering `who.example.lab TXT` with this host's name (from the VIP it was asked at)."""

    def config(self, **params):
        r = super().config(**params)
        self.cmd("ip address add %s/32 dev lo" % XF_VIP)
        self.cmd("sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2")
        self.workdir = tempfile.mkdtemp(prefix="xf-mn-%s-" % self.name)
        with open(os.path.join(self.workdir, "named.conf"), "w") as f:
            f.write(XF_NAMED_CONF.format(wd=self.workdir, stats=XF_STATS_PORT))
        with open(os.path.join(self.workdir, "example.lab.zone"), "w") as f:
            f.write(XF_ZONE.format(vip=XF_VIP, name=self.name))
        self.cmd("named -g -c %s > %s 2>&1 &" % (shlex.quote(os.path.join(self.workdir, "named.conf")),
                                                 shlex.quote(os.path.join(self.workdir, "named.log"))))
        self.named_pid = self.lastPid
        deadline = time.time() + 20
        while xf_dig(self, "127.0.0.1", timeout=1) != self.name:
            if time.time() > deadline:
                error("*** %s: bind9 does not answer, see %s/named.log\n" % (self.name, self.workdir))
                break
            time.sleep(0.2)
        return r

    def answered(self):
        """Responses bind9 has sent so far (its statistics channel's nsstats Response)."""
        code = ("import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
                "'http://127.0.0.1:%d/json/v1/server', timeout=5).read().decode())" % XF_STATS_PORT)
        out, _err, _code = self.pexec(["python3", "-c", code])
        return int(json.loads(out).get("nsstats", {}).get("Response", 0))

    def terminate(self):
        pid = getattr(self, "named_pid", None)
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):            # named exits within a second or so
                    os.kill(pid, 0)
                    time.sleep(0.05)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.named_pid = None
        if getattr(self, "workdir", None):
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        super().terminate()


class XenoFlowTopo(Topo):
    """Clients on s1's ingress port (through s3), backends on its egress port (through s2)."""

    def build(self):
        quiet = {"cls": OVSBridge, "datapath": "user", "listenPort": None}
        s1 = self.addSwitch("s1", listenPort=None)          # XenoFlow's: the class of --switch
        s2 = self.addSwitch("s2", **quiet)                  # the backends' segment
        s3 = self.addSwitch("s3", **quiet)                  # the clients' segment
        self.addLink(s1, s3, port1=1, port2=1)              # s1-eth1: the service's ingress
        self.addLink(s1, s2, port1=2, port2=1)              # s1-eth2: its egress
        for i, (name, ips) in enumerate(sorted(XF_CLIENTS.items())):
            self.addHost(name, cls=XfHost, ip="%s/%d" % (ips[0], XF_PREFIX), mac=xf_mac(ips[0]),
                         extra_ips=ips[1:])
            self.addLink(name, s3, port2=2 + i)
        for i, (name, ip) in enumerate(sorted(XF_BACKENDS.items())):
            self.addHost(name, cls=XfBackend, ip="%s/%d" % (ip, XF_PREFIX), mac=xf_mac(ip))
            self.addLink(name, s2, port2=2 + i)


def xf_wait_ready(net, timeout=60.0):
    """Wait until the VIP answers a query from the first client address (the controller has
    programmed s1); True when it did."""
    host, src = net.get("c1"), XF_CLIENTS["c1"][0]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if xf_dig(host, XF_VIP, src, timeout=1) is not None:
            return True
        time.sleep(0.5)
    return False


def xf_queries(net, count=5):
    """`count` queries from every client address: {source: {backend or "lost": n}}."""
    out = {}
    for client, ips in sorted(XF_CLIENTS.items()):
        host = net.get(client)
        for src in ips:
            got = out.setdefault(src, {})
            for _ in range(count):
                ans = xf_dig(host, XF_VIP, src) or "lost"
                got[ans] = got.get(ans, 0) + 1
    return out


def xf_test_dns(net, count=5):
    """mn --test xenoflow_dns: every source's queries, and which backends answered them."""
    if not xf_wait_ready(net):
        error("*** the VIP %s does not answer: is `xenoflow controller` running?\n" % XF_VIP)
        return
    before = {b: net.get(b).answered() for b in sorted(XF_BACKENDS)}
    res = xf_queries(net, int(count))
    for src, got in res.items():
        output("%-12s -> %s\n" % (src, ", ".join("%s %d" % kv for kv in sorted(got.items()))))
    answered = {b: net.get(b).answered() - before[b] for b in before}
    lost = sum(got.get("lost", 0) for got in res.values())
    split = [src for src, got in res.items() if len(set(got) - {"lost"}) > 1]
    output("bind9 answered: %s; lost %d%s\n" % (", ".join("%s %d" % kv for kv in answered.items()), lost,
                                                ("; answered by more than one backend: %s" % split)
                                                if split else ""))
    info("*** compare with the bucket table of `xenoflow plan topologies/mininet/xenoflow.yaml`\n")


topos = {"xenoflow": XenoFlowTopo}
tests = {"xenoflow_dns": xf_test_dns}

"""The contenders: one class each, same interface, pluggable by name.

A contender knows how to bring itself up on a lab (:class:`lab_min.LabSpec`)
and tear itself down again, and where clients send (``target()``). ``check()``
raises :class:`NotAvailable` with the reason when it cannot run here; the
harness records the reason and goes on with the others.

  direct             the client talks to backend 1 (no balancer): the floor
  xdp                benchmarks/xdp_lb on the DPU's ingress veth (redirect to the egress veth)
  dnsdist            dnsdist (Debian) in the DPU namespace, a Lua src-bits policy
  ovs-netdev         a private plain OVS (netdev/AF_PACKET) on the DPU veths, DSR flows by ovs-ofctl
  xenoflow-softdoca  XenoFlow, eSwitch on softdoca (the paper lab: `xenoflow lab up`)
  xenoflow-ovs       XenoFlow on plain OVS (`xenoflow lab up --eswitch none`)
  dpdk-loop          a plain DPDK loop on the DPU veths (softdoca's forwarder, pipeline bypassed)

Balancing is the paper's: bucket = low bits of the source address; with two
backends even sources go to backend 1, odd ones to backend 2; with one backend
(`backends=1`) everything goes to backend 1.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))

from lab_min import ROOT, LabSpec  # noqa: E402
from xdp_lb import xdplb  # noqa: E402

from xenoflow_ovs.lab import netns as nsh  # noqa: E402


class NotAvailable(RuntimeError):
    """This contender cannot run here; the message says why."""


class Contender:
    name = "?"
    raw_udp = True            # forwards any UDP to VIP:port (not only DNS)
    wiring = "softdoca"       # paper lab: the `xenoflow lab up --eswitch` wiring it needs
    description = ""

    def __init__(self, lab: LabSpec) -> None:
        self.lab = lab
        self.backends = 2

    def check(self) -> None:
        pass

    def up(self, backends: int = 2) -> None:
        self.backends = backends

    def down(self) -> None:
        pass

    def target(self) -> Tuple[str, int]:
        return self.lab.vip, self.lab.port

    def counters(self) -> Dict:
        return {}

    def fallback(self) -> Optional[int]:
        """Packets carried by a fallback path during the run (XenoFlow only)."""
        return None

    def fallback_since(self, before: Optional[int]) -> Optional[int]:
        """Fallback packets since `before` (a fallback() reading); None when either is unknown."""
        now = self.fallback()
        return None if before is None or now is None else now - before


class Direct(Contender):
    name = "direct"
    wiring = None             # any
    description = "client -> backend 1 over the switch, no balancer (the floor)"

    def target(self):
        return self.lab.backends[0].ip, self.lab.port


class Xdp(Contender):
    name = "xdp"
    description = ("XDP/eBPF balancer (benchmarks/xdp_lb, native XDP on the ingress veth, "
                   "src-bits bucket, dst-MAC rewrite, devmap redirect out the egress veth)")

    def __init__(self, lab):
        super().__init__(lab)
        self.lb: Optional[xdplb.XdpLb] = None

    def check(self):
        for tool in ("clang", "bpftool"):
            if not shutil.which(tool):
                raise NotAvailable("%s not installed" % tool)
        if not nsh.link_exists(self.lab.in_dev, self.lab.dpu_ns):
            raise NotAvailable("no %s in %s (the lab has no eSwitch wiring)"
                               % (self.lab.in_dev, self.lab.dpu_ns))

    def up(self, backends=2):
        super().up(backends)
        lab = self.lab
        macs = [b.mac for b in lab.backends[:backends]]
        bits = 1 if backends > 1 else 0
        self.lb = xdplb.XdpLb(lab.dpu_ns, lab.in_dev, lab.out_dev, lab.vip, lab.port, bits, macs,
                              peer_ns=lab.tor_ns, peer=lab.out_peer).attach()

    def down(self):
        if self.lb:
            self.lb.detach()
            self.lb = None

    def counters(self):
        if not self.lb:
            return {}
        return {"buckets": self.lb.buckets(), **self.lb.stats()}


_DNSDIST_CONF = """\
setLocal("{addr}:{port}")
setACL({{"0.0.0.0/0"}})
{servers}
function srcbits(servers, dq)
  local a = dq.remoteaddr:toString()
  local last = tonumber(string.match(a, "(%d+)$")) or 0
  return servers[(last % #servers) + 1]
end
setServerPolicyLua("srcbits", srcbits)
"""


class Dnsdist(Contender):
    name = "dnsdist"
    raw_udp = False
    description = ("dnsdist %s (Debian) in the DPU namespace, no packet cache, Lua src-bits "
                   "policy, a proxy: queries reach the backends from dnsdist's address")

    def __init__(self, lab):
        super().__init__(lab)
        self.proc: Optional[subprocess.Popen] = None
        self.workdir = os.path.join(lab.workdir, "dnsdist")

    def check(self):
        if not shutil.which("dnsdist"):
            raise NotAvailable("dnsdist not installed")
        if not nsh.link_exists(self.lab.in_dev, self.lab.dpu_ns):
            raise NotAvailable("no %s in %s" % (self.lab.in_dev, self.lab.dpu_ns))

    def target(self):
        return self.lab.dnsdist_addr, self.lab.port

    def up(self, backends=2):
        super().up(backends)
        lab = self.lab
        os.makedirs(self.workdir, exist_ok=True)
        servers = "\n".join(
            'newServer({address="%s:%d", name="%s", order=%d, checkName="www.example.lab.", '
            'checkInterval=1})' % (b.ip, lab.port, b.name, i + 1)
            for i, b in enumerate(lab.backends[:backends]))
        conf = os.path.join(self.workdir, "dnsdist.conf")
        with open(conf, "w") as f:
            f.write(_DNSDIST_CONF.format(addr=lab.dnsdist_addr, port=lab.port, servers=servers))
        nsh.add_address(lab.in_dev, "%s/%d" % (lab.dnsdist_addr, lab.prefix), ns=lab.dpu_ns)
        # the switch must know where the DPU's address lives (learning is off on t-p0)
        nsh.run_in_ns(lab.tor_ns, ["bridge", "fdb", "replace", lab.in_mac, "dev", lab.in_peer,
                                   "master", "static"])
        log = open(os.path.join(self.workdir, "dnsdist.log"), "ab")
        self.proc = nsh.popen_in_ns(lab.dpu_ns, ["dnsdist", "--supervised", "--disable-syslog",
                                                 "-C", conf], stdout=log, stderr=log)
        log.close()
        from xenoflow_ovs.lab.dnsclient import query_many_in_ns
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("dnsdist exited rc=%s (see %s)" % (self.proc.returncode,
                                                                     self.workdir))
            r = query_many_in_ns(lab.client_ns, lab.dnsdist_addr, src=lab.client_srcs[1],
                                 count=1, timeout=0.5)
            if r["answers"][0]:
                return
            if time.monotonic() > deadline:
                self.down()
                raise RuntimeError("dnsdist not answering after 20 s")
            time.sleep(0.3)

    def down(self):
        p = self.proc
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.proc = None
        lab = self.lab
        if nsh.ns_exists(lab.dpu_ns):
            nsh.run_in_ns(lab.dpu_ns, ["ip", "addr", "del", "%s/%d" % (lab.dnsdist_addr, lab.prefix),
                                       "dev", lab.in_dev], check=False)


class OvsNetdev(Contender):
    name = "ovs-netdev"
    description = ("plain Open vSwitch, userspace netdev datapath (AF_PACKET ports) on the DPU "
                   "veths, DSR flows (src-bit match, set eth_dst, output) and a VIP ARP responder "
                   "installed with ovs-ofctl; no controller")
    BRIDGE = "xbbr"

    def __init__(self, lab):
        super().__init__(lab)
        self.ovs = None
        self.rundir: Optional[str] = None

    def check(self):
        if not shutil.which("ovs-vswitchd"):
            raise NotAvailable("openvswitch-switch not installed")
        if self.lab.kind != "minimal":
            raise NotAvailable("the paper lab's dpu namespace already runs its OVS (netdev taps "
                               "would collide); measured on the minimal lab, or see xenoflow-ovs")

    def flows(self) -> str:
        lab = self.lab
        vip, vmac = lab.vip, lab.vip_mac
        out = [
            "table=0,priority=300,arp,in_port=1,arp_op=1,arp_tpa=%s actions=move:NXM_OF_ETH_SRC[]"
            "->NXM_OF_ETH_DST[],set_field:%s->eth_src,set_field:2->arp_op,move:NXM_NX_ARP_SHA[]"
            "->NXM_NX_ARP_THA[],set_field:%s->arp_sha,move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],"
            "set_field:%s->arp_spa,IN_PORT" % (vip, vmac, vmac, vip),
            "table=0,priority=0 actions=drop",
        ]
        bes = lab.backends[:self.backends]
        if len(bes) == 1:
            out.append("table=0,priority=200,udp,in_port=1,nw_dst=%s,tp_dst=%d "
                       "actions=set_field:%s->eth_dst,output:2" % (vip, lab.port, bes[0].mac))
        else:
            for parity, b in enumerate(bes[:2]):
                out.append("table=0,priority=200,udp,in_port=1,nw_dst=%s,tp_dst=%d,"
                           "nw_src=0.0.0.%d/0.0.0.1 actions=set_field:%s->eth_dst,output:2"
                           % (vip, lab.port, parity, b.mac))
        return "\n".join(out) + "\n"

    def up(self, backends=2):
        super().up(backends)
        from xenoflow_ovs.lab.ovs_instance import OvsInstance
        lab = self.lab
        self.rundir = tempfile.mkdtemp(prefix="xb-ovs-")
        self.ovs = OvsInstance(self.rundir, netns=lab.dpu_ns)
        self.ovs.start()
        br = self.BRIDGE
        self.ovs.add_bridge(br)
        self.ovs.vsctl("add-port", br, lab.in_dev, "--", "set", "interface", lab.in_dev,
                       "ofport_request=1")
        self.ovs.vsctl("add-port", br, lab.out_dev, "--", "set", "interface", lab.out_dev,
                       "ofport_request=2")
        path = os.path.join(self.rundir, "flows.txt")
        with open(path, "w") as f:
            f.write(self.flows())
        self.ovs.ofctl("replace-flows", br, path)

    def down(self):
        if self.ovs is not None:
            try:
                self.ovs.vsctl("--if-exists", "del-br", self.BRIDGE, check=False)
            finally:
                self.ovs.stop()
            self.ovs = None
        if self.rundir:
            shutil.rmtree(self.rundir, ignore_errors=True)
            self.rundir = None

    def counters(self):
        if self.ovs is None:
            return {}
        txt = self.ovs.ofctl("dump-flows", self.BRIDGE, check=False)
        c = {}
        for line in txt.splitlines():
            if "nw_src=" in line and "n_packets=" in line:
                n = int(line.split("n_packets=")[1].split(",")[0])
                c["bucket" + line.split("nw_src=0.0.0.")[1][0]] = n
        return c


# the CLI next to the running Python (tox's env, `make venv`'s .venv), else the dev venv's
XENOFLOW = next((p for p in (os.path.join(os.path.dirname(sys.executable), "xenoflow"),
                             os.path.join(ROOT, ".venv", "bin", "xenoflow")) if os.path.exists(p)),
                os.path.join(ROOT, ".venv", "bin", "xenoflow"))


def xenoflow(*args, check=True, timeout=300):
    p = subprocess.run([XENOFLOW] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=timeout, cwd=ROOT)
    if check and p.returncode != 0:
        raise RuntimeError("xenoflow %s: rc=%d %s" % (" ".join(args), p.returncode,
                                                      (p.stderr or p.stdout)[-2000:]))
    return p


PAPER_RUN_DIR = os.path.join(tempfile.gettempdir(), "xb-paper")


class PaperSession:
    """The paper lab for a benchmark run, in its own run dir (PAPER_RUN_DIR), so it never
    touches a lab someone else brought up (theirs holds the fixed namespace names: then
    `lab up` refuses and the XenoFlow contenders are not measured). `xenoflow lab up
    --eswitch W` with the wiring the next contender needs (softdoca: dpu-X veths +
    eswitchd; none: OVS on the wire), switched (down, up) only when it changes; down at
    the end. After a crash: `xenoflow lab down --run-dir /tmp/xb-paper`."""

    def __init__(self, run_dir: str = PAPER_RUN_DIR) -> None:
        self.run_dir = run_dir
        self.wiring: Optional[str] = None

    def lab(self, *args, check=True):
        return xenoflow("lab", "--run-dir", self.run_dir, *args, check=check)

    def config(self) -> str:
        return os.path.join(self.run_dir, "xenoflow.yaml")

    def ensure(self, wiring: str) -> bool:
        """True when the lab was (re)built: namespaces are new, re-attach receivers."""
        if wiring == self.wiring and self.alive():
            return False
        self.lab("down", check=False)
        try:
            self.lab("up", "--eswitch", wiring)
        except RuntimeError:
            self.lab("down", check=False)        # one retry from a clean state
            time.sleep(1)
            self.lab("up", "--eswitch", wiring)
        self.wiring = wiring
        return True

    def alive(self) -> bool:
        st = self.lab("status", check=False).stdout
        return "eswitch driver: %s" % self.wiring in st and "NOT OURS" not in st \
            and "not alive" not in st

    def close(self) -> None:
        if self.wiring is not None:
            self.lab("down", check=False)
            self.wiring = None


class XenoflowLab(Contender):
    """XenoFlow in the paper lab, brought up by `xenoflow lab up`;
    the run's PaperSession switches the wiring, the contender only checks it."""
    eswitch = "softdoca"

    def check(self):
        if self.lab.kind != "paper":
            raise NotAvailable("needs the paper lab and its controller (run.py --lab paper, "
                               "`xenoflow lab up --eswitch %s`)" % self.eswitch)
        if not os.path.exists(XENOFLOW):
            raise NotAvailable("no xenoflow CLI beside %s nor in .venv (make venv)" % sys.executable)
        if "--eswitch" not in xenoflow("lab", "--help", check=False).stdout:
            raise NotAvailable("`xenoflow lab up --eswitch` not available yet")

    def up(self, backends=2):
        super().up(backends)
        if backends != 2:
            raise NotAvailable("the paper config has two backends (no single-backend run)")
        st = xenoflow("lab", "--run-dir", PAPER_RUN_DIR, "status", check=False).stdout
        if "eswitch driver: %s" % self.eswitch not in st:
            raise RuntimeError("the paper lab is not up with eswitch %s" % self.eswitch)

    def fallback(self):
        """Fallback packets so far, from `xenoflow status --json` (None when the API
        does not answer)."""
        p = xenoflow("status", "-c", os.path.join(PAPER_RUN_DIR, "xenoflow.yaml"), "--json",
                     check=False, timeout=30)
        try:
            st = json.loads(p.stdout)
        except ValueError:
            return None
        fb = st.get("fallback_packets")      # the API's status document (openapi.yaml)
        return fb if isinstance(fb, int) else None


    def restart_ovs(self, timeout: float = 30.0) -> Dict[str, Optional[float]]:
        """Kill ovs-vswitchd and start it again on the same database (the lab's own OVS,
        whose new PIDs the lab's state then records); seconds from the restart until the
        daemon is up, until every bridge carries its planned flows again (the controller's
        reconcile) and until `xenoflow check` says consistent (None: not within timeout)."""
        import argparse
        import io

        from xenoflow_ovs.lab.labctl import LabCtl, Progress
        ctl = LabCtl(argparse.Namespace(run_dir=PAPER_RUN_DIR, topology=None, eswitch=None,
                                        mirror_routes=None), Progress(io.StringIO()))
        ovs = ctl.ovs()
        want = ctl.planes.planned_counts()
        t0 = time.monotonic()
        ovs.restart_vswitchd()
        ctl.start_ovs()
        up = time.monotonic() - t0
        flows = consistent = None
        deadline = t0 + timeout
        while flows is None and time.monotonic() < deadline:
            have = ctl.planes.flow_counts(ovs)
            if all(have.get(b, 0) >= n for b, n in want.items()):
                flows = time.monotonic() - t0
            else:
                time.sleep(0.02)
        while flows is not None and consistent is None and time.monotonic() < deadline:
            if xenoflow("check", "-c", os.path.join(PAPER_RUN_DIR, "xenoflow.yaml"),
                        check=False, timeout=30).returncode == 0:
                consistent = time.monotonic() - t0
            else:
                time.sleep(0.1)
        return {"daemon_up_s": up, "flows_restored_s": flows, "consistent_s": consistent}


class XenoflowSoftdoca(XenoflowLab):
    name = "xenoflow-softdoca"
    eswitch = "softdoca"
    description = "XenoFlow, eSwitch on softdoca (DPDK AF_PACKET/AF_XDP ports), OVS slow path"


class XenoflowOvs(XenoflowLab):
    name = "xenoflow-ovs"
    eswitch = "none"
    wiring = "none"
    description = "XenoFlow on plain OVS (eswitch none): the balancing rules in the OVS bridge"


class Softdoca(Contender):
    """XenoFlow's eSwitch plane on softdoca in the minimal lab (benchmarks/softdoca_lb.py:
    the entries eswitchd would install, no controller, no OVS): measurable while the paper
    lab is busy, and on the same lab as xdp/dnsdist/ovs-netdev."""
    name = "softdoca"
    description = ("XenoFlow's eSwitch plane on softdoca (dpdk_glue, DPDK af_packet ports on the "
                   "DPU veths, root control pipe -> src-bits basic pipe -> dst MAC -> p1; the "
                   "forwarder's default idle back-off), programmed directly, no controller/OVS")

    busy_poll = False
    loop = False

    def __init__(self, lab):
        super().__init__(lab)
        self.proc: Optional[subprocess.Popen] = None

    def check(self):
        try:
            import dpdk_glue  # noqa: F401
            from dpdk_glue import _glue  # noqa: F401
        except Exception as e:
            raise NotAvailable("dpdk_glue not built: %s" % e)
        if self.lab.kind != "minimal":
            raise NotAvailable("on the paper lab the eSwitch is eswitchd's (xenoflow-softdoca)")

    def up(self, backends=2, port=None, defer=False):
        super().up(backends)
        lab = self.lab
        for rep, peer in (("rep-p0", "p0"), ("rep-p1", "p1")):
            if not nsh.link_exists(rep, lab.dpu_ns):
                nsh.add_veth(rep, peer, ns=lab.dpu_ns, peer_ns=lab.dpu_ns)
                nsh.prepare_link(rep, ns=lab.dpu_ns)
                nsh.prepare_link(peer, ns=lab.dpu_ns)
        cfg = {"vip": lab.vip, "port": port or lab.port, "bits": 1 if backends > 1 else 0,
               "defer": defer,
               "macs": [b.mac for b in lab.backends[:backends]], "in_dev": lab.in_dev,
               "out_dev": lab.out_dev, "prefix": lab.dpu_ns + "-sd", "busy_poll": self.busy_poll,
               "loop": self.loop}
        from xenoflow_ovs.lab.labctl import _subprocess_env
        env = _subprocess_env()          # the glue from where this process has it
        self.proc = subprocess.Popen(
            nsh.ns_argv(lab.dpu_ns, [sys.executable, os.path.join(HERE, "softdoca_lb.py"),
                                     "--config", json.dumps(cfg)]),
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            universal_newlines=True, start_new_session=True)
        line = self.proc.stdout.readline()
        if not line or not json.loads(line).get("ready"):
            err = self.proc.stderr.read()[-2000:] if self.proc.poll() is not None else ""
            self.down()
            raise RuntimeError("softdoca child failed: %s" % err)

    def insert(self):
        """Add the deferred entries now; {"t0_ns", "t1_ns"} around the batch."""
        return self._cmd("insert")

    def _cmd(self, c):
        self.proc.stdin.write(c + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline() or "{}")

    def counters(self):
        if self.proc is None or self.proc.poll() is not None:
            return {}
        st = self._cmd("stats")
        return {"buckets": dict(enumerate(st.get("buckets", []))), "miss": st.get("p0", {}).get("miss_pkts")}

    def down(self):
        p = self.proc
        if p is not None:
            if p.poll() is None:
                try:
                    p.stdin.write("quit\n")
                    p.stdin.flush()
                    p.wait(15)
                except (OSError, subprocess.TimeoutExpired):
                    p.kill()
                    p.wait(5)
            self.proc = None
        if nsh.ns_exists(self.lab.dpu_ns):
            for rep in ("rep-p0", "rep-p1"):
                nsh.delete_link(rep, self.lab.dpu_ns)


class SoftdocaBusy(Softdoca):
    name = "softdoca-busy"
    busy_poll = True
    description = ("the same eSwitch plane with the forwarder told to busy-poll (an option "
                   "meant for benchmarks); it then takes one of the two cores whole")


class DpdkLoop(Softdoca):
    """The plain DPDK loop on the same ports, in the same forwarder: softdoca's io loop with
    the pipeline bypassed (rx burst -> set dst MAC -> tx burst, testpmd's macfwd), so the
    ratio to "softdoca" is the cost of the pipes alone. It balances nothing: every frame goes
    to backend 1 (the receivers count both backends)."""
    name = "dpdk-loop"
    loop = True
    description = ("a plain DPDK loop on the DPU veths (softdoca's forwarder, af_packet ports, "
                   "same idle back-off, pipeline bypassed: rx burst -> dst MAC of backend 1 -> "
                   "tx burst out the other port; no parsing, no lookup)")


ALL = [XenoflowSoftdoca, XenoflowOvs, Softdoca, SoftdocaBusy, Xdp, Dnsdist, Direct, DpdkLoop, OvsNetdev]
BY_NAME = {c.name: c for c in ALL}

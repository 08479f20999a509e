"""Drives the Mininet topology of topologies/mininet/xenoflow_topo.py for test_mininet.py.

Runs under the system python3 (Debian's mininet), as root, with OVS_RUNDIR (and the other OVS_*
variables) naming the OVS that Mininet's ovs-vsctl reaches. Everything it reports is one line
``XF-JSON {...}`` on stdout (Mininet logs elsewhere); it moves on at each line it reads on stdin.

    python3 mininet_driver.py run --custom FILE --port P [--count N]
        builds the net from FILE's topos["xenoflow"] (s1: OVSSwitch, userspace datapath, remote
        controller 127.0.0.1:P), waits until the VIP answers, reports {"event": "ready", ...: the
        PIDs of the hosts' shells and of bind9, bind9's work dirs, the switches' ports};
        on a line: N queries from every client address, reports {"event": "queries", "results":
        {source: {answered by: n}}, "answered": {backend: bind9's responses meanwhile}};
        on a line (or EOF, SIGTERM): stops the net, reports {"event": "stopped"}.
    python3 mininet_driver.py clean
        `mn -c` in a PID and mount namespace of its own (unshare), over a /tmp of its own: its
        killall/pkill then reach no process of the machine (another user's ryu-manager, ping,
        Mininet), and its `rm -f /tmp/*.log /tmp/*.out` no file of theirs. The links, the OVS
        bridges it deletes are the machine's (those of the OVS its ovs-vsctl reaches).
"""
import argparse
import json
import os
import runpy
import signal
import subprocess
import sys
import time
from functools import partial

REPORT = "XF-JSON "


def report(**kw):
    sys.stdout.write(REPORT + json.dumps(kw) + "\n")
    sys.stdout.flush()


def _sigterm(_sig, _frame):
    raise SystemExit(3)


def run(args):
    from mininet.log import setLogLevel
    from mininet.net import Mininet
    from mininet.node import OVSSwitch, RemoteController

    setLogLevel("info")
    signal.signal(signal.SIGTERM, _sigterm)
    custom = runpy.run_path(args.custom)
    net = Mininet(topo=custom["topos"]["xenoflow"](), switch=partial(OVSSwitch, datapath="user"),
                  controller=partial(RemoteController, ip="127.0.0.1", port=args.port),
                  listenPort=None, autoSetMacs=False, waitConnected=False)
    try:
        net.start()
        ready = custom["xf_wait_ready"](net, timeout=args.timeout)
        backends = sorted(custom["XF_BACKENDS"])
        report(event="ready", ok=ready,
               hosts={h.name: h.pid for h in net.hosts},
               named={b: net.get(b).named_pid for b in backends},
               workdirs={b: net.get(b).workdir for b in backends},
               ports={s.name: [i.name for i in s.intfList() if i.name != "lo"] for s in net.switches})
        if not ready or not sys.stdin.readline():
            return 1
        before = {b: net.get(b).answered() for b in backends}
        results = custom["xf_queries"](net, args.count)
        report(event="queries", count=args.count, results=results,
               answered={b: net.get(b).answered() - before[b] for b in backends})
        sys.stdin.readline()
        return 0
    finally:
        net.stop()
        report(event="stopped")


def clean(_args):
    """mn -c, isolated (see the module's doc)."""
    me = os.path.abspath(__file__)
    os.execvp("unshare", ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private",
                          sys.executable, me, "clean-inside"])


def clean_inside(_args):
    if os.getpid() != 1:                     # only ever as the first process of unshare's namespaces
        sys.exit("clean-inside runs only under `mininet_driver.py clean`")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "xf-mn-clean", "/tmp"], check=True)
    p = subprocess.run(["mn", "-c"])
    time.sleep(0.1)
    return p.returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--custom", required=True)
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--count", type=int, default=5)
    r.add_argument("--timeout", type=float, default=60.0)
    sub.add_parser("clean")
    sub.add_parser("clean-inside")
    a = ap.parse_args()
    return {"run": run, "clean": clean, "clean-inside": clean_inside}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())

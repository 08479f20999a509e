#!/usr/bin/env python3
"""Sequential DNS round-trip probe for either IP family: one query in flight at a time.

tools/rtt_probe.py's method (send, wait for the reply with the same ID or a timeout,
counted as lost; --warmup queries not recorded) and its summary, on a socket of the
server address's family, so IPv4 and IPv6 are timed by the same code:

    ip netns exec NS .venv/bin/python rtt_probe46.py --server 2001:db8::53 --src 2001:db8::10

Prints one JSON line (n, lost, median/p90/p99/min/max/mean in microseconds); --samples FILE
also writes every RTT (us), one per line.
"""
import argparse
import ipaddress
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rtt_probe  # noqa: E402  (its summary; it finds xenoflow_ovs)

from xenoflow_ovs.lab import frames  # noqa: E402


def family(addr):
    return socket.AF_INET6 if ipaddress.ip_address(addr).version == 6 else socket.AF_INET


def _wait_reply(s, qid, deadline_ns):
    """The receive time (ns) of the reply to qid, or None (timeout, refused, deadline)."""
    while True:
        try:
            r = s.recv(2048)
        except (socket.timeout, ConnectionRefusedError):
            return None
        t1 = time.perf_counter_ns()
        if frames.dns_id(r) == qid:
            return t1
        if t1 >= deadline_ns:
            return None
        s.settimeout(max(1e-3, (deadline_ns - t1) / 1e9))


def probe(server, port=53, src=None, count=2000, warmup=50, timeout=0.5, name="www.example.lab"):
    fam = family(server)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((src or ("::" if fam == socket.AF_INET6 else "0.0.0.0"), 0))
    s.connect((server, port))
    rtts, lost = [], 0
    for i in range(warmup + count):
        qid = i & 0xFFFF
        pkt = frames.dns_query(name, "A", qid=qid)
        s.settimeout(timeout)
        t0 = time.perf_counter_ns()
        s.send(pkt)
        t1 = _wait_reply(s, qid, t0 + int(timeout * 1e9))
        if i < warmup:
            continue
        if t1 is None:
            lost += 1
        else:
            rtts.append((t1 - t0) / 1000.0)
    s.close()
    return rtts, lost


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", required=True)
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--src", default=None)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=0.5)
    ap.add_argument("--samples", default=None, help="write every RTT (us) to this file")
    a = ap.parse_args(argv)
    rtts, lost = probe(a.server, a.port, a.src, a.count, a.warmup, a.timeout)
    if a.samples:
        with open(a.samples, "w") as f:
            f.write("".join("%.2f\n" % r for r in rtts))
    out = rtt_probe.summarize(rtts, lost, a.count)
    out.update(server=a.server, src=a.src, port=a.port)
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

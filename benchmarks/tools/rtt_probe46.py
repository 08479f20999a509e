#!/usr/bin/env python3
"""Sequential DNS round-trip probe for either IP family: one query in flight at a time.

tools/rtt_probe.py's method (send, wait for the reply with the same ID or a timeout,
counted as lost; --warmup queries not recorded) and its summary, on a socket of the
server address's family, so IPv4 and IPv6 are timed by the same code:

    ip netns exec NS .venv/bin/python rtt_probe46.py --server 2001:db8::53 --src 2001:db8::10

Prints one JSON line (n, lost, median/p90/p99/min/max/mean in microseconds); --samples FILE
also writes every RTT (us), one per line.  With --target SERVER,SRC (repeated) the targets
take turns query by query (drift of a noisy machine falls on all alike), in a fresh random
order each round with --shuffle SEED (so no target always follows the same one: what the one
before did, e.g. leave a forwarder spinning or asleep, is spread over all alike): one summary
per target in "targets", and --samples lines "INDEX RTT".
"""
import argparse
import ipaddress
import json
import os
import random
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


def _socket(server, src, port):
    fam = family(server)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((src or ("::" if fam == socket.AF_INET6 else "0.0.0.0"), 0))
    s.connect((server, port))
    return s


def probe_many(targets, port=53, count=2000, warmup=50, timeout=0.5, name="www.example.lab", seed=None):
    """targets: [(server, src)], queried in turn (a random order per round with a seed);
    [(rtts, lost)] per target."""
    socks = [_socket(server, src, port) for server, src in targets]
    out = [([], 0) for _ in targets]
    rng = random.Random(seed) if seed is not None else None
    order = list(range(len(socks)))
    for i in range(warmup + count):
        qid = i & 0xFFFF
        pkt = frames.dns_query(name, "A", qid=qid)
        if rng:
            rng.shuffle(order)
        for k in order:
            s = socks[k]
            s.settimeout(timeout)
            t0 = time.perf_counter_ns()
            s.send(pkt)
            t1 = _wait_reply(s, qid, t0 + int(timeout * 1e9))
            if i < warmup:
                continue
            rtts, lost = out[k]
            if t1 is None:
                out[k] = (rtts, lost + 1)
            else:
                rtts.append((t1 - t0) / 1000.0)
    for s in socks:
        s.close()
    return out


def probe(server, port=53, src=None, count=2000, warmup=50, timeout=0.5, name="www.example.lab"):
    return probe_many([(server, src)], port, count, warmup, timeout, name)[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server")
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--src", default=None)
    ap.add_argument("--target", action="append", default=[], metavar="SERVER,SRC",
                    help="query these in turn (repeat the option)")
    ap.add_argument("--shuffle", type=int, default=None, metavar="SEED",
                    help="with --target: a random order of the targets each round")
    ap.add_argument("--count", type=int, default=2000, help="queries (per target)")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=0.5)
    ap.add_argument("--samples", default=None, help="write every RTT (us) to this file")
    a = ap.parse_args(argv)
    if bool(a.server) == bool(a.target):
        ap.error("either --server or --target")
    if a.server:
        rtts, lost = probe(a.server, a.port, a.src, a.count, a.warmup, a.timeout)
        if a.samples:
            with open(a.samples, "w") as f:
                f.write("".join("%.2f\n" % r for r in rtts))
        out = rtt_probe.summarize(rtts, lost, a.count)
        out.update(server=a.server, src=a.src, port=a.port)
    else:
        targets = [tuple(t.split(",", 1)) for t in a.target]
        res = probe_many(targets, a.port, a.count, a.warmup, a.timeout, seed=a.shuffle)
        if a.samples:
            with open(a.samples, "w") as f:
                f.write("".join("%d %.2f\n" % (k, r) for k, (rtts, _) in enumerate(res) for r in rtts))
        out = {"targets": [dict(rtt_probe.summarize(rtts, lost, a.count), server=t[0], src=t[1])
                           for t, (rtts, lost) in zip(targets, res)], "port": a.port}
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Sequential DNS round-trip probe for either IP family: one query in flight at a time.

One query at a time: send, wait for the reply with the same ID (or a timeout,
counted as lost), next. `--warmup` queries first (not recorded), then `--count`
recorded ones. The socket takes the server address's family, so IPv4 and IPv6
are timed by the same code. Queries come from xenoflow_ovs.lab.frames
(dnspython): run it with the Python that has the package (the benchmarks pass
their own, sys.executable; a checkout beside it is used when that Python lacks it):

    ip netns exec NS .venv/bin/python rtt_probe.py --server VIP --src ADDR --count 2000
    ip netns exec NS .venv/bin/python rtt_probe.py --server 2001:db8::53 --src 2001:db8::10

Prints one JSON line: n, lost, median/p90/p99/min/max/mean in microseconds
(nearest-rank percentiles); `--samples FILE` also writes every RTT (us), one
per line, for distribution plots.

With --target SERVER[,SRC] (repeated) instead of --server, the targets take turns
query by query (drift of a noisy machine falls on all alike), in a fresh random
order each round with --shuffle SEED (so no target always follows the same one:
what the one before did, e.g. leave a forwarder spinning or asleep, is spread over
all alike): one summary per target in "targets", and --samples lines "INDEX RTT".
"""
import argparse
import ipaddress
import json
import math
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pkgpath  # noqa: E402,F401  (finds xenoflow_ovs: installed, else this checkout)

from xenoflow_ovs.lab import frames  # noqa: E402


def pct(sorted_vals, p):
    """Nearest-rank percentile (p in 0..100) of a sorted list."""
    if not sorted_vals:
        return None
    k = max(1, int(math.ceil(p / 100.0 * len(sorted_vals))))
    return sorted_vals[k - 1]


def summarize(rtts, lost, sent):
    s = sorted(rtts)
    out = {"n": len(s), "sent": sent, "lost": lost}
    if s:
        out.update(median_us=pct(s, 50), p90_us=pct(s, 90), p99_us=pct(s, 99),
                   min_us=s[0], max_us=s[-1], mean_us=sum(s) / len(s))
    return out


def family(addr):
    """The socket family an address is spelt in."""
    return socket.AF_INET6 if ipaddress.ip_address(addr).version == 6 else socket.AF_INET


def parse_target(spec):
    """"SERVER[,SRC]" -> (server, src or None)."""
    server, _, src = spec.partition(",")
    return server, (src or None)


def _socket(server, src, port):
    fam = family(server)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((src or ("::" if fam == socket.AF_INET6 else "0.0.0.0"), 0))
    s.connect((server, port))
    return s


def _wait_reply(s, qid, deadline_ns):
    """The receive time (ns) of the reply to qid, or None (timeout, refused, deadline)."""
    while True:
        try:
            r = s.recv(2048)
        except (socket.timeout, ConnectionRefusedError):   # refused: ICMP port unreachable
            return None
        t1 = time.perf_counter_ns()
        if frames.dns_id(r) == qid:
            return t1
        if t1 >= deadline_ns:
            return None
        s.settimeout(max(1e-3, (deadline_ns - t1) / 1e9))


def _query(s, pkt, qid, timeout):
    """One query on s: its RTT in us, or None when lost."""
    s.settimeout(timeout)
    t0 = time.perf_counter_ns()
    s.send(pkt)
    t1 = _wait_reply(s, qid, t0 + int(timeout * 1e9))
    return None if t1 is None else (t1 - t0) / 1000.0


def probe_many(targets, port=53, count=2000, warmup=50, timeout=0.5, name="www.example.lab",
               gap=0.0, seed=None):
    """targets: [(server, src)], queried in turn (a random order per round with a seed; gap
    seconds after each round); [(rtts, lost)] per target."""
    socks = [_socket(server, src, port) for server, src in targets]
    rtts = [[] for _ in targets]
    lost = [0] * len(targets)
    rng = random.Random(seed) if seed is not None else None
    order = list(range(len(socks)))
    try:
        for i in range(warmup + count):
            qid = i & 0xFFFF
            pkt = frames.dns_query(name, "A", qid=qid)
            if rng:
                rng.shuffle(order)
            for k in order:
                rtt = _query(socks[k], pkt, qid, timeout)
                if i < warmup:
                    continue
                if rtt is None:
                    lost[k] += 1
                else:
                    rtts[k].append(rtt)
            if gap:
                time.sleep(gap)
    finally:
        for s in socks:
            s.close()
    return list(zip(rtts, lost))


def probe(server, port=53, src=None, count=2000, warmup=50, timeout=0.5,
          name="www.example.lab", gap=0.0):
    """One target: (rtts in us, lost)."""
    return probe_many([(server, src)], port, count, warmup, timeout, name, gap)[0]


def _write_samples(path, lines):
    with open(path, "w") as f:
        f.write("".join(lines))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server")
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--src", default=None)
    ap.add_argument("--target", action="append", default=[], metavar="SERVER[,SRC]",
                    help="query these in turn (repeat the option), instead of --server")
    ap.add_argument("--shuffle", type=int, default=None, metavar="SEED",
                    help="with --target: a random order of the targets each round")
    ap.add_argument("--count", type=int, default=2000, help="queries (per target)")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=0.5)
    ap.add_argument("--name", default="www.example.lab")
    ap.add_argument("--gap", type=float, default=0.0, help="seconds between queries (rounds)")
    ap.add_argument("--samples", default=None, help="write every RTT (us) to this file")
    a = ap.parse_args(argv)
    if bool(a.server) == bool(a.target):
        ap.error("either --server or --target")
    if a.server:
        rtts, lost = probe(a.server, a.port, a.src, a.count, a.warmup, a.timeout, a.name, a.gap)
        if a.samples:
            _write_samples(a.samples, ("%.2f\n" % r for r in rtts))
        out = summarize(rtts, lost, a.count)
        out.update(server=a.server, src=a.src, port=a.port)
    else:
        targets = [parse_target(t) for t in a.target]
        res = probe_many(targets, a.port, a.count, a.warmup, a.timeout, a.name, a.gap, a.shuffle)
        if a.samples:
            _write_samples(a.samples, ("%d %.2f\n" % (k, r) for k, (rtts, _) in enumerate(res) for r in rtts))
        out = {"targets": [dict(summarize(rtts, lost, a.count), server=t[0], src=t[1])
                           for t, (rtts, lost) in zip(targets, res)], "port": a.port}
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Sequential DNS round-trip probe: one query in flight at a time.

One query at a time: send, wait for the reply with the same ID (or a timeout,
counted as lost), next. `--warmup` queries first (not recorded), then `--count`
recorded ones. Queries come from xenoflow_ovs.lab.frames (dnspython): run it
with the Python that has the package (the benchmarks pass their own,
sys.executable; a checkout beside it is used when that Python lacks it):

    ip netns exec NS .venv/bin/python rtt_probe.py --server VIP --src ADDR --count 2000

Prints one JSON line: n, lost, median/p90/p99/min/max/mean in microseconds
(nearest-rank percentiles); `--samples FILE` also writes every RTT (us), one
per line, for distribution plots.
"""
import argparse
import json
import math
import os
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


def probe(server, port=53, src=None, count=2000, warmup=50, timeout=0.5,
          name="www.example.lab", gap=0.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src or "0.0.0.0", 0))
    s.connect((server, port))
    s.settimeout(timeout)
    rtts, lost = [], 0
    clock = time.perf_counter_ns
    for i in range(warmup + count):
        qid = i & 0xFFFF
        pkt = frames.dns_query(name, "A", qid=qid)
        t0 = clock()
        s.send(pkt)
        deadline = t0 + int(timeout * 1e9)
        ok = False
        while True:
            try:
                r = s.recv(2048)
            except socket.timeout:
                break
            except ConnectionRefusedError:   # ICMP port unreachable
                break
            t1 = clock()
            if frames.dns_id(r) == qid:
                ok = True
                break
            if t1 >= deadline:
                break
            s.settimeout(max(1e-3, (deadline - t1) / 1e9))
        s.settimeout(timeout)
        if i >= warmup:
            if ok:
                rtts.append((t1 - t0) / 1000.0)
            else:
                lost += 1
        if gap:
            time.sleep(gap)
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
    ap.add_argument("--name", default="www.example.lab")
    ap.add_argument("--gap", type=float, default=0.0, help="seconds between queries")
    ap.add_argument("--samples", default=None, help="write every RTT (us) to this file")
    a = ap.parse_args(argv)
    rtts, lost = probe(a.server, a.port, a.src, a.count, a.warmup, a.timeout, a.name, a.gap)
    if a.samples:
        with open(a.samples, "w") as f:
            f.write("".join("%.2f\n" % r for r in rtts))
    out = summarize(rtts, lost, a.count)
    out.update(server=a.server, src=a.src, port=a.port)
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

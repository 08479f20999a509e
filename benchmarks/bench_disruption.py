"""Disruption of bucket tables: the share of buckets moved when one backend leaves or
comes back, modulo (the paper's src-ip-bits interleave) vs maglev, at 2..64 backends.

The minimum is the removed backend's own share (those buckets must move, and
nothing else need). Writes benchmarks/results/disruption.{csv,md,png}.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys

import netaddr

HERE = os.path.dirname(os.path.abspath(__file__))
import pkgpath  # noqa: E402,F401  (before the package: where it comes from)

from xenoflow_ovs.intent import buckets  # noqa: E402
from xenoflow_ovs.intent.config import Backend, Policy, Service  # noqa: E402


def service(n: int, bits: int, kind: str) -> Service:
    bes = tuple(Backend(name="be%02d" % i, ip=netaddr.IPAddress(int(netaddr.IPAddress("198.18.1.0")) + i),
                        mac="02:00:c6:12:01:%02x" % i) for i in range(n))
    return Service(name="s", vip=netaddr.IPAddress("198.18.0.53"), vip_mac="02:00:c6:12:00:35",
                   protocols=("udp",), port=53, ingress="p0", egress="p1",
                   policy=Policy(kind=kind, bits=bits), backends=bes)


def measure(n: int, bits: int, kind: str) -> dict:
    svc = service(n, bits, kind)
    full = buckets.table(svc)
    size = len(full)
    removed, minimum = [], []
    for b in svc.backends:  # every backend in turn, so the figure is not one lucky pick
        without = buckets.table(svc, exclude=[b.name])
        removed.append(buckets.moved(full, without) / size)
        minimum.append(full.count(b.name) / size)
        assert buckets.table(svc) == full  # coming back restores the table (determinism)
    return {"policy": "modulo" if kind == "src-ip-bits" else kind, "backends": n, "buckets": size,
            "moved_on_remove": statistics.mean(removed), "minimum": statistics.mean(minimum),
            "moved_on_add": statistics.mean(removed)}  # add is the reverse of remove here


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bits", type=int, default=12, help="table size 2^bits (default 12: 4096)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    args = ap.parse_args(argv)
    rows = [measure(n, args.bits, kind) for n in (2, 3, 4, 8, 16, 32, 64)
            for kind in ("src-ip-bits", "maglev")]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "disruption.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    md = ["# Disruption: buckets moved when one backend leaves (or returns)", "",
          "Table of 2^%d buckets; mean over removing each backend in turn. Minimum = the removed "
          "backend's own share. Produced by `benchmarks/bench_disruption.py`." % args.bits, "",
          "| backends | minimum | modulo | maglev | modulo / minimum | maglev / minimum |",
          "|---:|---:|---:|---:|---:|---:|"]
    by = {(r["policy"], r["backends"]): r for r in rows}
    for n in sorted({r["backends"] for r in rows}):
        mo, ma = by[("modulo", n)], by[("maglev", n)]
        md.append("| %d | %.1f %% | %.1f %% | %.1f %% | %.1fx | %.2fx |" % (
            n, 100 * mo["minimum"], 100 * mo["moved_on_remove"], 100 * ma["moved_on_remove"],
            mo["moved_on_remove"] / mo["minimum"], ma["moved_on_remove"] / ma["minimum"]))
    with open(os.path.join(args.out, "disruption.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot)")
        return 0
    ns = sorted({r["backends"] for r in rows})
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for pol, style in (("modulo", "o-"), ("maglev", "s-")):
        ax.plot(ns, [100 * by[(pol, n)]["moved_on_remove"] for n in ns], style, label=pol)
    ax.plot(ns, [100 * by[("maglev", n)]["minimum"] for n in ns], "k--", label="minimum")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("backends")
    ax.set_ylabel("buckets moved on remove (%)")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "disruption.png"), dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Entry-install rate of dpdk_glue (softdoca target): entries/s for 1, 1k and 64k service
(basic-pipe) entries, one add_entries call per entry ("single") vs one batch ("batched"),
plus the Python overhead per entry (the Python path minus the bare C call on the same specs).

Writes benchmarks/results/glue_install.csv and .md.  Goals: >= 200k entries/s
batched, Python overhead <= 5 us/entry.

Runs in its own process (the DPDK EAL initialises once per process); the ports have no packet
I/O (driver=none), so the softdoca forwarder is idle and grace periods cost nothing: this
measures the control path (glue + model), not a hardware insertion rate.

    python benchmarks/bench_glue_install.py [--reps 3] [--quick]
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
import pkgpath  # noqa: E402,F401  (before the package: where it comes from)

from dpdk_glue import ESwitch, GlueMatch, PortSpec, default_eal_args  # noqa: E402
from dpdk_glue.binding import _SPEC, _load  # noqa: E402

MACS = ["02:00:c6:12:%02x:%02x" % (i >> 8, i & 0xFF) for i in range(256)]


def _pipe(sw: ESwitch, n: int):
    bits = max(1, (n - 1).bit_length())
    return sw.create_basic_pipe("p0", name="bench%d" % n, mask=GlueMatch(ipv4_src=(1 << bits) - 1),
                                fwd_port="p1", nr_entries=max(n, 2))


def bench_python(sw: ESwitch, n: int, batched: bool) -> Dict[str, float]:
    """The full Python path: GlueMatch + pipe.entry() + add_entries (+ the C call inside)."""
    pipe = _pipe(sw, n)
    t0 = time.perf_counter()
    if batched:
        specs = [pipe.entry(GlueMatch(ipv4_src=i), MACS[i & 0xFF]) for i in range(n)]
        t1 = time.perf_counter()
        sw.add_entries(specs)
    else:
        t1 = t0
        for i in range(n):
            sw.add_entries([pipe.entry(GlueMatch(ipv4_src=i), MACS[i & 0xFF])])
    t2 = time.perf_counter()
    sw.destroy_pipe(pipe)
    return {"total": t2 - t0, "build": t1 - t0}


def bench_c(sw: ESwitch, n: int) -> float:
    """The bare C batch call (xf_entries_add) on pre-packed specs: the glue + softdoca cost."""
    lib, ffi = _load()
    pipe = _pipe(sw, n)
    buf = bytearray(_SPEC.size * n)
    for i in range(n):
        _SPEC.pack_into(buf, i * _SPEC.size, pipe._handle, 0, i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, True,
                        bytes.fromhex(MACS[i & 0xFF].replace(":", "")))
    specs = ffi.from_buffer("struct xf_entry_spec[]", buf)
    handles = ffi.new("uint64_t[]", n)
    errs = ffi.new("int32_t[]", n)
    stages = ffi.new("uint8_t[]", n)
    nfailed = ffi.new("uint32_t *")
    t0 = time.perf_counter()
    rc = lib.xf_entries_add(specs, n, handles, errs, stages, nfailed)
    t1 = time.perf_counter()
    assert rc == 0, rc
    sw.destroy_pipe(pipe)
    return t1 - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small sizes only (CI smoke)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    args = ap.parse_args()
    sizes = [1, 1000] if args.quick else [1, 1000, 65536]
    rows: List[Dict[str, object]] = []
    ports = [PortSpec("p0", 0, driver="none", pair="p1"), PortSpec("p1", 1, driver="none", pair="p0")]
    with ESwitch(default_eal_args("xfbench-%d" % os.getpid()), ports) as sw:
        sw.create_root_pipe("p0")
        _pipe(sw, 4)  # warm-up allocations
        for n in sizes:
            # one-entry timings are a few microseconds: take the median of many
            reps = args.reps * 17 if n == 1 else args.reps
            c_times = [bench_c(sw, n) for _ in range(reps)]
            for mode in ("single", "batched"):
                runs = [bench_python(sw, n, mode == "batched") for _ in range(reps)]
                total = statistics.median(r["total"] for r in runs)
                c_med = statistics.median(c_times)
                row = {
                    "entries": n,
                    "mode": mode,
                    "seconds": round(total, 6),
                    "entries_per_s": round(n / total),
                    "us_per_entry": round(total / n * 1e6, 3),
                    "c_batch_us_per_entry": round(c_med / n * 1e6, 3),
                    # Python's share: everything the Python path spends beyond the bare C batch call
                    "python_overhead_us_per_entry": round(max(0.0, total - c_med) / n * 1e6, 3)
                    if mode == "batched" else "",
                    "reps": reps,
                }
                rows.append(row)
                print("%6d %-7s %10.0f entries/s  %7.3f us/entry  (C batch %.3f us/entry)" % (
                    n, mode, row["entries_per_s"], row["us_per_entry"], row["c_batch_us_per_entry"]))
    os.makedirs(args.out, exist_ok=True)
    csv_path = os.path.join(args.out, "glue_install.csv")
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    big = max(sizes)
    batched = next(r for r in rows if r["entries"] == big and r["mode"] == "batched")
    md = [
        "# dpdk_glue entry install rate (softdoca)",
        "",
        "`python benchmarks/bench_glue_install.py` — %s, median of %d runs (x17 for 1 entry); "
        "service (basic pipe) entries, "
        "one DOCA-style queued add per entry and one `entries_process` per batch; ports without packet "
        "I/O (control path only: glue + softdoca, not a hardware insertion rate)."
        % (time.strftime("%Y-%m-%d"), args.reps),
        "",
        "| entries | mode | entries/s | us/entry | C batch us/entry | Python overhead us/entry |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        md.append("| %d | %s | %d | %.3f | %.3f | %s |" % (r["entries"], r["mode"], r["entries_per_s"],
                                                        r["us_per_entry"], r["c_batch_us_per_entry"],
                                                        r["python_overhead_us_per_entry"] or "-"))
    md += [
        "",
        "Goals: >= 200k entries/s batched: **%s** (%d entries/s at %d entries); "
        "Python overhead <= 5 us/entry: **%s** (%.3f us/entry)."
        % ("met" if batched["entries_per_s"] >= 200000 else "NOT met", batched["entries_per_s"], big,
           "met" if float(batched["python_overhead_us_per_entry"]) <= 5 else "NOT met",
           float(batched["python_overhead_us_per_entry"])),
        "",
        "\"single\" = one `add_entries` call (own `entries_process`) per entry; \"Python overhead\" = the "
        "batched Python path (GlueMatch objects, `pipe.entry()`, packing, result objects) minus the bare "
        "C call `xf_entries_add` on the same pre-packed specs.",
        "",
    ]
    with open(os.path.join(args.out, "glue_install.md"), "w") as fh:
        fh.write("\n".join(md))
    print("wrote", csv_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the smoke tests of bench_ipv6.py and bench_meters.py share: one CI-sized run of the script
into a temporary directory, its CSV and JSON read back, and the namespaces of its own it left.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from typing import Dict, List, Set, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "benchmarks")


def skip_outside_product_runtime() -> None:
    """At a test module's top: the benchmarks run in the product runtime (the osken env) only."""
    if os.environ.get("XENOFLOW_RUNTIME") == "ryu":
        pytest.skip("benchmarks run in the product runtime (osken env) only", allow_module_level=True)


def namespaces() -> Set[str]:
    out = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, universal_newlines=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def run_bench(out: str, suite: str, flag: str, prefix: str) -> Tuple[str, List[Dict], Dict, List[str]]:
    """benchmarks/bench_<suite>.py <flag> --out out: (out, the CSV's rows, the JSON, the names of
    its namespaces <prefix>XXXX-g|d|s still there afterwards).  Fails on a non-zero exit."""
    if not shutil.which("gcc"):
        pytest.skip("missing tools: gcc (scripts/install-deps.sh)")
    ours = re.compile(r"^%s[0-9a-f]{4}-[gds]$" % re.escape(prefix))
    before = namespaces()
    p = subprocess.run([sys.executable, os.path.join(BENCH, "bench_%s.py" % suite), flag, "--out", out],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=300)
    left = sorted(n for n in namespaces() - before if ours.match(n))
    assert p.returncode == 0, p.stdout[-4000:]
    with open(os.path.join(out, suite + ".csv")) as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(out, suite + ".json")) as f:
        meta = json.load(f)
    return out, rows, meta, left


def bench_module(name: str):
    """A benchmark script imported as a module (its verdicts, its columns)."""
    sys.path.insert(0, BENCH)
    try:
        return __import__(name)
    finally:
        sys.path.remove(BENCH)


def report(out: str, dest: str) -> str:
    """REPORT.md built by benchmarks/report.py from the results in out, as text."""
    subprocess.run([sys.executable, os.path.join(BENCH, "report.py"), "--results", out, "--out", dest],
                   check=True, stdout=subprocess.PIPE)
    with open(dest) as f:
        return f.read()

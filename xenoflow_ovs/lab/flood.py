"""`xenoflow lab demo --flood`: the DoS guard in the lab.

The lab runs its flood variant (topologies/<name>/flood.yaml: a bucket per source of the load
generator and a per-bucket limit). One client source floods its bucket with DNS queries at
FLOOD_TIMES x the bucket's limit for SECONDS (the benchmarks' C pacer, smoothly paced: bursts
would overflow the veths' AF_PACKET buffers before any meter saw them), while one source in
every other bucket asks `who.example.lab TXT` at a steady rate (dnsclient.query_rounds).

What it shows, from counters (never from timing):

- the flood: sent by the pacer; arrived at its eSwitch bucket entry; dropped by the drop
  stage's entry of that bucket (red past the meter); delivered = arrived - dropped, which the
  token bucket bounds by rate x T + burst (T: the pacer's run) and, with the flood far above
  the rate, keeps at no less than 0.9 x rate x T; and what the backend answered of it (bind9's
  responses, the other sources' answers taken off);
- OVS's packets for the service (0: the eSwitch carried and dropped all of it), fallback 0;
- the other sources: every query answered, by the backend the table names.
"""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..exitcodes import EXIT_FOUND, EXIT_OK
from . import netns as nsh
from .pyenv import subprocess_env as _subprocess_env

FLOOD_TIMES = 5          # the flood offers this many times its bucket's limit
SECONDS = 10.0           # how long it floods
INTERVAL = 0.5           # the other sources: one query each every INTERVAL seconds
PACER_SOURCE = os.path.join("benchmarks", "tools", "pacer.c")


class FloodError(RuntimeError):
    """The lab cannot run the flood demo as configured (no per-bucket limit, too few sources...)."""


@dataclass(frozen=True)
class FloodPlan:
    """Who floods which bucket, who else asks, and the limit the flood meets."""
    service: str
    vip: str
    rate: int                   # the bucket's limit, packets/s
    burst: int                  # its burst, packets
    netns: str                  # the flood's namespace and source address
    source: str
    bucket: int
    backend: str                # the backend of the flood's bucket
    others: Dict[str, Tuple[str, ...]]    # namespace -> sources, one per other bucket
    offered_pps: int
    seconds: float

    @property
    def other_sources(self) -> List[str]:
        return [s for srcs in self.others.values() for s in srcs]


# ---------------------------------------------------------------- pure


def bucket_of(src: str, bits: int) -> int:
    """The bucket of a source address under src-ip-bits: its low `bits` bits."""
    return int(ipaddress.ip_address(src)) & ((1 << bits) - 1)


def plan_flood(svc: Any, table: Sequence[str], clients: Dict[str, Sequence[str]],
               times: int = FLOOD_TIMES, seconds: float = SECONDS) -> FloodPlan:
    """The flood from the first client source (namespaces in name order), and the first
    other source of every other bucket. Needs the IPv4 src-ip-bits policy and a per-bucket
    limit, and a source in every bucket."""
    if svc.policy.kind != "src-ip-bits" or svc.vip is None:
        raise FloodError("service %s: the flood demo needs an IPv4 VIP and policy src-ip-bits" % svc.name)
    if svc.limits.bucket is None:
        raise FloodError("service %s has no per-bucket limit (limits.per_bucket_pps)" % svc.name)
    bits = svc.policy.bits
    order = [(ns, s) for ns in sorted(clients) for s in clients[ns]]
    if not order:
        raise FloodError("the topology has no IPv4 clients")
    ns0, src0 = order[0]
    first: Dict[int, Tuple[str, str]] = {}
    for ns, s in order[1:]:
        first.setdefault(bucket_of(s, bits), (ns, s))
    first.pop(bucket_of(src0, bits), None)
    missing = sorted(set(range(1 << bits)) - set(first) - {bucket_of(src0, bits)})
    if missing:
        raise FloodError("no client source in bucket(s) %s of %d" % (", ".join(map(str, missing)), 1 << bits))
    others: Dict[str, List[str]] = {}
    for b in sorted(first):
        ns, s = first[b]
        others.setdefault(ns, []).append(s)
    rate, burst = svc.limits.bucket
    b0 = bucket_of(src0, bits)
    return FloodPlan(service=svc.name, vip=str(svc.vip), rate=rate, burst=burst, netns=ns0, source=src0,
                     bucket=b0, backend=table[b0], others={k: tuple(v) for k, v in others.items()},
                     offered_pps=rate * times, seconds=seconds)


BucketCounts = Dict[int, Tuple[int, int]]


def eswitch_counts(entries: Sequence[Dict[str, Any]], service: str) -> BucketCounts:
    """{bucket: (packets at its entries, packets its drop-stage entries dropped)} of
    `service`, summed over its pipes (one per family), from eswitchd's counters()."""
    out: Dict[int, List[int]] = {}
    for e in entries:
        ent = e["entry"]
        kind = ent.get("kind")
        if ent.get("owner") != service or ent.get("bucket") is None or kind not in ("bucket", "drop"):
            continue
        out.setdefault(ent["bucket"], [0, 0])[kind == "drop"] += e["pkts"]
    return {b: (n[0], n[1]) for b, n in out.items()}


def _bucket_delta(es: Tuple[BucketCounts, BucketCounts]) -> BucketCounts:
    return {b: (n[0] - es[0].get(b, (0, 0))[0], n[1] - es[0].get(b, (0, 0))[1]) for b, n in es[1].items()}


def others_tally(plan: FloodPlan, table: Sequence[str], results: Dict[str, Dict]) -> Dict[str, Any]:
    """The other sources' queries: sent, answered, answered by another backend than the
    table names, lost, and what each backend answered of them."""
    bits = len(table).bit_length() - 1
    sent = answered = wrong = 0
    by_backend: Dict[str, int] = {}
    for src, r in results.items():
        sent += r["count"]
        for ans, n in r["by_answer"].items():
            answered += n
            by_backend[ans] = by_backend.get(ans, 0) + n
            wrong += n if ans != table[bucket_of(src, bits)] else 0
    return {"sources": len(results), "sent": sent, "answered": answered, "wrong": wrong,
            "lost": sent - answered, "by_backend": by_backend,
            "buckets": sorted(bucket_of(s, bits) for s in results)}


def status_limited(rep: Optional[Dict[str, Any]], service: str) -> Dict[str, int]:
    """What the controller's GET /status counts as rate-limited for `service`, per plane
    (every scope: the buckets' meters and the service's), 0 for what it does not list."""
    counted = (((rep or {}).get("limits") or {}).get(service) or {}).get("limited_packets") or {}
    return {plane: sum(int(v or 0) for v in (counted.get(plane) or {}).values())
            for plane in ("eswitch", "ovs")}


def figures(plan: FloodPlan, pacer: Dict[str, Any], es: Tuple[BucketCounts, BucketCounts],
            before: Dict[str, Any], after: Dict[str, Any], others: Dict[str, Any],
            limited: Tuple[Dict[str, int], Dict[str, int]]) -> Dict[str, Any]:
    """Everything the demo reports and the test asserts, from the counters before and after
    (`limited`: status_limited() before and after)."""
    per_bucket = _bucket_delta(es)
    arrived, dropped = per_bucket.get(plan.bucket, (0, 0))
    t = float(pacer["elapsed_s"])

    def delta(kind: str, name: str) -> int:
        return int((after.get(kind) or {}).get(name, 0)) - int((before.get(kind) or {}).get(name, 0))

    backends = sorted(set(after.get("ovs") or {}) | set(after.get("bind9") or {}))
    fallback = None if after.get("fallback") is None else after["fallback"] - (before.get("fallback") or 0)
    return {"service": plan.service, "source": plan.source, "netns": plan.netns, "bucket": plan.bucket,
            "backend": plan.backend, "rate": plan.rate, "burst": plan.burst,
            "offered_pps": plan.offered_pps, "sent": int(pacer["sent"]), "seconds": t,
            "arrived": arrived, "dropped": dropped, "delivered": arrived - dropped,
            "dropped_elsewhere": sum(d for b, (_, d) in per_bucket.items() if b != plan.bucket),
            "allowed": (0.9 * plan.rate * t, plan.rate * t + plan.burst),
            "backend_answered": delta("bind9", plan.backend) - others["by_backend"].get(plan.backend, 0),
            "ovs_backend": delta("ovs", plan.backend), "ovs_service": sum(delta("ovs", b) for b in backends),
            "fallback": fallback, "others": others,
            "status_eswitch_limited": limited[1]["eswitch"] - limited[0]["eswitch"],
            "status_ovs_limited": limited[1]["ovs"] - limited[0]["ovs"]}


def problems(f: Dict[str, Any]) -> List[str]:
    """What is not as the DoS guard promises; empty when all is."""
    lo, hi = f["allowed"]
    o = f["others"]
    out = []
    if not lo <= f["delivered"] <= hi:
        out.append("the flood's delivered count %d is outside %.0f..%.0f" % (f["delivered"], lo, hi))
    if f["dropped"] <= 0:
        out.append("the eSwitch's drop stage counted no drops")
    if f["dropped_elsewhere"]:
        out.append("the eSwitch dropped %d packets of other buckets" % f["dropped_elsewhere"])
    if f["ovs_service"] or f["status_ovs_limited"]:
        out.append("OVS carried %d packets of the service and its meters dropped %d"
                   % (f["ovs_service"], f["status_ovs_limited"]))
    if f["status_eswitch_limited"] != f["dropped"] + f["dropped_elsewhere"]:
        out.append("the controller counts %d packets limited in the eSwitch, its drop stages %d"
                   % (f["status_eswitch_limited"], f["dropped"] + f["dropped_elsewhere"]))
    if f["fallback"]:
        out.append("fallback %d" % f["fallback"])
    if o["lost"] or o["wrong"] or not o["sent"]:
        out.append("the other sources: %d lost, %d by the wrong backend of %d"
                   % (o["lost"], o["wrong"], o["sent"]))
    return out


def report_lines(f: Dict[str, Any]) -> List[str]:
    o = f["others"]
    lo, hi = f["allowed"]
    return [
        "flood from %s (%s, bucket %d -> %s): %d queries at %d pps for %.1f s, %dx the bucket's limit of "
        "%d pps (burst %d)" % (f["source"], f["netns"], f["bucket"], f["backend"], f["sent"],
                               f["offered_pps"], f["seconds"], f["offered_pps"] // max(1, f["rate"]),
                               f["rate"], f["burst"]),
        "  eSwitch: bucket entry %d, drop stage %d -> delivered %d (the limit allows %.0f..%.0f); "
        "other buckets' drops %d"
        % (f["arrived"], f["dropped"], f["delivered"], lo, hi, f["dropped_elsewhere"]),
        "  backend %s answered %d of the flood (bind9, the others' answers taken off)"
        % (f["backend"], f["backend_answered"]),
        "  OVS packets for %s %d (service %d), fallback %s; the controller's rate-limited count: "
        "eSwitch %d, OVS %d" % (f["backend"], f["ovs_backend"], f["ovs_service"],
                               "n/a" if f["fallback"] is None else f["fallback"],
                               f["status_eswitch_limited"], f["status_ovs_limited"]),
        "%d other sources (buckets %s), one query each every %.1f s meanwhile: %d sent, %d answered, "
        "%d by the wrong backend, %d lost" % (o["sources"], _ranges(o["buckets"]), INTERVAL, o["sent"],
                                              o["answered"], o["wrong"], o["lost"]),
    ]


def _ranges(xs: Sequence[int]) -> str:
    """[0, 1, 2, 5] -> "0-2, 5"."""
    out: List[Tuple[int, int]] = []
    for x in xs:
        if out and out[-1][1] == x - 1:
            out[-1] = (out[-1][0], x)
        else:
            out.append((x, x))
    return ", ".join(str(a) if a == b else "%d-%d" % (a, b) for a, b in out)


# ---------------------------------------------------------------- I/O


def pacer_source(repos: Sequence[str]) -> str:
    """benchmarks/tools/pacer.c in the first of `repos` that has it (a checkout: the
    installed package carries no benchmarks)."""
    tried = [os.path.join(r, PACER_SOURCE) for r in repos]
    for p in tried:
        if os.path.exists(p):
            return p
    raise FloodError("the flood's sender is missing (looked for %s): run from a checkout" % ", ".join(tried))


def build_pacer(src: str, out_dir: str) -> str:
    """The benchmarks' pacer, compiled into `out_dir` (again only when its source is newer)."""
    exe = os.path.join(out_dir, "pacer")
    if os.path.exists(exe) and os.path.getmtime(exe) >= os.path.getmtime(src):
        return exe
    if shutil.which("gcc") is None:
        raise FloodError("gcc is needed to build the flood's sender %s" % src)
    subprocess.run(["gcc", "-O2", "-Wall", "-o", exe, src], check=True, stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT)
    return exe


_ROUNDS = ("import json, sys\n"
           "from xenoflow_ovs.lab.dnsclient import query_rounds\n"
           "a = json.loads(sys.argv[1])\n"
           "print(json.dumps(query_rounds(a['server'], a['sources'], a['rounds'], a['interval'])))\n")


class FloodDemo:
    def __init__(self, ctl: Any) -> None:
        from .labctl import Demo
        self.ctl = ctl
        self.say = ctl.say
        self.demo = Demo(ctl)     # its counters (bind9, OVS, fallback) and API reads

    def plan(self, times: int = FLOOD_TIMES, seconds: float = SECONDS) -> Tuple[FloodPlan, Sequence[str]]:
        cfg = self.ctl.load_cfg()
        p = self.ctl.planes.planned()
        svc = cfg.services[0]
        table = p.table(svc.name)
        return plan_flood(svc, table, self.ctl.topo.clients, times, seconds), table

    def _repos(self) -> List[str]:
        """Where a checkout may be: the one the topology lives in, this package's, the cwd."""
        from .labctl import REPO_ROOT
        topo_repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(self.ctl.topo.path))))
        return [topo_repo, REPO_ROOT, os.getcwd()]

    def eswitch(self, plan: FloodPlan) -> BucketCounts:
        from ..eswitch.client import EswitchClient
        cfg = self.ctl.load_cfg()
        c = EswitchClient(cfg.path(cfg.eswitch.socket))
        try:
            return eswitch_counts(c.counters()["entries"], plan.service)
        finally:
            c.close()

    def _start(self, plan: FloodPlan, pacer: str) -> List[Tuple[str, subprocess.Popen]]:
        """The flood first (its bucket is red from its first burst on), then the others."""
        procs = [("flood", nsh.popen_in_ns(plan.netns, [
            pacer, "--dst", plan.vip, "--port", "53", "--rate", str(plan.offered_pps),
            "--duration", str(plan.seconds), "--src", plan.source, "--dns"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE))]
        arg = {"server": plan.vip, "rounds": max(1, int(plan.seconds / INTERVAL)), "interval": INTERVAL}
        for ns, srcs in sorted(plan.others.items()):
            procs.append((ns, nsh.popen_in_ns(ns, [sys.executable, "-c", _ROUNDS,
                                                   json.dumps(dict(arg, sources=list(srcs)))],
                                              env=_subprocess_env(), stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE)))
        return procs

    def _collect(self, procs: List[Tuple[str, subprocess.Popen]], timeout: float
                 ) -> Tuple[Dict[str, Any], Dict[str, Dict]]:
        """The pacer's JSON line and the other sources' summaries; every process is waited
        for (and killed by its PID when it overruns)."""
        outs: Dict[str, Any] = {}
        for name, p in procs:
            try:
                out, err = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
            if p.returncode != 0:
                raise FloodError("%s exited %s: %s"
                                 % (name, p.returncode, (err or b"").decode(errors="replace")))
            outs[name] = json.loads(out.decode().strip().splitlines()[-1])
        pacer = outs.pop("flood")
        return pacer, {src: r for res in outs.values() for src, r in res.items()}

    def measure(self, times: int = FLOOD_TIMES, seconds: float = SECONDS,
                pacer: Optional[str] = None) -> Dict[str, Any]:
        """Run the flood and the others' queries once; the figures (see figures())."""
        plan, table = self.plan(times, seconds)
        pacer = pacer or build_pacer(pacer_source(self._repos()), self.ctl.run_dir)
        before, es0 = self.demo.settled_counters(), self.eswitch(plan)
        lim0 = self.settled_limited(plan)
        sent_pacer, results = self._collect(self._start(plan, pacer), timeout=seconds + 60)
        after = self.demo.settled_counters()
        es1, lim1 = self.eswitch(plan), self.settled_limited(plan)
        return figures(plan, sent_pacer, (es0, es1), before, after, others_tally(plan, table, results),
                       (lim0, lim1))

    def settled_limited(self, plan: FloodPlan, timeout: float = 6.0) -> Dict[str, int]:
        """status_limited() once two reads a poll apart agree (the controller reads
        eswitchd's and OVS's counters on its own clock)."""
        last = status_limited(self.demo.api("/status"), plan.service)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(1.0)
            cur = status_limited(self.demo.api("/status"), plan.service)
            if cur == last:
                return cur
            last = cur
        return last

    def run(self) -> int:
        try:
            f = self.measure()
        except FloodError as e:
            self.say("flood demo: %s" % e)
            return EXIT_FOUND
        lines = report_lines(f)
        self.say(lines[0])
        for line in lines[1:4]:
            print("          " + line)
        self.say(lines[4])
        rc = EXIT_OK
        for p in problems(f):
            self.say("NOT AS EXPECTED: " + p)
            rc = EXIT_FOUND
        chk = self.demo.api("/check")
        if chk is not None:
            from ..intent.consistency import format_report
            self.say("consistency: " + format_report(chk).replace("\n", "\n          "))
            if chk.get("verdict") != "consistent":
                rc = EXIT_FOUND
        return rc

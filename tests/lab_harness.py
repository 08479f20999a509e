"""Shared by tests/lab/test_scenarios.py and tests/faults/test_faults.py: the paper lab with
health checks on, a paced DNS load generator with per-query timing, raw frames, and the
small probes both suites read (eSwitch entries and counters, our OVS flows with their
durations, the controller's API and `xenoflow check`).

Run as a script inside a lab namespace, with the Python that has xenoflow_ovs installed (DNS
and frames come from xenoflow_ovs.lab.frames)::

    python lab_harness.py loadgen '{"server": ..., "sources": [...], "rate": 400, ...}'
    python lab_harness.py rawsend '{"iface": "eth0", "frames": ["<hex>", ...], "count": 5}'

The load generator sends ``who.example.lab TXT`` round robin from its source addresses at
a fixed rate (smoothly paced: bursts overflow AF_PACKET socket buffers),
matches every answer to its query and writes one record per query: source index, send
time, answer time (wall clock, comparable with the test's ``time.time()``) and the TXT
(which backend answered). A query is lost when no answer came by the end of the run plus
``grace`` seconds. Once a source has had an answer it sends with MSG_CONFIRM, as any
client that sees replies would (TCP does it by itself): the VIP's neighbour entry stays
confirmed, so the client does not need OVS's ARP answer while it gets DNS answers.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from dns.exception import DNSException

from xenoflow_ovs.lab import frames

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PAPER = os.path.join(REPO, "topologies", "paper")
QNAME = "who.example.lab"

# Health probes in the lab: every 200 ms, down after 2 bad, up after 2 good,
# from the management port pf1sf0.
HEALTH = {"enabled": True, "query": QNAME, "qtype": "TXT", "interval": 0.2, "timeout": 0.15,
          "rise": 2, "fall": 2, "source": "198.18.0.250", "source6": "2001:db8::250"}
BITS = 2


# ================================================================ DNS wire


def dns_query(qid: int, name: str = QNAME, qtype: str = "TXT") -> bytes:
    return frames.dns_query(name, qtype, qid=qid)


# ================================================================ the load generator (script)


def loadgen(a: Dict[str, Any]) -> Dict[str, Any]:
    server, port = a["server"], int(a.get("port", 53))
    rate, duration, grace = float(a["rate"]), float(a["duration"]), float(a.get("grace", 1.5))
    socks = []
    for src in a["sources"]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind((src, 0))
        s.setblocking(False)
        socks.append(s)
    index = {s.fileno(): i for i, s in enumerate(socks)}
    confirmed = [False] * len(socks)
    msg_confirm = getattr(socket, "MSG_CONFIRM", 0x800)
    records: List[List[Any]] = []          # [source index, t_send, t_answer|None, answer|None]
    pending: Dict[Tuple[int, int], int] = {}
    errors: Dict[str, int] = {}
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    t0 = time.time()
    n, end = 0, None
    while True:
        now = time.time()
        if end is None and (now >= t0 + duration or stop["now"]):
            end = now
        if end is not None and (not pending or now >= end + grace):
            break
        if end is None and now >= t0 + n / rate:
            i = n % len(socks)
            qid = (n // len(socks)) & 0xFFFF
            try:
                socks[i].sendto(dns_query(qid), msg_confirm if confirmed[i] else 0, (server, port))
                records.append([i, now, None, None])
                pending[(i, qid)] = len(records) - 1
            except OSError as exc:
                records.append([i, now, None, "send error"])
                errors[str(exc)] = errors.get(str(exc), 0) + 1
            n += 1
            continue
        wait = 0.01 if end is not None else max(0.0, min(0.01, t0 + n / rate - now))
        ready, _, _ = select.select(socks, [], [], wait)
        for s in ready:
            i = index[s.fileno()]
            while True:
                try:
                    buf = s.recv(4096)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:     # ICMP errors surface here (port unreachable)
                    errors[str(exc)] = errors.get(str(exc), 0) + 1
                    break
                t = time.time()
                try:
                    qid, ans = frames.dns_answer(buf)
                except (DNSException, ValueError, struct.error, IndexError):
                    errors["bad answer"] = errors.get("bad answer", 0) + 1
                    continue
                k = pending.pop((i, qid), None)
                if k is not None:
                    records[k][2], records[k][3] = t, ans
                    confirmed[i] = True
    out = {"t0": t0, "end": end, "rate": rate, "sources": list(a["sources"]), "records": records,
           "errors": errors}
    with open(a["out"], "w") as f:
        json.dump(out, f)
    return out


def rawsend(a: Dict[str, Any]) -> Dict[str, Any]:
    """Send each frame `count` times out of `iface` (AF_PACKET), paced."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a["iface"], 0))
    sent, errors = 0, []
    for h in a["frames"]:
        frame = bytes.fromhex(h)
        for _ in range(int(a.get("count", 1))):
            try:
                s.send(frame)
                sent += 1
            except OSError as exc:
                errors.append("%d bytes: %s" % (len(frame), exc))
            time.sleep(0.0005)
    return {"sent": sent, "errors": errors}


# ================================================================ the lab


def _quiet() -> Any:
    from xenoflow_ovs.lab.labctl import Progress
    return Progress(out=open(os.devnull, "w"))


def write_topology(tmp: str, bits: int = BITS, health: Optional[Dict[str, Any]] = None) -> str:
    """The paper topology beside a copy of its config with `bits` and health checks on;
    returns the topology file (LabCtl derives the lab's config from that copy)."""
    import yaml

    d = os.path.join(tmp, "topology")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(PAPER, "topology.yaml")) as f:
        topo = f.read()
    with open(os.path.join(PAPER, "xenoflow.yaml")) as f:
        cfg = yaml.safe_load(f)
    for svc in cfg["services"]:
        svc["policy"]["bits"] = bits
        svc["health"] = dict(health or HEALTH)
    with open(os.path.join(d, "topology.yaml"), "w") as f:
        f.write(topo)
    with open(os.path.join(d, "xenoflow.yaml"), "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return os.path.join(d, "topology.yaml")


def wait_until(cond: Callable[[], Any], timeout: float, interval: float = 0.1,
               what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


@contextlib.contextmanager
def running_lab(prefix: str) -> Iterator["TestLab"]:
    """A TestLab up in a fresh temporary dir (skipped when not root), down and removed
    afterwards: the module fixture of the fault and scenario suites."""
    import pytest

    if os.geteuid() != 0:
        pytest.skip("needs root")
    tmp = tempfile.mkdtemp(prefix=prefix)
    lab = TestLab(tmp)
    try:
        lab.up()
        yield lab
    finally:
        lab.down()
        shutil.rmtree(tmp, ignore_errors=True)


class TestLab:
    """One lab (LabCtl) with the probes the suites use."""

    __test__ = False

    def __init__(self, tmp: str, mirror_routes: str = "on"):
        import argparse

        from xenoflow_ovs.lab.labctl import LabCtl

        self.tmp = tmp
        self.run_dir = os.path.join(tmp, "run")
        args = argparse.Namespace(action="up", topology=write_topology(tmp), run_dir=self.run_dir,
                                  eswitch="softdoca", mirror_routes=mirror_routes)
        self.ctl = LabCtl(args, _quiet())
        self.loads: List["Load"] = []

    # -- up / down
    def up(self, wait_free: float = 900.0) -> "TestLab":
        """Waits (polling every 10 s) while another lab holds the paper lab's namespaces."""
        from xenoflow_ovs.lab.topology import LabBusy

        deadline = time.monotonic() + wait_free
        while True:
            foreign = self.ctl.lab.foreign_namespaces()
            if not foreign:
                t0 = time.monotonic()
                try:
                    self.ctl.up()
                    break
                except LabBusy:      # taken between our look and our up: ours only is removed
                    self.ctl.down()
                except BaseException:
                    self.down()
                    raise
            if time.monotonic() > deadline:
                raise RuntimeError("another lab holds %s for more than %.0f s"
                                   % (", ".join(foreign), wait_free))
            time.sleep(10)
        self.up_seconds = time.monotonic() - t0
        self.cfg = self.ctl.load_cfg()
        self.svc = self.cfg.services[0]
        self.api_sock = self.cfg.path(self.cfg.api.socket)
        self.es_sock = self.cfg.path(self.cfg.eswitch.socket)
        # health probes fail until the lab has given pf1sf0 its address (after the controller
        # programmed both planes): wait until every backend is back in service
        self.wait_settled(30)
        return self

    def down(self) -> None:
        for ld in self.loads:
            ld.kill()
        self.ctl.down()

    # -- API, check
    def api(self, method: str, path: str, body: Any = None, timeout: float = 15.0) -> Tuple[int, Any]:
        from xenoflow_ovs.api import server as api_mod
        return api_mod.request(method, path, unix_path=self.api_sock, body=body, timeout=timeout)

    def api_ok(self, path: str) -> Optional[Dict[str, Any]]:
        try:
            code, body = self.api("GET", path, timeout=3)
        except (OSError, ValueError):
            return None
        return body if code == 200 else None

    def check_cli(self) -> Tuple[int, Dict[str, Any]]:
        """`xenoflow check --json --socket S`: (exit code, report)."""
        import subprocess

        from xenoflow_ovs.lab.labctl import _subprocess_env
        p = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "check", "--json", "--socket",
                            self.api_sock], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, env=_subprocess_env(), timeout=30, cwd="/")
        try:
            rep = json.loads(p.stdout)
        except ValueError:
            rep = {"stdout": p.stdout, "stderr": p.stderr}
        return p.returncode, rep

    def verdict(self) -> Optional[str]:
        rep = self.api_ok("/check")
        return rep.get("verdict") if rep else None

    def wait_consistent(self, timeout: float = 15.0) -> float:
        t0 = time.monotonic()
        wait_until(lambda: self.verdict() == "consistent", timeout, 0.1, "verdict consistent")
        return time.monotonic() - t0

    def wait_settled(self, timeout: float = 20.0) -> float:
        """Consistent, and every backend healthy and in service."""
        t0 = time.monotonic()

        def settled() -> bool:
            body = self.api_ok("/services/%s" % self.svc.name)
            return bool(body) and all(b["healthy"] and b["in_service"] for b in body["backends"]) \
                and self.verdict() == "consistent"
        wait_until(settled, timeout, 0.1, "every backend in service, verdict consistent")
        return time.monotonic() - t0

    def table(self) -> List[str]:
        body = self.api_ok("/services/%s" % self.svc.name)
        assert body is not None, "GET /services/%s failed" % self.svc.name
        return list(body["buckets"])

    def backend_state(self, name: str) -> Dict[str, Any]:
        body = self.api_ok("/services/%s" % self.svc.name) or {"backends": []}
        for b in body["backends"]:
            if b["name"] == name:
                return b
        return {}

    def metric(self, name: str, **labels: str) -> float:
        from xenoflow_ovs.api import server as api_mod
        code, text = api_mod.request("GET", "/metrics", unix_path=self.api_sock, timeout=5)
        if isinstance(text, bytes):
            text = text.decode()
        total = 0.0
        for line in str(text).splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            head, _, val = line.rpartition(" ")
            if all('%s="%s"' % kv in head for kv in labels.items()):
                total += float(val)
        return total

    # -- eSwitch
    def eswitch(self, op: str, **args: Any) -> Dict[str, Any]:
        from xenoflow_ovs.eswitch.client import EswitchClient
        c = EswitchClient(self.es_sock, timeout=5)
        try:
            return c.call(op, **args)
        finally:
            c.close()

    def entries(self) -> List[Dict[str, Any]]:
        return self.eswitch("list")["entries"]

    def entry_counters(self) -> Dict[str, int]:
        """{entry key: packets} (key: port/pipe/match, JSON)."""
        out = {}
        for e in self.eswitch("counters")["entries"]:
            ent = e["entry"]
            out[json.dumps([ent["port"], ent["pipe"], ent["match"]])] = int(e["pkts"])
        return out

    def port_stats(self) -> Dict[str, Dict[str, Any]]:
        return self.eswitch("counters")["ports"]

    def remove_entry_behind_our_back(self, entry_wire: Dict[str, Any]) -> None:
        from xenoflow_ovs.eswitch.client import EswitchClient
        from xenoflow_ovs.eswitch.wire import entry_from_wire
        from xenoflow_ovs.intent import plan as plan_mod
        c = EswitchClient(self.es_sock, timeout=5)
        try:
            c.apply([plan_mod.Change("eswitch", "remove", entry_from_wire(entry_wire))])
        finally:
            c.close()

    # -- OVS
    def ovs(self) -> Any:
        return self.ctl.ovs()

    def flows(self, ours: bool = True) -> Dict[Tuple[str, str], Dict[str, Any]]:
        """{(bridge, 'priority=...,match'): {cookie, duration, n_packets, actions}} from ovs-ofctl."""
        from xenoflow_ovs.intent import plan as plan_mod
        out = {}
        ovs = self.ovs()
        for br in ("ovsbr1", "ovsbr2"):
            for line in ovs.ofctl("dump-flows", br).splitlines():
                line = line.strip()
                if not line.startswith("cookie="):
                    continue
                left, _, actions = line.partition(" actions=")
                fields = dict(p.split("=", 1) for p in left.split(", ") if "=" in p and
                              not p.startswith("priority="))
                key = left[left.index("priority="):] if "priority=" in left else left
                c = int(fields["cookie"], 16)
                if ours != plan_mod.is_ours(c):
                    continue
                out[(br, key)] = {"cookie": c, "duration": float(fields["duration"].rstrip("s")),
                                  "n_packets": int(fields["n_packets"]), "actions": actions}
        return out

    def ovs_packets(self, kinds: Sequence[str] = ("service",)) -> int:
        from xenoflow_ovs.intent import plan as plan_mod
        n = 0
        for (br, key), f in self.flows().items():
            if plan_mod.kind_of_cookie(f["cookie"]) in kinds:
                n += f["n_packets"]
        return n

    # -- processes
    def pid(self, name: str) -> Optional[int]:
        rec = self.ctl.state.process(name)
        return rec["pid"] if rec else None

    def alive(self, name: str) -> bool:
        return self.ctl.state.process_alive(name)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> float:
        """Signal a recorded lab process by its PID; returns when it is gone."""
        from xenoflow_ovs.lab.topology import proc_alive
        rec = self.ctl.state.process(name)
        assert rec and proc_alive(rec["pid"], rec.get("start")), "%s is not running" % name
        t = time.time()
        os.kill(rec["pid"], sig)
        p = self.ctl._popen.get(name)
        if p is not None:
            p.wait(10)      # reap our child
        wait_until(lambda: not proc_alive(rec["pid"], rec.get("start")), 10, 0.02, "%s gone" % name)
        return t

    def controller_log(self) -> str:
        with open(os.path.join(self.run_dir, "controller.log"), errors="replace") as f:
            return f.read()

    def log_mark(self) -> int:
        return len(self.controller_log())

    def health_events(self, mark: int) -> List[str]:
        """'fips2 DOWN', 'fips2 up', ... logged by the controller since `mark`."""
        return ["%s %s" % m.groups() for m in
                re.finditer(r"backend \S+/(\S+) is (DOWN|up)", self.controller_log()[mark:])]

    def restart_controller(self) -> float:
        t = time.time()
        self.ctl.start_controller()
        return t

    def bind9_restart(self) -> None:
        self.ctl.start_bind9()

    # -- load
    def load(self, sources: Sequence[str], rate: float, duration: float, ns: str = "fips4",
             grace: float = 1.5) -> "Load":
        ld = Load(self, ns, list(sources), rate, duration, grace)
        self.loads.append(ld)
        return ld.start()

    def sources(self, n: int, ns: str = "fips4") -> List[str]:
        return list(self.ctl.topo.clients[ns][:n])

    def expected(self, table: Sequence[str], src: str) -> str:
        import ipaddress
        return table[int(ipaddress.ip_address(src)) & (len(table) - 1)]


class Load:
    def __init__(self, lab: TestLab, ns: str, sources: List[str], rate: float, duration: float,
                 grace: float):
        self.lab, self.ns, self.sources = lab, ns, sources
        self.rate, self.duration, self.grace = rate, duration, grace
        self.out = os.path.join(lab.run_dir, "load-%d-%d.json" % (os.getpid(), len(lab.loads)))
        self.proc: Any = None
        self.result: Optional["LoadResult"] = None

    def start(self) -> "Load":
        import subprocess

        from xenoflow_ovs.lab import netns as nsh
        arg = json.dumps({"server": str(self.lab.svc.vip), "sources": self.sources, "rate": self.rate,
                          "duration": self.duration, "grace": self.grace, "out": self.out})
        self.proc = nsh.popen_in_ns(self.ns, [sys.executable, os.path.abspath(__file__), "loadgen", arg],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            err = self.proc.stderr.read()
            raise RuntimeError("load generator did not start: %r %r" % (line, err))
        return self

    def wait(self) -> "LoadResult":
        if self.result is None:
            self.proc.wait(self.duration + self.grace + 30)
            with open(self.out) as f:
                self.result = LoadResult(json.load(f))
        return self.result

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


class LoadResult:
    def __init__(self, d: Dict[str, Any]):
        self.d = d
        self.sources = d["sources"]
        self.records = d["records"]

    @property
    def sent(self) -> int:
        return len(self.records)

    def lost_records(self, sources: Optional[Sequence[str]] = None) -> List[List[Any]]:
        idx = None if sources is None else {self.sources.index(s) for s in sources}
        return [r for r in self.records if r[2] is None and (idx is None or r[0] in idx)]

    @property
    def lost(self) -> int:
        return len(self.lost_records())

    def by_answer(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for r in self.records:
            if r[2] is not None:
                out[r[3]] = out.get(r[3], 0) + 1
        return out

    def first_sent_answered_by(self, backend: str, sources: Sequence[str], after: float) -> Optional[float]:
        idx = {self.sources.index(s) for s in sources}
        ts = [r[1] for r in self.records if r[0] in idx and r[1] >= after and r[3] == backend]
        return min(ts) if ts else None

    def summary(self) -> str:
        return "sent %d, lost %d, answers %s, errors %s" % (self.sent, self.lost, self.by_answer(),
                                                           self.d.get("errors"))


# ================================================================ scenarios shared by both suites


def controller_crash(lab, dead_for=2.0, rate=300.0):
    """Shared with the fault suite: SIGKILL the controller under load, check the eSwitch
    carries the traffic meanwhile, restart it and check it adopted both planes."""
    entries0 = lab.entries()
    counters0 = lab.entry_counters()
    flows0, tf0 = lab.flows(), time.monotonic()
    table = lab.table()
    srcs = lab.sources(8)
    load = lab.load(srcs, rate, dead_for + 5.0)
    time.sleep(1.0)
    log_at = len(lab.controller_log())
    lab.kill("controller")
    try:
        t_dead = time.monotonic()
        time.sleep(0.3)
        es_a, ovs_a = lab.entry_counters(), lab.ovs_packets(("service",))
        time.sleep(max(0.5, dead_for - 0.3))
        es_b, ovs_b = lab.entry_counters(), lab.ovs_packets(("service",))
        dead = time.monotonic() - t_dead
    finally:
        t_restart = time.monotonic()
        lab.restart_controller()     # also when a probe above failed: the lab stays usable
    lab.wait_consistent(20)
    recover = time.monotonic() - t_restart
    res = load.wait()
    # while it was dead: the eSwitch forwarded (bucket entries counted), OVS did not
    grew = sum(es_b[k] - es_a.get(k, 0) for k in es_b if '"root"' not in k)
    assert grew >= rate * 0.3 * (dead_for - 0.3), "eSwitch bucket entries grew by %d only" % grew
    assert ovs_b == ovs_a, "OVS service rules carried %d packets while the controller was dead" % (
        ovs_b - ovs_a)
    # adoption: the same entries (no duplicates, cookies kept), counters not reset
    entries1 = lab.entries()
    canon = lambda es: sorted(json.dumps(e, sort_keys=True) for e in es)  # noqa: E731
    assert canon(entries1) == canon(entries0)
    assert len(set(canon(entries1))) == len(entries1), "duplicate entries"
    counters1 = lab.entry_counters()
    assert set(counters1) == set(counters0)
    assert all(counters1[k] >= counters0[k] for k in counters0), "an entry counter was reset"
    # OVS: no flow re-added (same flows; durations went on)
    flows1, elapsed = lab.flows(), time.monotonic() - tf0
    assert set(flows1) == set(flows0)
    readded = {k: (flows0[k]["duration"], f["duration"]) for k, f in flows1.items()
               if f["duration"] < flows0[k]["duration"] + elapsed - 1.5}
    assert not readded, "flows re-added (duration before, after): %s" % readded
    log = lab.controller_log()[log_at:]
    m = re.search(r"runtime started: (\{.*\})", log)
    assert m and "'eswitch': 0" in m.group(1), "not adopted without changes: %s" % log[-2000:]
    assert lab.table() == table
    rc, rep = lab.check_cli()
    assert rc == 0, rep
    return {"load": res, "dead": dead, "recover": recover}


def failover(lab, stop, start, rate=400.0, label="bind9 stopped"):
    """Shared with the fault suite: `stop()` a backend (fips3) under load, measure the
    failover, `start()` it again and wait for the original table. Returns the figures."""
    h = lab.cfg.service("dns").health
    table0 = lab.table()
    srcs = lab.sources(8)
    f3 = [s for s in srcs if lab.expected(table0, s) == "fips3"]
    f2 = [s for s in srcs if lab.expected(table0, s) == "fips2"]
    assert f3 and f2
    load = lab.load(srcs, rate, 9.0)
    time.sleep(1.5)
    t_stop = time.time()
    stop()
    started = False
    try:
        wait_until(lambda: not lab.backend_state("fips3").get("healthy", True), 5, 0.05,
                   "fips3 down in the API")
        t_down_api = time.time()
        time.sleep(max(0.0, t_stop + 3.0 - time.time()))
        t_start = time.time()
        start()
        started = True
        t_started = time.time()
    finally:
        if not started:
            start()                  # the backend comes back even when the failover failed
    wait_until(lambda: lab.table() == table0, 10, 0.05, "the original table back")
    t_back = time.time()
    res = load.wait()
    first_f2 = res.first_sent_answered_by("fips2", f3, t_stop)
    assert first_f2 is not None, "fips3's buckets never answered by fips2: %s" % res.summary()
    lost = res.lost_records()
    lost_f3 = res.lost_records(f3)
    out = {"load": res, "failover": first_f2 - t_stop, "down_in_api": t_down_api - t_stop,
           "lost": len(lost), "lost_window": (max(r[1] for r in lost) - t_stop) if lost else 0.0,
           "back": t_back - t_started, "bind9_start": t_started - t_start,
           "budget": h.fall * h.interval + h.timeout + 1.0}
    print("\n%s: %s; fips3's buckets answered by fips2 %.3f s after the stop (API said down "
          "after %.3f s), last lost query sent %.3f s after; back to the original table %.3f s "
          "after bind9 answered (its start took %.2f s)" % (
              label, res.summary(), out["failover"], out["down_in_api"], out["lost_window"],
              out["back"], out["bind9_start"]))
    # losses only on fips3's buckets and only in the failover window
    assert len(lost_f3) == len(lost), "fips2's buckets lost queries: %s" % [
        r for r in lost if r not in lost_f3][:5]
    # (0.2 s of tolerance before the stop: queries already in flight to the dying backend)
    assert all(t_stop - 0.2 <= r[1] <= first_f2 + 0.05 for r in lost), [
        round(r[1] - t_stop, 3) for r in lost]
    # fall x interval (+ a probe timeout) + one reconcile; margin for this 2-core VM
    assert out["failover"] <= out["budget"], out
    # back on fips3 after `rise` good probes, nothing lost on the way back
    assert res.first_sent_answered_by("fips3", f3, t_started) is not None
    return out


# ================================================================ raw frames


def bad_frames(dst_mac: str, src_mac: str, src_ip: str, vip: str, src_ip6: Optional[str] = None,
               vip6: Optional[str] = None) -> Dict[str, Tuple[str, bytes]]:
    """name -> (class, frame). class: 'malformed' (softdoca's parser rejects it), 'miss'
    (well formed, no eSwitch entry claims it), 'hit' (reaches the service's buckets).
    With `vip6`: the IPv6 kinds too (IPV6_KINDS), classified as Open vSwitch extracts them."""
    def eth(ethertype: int, payload: bytes) -> bytes:
        return frames.ethernet(dst_mac, src_mac, ethertype, payload)

    def ip(payload: bytes, proto: int = 17, **lie: int) -> bytes:   # lie: version, ihl, total_length
        if lie:
            return eth(frames.ETH_P_IP, frames.malformed_ipv4(src_ip, vip, proto, payload, **lie))
        return eth(frames.ETH_P_IP, frames.ipv4(src_ip, vip, proto, payload))

    query = frames.udp(5353, 53, dns_query(0x4242))
    return {
        "runt IPv4 (2 bytes after Ethernet)": ("malformed", frames.truncated(ip(query), 16)),
        "IPv4 version 6 in an IPv4 frame": ("malformed", ip(query, version=6)),
        "IPv4 IHL 4 (< 20 bytes)": ("malformed", ip(query, ihl=4)),
        "IPv4 total length 1500 > frame": ("malformed", ip(query, total_length=1500)),
        "UDP header truncated (2 bytes)": ("malformed", ip(b"\x14\xe9")),
        "IPv4 non-first fragment to the VIP": ("miss", eth(frames.ETH_P_IP, frames.ipv4(
            src_ip, vip, 17, b"\0" * 64, frag=100))),
        "non-IP frame (ethertype 0x88b5)": ("miss", eth(0x88B5, b"\xab" * 46)),
        # a hop-by-hop header announced, none there: a cut chain
        "IPv6 ethertype, garbage": ("malformed", eth(frames.ETH_P_IPV6, b"\x60" + b"\0" * 45)),
        "VLAN-tagged IPv4 query": ("miss", frames.vlan_tagged(dst_mac, src_mac, 5, frames.ETH_P_IP,
                                                              frames.ipv4(src_ip, vip, 17, query))),
        "ARP request to the VIP MAC for another address": (
            "miss", eth(frames.ETH_P_ARP, frames.arp_request(src_mac, src_ip, "198.18.0.99"))),
        "DNS payload truncated (3 bytes)": ("hit", ip(frames.udp(5353, 53, dns_query(0x4242)[:3]))),
        "oversized: 1514-byte frame, garbage DNS": ("hit", ip(frames.udp(5353, 53, b"\xff" * 1472))),
        **(ipv6_frames(eth, src_ip6 or "", vip6) if vip6 else {}),
    }


IPV6_KINDS = ("IPv6 query behind hop-by-hop and destination options", "IPv6 first fragment of a query",
              "IPv6 non-first fragment to the VIP6", "IPv6 ESP to the VIP6",
              "IPv6 payload length past the frame", "IPv6 extension header chain cut short",
              "IPv6 version 4 in an IPv6 frame")


def ipv6_frames(eth: Any, src: str, vip6: str) -> Dict[str, Tuple[str, bytes]]:
    """The IPv6 kinds: extension headers are skipped to the transport, a non-first fragment has
    no ports, a payload length past the frame or a cut chain is malformed, the version nibble is
    not checked (as Open vSwitch's flow extraction: both planes classify them alike)."""
    def ip6(nh: int, payload: bytes, **lie: int) -> bytes:
        return eth(frames.ETH_P_IPV6, frames.ipv6(src, vip6, nh, payload, **lie))

    q6 = frames.udp6(src, vip6, 5353, 53, dns_query(0x4343))
    kinds = dict(zip(IPV6_KINDS, (
        ("hit", ip6(frames.IPPROTO_HOPOPTS, frames.ext_options(frames.IPPROTO_DSTOPTS)
                    + frames.ext_options(frames.IPPROTO_UDP) + q6)),
        ("hit", ip6(frames.IPPROTO_FRAGMENT, frames.ext_fragment(frames.IPPROTO_UDP, 0, True) + q6)),
        ("miss", ip6(frames.IPPROTO_FRAGMENT, frames.ext_fragment(frames.IPPROTO_UDP, 100, False)
                     + b"\0" * 64)),
        ("miss", ip6(frames.IPPROTO_ESP, b"\0" * 24)),
        ("malformed", ip6(frames.IPPROTO_UDP, q6, plen=len(q6) + 1)),
        ("malformed", ip6(frames.IPPROTO_HOPOPTS, frames.ext_options(frames.IPPROTO_UDP, 1)[:12])),
        ("hit", ip6(frames.IPPROTO_UDP, q6, version=4)))))
    return kinds


def send_frames(ns: str, iface: str, frames: Sequence[bytes], count: int) -> Dict[str, Any]:
    from xenoflow_ovs.lab import netns as nsh
    arg = json.dumps({"iface": iface, "frames": [f.hex() for f in frames], "count": count})
    p = nsh.run_in_ns(ns, [sys.executable, os.path.abspath(__file__), "rawsend", arg], timeout=60)
    return json.loads(p.stdout)


# ================================================================ figures table


class Table:
    """Rows of the reliability table (benchmarks/results/faults.md)."""

    COLUMNS = ("fault", "queries sent", "lost", "time to recover", "state after")

    def __init__(self) -> None:
        self.rows: List[Dict[str, str]] = []
        self.extra: List[Tuple[str, List[str]]] = []

    def add(self, fault: str, sent: Any, lost: Any, recover: str, after: str) -> None:
        row = dict(zip(self.COLUMNS, (fault, str(sent), str(lost), recover, after)))
        self.rows.append(row)
        print("\nFAULT %s: sent %s, lost %s, recover %s, after: %s" % (fault, sent, lost, recover, after))

    def markdown(self) -> str:
        out = ["| " + " | ".join(self.COLUMNS) + " |", "|" + "---|" * len(self.COLUMNS)]
        for r in self.rows:
            out.append("| " + " | ".join(r[c].replace("|", "/") for c in self.COLUMNS) + " |")
        return "\n".join(out)


def main(argv: List[str]) -> int:
    cmd, arg = argv[1], json.loads(argv[2])
    if cmd == "loadgen":
        loadgen(arg)
        return 0
    if cmd == "rawsend":
        sys.stdout.write(json.dumps(rawsend(arg)) + "\n")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

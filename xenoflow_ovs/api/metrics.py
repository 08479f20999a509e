"""Every Prometheus series of XenoFlow, declared in one place.

Packet counts are read from the switches (OVS flow stats, eSwitch entry
counters), so they are exposed by a collector over the controller's status
snapshot (controller/status.py: GET /status, whose verdict is the last completed
check, so a scrape never waits for one) rather than incremented here; events the controller itself causes
(reconcile actions, reloads, entry installs) are ordinary counters/histograms.
Labels: dpu, service, backend (and plane / kind / result where they apply).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, Optional

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from .. import __version__

StateFn = Callable[[], Dict[str, Any]]


def _backends(dpu: str, st: Dict[str, Any]) -> Iterator[Any]:
    pkts = CounterMetricFamily("xenoflow_backend_packets", "Packets sent to a backend, by plane",
                               labels=["dpu", "service", "backend", "plane"])
    byts = CounterMetricFamily("xenoflow_backend_bytes", "Bytes sent to a backend, by plane",
                               labels=["dpu", "service", "backend", "plane"])
    up = GaugeMetricFamily("xenoflow_backend_up", "1 if the backend is in service (healthy, "
                           "not drained)", labels=["dpu", "service", "backend"])
    for svc, backends in (st.get("services") or {}).items():
        for be, c in backends.items():
            for plane in ("ovs", "eswitch"):
                if c.get(plane + "_packets") is not None:
                    pkts.add_metric([dpu, svc, be, plane], c[plane + "_packets"])
                    byts.add_metric([dpu, svc, be, plane], c.get(plane + "_bytes") or 0)
            up.add_metric([dpu, svc, be], 1 if c.get("in_service", True) else 0)
    yield pkts
    yield byts
    yield up


def _planes(dpu: str, st: Dict[str, Any]) -> Iterator[Any]:
    """Whether each bridge and eswitchd is connected, and the eSwitch's misses per port
    (packets no entry claimed, handed to the kernel / OVS)."""
    br = GaugeMetricFamily("xenoflow_bridge_connected", "1 if the bridge's OpenFlow channel is up",
                           labels=["dpu", "bridge"])
    for name, b in sorted((st.get("bridges") or {}).items()):
        br.add_metric([dpu, name], 1 if b.get("connected") else 0)
    yield br
    es = st.get("eswitch") or {}
    con = GaugeMetricFamily("xenoflow_eswitch_connected", "1 if eswitchd answers the controller "
                            "(absent with driver none)", labels=["dpu"])
    if es.get("driver", "none") != "none" and es.get("connected") is not None:
        con.add_metric([dpu], 1 if es.get("connected") else 0)
    yield con
    miss = CounterMetricFamily("xenoflow_eswitch_miss_packets", "Packets the eSwitch had no entry "
                               "for, by ingress port", labels=["dpu", "port"])
    for port, n in sorted((es.get("miss_packets") or {}).items()):
        if n is not None:
            miss.add_metric([dpu, port], n)
    yield miss


def _health(dpu: str, st: Dict[str, Any]) -> Iterator[Any]:
    """Per probed backend: the hysteresis verdict, and the last probe's result and
    duration when the status carries them (`ok`, `seconds`)."""
    up = GaugeMetricFamily("xenoflow_health_up", "1 if health checks count the backend up",
                           labels=["dpu", "service", "backend"])
    ok = GaugeMetricFamily("xenoflow_health_probe_ok", "1 if the last probe succeeded",
                           labels=["dpu", "service", "backend"])
    took = GaugeMetricFamily("xenoflow_health_probe_seconds", "Duration of the last probe",
                             labels=["dpu", "service", "backend"])
    for key, h in sorted((st.get("health") or {}).items()):
        svc, _, be = key.partition("/")
        up.add_metric([dpu, svc, be], 1 if h.get("up") else 0)
        if h.get("ok") is not None:
            ok.add_metric([dpu, svc, be], 1 if h["ok"] else 0)
        if h.get("seconds") is not None:
            took.add_metric([dpu, svc, be], h["seconds"])
    yield up
    yield ok
    yield took


def _operator(dpu: str, st: Dict[str, Any]) -> Iterator[Any]:
    """Alarms (an entry or rule repaired again and again) and the operator's overlay."""
    alarm = GaugeMetricFamily("xenoflow_alarm", "Times the same thing was repaired since the "
                              "alarm was raised, per alarm", labels=["dpu", "kind", "what"])
    for a in st.get("alarms") or []:
        alarm.add_metric([dpu, str(a.get("kind")), str(a.get("what"))], a.get("count") or 0)
    yield alarm
    ov = st.get("overlay")
    edits = GaugeMetricFamily("xenoflow_overlay_edits", "Operator edits (drains, weights, backends) "
                              "held in the state directory's overlay", labels=["dpu"])
    dropped = GaugeMetricFamily("xenoflow_overlay_dropped", "Overlay edits naming something the "
                                "config no longer has", labels=["dpu"])
    if isinstance(ov, dict):
        edits.add_metric([dpu], ov.get("edits") or 0)
        dropped.add_metric([dpu], len(ov.get("dropped") or []))
    yield edits
    yield dropped


def _totals(dpu: str, st: Dict[str, Any]) -> Iterator[Any]:
    fb = CounterMetricFamily("xenoflow_fallback_packets", "IPv4 packets of a service or route "
                             "that OVS carried while an eSwitch is configured", labels=["dpu", "plane"])
    if st.get("fallback_packets") is not None:
        fb.add_metric([dpu, "ovs"], st["fallback_packets"])
    yield fb
    for name, key, text in (
            ("xenoflow_miss_other_packets", "miss_other_packets",
             "Packets OVS saw that no service or route claims (ARP, strays)"),
            ("xenoflow_packet_ins", "packet_ins", "OpenFlow packet-ins received")):
        fam = CounterMetricFamily(name, text, labels=["dpu"])
        if st.get(key) is not None:
            fam.add_metric([dpu], st[key])
        yield fam
    ok = GaugeMetricFamily("xenoflow_consistent", "1 if both planes agree with the intent",
                           labels=["dpu"])
    ok.add_metric([dpu], 1 if st.get("verdict") == "consistent" else 0)
    yield ok


METRIC_BUCKETS = 64   # per-bucket series only for services of at most this many buckets


def _limits(dpu: str, st: Dict[str, Any]) -> Iterator[Any]:
    """Packets the rate limits dropped, per service, plane and scope (the service-wide meter,
    or the buckets' own meters altogether); per bucket too (label `bucket`) for a service
    of at most METRIC_BUCKETS buckets, so a 2^16-bucket table is never 2^16 series. A
    bucket's series appears once it has dropped a packet."""
    fam = CounterMetricFamily("xenoflow_limited_packets", "Packets a rate limit dropped, by plane and "
                              "scope (service, bucket)", labels=["dpu", "service", "plane", "scope"])
    per = CounterMetricFamily("xenoflow_limited_bucket_packets", "Packets a bucket's rate limit dropped, "
                              "by plane (services of at most %d buckets)" % METRIC_BUCKETS,
                              labels=["dpu", "service", "plane", "bucket"])
    rate = GaugeMetricFamily("xenoflow_limit_pps", "A service's configured rate limit, packets/s, by "
                             "scope", labels=["dpu", "service", "scope"])
    for svc, lim in sorted((st.get("limits") or {}).items()):
        for plane, scopes in sorted((lim.get("limited_packets") or {}).items()):
            for scope, n in sorted((scopes or {}).items()):
                fam.add_metric([dpu, svc, plane, scope], n)
        if (lim.get("bucket_count") or METRIC_BUCKETS + 1) <= METRIC_BUCKETS:
            for row in lim.get("buckets") or []:
                for plane in ("eswitch", "ovs"):
                    if plane in row:
                        per.add_metric([dpu, svc, plane, str(row["bucket"])], row[plane])
        for scope, key in (("service", "pps"), ("bucket", "per_bucket_pps")):
            if lim.get(key) is not None:
                rate.add_metric([dpu, svc, scope], lim[key])
    yield fam
    yield per
    yield rate


def _bgp(dpu: str, st: Dict[str, Any]) -> Iterator[Any]:
    """A fleet DPU's announcements and its BGP/BFD peers (fleet.bgp)."""
    b = (st.get("fleet") or {}).get("bgp")
    if not b:
        return
    ann = GaugeMetricFamily("xenoflow_fleet_announced", "1 if this DPU announces the VIP over BGP",
                            labels=["dpu", "vip"])
    vips = set(b.get("announced") or []) | set(b.get("vips") or [])
    for vip in sorted(vips):
        ann.add_metric([dpu, vip], 1 if vip in (b.get("announced") or []) else 0)
    yield ann
    up = GaugeMetricFamily("xenoflow_bgp_peer_up", "1 if the BGP session is Established (bfd: 1 if "
                           "BFD is up)", labels=["dpu", "peer", "protocol"])
    for peer, p in sorted((b.get("peers") or {}).items()):
        up.add_metric([dpu, peer, "bgp"], 1 if p.get("bgp") == "Established" else 0)
        up.add_metric([dpu, peer, "bfd"], 1 if p.get("bfd") == "up" else 0)
    yield up


class _StateCollector:
    """Turns the status snapshot (the shape of GET /status) into metric families."""

    def __init__(self, dpu: str, state: StateFn):
        self.dpu = dpu
        self.state = state

    def collect(self) -> Iterator[Any]:
        st = self.state()
        for part in (_backends, _totals, _limits, _planes, _health, _operator, _bgp):
            yield from part(self.dpu, st)
        info = GaugeMetricFamily("xenoflow_build_info", "Always 1: the version of XenoFlow-OVS and "
                                 "the OpenFlow runtime (osken, ryu)", labels=["dpu", "version", "runtime"])
        info.add_metric([self.dpu, __version__, str(st.get("runtime") or "")], 1)
        yield info


class Metrics:
    def __init__(self, dpu: str, state: Optional[StateFn] = None,
                 registry: Optional[CollectorRegistry] = None):
        self.dpu = dpu
        self.registry = registry or CollectorRegistry()
        self.reconcile_actions = Counter(
            "xenoflow_reconcile_actions", "Changes the controller made to a plane, by kind "
            "(add, modify, delete, repair, ...)", ["dpu", "plane", "kind"], registry=self.registry)
        self.config_reloads = Counter(
            "xenoflow_config_reloads", "Config reloads by result (good, bad)", ["dpu", "result"],
            registry=self.registry)
        self.entry_install_seconds = Histogram(
            "xenoflow_entry_install_seconds", "Time to apply one batch of eSwitch changes",
            ["dpu"], registry=self.registry,
            buckets=(1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1.0))
        if state is not None:
            self.registry.register(_StateCollector(dpu, state))

    def reconciled(self, plane: str, kind: str, n: int = 1) -> None:
        if n:
            self.reconcile_actions.labels(self.dpu, plane, kind).inc(n)

    def reloaded(self, good: bool) -> None:
        self.config_reloads.labels(self.dpu, "good" if good else "bad").inc()

    def installed(self, seconds: float) -> None:
        self.entry_install_seconds.labels(self.dpu).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    content_type = CONTENT_TYPE_LATEST

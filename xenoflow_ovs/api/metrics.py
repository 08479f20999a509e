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

StateFn = Callable[[], Dict[str, Any]]


class _StateCollector:
    """Turns the status snapshot (the shape of GET /status) into metric families."""

    def __init__(self, dpu: str, state: StateFn):
        self.dpu = dpu
        self.state = state

    def collect(self) -> Iterator[Any]:
        st = self.state()
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
                        pkts.add_metric([self.dpu, svc, be, plane], c[plane + "_packets"])
                        byts.add_metric([self.dpu, svc, be, plane], c.get(plane + "_bytes") or 0)
                up.add_metric([self.dpu, svc, be], 1 if c.get("in_service", True) else 0)
        yield pkts
        yield byts
        yield up
        fb = CounterMetricFamily("xenoflow_fallback_packets", "IPv4 packets of a service or route "
                                 "that OVS carried while an eSwitch is configured", labels=["dpu", "plane"])
        if st.get("fallback_packets") is not None:
            fb.add_metric([self.dpu, "ovs"], st["fallback_packets"])
        yield fb
        for name, key, text in (
                ("xenoflow_miss_other_packets", "miss_other_packets",
                 "Packets OVS saw that no service or route claims (ARP, strays)"),
                ("xenoflow_packet_ins", "packet_ins", "OpenFlow packet-ins received")):
            fam = CounterMetricFamily(name, text, labels=["dpu"])
            if st.get(key) is not None:
                fam.add_metric([self.dpu], st[key])
            yield fam
        ok = GaugeMetricFamily("xenoflow_consistent", "1 if both planes agree with the intent",
                               labels=["dpu"])
        ok.add_metric([self.dpu], 1 if st.get("verdict") == "consistent" else 0)
        yield ok


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

"""Prometheus metrics of a control plane, served at `/metrics`.

The fleet gauges are computed from the control plane's memory on every scrape, so they are never
stale and cost nothing between scrapes; counters are read from the objects that count where things
happen (the pool manager's `PoolCounters`, the remediator's `RemediationCounts`, the control
plane's `HealthCounts`). The families, their labels and how each label's values are bounded are
listed in docs/metrics.md. The registry is the app's own, not prometheus_client's global one, so
several control planes in one process (the tests, the simulator) do not collide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from navarch.api.admission import Admission
from navarch.api.methods import METHODS
from navarch.api.metrics_fleet import PoolLabels, fleet_families, scan
from navarch.api.metrics_nodes import node_families
from navarch.api.metrics_pools import pool_families
from navarch.api.metrics_remediation import remediation_families
from navarch.controlplane import ControlPlane
from navarch.controlplane.health_counts import TYPES, HealthCounts
from navarch.model import GpuInfo

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

_AGE_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 90.0, 120.0, 300.0, 600.0)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0)


class _FleetCollector(Collector):
    def __init__(self, current: Callable[[], ControlPlane | None]) -> None:
        self._current = current
        # node id -> its GPUs and their memory, from the last scrape (see `metrics_fleet.scan`)
        self._memory: dict[str, tuple[tuple[GpuInfo, ...], int]] = {}

    def collect(self) -> Iterator[Metric]:
        control_plane = self._current()
        yield GaugeMetricFamily(
            "navarch_leader",
            "1 where this control plane leads and runs the fleet's loops; 0 where it follows "
            "another, and then shows no fleet series (its copy of the state may be old).",
            value=0 if control_plane is None else 1,
        )
        if control_plane is None:
            return
        result = scan(control_plane, self._memory)
        self._memory = result.memory
        manager = control_plane.pools
        configured = {*control_plane.remediation.pool_names()}
        if manager is not None:
            configured.update(manager.pools)
        labels = PoolLabels(configured, result.pools())
        yield from fleet_families(result, labels)
        yield from _heartbeat_families(control_plane)
        yield from _health_families(control_plane.health_counts)

        events = CounterMetricFamily(
            "navarch_events", "Events recorded since the control plane started.", labels=["kind"]
        )
        for kind, count in sorted(control_plane.book.event_counts.items()):
            events.add_metric([kind], count)
        yield events
        store = control_plane.store
        yield CounterMetricFamily(
            "navarch_store_failed_changes",
            "Changes the store could not write; their calls failed.",
            value=store.failed_changes,
        )
        yield CounterMetricFamily(
            "navarch_store_unreadable_rows",
            "Stored rows that did not read back: set aside at start or left out of an answer.",
            value=store.unreadable_rows,
        )
        yield from remediation_families(control_plane.remediation, labels)
        if manager is not None:
            yield from pool_families(manager)
        yield from node_families(control_plane, labels)


def _health_families(counts: HealthCounts) -> Iterator[Metric]:
    reports = CounterMetricFamily(
        "navarch_health_reports",
        "Health reports from the nodes' daemons with events of the type.",
        labels=["type"],
    )
    for kind in sorted({*TYPES, *counts.reports}):
        reports.add_metric([kind], counts.reports[kind])
    yield reports
    xids = CounterMetricFamily(
        "navarch_gpu_xids",
        "XID errors reported, by code: each GPU that reports a code counts once a report.",
        labels=["xid"],
    )
    for code, count in sorted(counts.xids.items()):
        xids.add_metric([code], count)
    yield xids


def _heartbeat_families(control_plane: ControlPlane) -> Iterator[Metric]:
    ages = sorted(control_plane.heartbeat_ages())
    buckets, i = [], 0
    for bound in _AGE_BUCKETS:
        while i < len(ages) and ages[i] <= bound:
            i += 1
        buckets.append((str(bound), i))
    buckets.append(("+Inf", len(ages)))
    yield HistogramMetricFamily(
        "navarch_node_heartbeat_age_seconds",
        "Seconds since each watched node was last heard from.",
        buckets=buckets,
        sum_value=sum(ages),
    )
    yield GaugeMetricFamily(
        "navarch_node_heartbeat_age_max_seconds",
        "Seconds since the most silent watched node was last heard from.",
        value=ages[-1] if ages else 0.0,
    )
    yield GaugeMetricFamily(
        "navarch_nodes_silent",
        "Nodes marked unhealthy for lost heartbeats that have not been heard from since.",
        value=len(control_plane.book.silent),
    )


class _AdmissionCollector(Collector):
    def __init__(self, admission: Admission) -> None:
        self._admission = admission

    def collect(self) -> Iterator[Metric]:
        admission = self._admission
        refused = CounterMetricFamily(
            "navarch_api_refused",
            "API calls refused for load (unavailable, with Retry-After), by method.",
            labels=["method"],
        )
        for method, count in sorted(admission.refused.items()):
            refused.add_metric([method], count)
        yield refused
        in_flight = GaugeMetricFamily(
            "navarch_api_in_flight",
            "API calls in flight, by kind: calls (registrations included), long_polls, "
            "registrations.",
            labels=["kind"],
        )
        for kind, count in admission.in_flight.items():
            in_flight.add_metric([kind], count)
        yield in_flight
        yield GaugeMetricFamily(
            "navarch_api_queue_delay_seconds",
            "The event loop's lag as last measured: how long a call waits to run.",
            value=admission.delay,
        )


class ApiMetrics:
    """The registry behind `/metrics`, and the per-request measurements the app makes."""

    def __init__(
        self,
        control_plane: ControlPlane,
        *,
        current: Callable[[], ControlPlane | None] | None = None,
        admission: Admission | None = None,
    ) -> None:
        """`current`, given, names the control plane to show at each scrape (the leader's term
        changes it), or None while this one follows; `admission`, given, adds its counts."""
        # prometheus_client leaves this one function unannotated.
        prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        latency = Histogram(
            "navarch_api_request_duration_seconds",
            "Time to answer an API call, by method.",
            ["method"],
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self._requests = Counter(
            "navarch_api_requests",
            "API calls answered, by method and Connect code (ok for success).",
            ["method", "code"],
            registry=self.registry,
        )
        # Bound once: a bound child costs a quarter of a labels() lookup per observation.
        self._latency = {name: latency.labels(name) for name in [*METHODS, "unknown"]}
        self._counts: dict[tuple[str, str], Counter] = {}
        self.registry.register(_FleetCollector(current or (lambda: control_plane)))
        if admission is not None:
            self.registry.register(_AdmissionCollector(admission))

    def observe(self, method: str, code: str, seconds: float) -> None:
        self._latency[method].observe(seconds)
        key = (method, code)
        child = self._counts.get(key)
        if child is None:
            child = self._counts[key] = self._requests.labels(method, code)
        child.inc()

    def render(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)

"""Prometheus metrics of a control plane, served at `/metrics`.

The fleet gauges are computed from the control plane's memory on every scrape, so they are never
stale and cost nothing between scrapes. The registry is the app's own, not prometheus_client's
global one, so several control planes in one process (the tests, the simulator) do not collide.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from navarch.api.methods import METHODS
from navarch.controlplane import ControlPlane
from navarch.model import HealthStatus, NodeStatus, RemediationStep

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

_AGE_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 90.0, 120.0, 300.0, 600.0)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0)


class _FleetCollector(Collector):
    def __init__(self, control_plane: ControlPlane) -> None:
        self._control_plane = control_plane

    def collect(self) -> Iterator[Metric]:
        nodes = GaugeMetricFamily(
            "navarch_nodes", "Nodes by status and health.", labels=["status", "health"]
        )
        gpus = GaugeMetricFamily(
            "navarch_gpus", "GPUs of the nodes, by node status.", labels=["status"]
        )
        counts: collections.Counter[tuple[NodeStatus, HealthStatus]] = collections.Counter()
        gpu_counts: collections.Counter[NodeStatus] = collections.Counter()
        for node in self._control_plane.book.nodes():
            counts[node.status, node.health] += 1
            gpu_counts[node.status] += len(node.gpus)
        for status in NodeStatus:
            status_label = status.value
            for health in HealthStatus:
                nodes.add_metric([status_label, health.value], counts[status, health])
            gpus.add_metric([status_label], gpu_counts[status])
        yield nodes
        yield gpus

        ages = sorted(self._control_plane.heartbeat_ages())
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

        events = CounterMetricFamily(
            "navarch_events", "Events recorded since the control plane started.", labels=["kind"]
        )
        for kind, count in sorted(self._control_plane.book.event_counts.items()):
            events.add_metric([kind], count)
        yield events
        store = self._control_plane.store
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
        yield from _remediation_metrics(self._control_plane)


def _remediation_metrics(control_plane: ControlPlane) -> Iterator[Metric]:
    remediation = control_plane.remediation
    breaker = GaugeMetricFamily(
        "navarch_remediation_breaker_open",
        "1 while the remediation circuit breaker of the pool is open.",
        labels=["pool"],
    )
    pools = {*remediation.pool_names(), *remediation.open_breakers}
    for pool in sorted(pools):
        breaker.add_metric([pool], 1.0 if pool in remediation.open_breakers else 0.0)
    yield breaker
    episodes = GaugeMetricFamily(
        "navarch_remediations_open", "Remediation episodes not yet ended, by step.", labels=["step"]
    )
    steps = collections.Counter(e.step for e in remediation.open_episodes())
    for step in RemediationStep:
        if step not in (
            RemediationStep.DONE,
            RemediationStep.CANCELLED,
        ):
            episodes.add_metric([step.value], steps[step])
    yield episodes


class ApiMetrics:
    """The registry behind `/metrics`, and the per-request measurements the app makes."""

    def __init__(self, control_plane: ControlPlane) -> None:
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
        self.registry.register(_FleetCollector(control_plane))

    def observe(self, method: str, code: str, seconds: float) -> None:
        self._latency[method].observe(seconds)
        key = (method, code)
        child = self._counts.get(key)
        if child is None:
            child = self._counts[key] = self._requests.labels(method, code)
        child.inc()

    def render(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)

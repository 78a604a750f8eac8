"""Remediation's series of `/metrics`: circuit breakers, open episodes by step, and episodes started
and ended, read from the `Remediator` and its counts."""

from __future__ import annotations

import collections
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from navarch.api.metrics_fleet import PoolLabels
from navarch.controlplane.remediation import Remediator
from navarch.controlplane.remediation_counts import ACTIONS, OUTCOMES
from navarch.model import RemediationStep


def remediation_families(remediation: Remediator, labels: PoolLabels) -> Iterator[Metric]:
    breaker = GaugeMetricFamily(
        "navarch_remediation_breaker_open",
        "1 while the remediation circuit breaker of the pool is open.",
        labels=["pool"],
    )
    configured = remediation.pool_names()
    opened = remediation.switches.open_breakers
    for pool in sorted({*map(labels, configured), *map(labels, opened)}):
        is_open = any(labels(name) == pool for name in opened)
        breaker.add_metric([pool], 1.0 if is_open else 0.0)
    yield breaker
    episodes = GaugeMetricFamily(
        "navarch_remediations_open", "Remediation episodes not yet ended, by step.", labels=["step"]
    )
    steps = collections.Counter(e.step for e in remediation.open_episodes())
    for step in RemediationStep:
        if step not in (RemediationStep.DONE, RemediationStep.CANCELLED):
            episodes.add_metric([step.value], steps[step])
    yield episodes

    counts = remediation.counts
    started: collections.Counter[tuple[str, str]] = collections.Counter()
    ended: collections.Counter[tuple[str, str]] = collections.Counter()
    for pool in configured:
        for action in ACTIONS:
            started[labels(pool), action] += 0
        for outcome in OUTCOMES.values():
            ended[labels(pool), outcome] += 0
    for (pool, action), count in counts.started.items():
        started[labels(pool), action] += count
    for (pool, outcome), count in counts.ended.items():
        ended[labels(pool), outcome] += count
    started_family = CounterMetricFamily(
        "navarch_remediation_episodes_started",
        "Remediation episodes opened, by pool and action.",
        labels=["pool", "action"],
    )
    for key, count in sorted(started.items()):
        started_family.add_metric(list(key), count)
    yield started_family
    ended_family = CounterMetricFamily(
        "navarch_remediation_episodes_ended",
        "Remediation episodes that reached an outcome (completed, held or cancelled), by pool.",
        labels=["pool", "outcome"],
    )
    for key, count in sorted(ended.items()):
        ended_family.add_metric(list(key), count)
    yield ended_family
    durations = HistogramMetricFamily(
        "navarch_remediation_duration_seconds",
        "Time from an episode's start to its outcome.",
        labels=["outcome"],
    )
    for outcome, histogram in counts.durations.items():
        durations.add_metric([outcome], histogram.cumulative(), histogram.total)
    yield durations

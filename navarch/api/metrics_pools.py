"""The pools' and providers' series of `/metrics`, read from the pool manager and its counters.

A pool's size, in-flight count and healthy count are those of its last scaling round, the numbers
its autoscaler saw, so a scrape costs one look per pool rather than a pass over the fleet. Pools
and providers are those of the configuration, a bounded set; the decisions' reasons and the
errors' kinds come from the closed sets of `navarch.pools.counters`.
"""

from __future__ import annotations

from collections.abc import Iterator

import trio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from navarch.pools.counters import ERROR_KINDS
from navarch.pools.failover import BlockKind
from navarch.pools.manager import PoolManager


def pool_families(manager: PoolManager) -> Iterator[Metric]:
    families = {
        "size": GaugeMetricFamily(
            "navarch_pool_size",
            "Nodes that count toward the pool's size, at its last scaling round.",
            labels=["pool"],
        ),
        "target": GaugeMetricFamily(
            "navarch_pool_target",
            "Nodes the pool's last scaling round decided it should have, counting those in flight.",
            labels=["pool"],
        ),
        "in_flight": GaugeMetricFamily(
            "navarch_pool_in_flight",
            "Instances asked of a provider that had not registered, at the last scaling round.",
            labels=["pool"],
        ),
        "healthy": GaugeMetricFamily(
            "navarch_pool_healthy_nodes",
            "Active nodes not judged unhealthy, at the pool's last scaling round.",
            labels=["pool"],
        ),
        "min": GaugeMetricFamily(
            "navarch_pool_min_nodes", "The pool's min_nodes.", labels=["pool"]
        ),
        "max": GaugeMetricFamily(
            "navarch_pool_max_nodes", "The pool's max_nodes.", labels=["pool"]
        ),
    }
    failures = CounterMetricFamily(
        "navarch_pool_provision_failures",
        "Instances the pool asked for that no provider gave.",
        labels=["pool"],
    )
    counters = manager.counters
    for name in sorted(manager.pools):
        pool = manager.pools[name]
        families["min"].add_metric([name], pool.config.min_nodes)
        families["max"].add_metric([name], pool.config.max_nodes)
        families["target"].add_metric([name], pool.target)
        failures.add_metric([name], counters.provision_failures[name])
        state = pool.state
        if state is not None:
            families["size"].add_metric([name], state.current_nodes - state.in_flight)
            families["in_flight"].add_metric([name], state.in_flight)
            families["healthy"].add_metric([name], state.healthy_nodes)
    yield from families.values()
    yield failures

    decisions = CounterMetricFamily(
        "navarch_pool_scaling_decisions",
        "Scaling rounds, by the direction of their change and the rule that set the target.",
        labels=["pool", "direction", "reason"],
    )
    for (name, direction, reason), count in sorted(counters.decisions.items()):
        decisions.add_metric([name, direction, reason], count)
    yield decisions
    yield from _provider_families(manager)


def _provider_families(manager: PoolManager) -> Iterator[Metric]:
    counters = manager.counters
    providers = sorted(manager.providers)
    errors = CounterMetricFamily(
        "navarch_provider_errors",
        "Failed provision calls, by provider and kind of error; each transient retry counts.",
        labels=["provider", "kind"],
    )
    provisions = CounterMetricFamily(
        "navarch_provider_provisions",
        "Provision calls that gave an instance, by provider.",
        labels=["provider"],
    )
    blocks = GaugeMetricFamily(
        "navarch_provider_blocks",
        "Parts of a provider (a region, zone or instance type, or all of it) that pools do not "
        "try until a failure's block ends, by kind.",
        labels=["provider", "kind"],
    )
    active: dict[tuple[str, str], int] = {}
    for block in manager.blocks.active(trio.current_time()):
        key = (block.provider, block.kind.value)
        active[key] = active.get(key, 0) + 1
    for provider in providers:
        for kind in ERROR_KINDS:
            errors.add_metric([provider, kind], counters.provider_errors[provider, kind])
        provisions.add_metric([provider], counters.provisions[provider])
        for block_kind in BlockKind:
            blocks.add_metric(
                [provider, block_kind.value], active.get((provider, block_kind.value), 0)
            )
    yield from (errors, provisions, blocks)

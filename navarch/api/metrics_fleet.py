"""The fleet's series of `/metrics`: nodes by status and health, by pool, and the GPUs' readings
as each pool's distributions, made in one pass over the node book.

A scrape of 10,000 nodes with 8 GPUs each reads 80,000 GPUs' readings, so the pass reads them as
the book keeps them (flat tuples of numbers) and adds each into per-pool bucket counts; nothing
here runs per heartbeat. The pool label's values are bounded by `PoolLabels`.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Collection, Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric

from navarch.controlplane import ControlPlane
from navarch.controlplane.book import FIRST_GPU, GPU_FIELDS
from navarch.model import GpuInfo, HealthStatus, NodeStatus

# The most pool label values: every configured pool, then the other pools that nodes name, in
# order of name, up to this many; the rest count under "other".
MAX_POOL_LABELS = 100
NO_POOL = "none"
OTHER_POOL = "other"

# Upper bounds of the GPU distributions. Utilization is read in percent and shown as a ratio.
TEMPERATURE_BUCKETS = (40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0, 95.0)
UTILIZATION_BUCKETS = (0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 100.0)
_UTILIZATION_BOUNDS = tuple(str(bound / 100) for bound in UTILIZATION_BUCKETS)


class PoolLabels:
    """The pool label of a pool name: itself for a configured pool and for the first other names
    up to `MAX_POOL_LABELS`, "none" for a node in no pool, "other" for the rest."""

    def __init__(self, configured: Collection[str], seen: Collection[str]) -> None:
        kept = set(configured)
        room = max(MAX_POOL_LABELS - len(kept), 0)
        kept.update(sorted(set(seen) - kept - {""})[:room])
        self._kept = kept

    def __call__(self, pool: str) -> str:
        if not pool:
            return NO_POOL
        return pool if pool in self._kept else OTHER_POOL


class PoolGpus:
    """The GPU readings of a pool: bucket counts (the last is +Inf), sums and totals."""

    def __init__(self, flat: list[float], memory_total: float) -> None:
        """`flat` holds `GPU_FIELDS` fields a GPU, as the book packs them less the node's two."""
        temperature = flat[3::GPU_FIELDS]
        utilization = flat[1::GPU_FIELDS]
        self.temperature = _buckets(TEMPERATURE_BUCKETS, temperature)
        self.utilization = _buckets(UTILIZATION_BUCKETS, utilization)
        self.temperature_sum = sum(temperature)
        self.utilization_sum = sum(utilization)
        self.power = sum(flat[4::GPU_FIELDS])
        self.memory_used = sum(flat[2::GPU_FIELDS])
        self.memory_total = memory_total


def _buckets(bounds: tuple[float, ...], values: list[float]) -> list[int]:
    """Counts of `values` in each bucket of `bounds`, +Inf last. NVML reads temperatures in whole
    degrees and utilization in whole percent, so a fleet's readings take few distinct values:
    counting those first (in C) leaves little to place."""
    counts = [0] * (len(bounds) + 1)
    place = bisect.bisect_left
    for value, count in collections.Counter(values).items():
        counts[place(bounds, value)] += count
    return counts


class FleetScan:
    """What one pass over the book counts."""

    def __init__(self) -> None:
        # (pool, status, health), by the enums' values -> [nodes, their GPUs]
        self.nodes: dict[tuple[str, str, str], list[int]] = {}
        # pool -> the latest readings of the GPUs of its nodes that are not terminated, flat,
        # and the memory of each of those nodes' GPUs together
        self.readings: dict[str, tuple[list[float], list[int]]] = {}
        # node id -> its GPUs and their memory, for the next scan
        self.memory: dict[str, tuple[tuple[GpuInfo, ...], int]] = {}

    def pools(self) -> set[str]:
        return {pool for pool, _, _ in self.nodes}


def scan(
    control_plane: ControlPlane, memory: Mapping[str, tuple[tuple[GpuInfo, ...], int]]
) -> FleetScan:
    """Counts the book's nodes and gathers the latest readings of their GPUs, by pool. The
    readings of terminated nodes are left out: they are the last before the machine went.

    `memory` is the last scan's `FleetScan.memory`: each node's GPU memory, kept between scrapes
    since a node's GPUs rarely change.
    It runs once a scrape over every node, so it keeps to a few lookups of plain values a node:
    an enum's `_value_` is an attribute, where hashing the enum or reading `.value` calls Python
    code.
    """
    result = FleetScan()
    nodes, bags, kept = result.nodes, result.readings, result.memory
    readings = control_plane.readings()[1]
    terminated = NodeStatus.TERMINATED
    for node in control_plane.book.nodes():
        status, pool, node_gpus = node.status, node.pool, node.gpus
        key = (pool, status._value_, node.health._value_)
        counts = nodes.get(key)
        if counts is None:
            counts = nodes[key] = [0, 0]
        counts[0] += 1
        counts[1] += len(node_gpus)
        if status is terminated:
            continue
        packed = readings.get(node.node_id)
        if packed is None or len(packed) <= FIRST_GPU:
            continue
        bag = bags.get(pool)
        if bag is None:
            bag = bags[pool] = ([], [])
        bag[0].extend(packed[FIRST_GPU:])
        known = memory.get(node.node_id)
        if known is None or known[0] is not node_gpus:
            known = (node_gpus, sum(g.memory_total_bytes for g in node_gpus))
        kept[node.node_id] = known
        bag[1].append(known[1])
    return result


def fleet_families(result: FleetScan, labels: PoolLabels) -> Iterator[Metric]:
    nodes = GaugeMetricFamily(
        "navarch_nodes", "Nodes by status and health.", labels=["status", "health"]
    )
    gpus = GaugeMetricFamily(
        "navarch_gpus", "GPUs of the nodes, by node status.", labels=["status"]
    )
    by_state: collections.Counter[tuple[str, str]] = collections.Counter()
    by_status: collections.Counter[str] = collections.Counter()
    by_pool: collections.Counter[tuple[str, str]] = collections.Counter()
    for (pool, status, health), (count, gpu_count) in result.nodes.items():
        by_state[status, health] += count
        by_status[status] += gpu_count
        if status != NodeStatus.TERMINATED.value:
            by_pool[labels(pool), health] += count
    healths = [health.value for health in HealthStatus]
    for node_status in NodeStatus:
        value = node_status.value
        for health in healths:
            nodes.add_metric([value, health], by_state[value, health])
        gpus.add_metric([value], by_status[value])
    yield nodes
    yield gpus
    pool_nodes = GaugeMetricFamily(
        "navarch_pool_nodes",
        "Nodes that are not terminated, by pool and health.",
        labels=["pool", "health"],
    )
    for pool in sorted({pool for pool, _ in by_pool}):
        for health in healths:
            pool_nodes.add_metric([pool, health], by_pool[pool, health])
    yield pool_nodes
    yield from _gpu_families(result, labels)


def _gpu_families(result: FleetScan, labels: PoolLabels) -> Iterator[Metric]:
    flat: dict[str, list[float]] = {}
    memory: collections.Counter[str] = collections.Counter()
    for pool, (readings, totals) in result.readings.items():
        label = labels(pool)
        flat[label] = flat[label] + readings if label in flat else readings
        memory[label] += sum(totals)
    folded = {pool: PoolGpus(readings, memory[pool]) for pool, readings in flat.items()}
    temperature = HistogramMetricFamily(
        "navarch_pool_gpu_temperature_celsius",
        "Latest temperature of each GPU of the pool's nodes that are not terminated.",
        labels=["pool"],
    )
    utilization = HistogramMetricFamily(
        "navarch_pool_gpu_utilization_ratio",
        "Latest utilization (0 to 1) of each GPU of the pool's nodes that are not terminated.",
        labels=["pool"],
    )
    power = GaugeMetricFamily(
        "navarch_pool_gpu_power_watts",
        "Power drawn by the GPUs of the pool, by their latest readings.",
        labels=["pool"],
    )
    memory_used = GaugeMetricFamily(
        "navarch_pool_gpu_memory_used_bytes",
        "GPU memory in use on the pool's nodes, by their latest readings.",
        labels=["pool"],
    )
    memory_total = GaugeMetricFamily(
        "navarch_pool_gpu_memory_total_bytes",
        "GPU memory of the pool's nodes that send readings.",
        labels=["pool"],
    )
    for pool in sorted(folded):
        acc = folded[pool]
        temperature.add_metric(
            [pool],
            _cumulative(TEMPERATURE_BUCKETS, acc.temperature),
            acc.temperature_sum,
        )
        utilization.add_metric(
            [pool],
            _cumulative(_UTILIZATION_BOUNDS, acc.utilization),
            acc.utilization_sum / 100,
        )
        power.add_metric([pool], acc.power)
        memory_used.add_metric([pool], acc.memory_used)
        memory_total.add_metric([pool], acc.memory_total)
    yield from (temperature, utilization, power, memory_used, memory_total)


def _cumulative(
    bounds: tuple[float, ...] | tuple[str, ...], counts: list[int]
) -> list[tuple[str, float]]:
    pairs: list[tuple[str, float]] = []
    seen = 0
    for bound, count in zip((*map(str, bounds), "+Inf"), counts, strict=True):
        seen += count
        pairs.append((bound, seen))
    return pairs

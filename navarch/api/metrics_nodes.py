"""The series of each node and each GPU at `/metrics`, when `[metrics] per_node` or `per_gpu` is on.

A node label on 10,000 nodes is 10,000 series a metric, and a GPU label 80,000, so these are off
by default and capped at `node_limit` nodes when on: the least healthy nodes first (unhealthy,
degraded, unknown, healthy), then by node id, so the nodes that need attention are always in.
`navarch_metrics_nodes_omitted` says how many nodes the cap left out. Terminated nodes have none.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from navarch.api.metrics_fleet import PoolLabels
from navarch.controlplane import ControlPlane
from navarch.controlplane.book import FIRST_GPU, GPU_FIELDS
from navarch.model import Node, NodeStatus


def node_families(control_plane: ControlPlane, labels: PoolLabels) -> Iterator[Metric]:
    settings = control_plane.metrics_config
    if not settings.per_node and not settings.per_gpu:
        return
    live = [n for n in control_plane.book.nodes() if n.status is not NodeStatus.TERMINATED]
    chosen = heapq.nsmallest(settings.node_limit, live, key=_attention)
    yield GaugeMetricFamily(
        "navarch_metrics_nodes_omitted",
        "Nodes left without series of their own by [metrics] node_limit.",
        value=len(live) - len(chosen),
    )
    beats, readings = control_plane.readings()
    if settings.per_node:
        info = GaugeMetricFamily(
            "navarch_node_info",
            "1 for each node, with its pool, provider, status and health as labels.",
            labels=["node", "pool", "provider", "status", "health"],
        )
        heard = GaugeMetricFamily(
            "navarch_node_last_heartbeat_timestamp_seconds",
            "When the node was last heard from, in seconds since the epoch.",
            labels=["node"],
        )
        for node in chosen:
            info.add_metric(
                [
                    node.node_id,
                    labels(node.pool),
                    node.provider,
                    node.status.value,
                    node.health.value,
                ],
                1.0,
            )
            at = beats.get(node.node_id)
            if at is not None:
                heard.add_metric([node.node_id], at.timestamp())
        yield info
        yield heard
    if settings.per_gpu:
        yield from _gpu_families(chosen, readings)


def _attention(node: Node) -> tuple[int, str]:
    return (-node.health.rank, node.node_id)


def _gpu_families(nodes: list[Node], readings: Mapping[str, tuple[float, ...]]) -> Iterator[Metric]:
    names = {
        1: ("navarch_gpu_utilization_ratio", "Latest utilization of the GPU, 0 to 1."),
        2: ("navarch_gpu_memory_used_bytes", "Latest memory in use on the GPU."),
        3: ("navarch_gpu_temperature_celsius", "Latest temperature of the GPU."),
        4: ("navarch_gpu_power_watts", "Latest power drawn by the GPU."),
    }
    families = {
        field: GaugeMetricFamily(name, text, labels=["node", "gpu"])
        for field, (name, text) in names.items()
    }
    total = GaugeMetricFamily(
        "navarch_gpu_memory_total_bytes", "Memory of the GPU.", labels=["node", "gpu"]
    )
    # NVML's volatile counts, which start again from 0 when the driver loads: a counter's reset.
    ecc = CounterMetricFamily(
        "navarch_gpu_ecc_errors",
        "ECC errors of the GPU since its driver loaded, corrected or uncorrected.",
        labels=["node", "gpu", "type"],
    )
    for node in nodes:
        for gpu in node.gpus:
            if gpu.memory_total_bytes:
                total.add_metric([node.node_id, str(gpu.index)], gpu.memory_total_bytes)
        packed = readings.get(node.node_id)
        if packed is None:
            continue
        for start in range(FIRST_GPU, len(packed), GPU_FIELDS):
            gpu_label = str(int(packed[start]))
            for field, family in families.items():
                value = packed[start + field]
                family.add_metric([node.node_id, gpu_label], value / 100 if field == 1 else value)
            ecc.add_metric([node.node_id, gpu_label, "corrected"], packed[start + 5])
            ecc.add_metric([node.node_id, gpu_label, "uncorrected"], packed[start + 6])
    yield from families.values()
    yield total
    yield ecc

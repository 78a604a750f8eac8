"""The time to render `GET /metrics` for a fleet of N nodes with 8 GPUs each.

Builds a real control plane on a fresh SQLite file, puts N registered nodes in its book with the
latest metrics of every GPU (different readings on every node, as a real fleet sends), and times
`ApiMetrics.render()`, the whole of what the endpoint does, over several runs: wall-clock time,
and the CPU time of the rendering thread, which other processes on a busy machine do not
inflate. With `--per-gpu` it renders with `[metrics] per_node` and `per_gpu` on and their cap
at `--node-limit`.

To run it:

    .venv/bin/python bench/metrics_render.py --nodes 10000 --runs 10
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import trio

from navarch.api.metrics import ApiMetrics
from navarch.config import MetricsConfig
from navarch.controlplane import ControlPlane
from navarch.model import GpuInfo, GpuMetrics, HealthStatus, Node, NodeMetrics, NodeStatus
from navarch.store import SQLiteStore

_HEALTH = (HealthStatus.HEALTHY,) * 97 + (HealthStatus.DEGRADED,) * 2 + (HealthStatus.UNHEALTHY,)


def fill(control_plane: ControlPlane, nodes: int, pools: int) -> None:
    book = control_plane.book
    now = datetime.now(UTC)
    for n in range(nodes):
        node_id = f"node-{n:05d}"
        gpus = tuple(
            GpuInfo(index=i, uuid=f"GPU-{n}-{i}", memory_total_bytes=80 * 2**30) for i in range(8)
        )
        book.put(
            Node(
                node_id=node_id,
                status=NodeStatus.ACTIVE,
                health=_HEALTH[n % len(_HEALTH)],
                pool=f"pool-{n % pools}",
                provider="fake",
                gpus=gpus,
                registered_at=now,
            ),
            stored=True,
        )
        metrics = NodeMetrics(
            cpu_percent=float(n % 100),
            memory_percent=40.0,
            gpus=tuple(
                GpuMetrics(
                    index=i,
                    utilization_percent=float((n * 7 + i) % 101),
                    memory_used_bytes=(n * 13 + i) % 80 * 2**30,
                    temperature_c=40.0 + (n + i) % 50,
                    power_watts=200.0 + (n * 3 + i) % 500,
                )
                for i in range(8)
            ),
        )
        book.beat(node_id, now, metrics)


async def bench(nodes: int, pools: int, runs: int, per_gpu: bool, node_limit: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            SQLiteStore.open(Path(tmp) / "navarch.db") as store,
            ControlPlane.open(store) as control_plane,
        ):
            fill(control_plane, nodes, pools)
            if per_gpu:
                control_plane.metrics_config = MetricsConfig(
                    per_node=True, per_gpu=True, node_limit=node_limit
                )
            metrics = ApiMetrics(control_plane)
            times, cpu, size = [], [], 0
            for _ in range(runs):
                started, started_cpu = time.perf_counter(), time.thread_time()
                body = metrics.render()
                times.append(time.perf_counter() - started)
                cpu.append(time.thread_time() - started_cpu)
                size = len(body)
            series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
            print(
                f"nodes={nodes} gpus={nodes * 8} per_gpu={per_gpu} series={series} "
                f"bytes={size} render ms: median={statistics.median(times) * 1000:.1f} "
                f"min={min(times) * 1000:.1f} max={max(times) * 1000:.1f}; "
                f"cpu ms: median={statistics.median(cpu) * 1000:.1f} min={min(cpu) * 1000:.1f}"
            )
            control_plane.stop_long_polls()
            raise _Done


class _Done(Exception):
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--pools", type=int, default=8)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--per-gpu", action="store_true")
    parser.add_argument("--node-limit", type=int, default=100)
    args = parser.parse_args()
    try:
        trio.run(bench, args.nodes, args.pools, args.runs, args.per_gpu, args.node_limit)
    except* _Done:
        pass


if __name__ == "__main__":
    main()

from __future__ import annotations

import gc
from pathlib import Path

import trio
import trio.testing
from support.api import rpc
from support.service import node, open_service, register

from navarch import model
from navarch.api import wire as m
from navarch.controlplane import Caller


def _metrics(load: float, mark: float = 0.0) -> m.NodeMetrics:
    gpus = tuple(
        m.GpuMetrics(
            index=i,
            utilization_percent=load + i,
            memory_used_bytes=2**36 + i,
            temperature_c=40.5 + i + mark,
            power_watts=300.25 + load,
        )
        for i in range(8)
    )
    return m.NodeMetrics(cpu_percent=load / 2, memory_percent=12.5, gpus=gpus)


async def _beat(service, node_id: str, metrics: m.NodeMetrics | None) -> None:
    request = m.SendHeartbeatRequest(node_id=node_id, metrics=metrics)
    await rpc(service, request, Caller.node(node_id))


async def test_a_node_reads_back_with_the_metrics_of_its_latest_heartbeat(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        await _beat(service, "gpu-1", _metrics(10.0))
        await _beat(service, "gpu-1", _metrics(90.0))
        assert (await node(service, "gpu-1")).metrics == _metrics(90.0)
        # A heartbeat without metrics keeps the last ones the node sent.
        await _beat(service, "gpu-1", None)
        assert (await node(service, "gpu-1")).metrics == _metrics(90.0)
    async with open_service(tmp_path / "db") as service:
        assert (await node(service, "gpu-1")).metrics == _metrics(90.0)


async def test_the_metrics_a_fleet_sends_leave_no_objects_for_the_collector_to_walk(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # Every full collection walks every tracked object while all requests wait; 10,000 nodes'
    # metrics kept as objects would add 120,000 to each walk (docs/performance.md).
    # GPU temperatures no other test sends (within the API's limits), which an earlier test's
    # objects cannot have.
    mark = 500.0

    def sent_here(o: object) -> bool:
        if isinstance(o, model.NodeMetrics):
            return any(g.temperature_c >= mark for g in o.gpus)
        return isinstance(o, model.GpuMetrics) and o.temperature_c >= mark

    async with open_service(tmp_path / "db") as service:
        for n in range(50):
            await register(service, f"gpu-{n}")
            await _beat(service, f"gpu-{n}", _metrics(float(n), mark))
        await trio.sleep(5)  # past the store's heartbeat flush
        gc.collect()
        assert [o for o in gc.get_objects() if sent_here(o)] == []
        for n in range(50):
            assert (await node(service, f"gpu-{n}")).metrics == _metrics(float(n), mark)

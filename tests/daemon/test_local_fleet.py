"""The local fleet of examples/local-fleet.toml: its nodes look like busy, healthy machines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import trio

from navarch.api import wire as m
from navarch.api.app import ControlPlaneApp
from navarch.api.client import HttpClient
from navarch.config import parse_config
from navarch.controlplane import ControlPlane
from navarch.daemon.gpu import SimulatedGpus
from navarch.daemon.local import LocalMachines
from navarch.store import SQLiteStore
from navarch.telemetry.nvml import Return

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "local-fleet.toml"
HEALTHY = m.HealthStatus.HEALTH_STATUS_HEALTHY


@asynccontextmanager
async def local_fleet(path: Path) -> AsyncIterator[HttpClient]:
    """The example's control plane with its machines as `navarch control-plane` runs them."""
    config = parse_config(EXAMPLE.read_text())
    async with (
        SQLiteStore.open(path, threaded=False) as store,
        ControlPlane.open(
            store, config.server, config=config, machines=LocalMachines.lifelike
        ) as service,
        HttpClient(
            "http://navarch.test", transport=httpx.ASGITransport(ControlPlaneApp(service))
        ) as client,
    ):
        yield client


async def test_local_fleet_nodes_turn_healthy_and_report_real_numbers(tmp_path, autojump_clock):
    async with local_fleet(tmp_path / "navarch.db") as client:
        with trio.fail_after(600):
            while True:
                nodes = (await client.list_nodes(m.ListNodesRequest(pool="dev"))).nodes
                if len(nodes) == 2 and all(n.health == HEALTHY and n.metrics for n in nodes):
                    break
                await trio.sleep(1)
            first = (await client.get_node(m.GetNodeRequest(node_id=nodes[0].node_id))).node
            utilizations = set()
            for _ in range(5):
                await trio.sleep(5)
                node = (await client.get_node(m.GetNodeRequest(node_id=first.node_id))).node
                assert node.metrics is not None
                utilizations.add(tuple(g.utilization_percent for g in node.metrics.gpus))
    for node in nodes:
        metrics = node.metrics
        assert metrics is not None
        assert 0 < metrics.cpu_percent < 100 and 0 < metrics.memory_percent < 100
        assert len(metrics.gpus) == 8
        for gpu in metrics.gpus:
            # The fake provider's default load is 50 %; readings stay near it.
            assert 40 <= gpu.utilization_percent <= 60
            assert 45 <= gpu.temperature_c <= 70
            assert 200 < gpu.power_watts < 500
            assert gpu.memory_used_bytes > 0
    assert len(utilizations) > 1  # the readings move from one heartbeat to the next


def test_varying_readings_are_opt_in_and_repeat_with_the_seed():
    plain = SimulatedGpus(2, seed="n1")
    plain.set_load(50)
    assert plain.sample() == plain.sample()
    assert [s.utilization_gpu_pct for s in plain.sample()] == [50, 50]

    def readings(gpus: SimulatedGpus) -> list[tuple[int | None, ...]]:
        gpus.set_load(50)
        return [
            tuple(s.utilization_gpu_pct for s in gpus.sample())
            + tuple(s.temperature_c for s in gpus.sample())
            for _ in range(20)
        ]

    one, again = (
        readings(SimulatedGpus(2, seed="n1", varying=True)),
        readings(SimulatedGpus(2, seed="n1", varying=True)),
    )
    assert one == again
    assert len(set(one)) > 1


def test_a_lost_gpu_stays_lost_and_a_pinned_temperature_stays_pinned():
    gpus = SimulatedGpus(2, seed="n1", varying=True)
    gpus.set_load(80)
    gpus.lose_gpu(0)
    gpus.set_temperature(1, 95)
    for _ in range(5):
        lost, hot = gpus.sample()
        assert lost.status == Return.GPU_IS_LOST and lost.utilization_gpu_pct is None
        assert hot.temperature_c == 95

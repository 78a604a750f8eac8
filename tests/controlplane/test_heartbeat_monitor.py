from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from support.api import rpc
from support.service import (
    ACTIVE,
    CORDON,
    CORDONED,
    UNCORDON,
    UNHEALTHY,
    events,
    heartbeat,
    issue,
    node,
    open_service,
    register,
    status,
)

from navarch.api import wire as m
from navarch.controlplane import Caller
from navarch.model import HEARTBEAT_LOST


async def _lost_events(service, node_id: str) -> list[m.Event]:
    return [e for e in await events(service, node_id) if e.actor == "heartbeat-monitor"]


async def test_a_node_that_never_sends_a_heartbeat_becomes_unhealthy_once(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        # Timeout 30 s, checked every 3 s.
        await trio.sleep(29)
        assert await status(service, "gpu-1") is ACTIVE
        await trio.sleep(5)
        lost = await node(service, "gpu-1")
        assert (lost.status, lost.status_reason) == (UNHEALTHY, HEARTBEAT_LOST)
        assert lost.health is m.HealthStatus.HEALTH_STATUS_UNKNOWN
        await trio.sleep(3600)
        [event] = await _lost_events(service, "gpu-1")
        assert (event.kind, event.from_status, event.to_status, event.reason) == (
            "node.status_changed",
            ACTIVE,
            UNHEALTHY,
            HEARTBEAT_LOST,
        )


async def test_a_node_that_keeps_sending_heartbeats_stays_in_service(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "steady")
        await register(service, "silent")
        for _ in range(30):
            await trio.sleep(10)
            await heartbeat(service, "steady")
        assert await status(service, "steady") is ACTIVE
        assert await status(service, "silent") is UNHEALTHY


async def test_a_cordoned_node_that_goes_silent_becomes_unhealthy(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        await issue(service, "gpu-1", CORDON)
        await trio.sleep(40)
        [event] = await _lost_events(service, "gpu-1")
        assert (event.from_status, event.to_status) == (CORDONED, UNHEALTHY)


async def test_heartbeats_after_a_loss_are_noted_but_the_node_stays_unhealthy(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        await trio.sleep(40)
        for _ in range(3):
            assert (await heartbeat(service, "gpu-1")).status is UNHEALTHY
        back = await node(service, "gpu-1")
        assert back.status is UNHEALTHY
        assert back.status_reason == "heartbeat lost; heartbeats resumed"
        resumed = [e for e in await events(service, "gpu-1") if e.kind == "node.heartbeat_resumed"]
        assert len(resumed) == 1


async def test_a_forced_uncordon_gives_the_node_a_full_timeout(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        await trio.sleep(40)
        await issue(service, "gpu-1", UNCORDON, force="true")
        await trio.sleep(25)
        assert await status(service, "gpu-1") is ACTIVE
        await trio.sleep(10)
        assert await status(service, "gpu-1") is UNHEALTHY
        assert len(await _lost_events(service, "gpu-1")) == 2


async def test_after_a_restart_every_node_gets_a_full_timeout(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "db"
    async with open_service(path) as service:
        await register(service, "gpu-1")
        await trio.sleep(25)
    # The control plane was down for ten minutes; the node could not have reached it.
    await trio.sleep(600)
    async with open_service(path) as service:
        await trio.sleep(25)
        assert await status(service, "gpu-1") is ACTIVE
        await trio.sleep(10)
        assert await status(service, "gpu-1") is UNHEALTHY


async def test_a_healthy_node_that_goes_silent_has_unknown_health_with_an_event(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        await rpc(service, m.ReportHealthRequest(node_id="gpu-1"), Caller.node("gpu-1"))
        assert (await node(service, "gpu-1")).health is m.HealthStatus.HEALTH_STATUS_HEALTHY
        await trio.sleep(40)
        changes = [
            e for e in await _lost_events(service, "gpu-1") if e.kind == "node.health_changed"
        ]
        assert [(e.reason, e.details) for e in changes] == [
            (
                HEARTBEAT_LOST,
                {"from": "HEALTH_STATUS_HEALTHY", "to": "HEALTH_STATUS_UNKNOWN"},
            )
        ]

"""The heartbeat monitor declares no node lost while the control plane sheds load: a node's
silence counts from the last refusal at the earliest."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from support.service import ACTIVE, UNHEALTHY, open_service, register, status

from navarch.controlplane.heartbeat import HeartbeatMonitor


async def test_no_node_is_lost_while_the_control_plane_sheds_load(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "silent")
        monitor = service.book.monitor
        # Timeout 30 s, checked every 3 s; calls are refused for a minute.
        for _ in range(12):
            await trio.sleep(5)
            monitor.overloaded()
        await trio.sleep(29)
        assert await status(service, "silent") is ACTIVE
        await trio.sleep(5)
        assert await status(service, "silent") is UNHEALTHY


async def test_a_node_silent_since_the_shedding_ended_is_lost_on_its_own_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    monitor = HeartbeatMonitor(timeout=30)
    monitor.seen("early")
    await trio.sleep(10)
    monitor.overloaded()
    await trio.sleep(10)
    monitor.seen("late")
    await trio.sleep(20.5)
    # 40.5 s: "early" was seen at 0 s, but the refusal at 10 s holds it until 40 s.
    assert monitor.take_silent() == ["early"]
    await trio.sleep(9)
    assert monitor.take_silent() == []
    await trio.sleep(1)
    assert monitor.take_silent() == ["late"]


async def test_without_refusals_the_timeout_alone_counts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    monitor = HeartbeatMonitor(timeout=30)
    monitor.seen("gpu-1")
    await trio.sleep(29.5)
    assert monitor.take_silent() == []
    await trio.sleep(1)
    assert monitor.take_silent() == ["gpu-1"]

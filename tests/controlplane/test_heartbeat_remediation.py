"""A silent node of a pool that replaces nodes gets a heartbeat-lost remediation episode."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import trio
import trio.testing
from support.remediation import DONE, PoolManagerStandIn, episodes, wait_for_step
from support.service import TERMINATED, UNHEALTHY, events, heartbeat, register, status

from navarch.config import PoolHealthConfig, ServerConfig
from navarch.controlplane import ControlPlane
from navarch.store import SQLiteStore

# Heartbeats every 5 s, lost after 15 s.
SERVER = ServerConfig(heartbeat_interval=timedelta(seconds=5))


@asynccontextmanager
async def open_plane(
    path: Path, replacer: PoolManagerStandIn | None, pools: Mapping[str, PoolHealthConfig]
) -> AsyncIterator[ControlPlane]:
    async with (
        SQLiteStore.open(path, threaded=False) as store,
        ControlPlane.open(store, SERVER, replacer=replacer, pool_health=pools) as service,
    ):
        if replacer is not None:
            replacer.service = service
        yield service


async def test_a_silent_node_skips_the_drain_and_is_terminated_without_a_successor(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    replacer = PoolManagerStandIn()
    async with open_plane(tmp_path / "db", replacer, {"train": PoolHealthConfig()}) as service:
        await register(service, "train-0", pool="train")
        await wait_for_step(service, "train-0", DONE)
        assert (replacer.terminated, replacer.replaced) == (["train-0"], [])
        assert await status(service, "train-0") is TERMINATED
        [episode] = await episodes(service)
        assert episode.rule == "heartbeat-lost"
        steps = [
            (e.details["step"], e.reason)
            for e in await events(service, "train-0")
            if e.kind.startswith("remediation.")
        ]
        assert [step for step, _ in steps] == ["pending", "cordon", "terminate", "done"]
        assert "drain skipped" in steps[2][1]
        # The daemon's late heartbeat finds the node terminated and changes nothing.
        assert (await heartbeat(service, "train-0")).status is TERMINATED


async def test_a_silent_node_is_left_alone_without_auto_replace_or_a_pool(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    replacer = PoolManagerStandIn()
    pools = {"train": PoolHealthConfig(auto_replace=False)}
    async with open_plane(tmp_path / "db", replacer, pools) as service:
        await register(service, "train-0", pool="train")
        await register(service, "loose-0")
        await register(service, "other-0", pool="unconfigured")
        await trio.sleep(600)
        for node_id in ("train-0", "loose-0", "other-0"):
            assert await status(service, node_id) is UNHEALTHY
        assert await episodes(service) == []
        assert (replacer.terminated, replacer.replaced) == ([], [])

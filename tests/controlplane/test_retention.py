"""Terminated nodes are pruned from the store after `server.terminated_retention`, and their
events once they are as old; nodes that live, and recent history, stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio
from support.api import rpc
from support.service import ADMIN, OK, TERMINATE, ack, heartbeat, issue, register

from navarch.api import wire as m
from navarch.clock import Clock
from navarch.config import ServerConfig
from navarch.controlplane import ControlPlane
from navarch.store import SQLiteStore

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
DAY = 86400.0
SERVER = ServerConfig(heartbeat_interval=timedelta(hours=6), terminated_retention=timedelta(days=2))


def virtual_wall() -> datetime:
    return EPOCH + timedelta(seconds=trio.current_time())


async def node_ids(service: ControlPlane) -> list[str]:
    return [n.node_id for n in (await rpc(service, m.ListNodesRequest(), ADMIN)).nodes]


async def events_of(service: ControlPlane, node_id: str) -> list[m.Event]:
    request = m.ListEventsRequest(node_id=node_id, limit=1000)
    return list((await rpc(service, request, ADMIN)).events)


async def terminate(service: ControlPlane, node_id: str) -> None:
    command = (await issue(service, node_id, TERMINATE, "retired")).command
    await ack(service, node_id, command.command_id, OK)


async def test_terminated_nodes_and_then_their_events_go_after_the_retention(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "navarch.db"
    async with (
        SQLiteStore.open(path, threaded=False) as store,
        ControlPlane.open(store, SERVER, clock=Clock(virtual_wall)) as service,
    ):
        for node_id in ("old", "live"):
            await register(service, node_id)
        await terminate(service, "old")
        assert await events_of(service, "old")
        # Kept while the retention runs, as the live node is.
        await trio.sleep(1.5 * DAY)
        await heartbeat(service, "live")
        assert sorted(await node_ids(service)) == ["live", "old"]
        # Past it, at the next hourly round: the node is gone, with its token; its events
        # are as old as the retention too, so they go with it.
        await trio.sleep(0.6 * DAY)
        assert await node_ids(service) == ["live"]
        assert await events_of(service, "old") == []
        assert service.book.get("old") is None
        assert await events_of(service, "live")
    # Gone from the store too: a restart does not bring it back.
    async with (
        SQLiteStore.open(path, threaded=False) as store,
        ControlPlane.open(store, SERVER, clock=Clock(virtual_wall)) as service,
    ):
        assert await node_ids(service) == ["live"]


async def test_events_of_a_pruned_node_newer_than_the_retention_are_kept(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        SQLiteStore.open(tmp_path / "navarch.db", threaded=False) as store,
        ControlPlane.open(store, SERVER, clock=Clock(virtual_wall)) as service,
    ):
        await register(service, "gpu-1")  # never heard from again
        await trio.sleep(DAY)
        await terminate(service, "gpu-1")
        assert await service.prune(virtual_wall() - timedelta(hours=12)) == ["gpu-1"]
        assert await node_ids(service) == []
        # Its registration is older than the cutoff; its termination is not, and stays.
        kinds = [e.kind for e in await events_of(service, "gpu-1")]
        assert "node.registered" not in kinds
        assert "node.status_changed" in kinds

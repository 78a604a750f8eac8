from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio
import trio.testing
from support.api import rpc
from support.service import (
    ADMIN,
    CORDON,
    CORDONED,
    DRAIN,
    DRAINING,
    events,
    heartbeat,
    issue,
    node,
    open_service,
    register,
)

from navarch.api import wire as m
from navarch.api.mapping import metrics_from_wire
from navarch.controlplane import Caller
from navarch.errors import Unauthenticated
from navarch.store import SQLiteStore


async def test_a_restart_keeps_nodes_commands_events_and_health(tmp_path: Path) -> None:
    path = tmp_path / "db"
    report = m.HealthEvent(
        type=m.HealthEventType.HEALTH_EVENT_TYPE_XID,
        time=datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC),
        gpu_index=3,
        xid=13,
        message="Graphics Engine Exception",
        metrics={"temperature": 71.5},
        details={"pci": "0000:3b:00.0"},
    )
    async with open_service(path) as service:
        await register(
            service, "gpu-1", gpus=(m.GpuInfo(index=3, uuid="GPU-3"),), labels={"a": "b"}
        )
        await register(service, "gpu-2")
        await issue(service, "gpu-1", CORDON, "suspect")
        drain = (await issue(service, "gpu-2", DRAIN)).command
        await rpc(
            service, m.ReportHealthRequest(node_id="gpu-1", events=(report,)), Caller.node("gpu-1")
        )
        before_nodes = {n: await node(service, n) for n in ("gpu-1", "gpu-2")}
        before_events = await events(service)
    async with open_service(path) as service:
        assert {n: await node(service, n) for n in ("gpu-1", "gpu-2")} == before_nodes
        assert before_nodes["gpu-1"].status is CORDONED
        assert before_nodes["gpu-1"].last_health_events == (report,)
        assert before_nodes["gpu-2"].status is DRAINING
        assert await events(service) == before_events
        got = await rpc(service, m.GetNodeRequest(node_id="gpu-2"), ADMIN)
        assert [c.command_id for c in got.open_commands] == [drain.command_id]


async def test_heartbeat_times_reach_the_store_in_batches(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "db"
    async with open_service(path) as service:
        await register(service, "gpu-1")
        metrics = m.NodeMetrics(cpu_percent=12.5)
        await rpc(
            service, m.SendHeartbeatRequest(node_id="gpu-1", metrics=metrics), Caller.node("gpu-1")
        )
        beat = (await node(service, "gpu-1")).last_heartbeat_at
        assert beat is not None
        await trio.sleep(1.5)
        async with SQLiteStore.open(path, threaded=False, exclusive=False) as reader:
            [stored] = (await reader.load()).nodes
        assert stored.last_heartbeat_at == beat
        assert stored.metrics == metrics_from_wire(metrics)


async def test_a_clean_stop_writes_the_latest_heartbeat(tmp_path: Path) -> None:
    path = tmp_path / "db"
    async with open_service(path) as service:
        await register(service, "gpu-1")
        await heartbeat(service, "gpu-1")
        beat = (await node(service, "gpu-1")).last_heartbeat_at
    async with open_service(path) as service:
        assert (await node(service, "gpu-1")).last_heartbeat_at == beat


async def test_node_tokens_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "db"
    tokens = {"admin_token": "admin-secret", "join_token": "join-secret"}
    async with open_service(path, **tokens) as service:
        joiner = service.auth.authenticate("Bearer join-secret")
        registered = await rpc(service, m.RegisterNodeRequest(node_id="gpu-1"), joiner)
        node_token = registered.node_token
        assert node_token.startswith("nvn_")
    async with open_service(path, **tokens) as service:
        caller = service.auth.authenticate(f"Bearer {node_token}")
        assert caller == Caller.node("gpu-1")
        await rpc(service, m.SendHeartbeatRequest(node_id="gpu-1"), caller)
        # Taking the node over with the join token replaces the old node token.
        again = await rpc(
            service,
            m.RegisterNodeRequest(node_id="gpu-1", take_over=True),
            service.auth.authenticate("Bearer join-secret"),
        )
        assert again.node_token not in ("", node_token)
        with pytest.raises(Unauthenticated):
            service.auth.authenticate(f"Bearer {node_token}")

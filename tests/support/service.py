"""A control-plane service on a real SQLite file, and short ways to call it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from navarch.api import wire as m
from navarch.config import ServerConfig
from navarch.controlplane import Caller, ControlPlane
from navarch.store import SQLiteStore
from support.api import rpc

# Heartbeat timeout 30 s, checked every 3 s; commands are handed out again after 10 s.
SERVER = ServerConfig(heartbeat_interval=timedelta(seconds=10))
# What the daemon tests count on: health checks every 30 s, long polls held up to 20 s.
DAEMON_SERVER = ServerConfig(
    heartbeat_interval=timedelta(seconds=10),
    health_check_interval=timedelta(seconds=30),
    command_poll_wait=timedelta(seconds=20),
)
ADMIN = Caller.admin()

ACTIVE = m.NodeStatus.NODE_STATUS_ACTIVE
CORDONED = m.NodeStatus.NODE_STATUS_CORDONED
DRAINING = m.NodeStatus.NODE_STATUS_DRAINING
DRAINED = m.NodeStatus.NODE_STATUS_DRAINED
UNHEALTHY = m.NodeStatus.NODE_STATUS_UNHEALTHY
TERMINATED = m.NodeStatus.NODE_STATUS_TERMINATED

CORDON = m.CommandType.COMMAND_TYPE_CORDON
UNCORDON = m.CommandType.COMMAND_TYPE_UNCORDON
DRAIN = m.CommandType.COMMAND_TYPE_DRAIN
TERMINATE = m.CommandType.COMMAND_TYPE_TERMINATE
RUN_DIAGNOSTIC = m.CommandType.COMMAND_TYPE_RUN_DIAGNOSTIC

OK = m.CommandResult.COMMAND_RESULT_SUCCEEDED
FAILED = m.CommandResult.COMMAND_RESULT_FAILED


@asynccontextmanager
async def open_service(
    path: Path, server: ServerConfig = SERVER, **tokens: str
) -> AsyncIterator[ControlPlane]:
    """The service on `path`; SQLite runs on the trio thread so MockClock never jumps mid-write."""
    async with (
        SQLiteStore.open(path, threaded=False) as store,
        ControlPlane.open(store, server, **tokens) as service,
    ):
        yield service


async def register(service: ControlPlane, node_id: str, **fields: Any) -> m.RegisterNodeResponse:
    request = m.RegisterNodeRequest(node_id=node_id, **fields)
    return await rpc(service, request, Caller.node(node_id))


async def heartbeat(service: ControlPlane, node_id: str) -> m.SendHeartbeatResponse:
    return await rpc(service, m.SendHeartbeatRequest(node_id=node_id), Caller.node(node_id))


async def issue(
    service: ControlPlane, node_id: str, kind: m.CommandType, reason: str = "", **parameters: str
) -> m.IssueCommandResponse:
    request = m.IssueCommandRequest(
        node_id=node_id, type=kind, reason=reason, parameters=parameters
    )
    return await rpc(service, request, ADMIN)


async def ack(
    service: ControlPlane, node_id: str, command_id: str, result: m.CommandResult, message: str = ""
) -> m.AckCommandResponse:
    request = m.AckCommandRequest(
        node_id=node_id, command_id=command_id, result=result, message=message
    )
    return await rpc(service, request, Caller.node(node_id))


async def status(service: ControlPlane, node_id: str) -> m.NodeStatus:
    return (await node(service, node_id)).status


async def node(service: ControlPlane, node_id: str) -> m.Node:
    return (await rpc(service, m.GetNodeRequest(node_id=node_id), ADMIN)).node


async def events(service: ControlPlane, node_id: str = "", *kinds: str) -> list[m.Event]:
    """The node's events, oldest first."""
    request = m.ListEventsRequest(node_id=node_id, kinds=kinds, limit=1000)
    return list(reversed((await rpc(service, request, ADMIN)).events))


async def kinds(service: ControlPlane, node_id: str) -> list[str]:
    return [event.kind for event in await events(service, node_id)]

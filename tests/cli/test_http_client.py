"""The HTTP client against the real ASGI app, in process through httpx's ASGI transport."""

from __future__ import annotations

import random

import httpx
import pytest
import trio

from navarch.api import wire as m
from navarch.api.app import ControlPlaneApp
from navarch.api.client import HttpClient
from navarch.api.codec import ApiError
from navarch.config import ServerConfig
from navarch.controlplane import ControlPlane
from navarch.daemon.agent import Daemon
from navarch.daemon.config import DaemonConfig
from navarch.daemon.gpu import SimulatedGpus
from navarch.store import SQLiteStore


@pytest.fixture
async def app(tmp_path):
    async with (
        SQLiteStore.open(tmp_path / "navarch.db", threaded=False) as store,
        ControlPlane.open(
            store, ServerConfig(), admin_token="admin-secret", join_token="join-secret"
        ) as service,
    ):
        yield ControlPlaneApp(service)


def client_of(app, token=""):
    return HttpClient("http://navarch.test", token=token, transport=httpx.ASGITransport(app))


async def test_errors_arrive_as_api_errors_with_connect_codes(app):
    async with client_of(app, "admin-secret") as admin:
        with pytest.raises(ApiError) as info:
            await admin.get_node(m.GetNodeRequest(node_id="gpu-7"))
        assert (info.value.code, info.value.message) == (
            "not_found",
            "node gpu-7 is not registered",
        )
    async with client_of(app) as nobody:
        with pytest.raises(ApiError) as info:
            await nobody.list_nodes(m.ListNodesRequest())
        assert info.value.code == "unauthenticated"
    async with client_of(app, "join-secret") as joiner:
        with pytest.raises(ApiError) as info:
            await joiner.list_nodes(m.ListNodesRequest())
        assert info.value.code == "permission_denied"


async def test_a_daemon_over_http_registers_heartbeats_and_runs_commands(app, autojump_clock):
    node_client = client_of(app)
    daemon = Daemon(
        node_client,
        SimulatedGpus(2, seed="gpu-1"),
        DaemonConfig(node_id="gpu-1"),
        join_token="join-secret",
        rng=random.Random(3),
    )
    async with (
        node_client,
        client_of(app, "admin-secret") as admin,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(daemon.run)
        await trio.sleep(1)
        node = (await admin.get_node(m.GetNodeRequest(node_id="gpu-1"))).node
        assert node.last_heartbeat_at is not None and len(node.metrics.gpus) == 2
        issued = await admin.issue_command(
            m.IssueCommandRequest(node_id="gpu-1", type=m.CommandType.COMMAND_TYPE_DRAIN)
        )
        # Delivered by the long poll, well before the next heartbeat.
        await trio.sleep(2)
        done = await admin.get_command(m.GetCommandRequest(command_id=issued.command.command_id))
        assert done.command.status is m.CommandStatus.COMMAND_STATUS_SUCCEEDED
        node = (await admin.get_node(m.GetNodeRequest(node_id="gpu-1"))).node
        assert node.status is m.NodeStatus.NODE_STATUS_DRAINED
        daemon.stop()

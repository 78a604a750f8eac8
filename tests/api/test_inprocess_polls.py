"""A command long poll in process: it waits on the command queue with no deadline, comes back the
moment a command is queued or due again, ends when the service stops its long polls, and is
authorized as over HTTP."""

from __future__ import annotations

import pytest
import trio
from support.service import DAEMON_SERVER, DRAIN, heartbeat, issue, open_service, register

from navarch.api import wire as m
from navarch.api.codec import ApiError
from navarch.api.inprocess import InProcessClient
from navarch.controlplane import Caller


async def _beat(service, node_id: str) -> None:
    while True:
        await heartbeat(service, node_id)
        await trio.sleep(10)


async def test_a_poll_waits_past_the_longest_poll_and_wakes_when_a_command_is_queued(
    tmp_path, autojump_clock
):
    async with open_service(tmp_path / "navarch.db", DAEMON_SERVER) as service:
        await register(service, "gpu-1")
        client = InProcessClient(service, Caller.node("gpu-1"))
        replies: list[tuple[float, list[str]]] = []

        async def poll() -> None:
            while True:
                reply = await client.get_node_commands(
                    m.GetNodeCommandsRequest(node_id="gpu-1", wait="20s")
                )
                replies.append((trio.current_time(), [c.command_id for c in reply.commands]))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(_beat, service, "gpu-1")
            await trio.sleep(5)
            nursery.start_soon(poll)
            # Over HTTP this poll would have come back empty five times by now.
            await trio.sleep(100)
            assert replies == []
            issued = (await issue(service, "gpu-1", DRAIN)).command.command_id
            queued_at = trio.current_time()
            await trio.sleep(0.5)
            assert replies == [(queued_at, [issued])]
            # Not acknowledged: handed out again once the redelivery interval (10 s) has passed,
            # and not before.
            await trio.sleep(15)
            assert replies[1:] == [(queued_at + 10, [issued])]
            nursery.cancel_scope.cancel()


async def test_stopping_long_polls_answers_a_waiting_poll_empty(tmp_path, autojump_clock):
    async with open_service(tmp_path / "navarch.db", DAEMON_SERVER) as service:
        await register(service, "gpu-1")
        client = InProcessClient(service, Caller.node("gpu-1"))
        replies: list[m.GetNodeCommandsResponse] = []

        async def poll() -> None:
            replies.append(
                await client.get_node_commands(
                    m.GetNodeCommandsRequest(node_id="gpu-1", wait="20s")
                )
            )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll)
            await trio.sleep(25)
            assert replies == []
            service.stop_long_polls()
        assert replies == [m.GetNodeCommandsResponse(commands=())]


async def test_a_poll_for_another_nodes_commands_is_refused_at_once(tmp_path, autojump_clock):
    async with open_service(tmp_path / "navarch.db", DAEMON_SERVER) as service:
        await register(service, "gpu-1")
        await register(service, "gpu-2")
        client = InProcessClient(service, Caller.node("gpu-2"))
        start = trio.current_time()
        with pytest.raises(ApiError) as refused:
            await client.get_node_commands(m.GetNodeCommandsRequest(node_id="gpu-1", wait="20s"))
        assert refused.value.code == "permission_denied"
        assert trio.current_time() == start


async def test_a_poll_that_asks_not_to_wait_is_answered_at_once(tmp_path, autojump_clock):
    async with open_service(tmp_path / "navarch.db", DAEMON_SERVER) as service:
        await register(service, "gpu-1")
        client = InProcessClient(service, Caller.node("gpu-1"))
        start = trio.current_time()
        reply = await client.get_node_commands(m.GetNodeCommandsRequest(node_id="gpu-1"))
        assert reply.commands == ()
        assert trio.current_time() == start

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from support.api import rpc
from support.service import (
    ADMIN,
    DRAIN,
    FAILED,
    OK,
    RUN_DIAGNOSTIC,
    ack,
    events,
    heartbeat,
    issue,
    open_service,
    register,
)

from navarch.api import wire as m
from navarch.api.codec import ApiError
from navarch.controlplane import Caller, ControlPlane


async def poll(service: ControlPlane, node_id: str, wait: str) -> list[m.NodeCommand]:
    request = m.GetNodeCommandsRequest(node_id=node_id, wait=wait)
    return list((await rpc(service, request, Caller.node(node_id))).commands)


async def test_a_command_is_handed_out_again_until_it_is_acknowledged(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        issued = (await issue(service, "gpu-1", RUN_DIAGNOSTIC)).command
        assert [c.command_id for c in (await heartbeat(service, "gpu-1")).commands] == [
            issued.command_id
        ]
        # The node has it; the next heartbeats within the redelivery interval do not repeat it.
        await trio.sleep(5)
        assert (await heartbeat(service, "gpu-1")).commands == ()
        # Unacknowledged after the interval (one heartbeat interval): delivered again.
        await trio.sleep(5)
        [again] = (await heartbeat(service, "gpu-1")).commands
        assert again.command_id == issued.command_id
        assert again.status is m.CommandStatus.COMMAND_STATUS_DELIVERED

        await ack(service, "gpu-1", issued.command_id, OK, "all tests passed")
        await trio.sleep(60)
        assert (await heartbeat(service, "gpu-1")).commands == ()
        assert await poll(service, "gpu-1", "0s") == []


async def test_a_repeated_acknowledgement_changes_nothing(tmp_path: Path) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        issued = (await issue(service, "gpu-1", DRAIN)).command
        first = await ack(service, "gpu-1", issued.command_id, OK, "drained")
        seen = await events(service, "gpu-1")
        # The repeat even claims the opposite result: the first acknowledgement stands.
        second = await ack(service, "gpu-1", issued.command_id, FAILED, "oops")
        assert second.command == first.command
        assert second.command.status is m.CommandStatus.COMMAND_STATUS_SUCCEEDED
        assert await events(service, "gpu-1") == seen


async def test_acknowledging_an_unknown_or_foreign_command_is_not_found(tmp_path: Path) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        await register(service, "gpu-2")
        issued = (await issue(service, "gpu-1", RUN_DIAGNOSTIC)).command
        for node_id, command_id in (("gpu-2", issued.command_id), ("gpu-1", "no-such-command")):
            with pytest.raises(ApiError) as error:
                await ack(service, node_id, command_id, OK)
            assert error.value.code == "not_found"
        assert [c.command_id for c in await poll(service, "gpu-1", "0s")] == [issued.command_id]


async def test_a_long_poll_wakes_as_soon_as_a_command_is_queued(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        received: list[m.NodeCommand] = []
        started = trio.current_time()

        async def long_poll() -> None:
            received.extend(await poll(service, "gpu-1", "20s"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(long_poll)
            await trio.testing.wait_all_tasks_blocked()
            assert received == []
            issued = (await issue(service, "gpu-1", RUN_DIAGNOSTIC)).command
        # The clock never moved: the poll returned on the enqueue, not on a timer.
        assert trio.current_time() == started
        assert [c.command_id for c in received] == [issued.command_id]


async def test_a_long_poll_returns_empty_when_its_wait_ends(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        started = trio.current_time()
        assert await poll(service, "gpu-1", "5s") == []
        assert trio.current_time() - started == pytest.approx(5)
        # A wait longer than server.command_poll_wait (20 s) is cut to it.
        started = trio.current_time()
        assert await poll(service, "gpu-1", "1h") == []
        assert trio.current_time() - started == pytest.approx(20)


async def test_a_long_poll_ends_at_once_when_the_server_stops(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        results: list[list[m.NodeCommand]] = []

        async def long_poll() -> None:
            results.append(await poll(service, "gpu-1", "20s"))

        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(long_poll)
            await trio.testing.wait_all_tasks_blocked()
            service.stop_long_polls()
        assert results == [[]]
        assert trio.current_time() == started


async def test_a_bad_wait_is_an_invalid_argument(tmp_path: Path) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        with pytest.raises(ApiError) as error:
            await poll(service, "gpu-1", "soon")
        assert error.value.code == "invalid_argument"
        assert error.value.message.startswith("wait: ")


async def test_commands_survive_a_restart_and_are_applied_once(tmp_path: Path) -> None:
    path = tmp_path / "db"
    async with open_service(path) as service:
        await register(service, "gpu-1")
        issued = (await issue(service, "gpu-1", RUN_DIAGNOSTIC)).command
        assert len((await heartbeat(service, "gpu-1")).commands) == 1
    async with open_service(path) as service:
        # Handed out before the restart, never acknowledged: handed out again.
        [again] = (await heartbeat(service, "gpu-1")).commands
        assert again.command_id == issued.command_id
        first = await ack(service, "gpu-1", issued.command_id, OK)
    async with open_service(path) as service:
        assert (await heartbeat(service, "gpu-1")).commands == ()
        assert (await ack(service, "gpu-1", issued.command_id, OK)).command == first.command
        stored = await rpc(service, m.GetCommandRequest(command_id=issued.command_id), ADMIN)
        assert stored.command.status is m.CommandStatus.COMMAND_STATUS_SUCCEEDED

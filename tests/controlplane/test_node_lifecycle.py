from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from support.api import rpc
from support.service import (
    ACTIVE,
    ADMIN,
    CORDON,
    CORDONED,
    DRAIN,
    DRAINED,
    DRAINING,
    FAILED,
    OK,
    RUN_DIAGNOSTIC,
    TERMINATE,
    TERMINATED,
    UNCORDON,
    UNHEALTHY,
    ack,
    events,
    heartbeat,
    issue,
    kinds,
    node,
    open_service,
    register,
    status,
)

from navarch.api import wire as m
from navarch.api.codec import ApiError
from navarch.api.mapping import NODE_STATUS, NODE_STATUS_IN
from navarch.controlplane import lifecycle
from navarch.model import NodeStatus


async def test_registration_makes_an_active_node_and_records_it(tmp_path: Path) -> None:
    async with open_service(tmp_path / "db") as service:
        response = await register(
            service, "gpu-1", pool="train", gpus=(m.GpuInfo(index=0, uuid="GPU-a"),)
        )
        assert response.node.status is ACTIVE
        assert response.node.health is m.HealthStatus.HEALTH_STATUS_UNKNOWN
        assert response.config.heartbeat_interval == "10s"
        [event] = await events(service, "gpu-1")
        assert (event.kind, event.actor, event.to_status) == (
            "node.registered",
            "node:gpu-1",
            ACTIVE,
        )


async def test_cordon_and_uncordon_are_applied_at_once_and_recorded(tmp_path: Path) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        cordoned = await issue(service, "gpu-1", CORDON, "bad fan")
        assert cordoned.node.status is CORDONED
        assert cordoned.node.status_reason == "bad fan"
        assert cordoned.command.status is m.CommandStatus.COMMAND_STATUS_SUCCEEDED
        assert cordoned.command.issued_by == "admin"
        # Applied by the control plane: nothing is handed to the node.
        assert (await heartbeat(service, "gpu-1")).commands == ()

        uncordoned = await issue(service, "gpu-1", UNCORDON)
        assert uncordoned.node.status is ACTIVE
        assert uncordoned.node.status_reason == ""
        changes = [
            (e.from_status, e.to_status, e.actor, e.reason)
            for e in await events(service, "gpu-1", "node.status_changed")
        ]
        assert changes == [(ACTIVE, CORDONED, "admin", "bad fan"), (CORDONED, ACTIVE, "admin", "")]


async def test_repeating_a_cordon_changes_nothing(tmp_path: Path) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        await issue(service, "gpu-1", CORDON)
        again = await issue(service, "gpu-1", CORDON)
        assert again.node.status is CORDONED
        assert again.command.result_message == "no change: node is cordoned"
        assert len(await events(service, "gpu-1", "node.status_changed")) == 1


async def test_drain_waits_for_the_node_then_ends_drained(tmp_path: Path) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        issued = await issue(service, "gpu-1", DRAIN, "maintenance")
        assert issued.node.status is DRAINING
        assert issued.command.status is m.CommandStatus.COMMAND_STATUS_PENDING

        [delivered] = (await heartbeat(service, "gpu-1")).commands
        assert delivered.command_id == issued.command.command_id
        assert delivered.status is m.CommandStatus.COMMAND_STATUS_DELIVERED
        assert await status(service, "gpu-1") is DRAINING

        acked = await ack(service, "gpu-1", delivered.command_id, OK, "2 jobs moved")
        assert acked.command.status is m.CommandStatus.COMMAND_STATUS_SUCCEEDED
        assert acked.command.result_message == "2 jobs moved"
        assert await status(service, "gpu-1") is DRAINED
        assert "command.acked" in await kinds(service, "gpu-1")


async def test_a_failed_drain_keeps_the_node_draining_with_the_error(tmp_path: Path) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        issued = await issue(service, "gpu-1", DRAIN)
        await ack(service, "gpu-1", issued.command.command_id, FAILED, "job refused to stop")
        after = await node(service, "gpu-1")
        assert after.status is DRAINING
        assert after.status_reason == "drain failed: job refused to stop"
        command = (
            await rpc(service, m.GetCommandRequest(command_id=issued.command.command_id), ADMIN)
        ).command
        assert command.status is m.CommandStatus.COMMAND_STATUS_FAILED
        # Draining again retries with a new command.
        retry = await issue(service, "gpu-1", DRAIN)
        assert retry.command.command_id != issued.command.command_id
        assert retry.command.status is m.CommandStatus.COMMAND_STATUS_PENDING


async def test_asking_to_drain_a_draining_node_returns_its_drain(tmp_path: Path) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        first = await issue(service, "gpu-1", DRAIN)
        second = await issue(service, "gpu-1", DRAIN)
        assert second.command == first.command
        assert len(await events(service, "gpu-1", "command.issued")) == 1


async def test_uncordon_of_a_draining_node_cancels_the_drain(tmp_path: Path) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        drain = await issue(service, "gpu-1", DRAIN)
        assert (await issue(service, "gpu-1", UNCORDON)).node.status is ACTIVE
        assert (await heartbeat(service, "gpu-1")).commands == ()
        # The node acknowledges late; the cancelled drain stays cancelled and the node active.
        late = await ack(service, "gpu-1", drain.command.command_id, OK)
        assert late.command.status is m.CommandStatus.COMMAND_STATUS_CANCELLED
        assert await status(service, "gpu-1") is ACTIVE


async def test_terminate_takes_effect_when_the_node_acknowledges(tmp_path: Path) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        diagnostic = await issue(service, "gpu-1", RUN_DIAGNOSTIC)
        terminate = await issue(service, "gpu-1", TERMINATE, "replaced")
        assert terminate.node.status is ACTIVE
        await ack(service, "gpu-1", terminate.command.command_id, OK)
        after = await node(service, "gpu-1")
        assert (after.status, after.status_reason) == (TERMINATED, "replaced")
        open_diagnostic = await rpc(
            service, m.GetCommandRequest(command_id=diagnostic.command.command_id), ADMIN
        )
        assert open_diagnostic.command.status is m.CommandStatus.COMMAND_STATUS_CANCELLED
        # A terminated node answers heartbeats with its status and takes no more commands.
        assert (await heartbeat(service, "gpu-1")).status is TERMINATED
        for kind in (CORDON, UNCORDON, DRAIN, TERMINATE, RUN_DIAGNOSTIC):
            with pytest.raises(ApiError) as refused:
                await issue(service, "gpu-1", kind)
            assert refused.value.code == "failed_precondition"


async def test_a_terminated_node_cannot_register_again(tmp_path: Path) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        terminate = await issue(service, "gpu-1", TERMINATE)
        await ack(service, "gpu-1", terminate.command.command_id, OK)
        before = await events(service, "gpu-1")
        with pytest.raises(ApiError) as refused:
            await register(service, "gpu-1")
        assert refused.value.code == "failed_precondition"
        assert "terminated" in refused.value.message
        assert await events(service, "gpu-1") == before
        assert await status(service, "gpu-1") is TERMINATED


@pytest.mark.parametrize("kept", ["cordon", "heartbeat lost"])
async def test_registering_again_keeps_the_status(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, kept: str
) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1", hostname="old")
        if kept == "cordon":
            await issue(service, "gpu-1", CORDON, "suspect")
            expected = CORDONED
        else:
            await trio.sleep(60)
            expected = UNHEALTHY
        response = await register(service, "gpu-1", hostname="new")
        assert response.node.status is expected
        assert response.node.hostname == "new"
        assert (await kinds(service, "gpu-1"))[-1] == "node.reregistered"


async def test_an_unhealthy_node_returns_to_service_only_when_forced(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_service(tmp_path / "db") as service:
        await register(service, "gpu-1")
        await trio.sleep(60)
        assert await status(service, "gpu-1") is UNHEALTHY
        before = await events(service, "gpu-1")
        with pytest.raises(ApiError) as refused:
            await issue(service, "gpu-1", UNCORDON)
        assert refused.value.code == "failed_precondition"
        assert "force=true" in refused.value.message
        with pytest.raises(ApiError) as bad_flag:
            await issue(service, "gpu-1", UNCORDON, force="yes")
        assert bad_flag.value.code == "invalid_argument"
        assert bad_flag.value.message.startswith("parameters.force:")
        assert await events(service, "gpu-1") == before
        assert await status(service, "gpu-1") is UNHEALTHY

        forced = await issue(service, "gpu-1", UNCORDON, "fan replaced", force="true")
        assert forced.node.status is ACTIVE


# Every action against every status, through the service: the table in `lifecycle` holds, and a
# refused action leaves the node and its events as they were.

_ACTIONS = ["cordon", "uncordon", "force_uncordon", "drain", "ack_drain_ok", "ack_drain_failed"]
_ACTIONS += ["terminate", "ack_terminate", "diagnostic", "silence"]


async def _act(service, action: str) -> None:
    open_commands = (await rpc(service, m.GetNodeRequest(node_id="n"), ADMIN)).open_commands
    by_type = {c.type: c for c in open_commands}
    if action == "cordon":
        await issue(service, "n", CORDON)
    elif action == "uncordon":
        await issue(service, "n", UNCORDON)
    elif action == "force_uncordon":
        await issue(service, "n", UNCORDON, force="true")
    elif action == "drain":
        await issue(service, "n", DRAIN)
    elif action == "terminate":
        await issue(service, "n", TERMINATE)
    elif action == "diagnostic":
        await issue(service, "n", RUN_DIAGNOSTIC)
    elif action == "silence":
        await trio.sleep(40)
    elif action.startswith("ack_") and (DRAIN if "drain" in action else TERMINATE) in by_type:
        command = by_type[DRAIN if "drain" in action else TERMINATE]
        await ack(service, "n", command.command_id, FAILED if "failed" in action else OK, "x")
    else:
        await trio.lowlevel.checkpoint()


def _expected(action: str, status: m.NodeStatus, had_drain: bool, had_terminate: bool):
    """The status the table predicts, or None when the action must be refused."""
    predicted = _predicted(action, NODE_STATUS_IN[status], had_drain, had_terminate)
    return None if predicted is None else NODE_STATUS[predicted]


def _predicted(action: str, before: NodeStatus, had_drain: bool, had_terminate: bool):
    table = lifecycle.TRANSITIONS
    if action in ("cordon", "uncordon", "force_uncordon", "drain", "terminate"):
        return table[action].get(before)
    if action == "diagnostic":
        return table["run_diagnostic"].get(before)
    if action == "silence":
        return table["heartbeat_lost"].get(before, before)
    if action == "ack_drain_ok" and had_drain and before is NodeStatus.DRAINING:
        return NodeStatus.DRAINED
    if action == "ack_terminate" and had_terminate:
        return NodeStatus.TERMINATED
    return before


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(_ACTIONS), min_size=1, max_size=12))
def test_every_action_sequence_follows_the_state_machine(actions: list[str]) -> None:
    async def walk() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            async with open_service(Path(tmp) / "db") as service:
                await register(service, "n")
                for action in actions:
                    if action != "silence":
                        await heartbeat(service, "n")
                    current = await node(service, "n")
                    got = await rpc(service, m.GetNodeRequest(node_id="n"), ADMIN)
                    types = {c.type for c in got.open_commands}
                    expected = _expected(action, current.status, DRAIN in types, TERMINATE in types)
                    seen = await events(service, "n")
                    try:
                        await _act(service, action)
                    except ApiError as exc:
                        assert expected is None, f"{action} from {current.status} refused: {exc}"
                        assert exc.code == "failed_precondition"
                        assert await node(service, "n") == current
                        assert await events(service, "n") == seen
                        continue
                    assert expected is not None, f"{action} from {current.status} was allowed"
                    assert await status(service, "n") is expected, (action, current.status)
                    if current.status is UNHEALTHY and expected is ACTIVE:
                        assert action == "force_uncordon"

    trio.run(walk, clock=trio.testing.MockClock(autojump_threshold=0))

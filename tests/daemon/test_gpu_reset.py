"""The reset_gpu command: a drained node resets one GPU, on MockClock against the real service."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
import trio
from support.api import rpc
from support.switchable_client import SwitchableClient

from navarch.api import wire as m
from navarch.controlplane import Caller
from navarch.daemon.agent import Daemon
from navarch.daemon.config import DaemonConfig
from navarch.daemon.gpu import SimulatedGpus
from navarch.daemon.host import FixedHostStats
from navarch.model import HealthEvent, HealthEventType

ADMIN = Caller.admin()
T = m.CommandType


class EccCheck:
    """Reports every GPU with uncorrectable ECC errors, each time it runs."""

    def run(self, gpus):
        return [
            HealthEvent(
                type=HealthEventType.ECC,
                time=datetime(2026, 1, 1, tzinfo=UTC),
                gpu_index=s.index,
                gpu_uuid=s.uuid or "",
                message=f"{s.ecc_uncorrected_volatile} uncorrectable ECC errors",
            )
            for s in gpus
            if s.ecc_uncorrected_volatile
        ]


async def issue(service, kind, **kwargs) -> m.NodeCommand:
    request = m.IssueCommandRequest(node_id="gpu-1", type=kind, **kwargs)
    return (await rpc(service, request, ADMIN)).command


async def finished(service, command_id) -> m.NodeCommand:
    while True:
        reply = await rpc(service, m.GetCommandRequest(command_id=command_id), ADMIN)
        if reply.command.status not in (
            m.CommandStatus.COMMAND_STATUS_PENDING,
            m.CommandStatus.COMMAND_STATUS_DELIVERED,
        ):
            return reply.command
        await trio.sleep(1)


async def reset(control_plane, gpus: SimulatedGpus, parameters: dict[str, str]) -> m.NodeCommand:
    """Runs a daemon over `gpus`, drains its node and resets a GPU; returns the finished command."""
    config = DaemonConfig(node_id="gpu-1", pool="train", provider="fake")
    daemon = Daemon(
        SwitchableClient(control_plane),
        gpus,
        config,
        host_stats=FixedHostStats(),
        rng=random.Random(1),
        health_checks=[("ecc", EccCheck())],
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await issue(control_plane, T.COMMAND_TYPE_CORDON)
        drain = await issue(control_plane, T.COMMAND_TYPE_DRAIN)
        assert (await finished(control_plane, drain.command_id)).status is (
            m.CommandStatus.COMMAND_STATUS_SUCCEEDED
        )
        command = await issue(control_plane, T.COMMAND_TYPE_RESET_GPU, parameters=parameters)
        done = await finished(control_plane, command.command_id)
        daemon.stop()
    return done


async def test_a_clean_reset_clears_the_gpu_and_succeeds(control_plane, autojump_clock):
    gpus = SimulatedGpus(4, seed="gpu-1")
    gpus.inject_ecc(2, uncorrected=2)
    done = await reset(control_plane, gpus, {"gpu": "2"})
    assert done.status is m.CommandStatus.COMMAND_STATUS_SUCCEEDED
    uuid = gpus.inventory()[2].uuid
    assert done.result_message == f"GPU 2 ({uuid}) was reset and passes its health checks"
    assert gpus.resets == [(2, "clean")]
    assert gpus.sample()[2].ecc_uncorrected_volatile == 0


async def test_processes_left_on_the_gpu_fail_the_reset_naming_their_pids(
    control_plane, autojump_clock
):
    gpus = SimulatedGpus(4, seed="gpu-1")
    gpus.set_processes(1, (4242, 77))
    done = await reset(control_plane, gpus, {"gpu": "1"})
    assert done.status is m.CommandStatus.COMMAND_STATUS_FAILED
    assert done.result_message == (
        "reset_gpu: processes: GPU 1 is still in use by pids 77, 4242; "
        "the drain must end them first"
    )
    assert gpus.resets == []


async def test_a_failing_reset_leaves_the_failures_and_fails(control_plane, autojump_clock):
    gpus = SimulatedGpus(4, seed="gpu-1")
    gpus.inject_ecc(0, uncorrected=1)
    gpus.script_resets(0, "fails")
    done = await reset(control_plane, gpus, {"gpu": "0"})
    assert done.status is m.CommandStatus.COMMAND_STATUS_FAILED
    assert done.result_message == "reset_gpu: reset: the simulated reset of GPU 0 failed"
    assert gpus.sample()[0].ecc_uncorrected_volatile == 1


async def test_a_gpu_that_does_not_come_back_fails_the_reset(control_plane, autojump_clock):
    gpus = SimulatedGpus(4, seed="gpu-1")
    gpus.script_resets(3, "lost")
    done = await reset(control_plane, gpus, {"gpu": "3"})
    assert done.status is m.CommandStatus.COMMAND_STATUS_FAILED
    uuid = gpus.inventory()[3].uuid
    assert done.result_message == (f"reset_gpu: return: GPU 3 ({uuid}) did not come back within 1m")


async def test_a_gpu_that_still_fails_its_checks_fails_the_reset(control_plane, autojump_clock):
    class StuckEcc(SimulatedGpus):
        """A reset that the hardware does not take: the ECC errors come straight back."""

        async def reset(self, index, command):
            await super().reset(index, command)
            self.inject_ecc(index, uncorrected=5)

    gpus = StuckEcc(4, seed="gpu-1")
    done = await reset(control_plane, gpus, {"gpu": "1"})
    assert done.status is m.CommandStatus.COMMAND_STATUS_FAILED
    assert done.result_message == (
        "reset_gpu: checks: GPU 1 still fails its health checks: 5 uncorrectable ECC errors"
    )


async def test_the_script_says_the_first_reset_works_and_the_second_fails(
    control_plane, autojump_clock
):
    gpus = SimulatedGpus(2, seed="gpu-1")
    gpus.script_resets(0, "clean", "fails")
    first = await reset(control_plane, gpus, {"gpu": "0"})
    assert first.status is m.CommandStatus.COMMAND_STATUS_SUCCEEDED
    await rpc(
        control_plane,
        m.IssueCommandRequest(node_id="gpu-1", type=T.COMMAND_TYPE_UNCORDON),
        ADMIN,
    )
    second = await reset(control_plane, gpus, {"gpu": "0"})
    assert second.status is m.CommandStatus.COMMAND_STATUS_FAILED
    assert gpus.resets == [(0, "clean"), (0, "fails")]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({}, "reset_gpu: parameters.gpu: required, the index of a GPU (0, 1)"),
        (
            {"gpu": "2"},
            "reset_gpu: parameters.gpu: expected the index of a GPU of this node (0, 1), got '2'",
        ),
        (
            {"gpu": "first"},
            "reset_gpu: parameters.gpu: expected the index of a GPU of this node (0, 1), "
            "got 'first'",
        ),
    ],
)
async def test_a_bad_gpu_parameter_fails_the_command_naming_it(
    control_plane, autojump_clock, parameters, message
):
    gpus = SimulatedGpus(2, seed="gpu-1")
    done = await reset(control_plane, gpus, parameters)
    assert done.status is m.CommandStatus.COMMAND_STATUS_FAILED
    assert done.result_message == message
    assert gpus.resets == []

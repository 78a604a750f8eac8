"""Remediation episodes that reset a GPU or reboot a node, and replace it when that fails."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import trio
import trio.testing
from support.recovery import FAILED, REBOOT, RESET_GPU, DaemonDouble, gpu_lost
from support.remediation import (
    DONE,
    HEALTHY,
    HELD,
    T0,
    PoolManagerStandIn,
    episodes,
    open_plane,
    wait_for_step,
    xid,
)
from support.service import ACTIVE, TERMINATED, events, node, status

from navarch.api import wire as m
from navarch.clock import Clock
from navarch.config import PoolHealthConfig
from navarch.controlplane import ControlPlane

RESET_STEP = m.RemediationStep.REMEDIATION_STEP_RESET_GPU
RECOVER_STEP = m.RemediationStep.REMEDIATION_STEP_RECOVER
RESET_ACTION = m.RemediationAction.REMEDIATION_ACTION_RESET_GPU
REBOOT_ACTION = m.RemediationAction.REMEDIATION_ACTION_REBOOT
REPLACE_ACTION = m.RemediationAction.REMEDIATION_ACTION_REPLACE


def reset_xid(gpu: int) -> m.HealthEvent:
    return xid(154, gpu=gpu, recovery_action="GPU_RESET")


def reboot_xid() -> m.HealthEvent:
    return xid(154, recovery_action="NODE_REBOOT")


async def started(nursery: trio.Nursery, daemon: DaemonDouble) -> DaemonDouble:
    """Runs the daemon stand-in and gives it a second to register."""
    nursery.start_soon(daemon.run)
    await trio.sleep(1)
    return daemon


async def step_event(service: ControlPlane, node_id: str, step: str) -> m.Event:
    """The one `remediation.step` event of the node's episode that moved it to `step`."""
    [event] = [
        e for e in await events(service, node_id, "remediation.step") if e.details["step"] == step
    ]
    return event


async def steps(service: ControlPlane, node_id: str) -> list[str]:
    return [
        e.details["step"]
        for e in await events(service, node_id)
        if e.kind.startswith("remediation.") and "step" in e.details
    ]


async def issued(service: ControlPlane, node_id: str, kind: m.CommandType) -> list[m.Event]:
    return [
        e
        for e in await events(service, node_id, "command.issued")
        if e.details["type"] == kind.value
    ]


async def test_a_gpu_reset_that_passes_returns_the_node_to_service(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    replacer = PoolManagerStandIn()
    async with open_plane(tmp_path / "db", replacer) as service, trio.open_nursery() as nursery:
        daemon = await started(nursery, DaemonDouble(service, "train-0"))
        await daemon.report(reset_xid(gpu=3))
        await wait_for_step(service, "train-0", DONE)

        assert daemon.resets == ["3"]
        [episode] = await episodes(service)
        assert (episode.action, episode.gpu_index, episode.rule) == (
            RESET_ACTION,
            3,
            "recovery-reset-gpu",
        )
        assert "back in service" in episode.detail
        assert await steps(service, "train-0") == [
            "pending",
            "cordon",
            "drain",
            "reset_gpu",
            "done",
        ]
        assert replacer.replaced == []
        current = await node(service, "train-0")
        assert (current.status, current.health) == (ACTIVE, HEALTHY)
        # The judge forgot the reset GPU's fault: the next reports keep the node in service.
        await trio.sleep(120)
        assert await status(service, "train-0") is ACTIVE
        assert len(await episodes(service)) == 1
        nursery.cancel_scope.cancel()


async def test_a_failed_reset_replaces_the_node(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    replacer = PoolManagerStandIn()
    async with open_plane(tmp_path / "db", replacer) as service, trio.open_nursery() as nursery:
        daemon = await started(
            nursery,
            DaemonDouble(
                service,
                "train-0",
                reset_result=FAILED,
                reset_message="process 4242 still uses GPU 3",
            ),
        )
        await daemon.report(reset_xid(gpu=3))
        await wait_for_step(service, "train-0", DONE)

        assert replacer.replaced == ["train-0"]
        assert await status(service, "train-0") is TERMINATED
        assert await steps(service, "train-0") == [
            "pending",
            "cordon",
            "drain",
            "reset_gpu",
            "terminate",
            "done",
        ]
        terminate = await step_event(service, "train-0", "terminate")
        assert "process 4242 still uses GPU 3" in terminate.reason
        nursery.cancel_scope.cancel()


async def test_a_reset_not_acknowledged_in_time_is_cancelled_and_the_node_replaced(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    replacer = PoolManagerStandIn()
    pools = {"train": PoolHealthConfig(reset_timeout=timedelta(minutes=5))}
    async with (
        open_plane(tmp_path / "db", replacer, pools=pools) as service,
        trio.open_nursery() as nursery,
    ):
        daemon = await started(nursery, DaemonDouble(service, "train-0"))
        await daemon.report(reset_xid(gpu=1))
        await wait_for_step(service, "train-0", RESET_STEP)
        daemon.answering = False
        await wait_for_step(service, "train-0", DONE)

        assert replacer.replaced == ["train-0"]
        [command] = await issued(service, "train-0", RESET_GPU)
        got = await service.commands.get(command.details["commandId"])
        assert got.status.value == "cancelled"
        terminate = await step_event(service, "train-0", "terminate")
        assert "the reset of GPU 1 was not acknowledged within 5m" in terminate.reason
        nursery.cancel_scope.cancel()


async def test_the_second_reset_of_a_gpu_within_the_window_replaces_the_node(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    replacer = PoolManagerStandIn()
    async with open_plane(tmp_path / "db", replacer) as service, trio.open_nursery() as nursery:
        daemon = await started(nursery, DaemonDouble(service, "train-0"))
        await daemon.report(reset_xid(gpu=3))
        await wait_for_step(service, "train-0", DONE)
        await trio.sleep(3600)
        # Another GPU has a reset of its own to spend.
        await daemon.report(reset_xid(gpu=5))
        await wait_for_step(service, "train-0", DONE)
        assert daemon.resets == ["3", "5"]
        assert await status(service, "train-0") is ACTIVE
        await trio.sleep(3600)

        await daemon.report(reset_xid(gpu=3))
        await wait_for_step(service, "train-0", DONE)
        assert daemon.resets == ["3", "5"]
        assert replacer.replaced == ["train-0"]
        latest = (await episodes(service))[0]
        assert (latest.action, latest.gpu_index) == (REPLACE_ACTION, 3)
        opened = (await events(service, "train-0", "remediation.started"))[-1]
        assert "GPU 3 needs its reset number 2 within 1d" in opened.reason
        assert "replacing the node instead" in opened.reason
        nursery.cancel_scope.cancel()


async def test_resets_outside_the_window_do_not_count(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    replacer = PoolManagerStandIn()
    pools = {"train": PoolHealthConfig(reset_window=timedelta(hours=1))}
    # The window counts the episodes' start times, which are wall-clock times: here the wall
    # clock follows virtual time.
    clock = Clock(lambda: T0 + timedelta(seconds=trio.current_time()))
    async with (
        open_plane(tmp_path / "db", replacer, pools=pools, clock=clock) as service,
        trio.open_nursery() as nursery,
    ):
        daemon = await started(nursery, DaemonDouble(service, "train-0"))
        await daemon.report(reset_xid(gpu=3))
        await wait_for_step(service, "train-0", DONE)
        await trio.sleep(2 * 3600)
        await daemon.report(reset_xid(gpu=3))
        await wait_for_step(service, "train-0", DONE)
        assert daemon.resets == ["3", "3"]
        assert replacer.replaced == []
        nursery.cancel_scope.cancel()


async def test_a_reboot_by_the_provider_returns_the_node_to_service(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    replacer = PoolManagerStandIn()
    replacer.can_reboot = True
    async with open_plane(tmp_path / "db", replacer) as service, trio.open_nursery() as nursery:
        daemon = DaemonDouble(service, "train-0")
        replacer.on_reboot = lambda node_id: nursery.start_soon(daemon.reboot)
        nursery.start_soon(daemon.run)
        await trio.sleep(1)
        await daemon.report(reboot_xid())
        await wait_for_step(service, "train-0", DONE)

        assert replacer.rebooted == ["train-0"]
        assert daemon.reboots == 1
        assert await issued(service, "train-0", REBOOT) == []
        [episode] = await episodes(service)
        assert (episode.action, episode.gpu_index) == (REBOOT_ACTION, -1)
        assert await steps(service, "train-0") == [
            "pending",
            "cordon",
            "drain",
            "reboot",
            "recover",
            "done",
        ]
        current = await node(service, "train-0")
        assert (current.status, current.health) == (ACTIVE, HEALTHY)
        assert replacer.replaced == []
        nursery.cancel_scope.cancel()


async def test_where_the_provider_cannot_reboot_the_daemon_reboots_the_node(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    replacer = PoolManagerStandIn()
    async with open_plane(tmp_path / "db", replacer) as service, trio.open_nursery() as nursery:
        daemon = await started(nursery, DaemonDouble(service, "train-0"))
        await daemon.report(reboot_xid())
        await wait_for_step(service, "train-0", DONE)

        assert replacer.rebooted == []
        assert len(await issued(service, "train-0", REBOOT)) == 1
        assert daemon.reboots == 1
        assert await status(service, "train-0") is ACTIVE
        assert replacer.replaced == []
        nursery.cancel_scope.cancel()


async def test_a_gpu_that_stays_lost_after_the_reboot_replaces_the_node(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    replacer = PoolManagerStandIn()
    async with open_plane(tmp_path / "db", replacer) as service, trio.open_nursery() as nursery:
        daemon = await started(
            nursery, DaemonDouble(service, "train-0", after_reboot=[gpu_lost(2)])
        )
        await daemon.report(reboot_xid())
        await wait_for_step(service, "train-0", DONE)

        assert daemon.reboots == 1
        assert replacer.replaced == ["train-0"]
        terminate = await step_event(service, "train-0", "terminate")
        assert "unhealthy" in terminate.reason
        # One episode carried the reboot and its escalation.
        assert len(await episodes(service)) == 1
        nursery.cancel_scope.cancel()


async def test_a_node_that_does_not_come_back_from_its_reboot_is_replaced(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    replacer = PoolManagerStandIn()
    replacer.can_reboot = True
    async with open_plane(tmp_path / "db", replacer) as service, trio.open_nursery() as nursery:
        daemon = DaemonDouble(service, "train-0")
        replacer.on_reboot = lambda node_id: daemon.power_off()
        nursery.start_soon(daemon.run)
        await trio.sleep(1)
        await daemon.report(reboot_xid())
        await wait_for_step(service, "train-0", DONE)

        assert replacer.replaced == ["train-0"]
        terminate = await step_event(service, "train-0", "terminate")
        assert "did not register again within 15m of the reboot" in terminate.reason
        nursery.cancel_scope.cancel()


async def test_a_failed_reset_in_a_pool_that_does_not_replace_is_held(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    replacer = PoolManagerStandIn()
    pools = {"train": PoolHealthConfig(auto_replace=False)}
    async with (
        open_plane(tmp_path / "db", replacer, pools=pools) as service,
        trio.open_nursery() as nursery,
    ):
        daemon = await started(
            nursery, DaemonDouble(service, "train-0", reset_result=FAILED, reset_message="no GPU")
        )
        await daemon.report(reset_xid(gpu=0))
        await wait_for_step(service, "train-0", HELD)

        [episode] = await episodes(service)
        assert "the reset of GPU 0 failed: no GPU" in episode.detail
        assert "auto_replace is off" in episode.detail
        assert replacer.replaced == []
        assert await status(service, "train-0") is m.NodeStatus.NODE_STATUS_DRAINED
        nursery.cancel_scope.cancel()


async def test_without_pools_a_reset_still_runs(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_plane(tmp_path / "db", pools={}) as service, trio.open_nursery() as nursery:
        daemon = await started(nursery, DaemonDouble(service, "gpu-0", pool=""))
        await daemon.report(reset_xid(gpu=2))
        await wait_for_step(service, "gpu-0", DONE)
        assert daemon.resets == ["2"]
        assert await status(service, "gpu-0") is ACTIVE
        nursery.cancel_scope.cancel()


async def test_a_restart_during_the_reset_waits_for_the_same_command(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "db"
    replacer = PoolManagerStandIn()
    async with open_plane(path, replacer) as service, trio.open_nursery() as nursery:
        daemon = await started(nursery, DaemonDouble(service, "train-0"))
        await daemon.report(reset_xid(gpu=3))
        await wait_for_step(service, "train-0", RESET_STEP)
        daemon.answering = False
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    async with open_plane(path, replacer) as service, trio.open_nursery() as nursery:
        daemon = DaemonDouble(service, "train-0")
        nursery.start_soon(daemon.run)
        await wait_for_step(service, "train-0", DONE)
        assert daemon.resets == ["3"]
        assert len(await issued(service, "train-0", RESET_GPU)) == 1
        assert await status(service, "train-0") is ACTIVE
        assert await steps(service, "train-0") == [
            "pending",
            "cordon",
            "drain",
            "reset_gpu",
            "done",
        ]
        nursery.cancel_scope.cancel()


async def test_a_restart_while_the_node_reboots_resumes_the_wait(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "db"
    replacer = PoolManagerStandIn()
    async with open_plane(path, replacer) as service, trio.open_nursery() as nursery:
        daemon = await started(nursery, DaemonDouble(service, "train-0"))
        await daemon.report(reboot_xid())
        await wait_for_step(service, "train-0", RECOVER_STEP)
        # The control plane stops while the machine is down.
        nursery.cancel_scope.cancel()
    async with open_plane(path, replacer) as service, trio.open_nursery() as nursery:
        daemon = DaemonDouble(service, "train-0")
        await trio.sleep(30)
        nursery.start_soon(daemon.run)
        await wait_for_step(service, "train-0", DONE)
        assert len(await issued(service, "train-0", REBOOT)) == 1
        assert await status(service, "train-0") is ACTIVE
        assert replacer.replaced == []
        nursery.cancel_scope.cancel()

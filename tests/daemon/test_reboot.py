"""The reboot command: acknowledged before the reboot command runs, and run once (MockClock)."""

from __future__ import annotations

import random
import time

import trio
from support.api import rpc
from support.switchable_client import SwitchableClient

from navarch.api import wire as m
from navarch.controlplane import Caller
from navarch.daemon.agent import Daemon
from navarch.daemon.config import DaemonConfig
from navarch.daemon.gpu import SimulatedGpus
from navarch.daemon.host import FixedHostStats
from navarch.daemon.state import DaemonState

ADMIN = Caller.admin()
T = m.CommandType
DELIVERED = m.CommandStatus.COMMAND_STATUS_DELIVERED
SUCCEEDED = m.CommandStatus.COMMAND_STATUS_SUCCEEDED


class MachineGpus(SimulatedGpus):
    """GPUs the daemon takes for the machine's own, so it runs its reboot command."""

    hardware = True


def make_daemon(client, state_dir, marker, *, gpus=None):
    config = DaemonConfig(
        node_id="gpu-1", state_dir=str(state_dir), reboot_command=f"echo rebooted >> {marker}"
    )
    return Daemon(
        client,
        gpus or MachineGpus(2, seed="gpu-1"),
        config,
        state=DaemonState(state_dir),
        host_stats=FixedHostStats(),
        rng=random.Random(1),
    )


async def status(service, command_id) -> m.NodeCommand:
    return (await rpc(service, m.GetCommandRequest(command_id=command_id), ADMIN)).command


async def issue(service, kind) -> m.NodeCommand:
    request = m.IssueCommandRequest(node_id="gpu-1", type=kind)
    return (await rpc(service, request, ADMIN)).command


async def wait_for(path) -> None:
    """Waits for a file that a subprocess writes: the subprocess runs on the wall clock, while
    the mock clock jumps, so only a generous wall-clock bound stops a test that hangs."""
    give_up = time.monotonic() + 60
    while not path.exists():
        assert time.monotonic() < give_up, f"{path} was never written"
        await trio.sleep(0.5)


async def test_the_reboot_is_acknowledged_before_the_reboot_command_runs(
    control_plane, tmp_path, autojump_clock
):
    marker = tmp_path / "rebooted"
    client = SwitchableClient(control_plane)
    daemon = make_daemon(client, tmp_path / "state", marker)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await issue(control_plane, T.COMMAND_TYPE_CORDON)
        client.fail_methods.add("AckCommand")
        reboot = await issue(control_plane, T.COMMAND_TYPE_REBOOT)
        await trio.sleep(60)
        # Recorded, but not acknowledged yet: the machine must not go down.
        assert (await status(control_plane, reboot.command_id)).status is DELIVERED
        assert not marker.exists()
        client.fail_methods.clear()
        await wait_for(marker)
        done = await status(control_plane, reboot.command_id)
        daemon.stop()
    assert done.status is SUCCEEDED
    assert done.result_message == f"rebooting with echo rebooted >> {marker}"
    assert marker.read_text() == "rebooted\n"


async def test_a_restarted_daemon_does_not_reboot_again(control_plane, tmp_path, autojump_clock):
    marker = tmp_path / "rebooted"
    client = SwitchableClient(control_plane)
    async with trio.open_nursery() as nursery:
        first = make_daemon(client, tmp_path / "state", marker)
        await nursery.start(first.run)
        await issue(control_plane, T.COMMAND_TYPE_CORDON)
        reboot = await issue(control_plane, T.COMMAND_TYPE_REBOOT)
        await wait_for(marker)
        first.stop()
        # The machine came back: the same state directory, and the command offered again.
        second = make_daemon(client, tmp_path / "state", marker)
        await nursery.start(second.run)
        second._commands.offer([await status(control_plane, reboot.command_id)])
        await trio.sleep(120)
        second.stop()
    assert marker.read_text() == "rebooted\n"
    assert (await status(control_plane, reboot.command_id)).status is SUCCEEDED


async def test_a_reboot_command_that_fails_is_reported_as_a_health_event(
    control_plane, tmp_path, autojump_clock
):
    client = SwitchableClient(control_plane)
    config = DaemonConfig(node_id="gpu-1", reboot_command="echo 'not permitted' >&2; exit 1")
    daemon = Daemon(client, MachineGpus(2, seed="gpu-1"), config, rng=random.Random(1))
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await issue(control_plane, T.COMMAND_TYPE_CORDON)
        reboot = await issue(control_plane, T.COMMAND_TYPE_REBOOT)
        with trio.fail_after(600):
            while True:
                node = (await rpc(control_plane, m.GetNodeRequest(node_id="gpu-1"), ADMIN)).node
                if node.last_health_events:
                    break
                await trio.sleep(1)
        daemon.stop()
    assert (await status(control_plane, reboot.command_id)).status is SUCCEEDED
    [event] = node.last_health_events
    assert event.message == (
        "the reboot did not start: the reboot command exited with status 1: not permitted"
    )


async def test_simulated_gpus_without_a_reboot_hook_refuse_to_reboot(
    control_plane, tmp_path, autojump_clock
):
    marker = tmp_path / "rebooted"
    client = SwitchableClient(control_plane)
    config = DaemonConfig(node_id="gpu-1", reboot_command=f"echo rebooted >> {marker}")
    daemon = Daemon(client, SimulatedGpus(2, seed="gpu-1"), config, rng=random.Random(1))
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await issue(control_plane, T.COMMAND_TYPE_CORDON)
        reboot = await issue(control_plane, T.COMMAND_TYPE_REBOOT)
        await trio.sleep(30)
        done = await status(control_plane, reboot.command_id)
        daemon.stop()
    assert done.status is m.CommandStatus.COMMAND_STATUS_FAILED
    assert done.result_message == (
        "reboot: this node's GPUs are simulated, and no reboot hook was given"
    )
    assert not marker.exists()

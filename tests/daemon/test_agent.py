"""The daemon's loops against the real control-plane service, on trio's MockClock."""

from __future__ import annotations

import logging
import random
import time
from datetime import UTC, datetime

import pytest
import trio
from support.api import rpc
from support.service import DAEMON_SERVER, open_service
from support.switchable_client import SwitchableClient

from navarch.api import wire as m
from navarch.api.inprocess import InProcessClient
from navarch.api.mapping import health_events_from_wire
from navarch.controlplane import Caller
from navarch.daemon.agent import Daemon, DaemonError
from navarch.daemon.config import DaemonConfig
from navarch.daemon.drain import DrainOutcome
from navarch.daemon.gpu import SimulatedGpus
from navarch.daemon.host import FixedHostStats
from navarch.daemon.state import DaemonState
from navarch.model import HealthEvent, HealthEventType

ADMIN = Caller.admin()
S = m.NodeStatus


class CountingDrain:
    def __init__(self, ok: bool = True, message: str = "moved 3 jobs", takes: float = 5.0):
        self.ok, self.message, self.takes = ok, message, takes
        self.runs: list[dict] = []

    async def __call__(self, timeout: float, env):
        self.runs.append({"timeout": timeout, **env})
        await trio.sleep(self.takes)
        return DrainOutcome(self.ok, self.message)


def make_daemon(client, node_id="gpu-1", **kwargs):
    gpus = kwargs.pop("gpus", None) or SimulatedGpus(8, seed=node_id)
    config = kwargs.pop("config", None) or DaemonConfig(
        node_id=node_id, pool="train", provider="fake", labels={"rack": "r1"}
    )
    return Daemon(
        client,
        gpus,
        config,
        host_stats=FixedHostStats(12.5, 40.0),
        rng=random.Random(1),
        **kwargs,
    )


async def get_node(service, node_id="gpu-1") -> m.GetNodeResponse:
    return await rpc(service, m.GetNodeRequest(node_id=node_id), ADMIN)


async def issue(service, kind, node_id="gpu-1", **kwargs) -> m.NodeCommand:
    reply = await rpc(service, m.IssueCommandRequest(node_id=node_id, type=kind, **kwargs), ADMIN)
    return reply.command


async def command(service, command_id) -> m.NodeCommand:
    return (await rpc(service, m.GetCommandRequest(command_id=command_id), ADMIN)).command


async def test_registers_and_heartbeats_at_once_then_every_interval(control_plane, autojump_clock):
    client = SwitchableClient(control_plane)
    daemon = make_daemon(client)
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        await nursery.start(daemon.run)
        await trio.sleep(0.1)
        node = (await get_node(control_plane)).node
        assert node.status is S.NODE_STATUS_ACTIVE
        assert (node.pool, node.provider, node.labels) == ("train", "fake", {"rack": "r1"})
        assert len(node.gpus) == 8
        # The first heartbeat does not wait for an interval.
        assert node.last_heartbeat_at is not None
        assert node.metrics.cpu_percent == 12.5 and len(node.metrics.gpus) == 8
        await trio.sleep_until(start + 95)
        assert client.calls["SendHeartbeat"] == 10
        assert client.calls["RegisterNode"] == 1
        daemon.stop()
    assert not daemon.terminated


async def test_keeps_running_with_backoff_while_the_control_plane_is_away(
    control_plane, autojump_clock, caplog
):
    caplog.set_level(logging.INFO, logger="navarch.daemon")
    client = SwitchableClient(control_plane)
    daemon = make_daemon(client)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await trio.sleep(15)
        client.down = True
        client.attempts.clear()
        await trio.sleep(600)
        # Not a busy loop: heartbeats at most about once per interval, polls spread by backoff.
        assert 30 <= client.attempts["SendHeartbeat"] <= 130
        assert client.attempts["GetNodeCommands"] <= 60
        client.down = False
        await trio.sleep(10)
        node = (await get_node(control_plane)).node
        # The control plane marked the silent node; heartbeats are back within one interval.
        assert node.status is S.NODE_STATUS_UNHEALTHY
        assert node.status_reason == "heartbeat lost; heartbeats resumed"
        assert client.calls["RegisterNode"] == 1
        daemon.stop()
    messages = [r.getMessage() for r in caplog.records]
    unreachable = [t for t in messages if "cannot reach the control plane" in t]
    assert unreachable == [
        "node gpu-1: cannot reach the control plane at inproc://control-plane: "
        "connection refused; retrying with backoff"
    ]
    assert sum("answers again" in t for t in messages) == 1


async def test_registers_again_when_the_control_plane_forgot_the_node(
    control_plane, tmp_path, autojump_clock, caplog
):
    caplog.set_level(logging.INFO, logger="navarch.daemon")
    client = SwitchableClient(control_plane)
    daemon = make_daemon(client)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        async with open_service(tmp_path / "empty.db", DAEMON_SERVER) as blank:
            client.retarget(blank)
            await trio.sleep(30)
            node = (await get_node(blank)).node
            assert node.last_heartbeat_at is not None and len(node.gpus) == 8
            daemon.stop()
    assert client.calls["RegisterNode"] == 2
    assert sum("registering again" in r.getMessage() for r in caplog.records) == 1


async def test_drain_runs_once_even_when_the_command_is_delivered_again(
    control_plane, autojump_clock
):
    client = SwitchableClient(control_plane)
    drain = CountingDrain(takes=25.0)
    daemon = make_daemon(client, drain=drain)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        # Acknowledgements are lost for a while, so the control plane hands the command out
        # again on later heartbeats and polls.
        client.fail_methods.add("AckCommand")
        drain_command = await issue(
            control_plane, m.CommandType.COMMAND_TYPE_DRAIN, reason="maintenance"
        )
        await trio.sleep(60)
        assert client.calls["SendHeartbeat"] >= 5
        assert (await command(control_plane, drain_command.command_id)).status is (
            m.CommandStatus.COMMAND_STATUS_DELIVERED
        )
        client.fail_methods.clear()
        await trio.sleep(40)
        done = await command(control_plane, drain_command.command_id)
        node = (await get_node(control_plane)).node
        daemon.stop()
    assert len(drain.runs) == 1
    assert drain.runs[0]["NAVARCH_DRAIN_REASON"] == "maintenance"
    assert drain.runs[0]["timeout"] == 300
    assert done.status is m.CommandStatus.COMMAND_STATUS_SUCCEEDED
    assert done.result_message == "moved 3 jobs"
    assert node.status is S.NODE_STATUS_DRAINED


async def test_a_failed_drain_is_acknowledged_with_its_message(control_plane, autojump_clock):
    client = SwitchableClient(control_plane)
    drain = CountingDrain(
        ok=False, message="drain command exited with status 3: jobs still running"
    )
    daemon = make_daemon(client, drain=drain)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await issue(control_plane, m.CommandType.COMMAND_TYPE_CORDON)
        drain_command = await issue(
            control_plane, m.CommandType.COMMAND_TYPE_DRAIN, parameters={"timeout": "90s"}
        )
        # The long poll brings the command long before the next heartbeat.
        await trio.sleep(drain.takes + 1)
        done = await command(control_plane, drain_command.command_id)
        node = (await get_node(control_plane)).node
        daemon.stop()
    assert drain.runs[0]["timeout"] == 90
    assert done.status is m.CommandStatus.COMMAND_STATUS_FAILED
    assert done.result_message == "drain command exited with status 3: jobs still running"
    assert node.status is S.NODE_STATUS_DRAINING
    assert "jobs still running" in node.status_reason


async def test_terminate_is_acknowledged_and_the_daemon_stops(control_plane, autojump_clock):
    client = SwitchableClient(control_plane)
    daemon = make_daemon(client)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            terminate = await issue(control_plane, m.CommandType.COMMAND_TYPE_TERMINATE)
    assert daemon.terminated
    done = await command(control_plane, terminate.command_id)
    assert done.status is m.CommandStatus.COMMAND_STATUS_SUCCEEDED
    assert (await get_node(control_plane)).node.status is S.NODE_STATUS_TERMINATED


async def test_xids_are_reported_as_they_happen(control_plane, autojump_clock):
    client = SwitchableClient(control_plane)
    gpus = SimulatedGpus(8, seed="gpu-1")
    daemon = make_daemon(client, gpus=gpus)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await trio.sleep(3)
        assert client.calls["ReportHealth"] == 0  # no checks installed, nothing to say
        gpus.lose_gpu(6)
        await trio.sleep(0.5)
        node = (await get_node(control_plane)).node
        daemon.stop()
    (event,) = health_events_from_wire(node.last_health_events)
    assert event.type is HealthEventType.XID
    assert (event.gpu_index, event.xid) == (6, 79)
    assert event.gpu_uuid == gpus.inventory()[6].uuid
    assert event.message == "GPU has fallen off the bus"
    assert event.details == {"pci_bus_id": gpus.inventory()[6].pci_bus_id}


class HotGpuCheck:
    """A health check as a plugin would write one: GPUs above 85 C."""

    def run(self, gpus):
        return [
            HealthEvent(
                type=HealthEventType.THERMAL,
                time=datetime.now(UTC),
                gpu_index=g.index,
                gpu_uuid=g.uuid,
                metrics={"temperature_c": g.temperature_c, "slowdown_c": 85.0},
                message=f"GPU {g.index} at {g.temperature_c} C",
            )
            for g in gpus
            if g.temperature_c is not None and g.temperature_c > 85
        ]


class BrokenCheck:
    async def run(self, gpus):
        raise RuntimeError("nvml went away")


async def test_health_checks_run_every_interval_and_failures_are_events(
    control_plane, autojump_clock
):
    client = SwitchableClient(control_plane)
    gpus = SimulatedGpus(4, seed="gpu-1")
    daemon = make_daemon(client, gpus=gpus, health_checks=[("hot", HotGpuCheck())])
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await trio.sleep(1)
        assert (await get_node(control_plane)).node.health is m.HealthStatus.HEALTH_STATUS_HEALTHY
        gpus.set_temperature(2, 93)
        await trio.sleep(30)
        node = (await get_node(control_plane)).node
        assert node.health is m.HealthStatus.HEALTH_STATUS_DEGRADED
        assert [e.gpu_index for e in node.last_health_events] == [2]
        assert client.calls["ReportHealth"] == 2
        daemon.stop()

    client = SwitchableClient(control_plane)
    daemon = make_daemon(client, node_id="gpu-2", health_checks=[("broken", BrokenCheck())])
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await trio.sleep(1)
        (event,) = health_events_from_wire(
            (await get_node(control_plane, "gpu-2")).node.last_health_events
        )
        daemon.stop()
    assert event.type is HealthEventType.CHECK_FAILED
    assert event.message == "health check broken failed: RuntimeError: nvml went away"


async def test_join_token_is_traded_for_a_node_token(tmp_path, autojump_clock):
    async with open_service(
        tmp_path / "auth.db", DAEMON_SERVER, admin_token="admin-secret", join_token="join-secret"
    ) as service:
        anonymous = InProcessClient(service, Caller.anonymous())
        daemon = make_daemon(anonymous, join_token="join-secret")
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            await trio.sleep(25)
            node = (await get_node(service)).node
            assert node.last_heartbeat_at is not None
            assert node.status is S.NODE_STATUS_ACTIVE
            daemon.stop()

        with pytest.raises(DaemonError, match="refused to register node gpu-9: invalid token"):
            await make_daemon(
                InProcessClient(service, Caller.anonymous()), node_id="gpu-9", join_token="wrong"
            ).run()


async def test_stop_before_registration_returns_at_once(control_plane, autojump_clock):
    client = SwitchableClient(control_plane)
    client.down = True
    daemon = make_daemon(client)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(daemon.run)
        await trio.sleep(100)
        assert not daemon.registered.is_set()
        daemon.stop()
    assert client.calls["RegisterNode"] == 0


async def test_a_restarted_daemon_keeps_its_token_and_does_not_redo_commands(
    tmp_path, autojump_clock
):
    async with open_service(
        tmp_path / "auth.db", DAEMON_SERVER, join_token="join-secret"
    ) as service:
        state_dir = tmp_path / "state"
        client = SwitchableClient(service, Caller.anonymous())
        drain = CountingDrain()
        first = make_daemon(
            client, join_token="join-secret", drain=drain, state=DaemonState(state_dir)
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(first.run)
            client.fail_methods.add("AckCommand")
            issued = await issue(service, m.CommandType.COMMAND_TYPE_DRAIN)
            # The state is written in a thread, while the mock clock jumps: wait, in real time,
            # for the first try to acknowledge, which comes once the outcome is saved.
            deadline = time.monotonic() + 20
            while not client.attempts["AckCommand"]:
                assert time.monotonic() < deadline, "the drain's outcome was never saved"
                await trio.sleep(0.5)
            assert len(drain.runs) == 1
            first.stop()  # the process dies before its acknowledgement got through
        assert (await command(service, issued.command_id)).status is (
            m.CommandStatus.COMMAND_STATUS_DELIVERED
        )

        # The new process has no join token: the node token it saved is enough.
        client = SwitchableClient(service, Caller.anonymous())
        second = make_daemon(client, drain=drain, state=DaemonState(state_dir))
        async with trio.open_nursery() as nursery:
            await nursery.start(second.run)
            await trio.sleep(20)
            second.stop()
        assert len(drain.runs) == 1
        done = await command(service, issued.command_id)
        assert done.status is m.CommandStatus.COMMAND_STATUS_SUCCEEDED
        assert done.result_message == "moved 3 jobs"
        # The second process spoke with the saved node token: it never had the join token.
        assert client.calls["RegisterNode"] == 1 and client.calls["SendHeartbeat"] >= 2


async def test_stops_when_the_control_plane_says_the_node_is_terminated(
    control_plane, autojump_clock
):
    client = SwitchableClient(control_plane)
    daemon = make_daemon(client)
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            # The node is terminated while the daemon cannot hear the command.
            client.fail_methods |= {"SendHeartbeat", "GetNodeCommands"}
            terminate = await issue(control_plane, m.CommandType.COMMAND_TYPE_TERMINATE)
            await rpc(
                control_plane,
                m.AckCommandRequest(
                    node_id="gpu-1",
                    command_id=terminate.command_id,
                    result=m.CommandResult.COMMAND_RESULT_SUCCEEDED,
                    message="instance deleted by the provider",
                ),
                ADMIN,
            )
            client.fail_methods.clear()
    assert daemon.terminated
    assert daemon.status is S.NODE_STATUS_TERMINATED

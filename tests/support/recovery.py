"""A stand-in for a node's daemon that answers remediation's commands as the real one does.

It registers, sends heartbeats (which carry its commands) and reports health every interval, and
answers each command once: a drain succeeds, a GPU reset succeeds or fails as told, and a reboot
is acknowledged ("rebooting") before the machine goes quiet, comes back, registers again and
reports what it finds. It stands in for the daemon's own reset and reboot, which have tests of
their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import trio

from navarch.api import wire as m
from navarch.controlplane import Caller, ControlPlane
from navarch.plugins import Instance, SimulatedMachine
from support.api import rpc

OK = m.CommandResult.COMMAND_RESULT_SUCCEEDED
FAILED = m.CommandResult.COMMAND_RESULT_FAILED
RESET_GPU = m.CommandType.COMMAND_TYPE_RESET_GPU
REBOOT = m.CommandType.COMMAND_TYPE_REBOOT
DRAIN = m.CommandType.COMMAND_TYPE_DRAIN

HEARTBEAT_INTERVAL = 5.0
REPORT_INTERVAL = 30.0
# How long a rebooting machine stays quiet.
REBOOT_TAKES = 60.0


def gpu_lost(gpu: int) -> m.HealthEvent:
    return m.HealthEvent(
        type=m.HealthEventType.HEALTH_EVENT_TYPE_GPU_LOST,
        time=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        gpu_index=gpu,
    )


class DaemonDouble:
    """One node's daemon, run with `nursery.start_soon(double.run)`."""

    def __init__(
        self,
        service: ControlPlane,
        node_id: str,
        *,
        pool: str = "train",
        provider: str = "",
        reset_result: m.CommandResult = OK,
        reset_message: str = "GPU reset; health checks passed",
        after_reboot: Sequence[m.HealthEvent] = (),
    ) -> None:
        self.service = service
        self.node_id = node_id
        self.pool = pool
        self.provider = provider
        self.reset_result = reset_result
        self.reset_message = reset_message
        # What the health checks find once the machine is back from a reboot.
        self.after_reboot = tuple(after_reboot)
        # While False the daemon takes no commands (a restart test holds an ack back).
        self.answering = True
        # The GPU index of each reset it carried out, and how often it rebooted.
        self.resets: list[str] = []
        self.reboots = 0
        self._answered: set[str] = set()
        self._pending: tuple[m.HealthEvent, ...] = ()
        self._up = trio.Event()
        self._up.set()
        self._cancel = trio.CancelScope()

    def power_off(self) -> None:
        self._cancel.cancel()

    def set_load(self, utilization: float) -> None:
        pass

    async def register(self) -> None:
        request = m.RegisterNodeRequest(
            node_id=self.node_id, pool=self.pool, provider=self.provider
        )
        await rpc(self.service, request, self._caller)

    async def report(self, *events: m.HealthEvent) -> m.ReportHealthResponse:
        request = m.ReportHealthRequest(node_id=self.node_id, events=events)
        return await rpc(self.service, request, self._caller)

    async def reboot(self) -> None:
        """The machine reboots: quiet for a while, then it registers again and reports."""
        self.reboots += 1
        self._up = trio.Event()
        await trio.sleep(REBOOT_TAKES)
        self._pending = self.after_reboot
        await self.register()
        self._up.set()

    async def run(self) -> None:
        with self._cancel:
            await self.register()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._heartbeats, nursery)
                nursery.start_soon(self._reports)

    @property
    def _caller(self) -> Caller:
        return Caller.node(self.node_id)

    async def _heartbeats(self, nursery: trio.Nursery) -> None:
        while True:
            await self._up.wait()
            request = m.SendHeartbeatRequest(node_id=self.node_id)
            reply = await rpc(self.service, request, self._caller)
            if reply.status is m.NodeStatus.NODE_STATUS_TERMINATED:
                nursery.cancel_scope.cancel()
                return
            if self.answering:
                for command in reply.commands:
                    if command.command_id not in self._answered:
                        self._answered.add(command.command_id)
                        await self._answer(command, nursery)
            await trio.sleep(HEARTBEAT_INTERVAL)

    async def _answer(self, command: m.NodeCommand, nursery: trio.Nursery) -> None:
        if command.type is DRAIN:
            await self._ack(command, OK, "drained")
        elif command.type is RESET_GPU:
            self.resets.append(command.parameters["gpu"])
            await self._ack(command, self.reset_result, self.reset_message)
        elif command.type is REBOOT:
            await self._ack(command, OK, "rebooting")
            nursery.start_soon(self.reboot)

    async def _ack(self, command: m.NodeCommand, result: m.CommandResult, message: str) -> None:
        request = m.AckCommandRequest(
            node_id=self.node_id, command_id=command.command_id, result=result, message=message
        )
        await rpc(self.service, request, self._caller)

    async def _reports(self) -> None:
        while True:
            await trio.sleep(REPORT_INTERVAL)
            await self._up.wait()
            events, self._pending = self._pending, ()
            await self.report(*events)


class DoubleMachines:
    """Boots the fake provider's instances as `DaemonDouble`s (a `MachineRunner`)."""

    def __init__(self, service: ControlPlane, nursery: trio.Nursery) -> None:
        self._service = service
        self._nursery = nursery
        self.daemons: dict[str, DaemonDouble] = {}

    def boot(self, provider: str, instance: Instance, machine: SimulatedMachine) -> DaemonDouble:
        double = DaemonDouble(
            self._service, instance.instance_id, pool=instance.pool, provider=provider
        )
        self.daemons[instance.instance_id] = double
        self._nursery.start_soon(double.run)
        return double

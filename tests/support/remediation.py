"""A control plane with the health policy and remediation wired, and a stand-in pool manager."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import trio

from navarch.api import wire as m
from navarch.clock import Clock
from navarch.config import PoolHealthConfig, ServerConfig
from navarch.controlplane import Caller, ControlPlane
from navarch.errors import NotFound
from navarch.model import NodeStatus
from navarch.plugins import Notifier
from navarch.store import SQLiteStore
from support.api import rpc
from support.service import ADMIN, DRAIN, OK, ack

DONE = m.RemediationStep.REMEDIATION_STEP_DONE
HELD = m.RemediationStep.REMEDIATION_STEP_HELD
CANCELLED = m.RemediationStep.REMEDIATION_STEP_CANCELLED
PENDING = m.RemediationStep.REMEDIATION_STEP_PENDING
DRAIN_STEP = m.RemediationStep.REMEDIATION_STEP_DRAIN

HEALTHY = m.HealthStatus.HEALTH_STATUS_HEALTHY
DEGRADED = m.HealthStatus.HEALTH_STATUS_DEGRADED
UNHEALTHY_HEALTH = m.HealthStatus.HEALTH_STATUS_UNHEALTHY

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# Nodes here send no heartbeats; a week-long timeout keeps them from going silent.
SERVER = ServerConfig(heartbeat_interval=timedelta(seconds=10), heartbeat_timeout=timedelta(days=7))


class PoolManagerStandIn:
    """What the pool manager does for remediation: ends the node and counts a successor."""

    def __init__(self) -> None:
        self.service: ControlPlane | None = None
        self.replaced: list[str] = []
        # Nodes terminated without a successor (the heartbeat-lost episodes).
        self.terminated: list[str] = []
        # Nodes whose successor was asked for before they left (preemption notices).
        self.early: list[str] = []
        self.failures = 0
        # Whether the nodes' provider can reboot a machine; `on_reboot` acts the reboot out.
        self.can_reboot = False
        self.rebooted: list[str] = []
        self.on_reboot: Callable[[str], None] = lambda node_id: None

    async def replace(self, node_id: str, reason: str) -> None:
        await trio.lowlevel.checkpoint()
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the provider is unavailable")
        assert self.service is not None
        node = next(n for n in self.service.all_nodes() if n.node_id == node_id)
        if not node.pool:
            raise NotFound(f"node {node_id} belongs to no configured pool")
        if node_id not in self.replaced:
            self.replaced.append(node_id)
        await self.service.mark_terminated(node_id, f"replaced: {reason}", "pools")

    async def terminate(self, node_id: str, reason: str) -> None:
        await trio.lowlevel.checkpoint()
        assert self.service is not None
        if node_id not in self.terminated:
            self.terminated.append(node_id)
        await self.service.mark_terminated(node_id, f"terminated: {reason}", "pools")

    async def provision_successor(self, node_id: str, reason: str) -> None:
        await trio.lowlevel.checkpoint()
        if node_id not in self.early:
            self.early.append(node_id)

    async def reboot(self, node_id: str, reason: str) -> bool:
        await trio.lowlevel.checkpoint()
        if not self.can_reboot:
            return False
        self.rebooted.append(node_id)
        self.on_reboot(node_id)
        return True


@asynccontextmanager
async def open_plane(
    path: Path,
    replacer: PoolManagerStandIn | None = None,
    pools: Mapping[str, PoolHealthConfig] | None = None,
    notifiers: Sequence[Notifier] = (),
    clock: Clock | None = None,
) -> AsyncIterator[ControlPlane]:
    async with (
        SQLiteStore.open(path, threaded=False) as store,
        ControlPlane.open(
            store,
            SERVER,
            replacer=replacer,
            notifiers=notifiers,
            clock=clock,
            pool_health=pools if pools is not None else {"train": PoolHealthConfig()},
        ) as service,
    ):
        if replacer is not None:
            replacer.service = service
        yield service


def xid(code: int, gpu: int = 0, **details: str) -> m.HealthEvent:
    return m.HealthEvent(
        type=m.HealthEventType.HEALTH_EVENT_TYPE_XID,
        time=T0,
        gpu_index=gpu,
        xid=code,
        details=details,
    )


def remapped_rows_failure(gpu: int = 0) -> m.HealthEvent:
    return m.HealthEvent(
        type=m.HealthEventType.HEALTH_EVENT_TYPE_REMAPPED_ROWS,
        time=T0,
        gpu_index=gpu,
        metrics={"failure": 1.0, "correctable": 0.0, "uncorrectable": 3.0},
    )


async def report(
    service: ControlPlane, node_id: str, *events: m.HealthEvent
) -> m.ReportHealthResponse:
    request = m.ReportHealthRequest(node_id=node_id, events=events)
    return await rpc(service, request, Caller.node(node_id))


async def episodes(service: ControlPlane, **filters: Any) -> list[m.Remediation]:
    request = m.ListRemediationsRequest(**filters)
    return list((await rpc(service, request, ADMIN)).remediations)


async def wait_for_step(service: ControlPlane, node_id: str, *steps: m.RemediationStep) -> None:
    """Waits (in virtual time) until the node's newest episode is at one of `steps`."""
    with trio.fail_after(3600):
        while True:
            found = await episodes(service, node_id=node_id)
            if found and found[0].step in steps:
                return
            await trio.sleep(0.5)


async def ack_drains(service: ControlPlane, node_id: str) -> None:
    """Acknowledges the node's open drain commands, as its daemon does once work has moved."""
    got = await rpc(service, m.GetNodeRequest(node_id=node_id), ADMIN)
    for command in got.open_commands:
        if command.type is DRAIN:
            await ack(service, node_id, command.command_id, OK, "drained")


async def daemon_acking_drains(service: ControlPlane, node_id: str) -> None:
    while True:
        await trio.sleep(1)
        if service.node_status(node_id) is NodeStatus.TERMINATED:
            return
        await ack_drains(service, node_id)

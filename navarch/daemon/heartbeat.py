"""Heartbeats and the command long poll: the two calls that bring the node its commands.

A heartbeat carries the node's metrics and brings back its status; the long poll brings a command
within moments rather than a heartbeat later. Both pass what they receive to the command runner,
which skips commands it already holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import trio

from navarch.api import wire as m
from navarch.api.client import ControlPlaneClient, Unreachable
from navarch.api.codec import ApiError
from navarch.daemon.gpu import GpuSample, to_metrics
from navarch.daemon.host import HostStats
from navarch.daemon.link import Link
from navarch.plugins.health_check import GpuBackend

# The shortest gap between two command polls that came back empty.
MIN_POLL_GAP = 1.0


class Heartbeats:
    """Keeps the node in touch with the control plane and hands over the commands it sends."""

    def __init__(
        self,
        client: ControlPlaneClient,
        link: Link,
        backend: GpuBackend,
        host: HostStats,
        offer: Callable[[Iterable[m.NodeCommand]], None],
    ) -> None:
        self._client = client
        self._link = link
        self._backend = backend
        self._host = host
        self._offer = offer
        # The samples of the last heartbeat and the metrics made of them.
        self._last_metrics: tuple[Sequence[GpuSample], m.NodeMetrics] | None = None

    async def beat(self) -> None:
        """Sends a heartbeat every interval; returns once the control plane terminated the node."""
        link = self._link
        backoff = link.new_backoff()
        while True:
            generation = link.generation
            next_beat = trio.current_time() + link.heartbeat_interval
            try:
                reply = await self._client.send_heartbeat(
                    m.SendHeartbeatRequest(node_id=link.node_id, metrics=self._metrics())
                )
            except (Unreachable, ApiError) as exc:
                # While the control plane is away, try at least once per heartbeat interval, so
                # the node is back on time when it returns.
                delay = await link.recover(exc, generation, backoff, cap=link.heartbeat_interval)
                await trio.sleep(delay)
                continue
            backoff.reset()
            link.ok()
            link.heard(reply.status)
            if reply.status is m.NodeStatus.NODE_STATUS_TERMINATED:
                # Terminated without a terminate command reaching us (by remediation, say):
                # there is nothing left for this agent to do.
                return
            self._offer(reply.commands)
            await trio.sleep_until(next_beat)

    async def poll(self) -> None:
        """Long-polls for commands, so a command arrives within moments, not a heartbeat later."""
        link = self._link
        backoff = link.new_backoff()
        while True:
            generation = link.generation
            started = trio.current_time()
            try:
                reply = await self._client.get_node_commands(
                    m.GetNodeCommandsRequest(node_id=link.node_id, wait=link.command_poll_wait)
                )
            except (Unreachable, ApiError) as exc:
                await trio.sleep(await link.recover(exc, generation, backoff))
                continue
            backoff.reset()
            link.ok()
            self._offer(reply.commands)
            if not reply.commands:
                await trio.sleep_until(started + MIN_POLL_GAP)

    def _metrics(self) -> m.NodeMetrics:
        cpu, memory = self._host.read()
        samples = self._backend.sample()
        last = self._last_metrics
        # A backend whose readings did not change (a simulated one) gives back the same samples.
        if (
            last is None
            or last[0] is not samples
            or last[1].cpu_percent != cpu
            or last[1].memory_percent != memory
        ):
            metrics = m.NodeMetrics(
                cpu_percent=cpu,
                memory_percent=memory,
                gpus=tuple(to_metrics(s) for s in samples),
            )
            self._last_metrics = last = (samples, metrics)
        return last[1]

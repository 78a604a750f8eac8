"""The node agent: registers a machine, keeps it in touch with the control plane, runs commands.

One `Daemon` is one node. `navarch daemon` runs one over HTTP; the fake provider and the
simulator run hundreds in one trio program, each with an in-process client and simulated GPUs:

    daemon = Daemon(client, SimulatedGpus(8, seed="gpu-1"), DaemonConfig(node_id="gpu-1"))
    await nursery.start(daemon.run)    # returns once the node is registered
    ...
    daemon.stop()                      # the process dies without a word, as a crashed node would

The daemon owns its parts and the nursery they run in: the `Link` (registration, and recovery
after a failed call), `Heartbeats` (heartbeats and the command long poll), the `CommandRunner`,
the `HealthReporter`, the `PreemptionWatcher` where the machine can be preempted, and the
`CommandProcesses` that commands run. The drain and reboot actions can be injected (`drain`,
`reboot`), so a simulated machine drains and reboots without a shell. Everything
they do is driven by `trio.current_time()`, so a daemon runs on a `MockClock`.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence

import trio

from navarch.api import wire as m
from navarch.api.client import ControlPlaneClient
from navarch.clock import WallClock, utc_now
from navarch.daemon.commands import CommandRunner
from navarch.daemon.config import DaemonConfig
from navarch.daemon.drain import DrainAction, NothingToDrain, ShellDrain
from navarch.daemon.health import HealthReporter
from navarch.daemon.heartbeat import Heartbeats
from navarch.daemon.host import FixedHostStats, HostStats
from navarch.daemon.link import DaemonError, Link
from navarch.daemon.nodelog import NodeLog
from navarch.daemon.preemption import NoticeSource, PreemptionWatcher, notice_source
from navarch.daemon.processes import CommandProcesses
from navarch.daemon.recovery import GpuRecovery, NoReboot, RebootAction, ShellReboot
from navarch.daemon.state import DaemonState
from navarch.plugins.health_check import AnyHealthCheck, GpuBackend

__all__ = ["Daemon", "DaemonError"]


class Daemon:
    """One node agent. `run()` returns when the node is terminated or `stop()` is called."""

    def __init__(
        self,
        client: ControlPlaneClient,
        backend: GpuBackend,
        config: DaemonConfig,
        *,
        join_token: str = "",
        hostname: str = "",
        host_stats: HostStats | None = None,
        health_checks: Sequence[tuple[str, AnyHealthCheck]] = (),
        drain: DrainAction | None = None,
        reboot: RebootAction | None = None,
        state: DaemonState | None = None,
        rng: random.Random | None = None,
        wall_clock: WallClock = utc_now,
        backoff_cap: float = 30.0,
        notices: NoticeSource | None = None,
        take_over: bool = False,
    ) -> None:
        if not config.node_id:
            raise ValueError("config.node_id is required")
        self.node_id = config.node_id
        self.config = config
        self.terminated = False
        self._client = client
        self._backend = backend
        self._state = state or DaemonState()
        self._log = NodeLog(self.node_id)
        self._processes = CommandProcesses(self._state, self._log)
        if drain is None:
            drain = (
                ShellDrain(config.drain_command, self._processes)
                if config.drain_command
                else NothingToDrain()
            )
        self._link = Link(
            client,
            config,
            self._state,
            self._log,
            join_token=join_token,
            hostname=hostname,
            rng=rng or random.Random(),
            backoff_cap=backoff_cap,
            take_over=take_over,
        )
        self._health = HealthReporter(
            client,
            self._link,
            backend,
            health_checks,
            self._log,
            state_dir=config.state_dir,
            wall_clock=wall_clock,
        )
        if reboot is None:
            reboot = _reboot_action(config, backend, self._processes)
        self._commands = CommandRunner(
            client,
            self._link,
            config,
            self._state,
            drain,
            self._health,
            self._processes,
            self._log,
            GpuRecovery(backend, config, self._health, self._processes, self._log),
            reboot,
        )
        self._heartbeats = Heartbeats(
            client, self._link, backend, host_stats or FixedHostStats(), self._commands.offer
        )
        # Where preemption notices come from: `notices`, or the metadata service the config names.
        source = notices or notice_source(config.metadata, config.metadata_url)
        self._preemption = (
            PreemptionWatcher(
                client, self._link, source, self._log, config.metadata_poll.total_seconds()
            )
            if source is not None
            else None
        )
        self._cancel_scope: trio.CancelScope | None = None
        self._stop_requested = False

    @property
    def registered(self) -> trio.Event:
        """Set once the node has registered."""
        return self._link.registered

    @property
    def status(self) -> m.NodeStatus | None:
        """The node's status as the control plane last gave it."""
        return self._link.status

    @property
    def health(self) -> m.HealthStatus:
        """The node's health as the control plane last judged it."""
        return self._link.health

    @property
    def heartbeat_interval(self) -> float:
        return self._link.heartbeat_interval

    @property
    def health_check_interval(self) -> float:
        return self._link.health_check_interval

    @property
    def command_poll_wait(self) -> str:
        return self._link.command_poll_wait

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Registers (retrying while the control plane is away), then runs until stopped.

        Raises `DaemonError` when the control plane refuses the node for good: a bad join token,
        or another daemon holds the node id.
        """
        refused: DaemonError | None = None
        with trio.CancelScope() as scope:
            self._cancel_scope = scope
            if self._stop_requested:
                scope.cancel()
            self._state.load()
            await self._commands.recover()
            inventory = tuple(self._backend.inventory())
            await self._link.register(inventory)
            task_status.started()
            try:
                async with trio.open_nursery() as nursery:
                    all_loops = nursery.cancel_scope
                    nursery.start_soon(self._until_terminated, self._heartbeats.beat, all_loops)
                    nursery.start_soon(self._heartbeats.poll)
                    nursery.start_soon(self._until_terminated, self._commands.run, all_loops)
                    if self._preemption is not None:
                        nursery.start_soon(self._preemption.run)
                    self._health.start(nursery, inventory)
            except* DaemonError as group:
                # Registering again was refused (another daemon took the node id over).
                refused = _first(group)
        if refused is not None:
            raise refused
        if self.terminated:
            self._log.info("stopped: the node was terminated")

    def stop(self) -> None:
        """Stops every loop at once; nothing more is sent to the control plane."""
        self._stop_requested = True
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()

    async def _until_terminated(
        self, loop: Callable[[], Awaitable[None]], scope: trio.CancelScope
    ) -> None:
        """Runs a loop that returns once the node is terminated, then stops the others."""
        await loop()
        self.terminated = True
        scope.cancel()


def _reboot_action(
    config: DaemonConfig, backend: GpuBackend, processes: CommandProcesses
) -> RebootAction:
    if not backend.hardware:
        # A daemon over simulated GPUs runs inside a test or a simulator: the host is not its own.
        return NoReboot("this node's GPUs are simulated, and no reboot hook was given")
    if not config.reboot_command:
        return NoReboot("no reboot_command is configured on this node")
    return ShellReboot(config.reboot_command, processes)


def _first(group: BaseExceptionGroup[DaemonError]) -> DaemonError:
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    assert isinstance(leaf, DaemonError)
    return leaf

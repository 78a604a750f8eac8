"""The node agent: registers a machine, keeps it in touch with the control plane, runs commands.

One `Daemon` is one node. `navarch daemon` runs one over HTTP; the fake provider and the
simulator run hundreds in one trio program, each with an in-process client and simulated GPUs:

    daemon = Daemon(client, SimulatedGpus(8, seed="gpu-1"), DaemonConfig(node_id="gpu-1"))
    await nursery.start(daemon.run)    # returns once the node is registered
    ...
    daemon.stop()                      # the process dies without a word, as a crashed node would

Everything the daemon does is driven by `trio.current_time()`, so it runs on a `MockClock`.
"""

from __future__ import annotations

import inspect
import logging
import math
import random
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import trio

from navarch import __version__
from navarch.api import wire as m
from navarch.api.client import ControlPlaneClient, Unreachable
from navarch.api.codec import ApiError
from navarch.api.mapping import gpu_info_to_wire, health_events_to_wire
from navarch.clock import WallClock, utc_now
from navarch.daemon.backoff import Backoff
from navarch.daemon.config import DaemonConfig
from navarch.daemon.drain import DrainAction, NothingToDrain, ShellDrain
from navarch.daemon.gpu import GpuSample, to_metrics
from navarch.daemon.host import FixedHostStats, HostStats
from navarch.daemon.state import DaemonState, Outcome
from navarch.durations import parse_duration
from navarch.errors import NavarchError
from navarch.model import GpuInfo, HealthEvent, HealthEventType
from navarch.plugins.health_check import GpuBackend, GpuEvent, HealthCheck, NodeWatch

log = logging.getLogger("navarch.daemon")

_SUCCEEDED = m.CommandResult.COMMAND_RESULT_SUCCEEDED
_FAILED = m.CommandResult.COMMAND_RESULT_FAILED

# Codes after which the node must register again: the control plane forgot the node, or no
# longer accepts its token (a new control plane, a rotated secret).
_REREGISTER = frozenset({"not_found", "unauthenticated", "permission_denied"})
# Codes that registration cannot get past by retrying.
_FATAL_AT_REGISTRATION = frozenset(
    {"unauthenticated", "permission_denied", "invalid_argument", "failed_precondition"}
)
# The most health events held while the control plane is away; the oldest go first.
MAX_UNSENT_EVENTS = 1000
# The shortest gap between two command polls that came back empty.
MIN_POLL_GAP = 1.0
# How long to wait before watching GPU events again after the stream failed.
EVENTS_RETRY = 60.0


class DaemonError(NavarchError):
    """The daemon cannot go on: the control plane refuses it for good."""


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
        health_checks: Sequence[tuple[str, HealthCheck]] = (),
        drain: DrainAction | None = None,
        state: DaemonState | None = None,
        rng: random.Random | None = None,
        wall_clock: WallClock = utc_now,
        backoff_cap: float = 30.0,
    ) -> None:
        if not config.node_id:
            raise ValueError("config.node_id is required")
        self.node_id = config.node_id
        self.config = config
        self._client = client
        self._backend = backend
        self._join_token = join_token
        self._hostname = hostname
        self._host = host_stats or FixedHostStats()
        self._checks = list(health_checks)
        if drain is None:
            drain = ShellDrain(config.drain_command) if config.drain_command else NothingToDrain()
        self._drain = drain
        self._state = state or DaemonState()
        self._rng = rng or random.Random()
        self._wall_clock = wall_clock
        self._backoff_cap = backoff_cap
        self._log = _NodeLog(self.node_id)
        self._link = _Link(self._log)

        self.status: m.NodeStatus | None = None
        self.health = m.HealthStatus.HEALTH_STATUS_UNKNOWN
        self.registered = trio.Event()
        self.terminated = False
        self.heartbeat_interval = 30.0
        self.health_check_interval = 60.0
        self.command_poll_wait = "20s"

        self._inventory: tuple[GpuInfo, ...] = ()
        self._generation = 0  # counts registrations, so concurrent loops re-register only once
        self._register_lock = trio.Lock()
        self._queued: set[str] = set()
        self._send_command, self._receive_command = trio.open_memory_channel[m.NodeCommand](
            math.inf
        )
        self._unsent: list[HealthEvent] = []
        self._events_arrived = trio.Event()
        # The samples of the last heartbeat and the metrics made of them.
        self._last_metrics: tuple[Sequence[GpuSample], m.NodeMetrics] | None = None
        self._cancel_scope: trio.CancelScope | None = None
        self._stop_requested = False

    # Running.

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Registers (retrying while the control plane is away), then runs until stopped.

        Raises `DaemonError` when the control plane refuses the node for good (a bad join token).
        """
        with trio.CancelScope() as scope:
            self._cancel_scope = scope
            if self._stop_requested:
                scope.cancel()
            self._state.load()
            if self._state.node_id == self.node_id and self._state.node_token:
                self._client.set_token(self._state.node_token)
            self._inventory = tuple(self._backend.inventory())
            await self._register()
            task_status.started()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._heartbeat_loop, nursery.cancel_scope)
                nursery.start_soon(self._poll_loop)
                nursery.start_soon(self._command_loop, nursery.cancel_scope)
                watchers = [(n, c) for n, c in self._checks if hasattr(c, "watch")]
                for name, check in watchers:
                    nursery.start_soon(self._watch_loop, name, check)
                if not watchers:
                    nursery.start_soon(self._gpu_events_loop)
                nursery.start_soon(self._health_loop)
        if self.terminated:
            self._log.info("stopped: the node was terminated")

    def stop(self) -> None:
        """Stops every loop at once; nothing more is sent to the control plane."""
        self._stop_requested = True
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()

    # Registration.

    async def _register(self) -> None:
        request = m.RegisterNodeRequest(
            node_id=self.node_id,
            provider=self.config.provider,
            region=self.config.region,
            zone=self.config.zone,
            instance_type=self.config.instance_type,
            pool=self.config.pool,
            hostname=self._hostname,
            labels=dict(self.config.labels),
            gpus=tuple(gpu_info_to_wire(g) for g in self._inventory),
            agent_version=__version__,
        )
        backoff = self._new_backoff()
        while True:
            if self._join_token:
                self._client.set_token(self._join_token)
            try:
                reply = await self._client.register_node(request)
            except Unreachable as exc:
                self._link.failed(exc)
            except ApiError as exc:
                if exc.code in _FATAL_AT_REGISTRATION:
                    raise DaemonError(
                        f"the control plane refused to register node {self.node_id}: "
                        f"{exc.message} ({exc.code})"
                    ) from None
                self._link.failed(exc)
            else:
                break
            await trio.sleep(backoff.next_delay())
        self._link.ok()
        if reply.node_token:
            self._client.set_token(reply.node_token)
            await self._state.set_token(self.node_id, reply.node_token)
        self._apply_config(reply.config)
        self.status = reply.node.status
        self._generation += 1
        first = not self.registered.is_set()
        self.registered.set()
        self._log.info(
            "%s with %d GPUs; heartbeat every %gs",
            "registered" if first else "registered again",
            len(self._inventory),
            self.heartbeat_interval,
        )

    def _apply_config(self, config: m.NodeConfig) -> None:
        def seconds(text: str, default: float) -> float:
            try:
                value = parse_duration(text).total_seconds()
            except ValueError:
                return default
            return value if value > 0 else default

        self.heartbeat_interval = seconds(config.heartbeat_interval, 30.0)
        self.health_check_interval = seconds(config.health_check_interval, 60.0)
        try:
            parse_duration(config.command_poll_wait)
            self.command_poll_wait = config.command_poll_wait
        except ValueError:
            self.command_poll_wait = "20s"

    async def _recover(
        self,
        exc: Unreachable | ApiError,
        generation: int,
        backoff: Backoff,
        cap: float | None = None,
    ) -> float:
        """Handles a failed call: registers again when the node was forgotten, else backs off.

        Returns how long to wait before the next attempt (0 after registering again).
        """
        if isinstance(exc, ApiError) and exc.code in _REREGISTER:
            async with self._register_lock:
                if generation == self._generation:
                    self._log.warning(
                        "the control plane does not accept this node (%s); registering again",
                        exc.message,
                    )
                    await self._register()
            backoff.reset()
            return 0.0
        self._link.failed(exc)
        return backoff.next_delay(cap)

    def _new_backoff(self) -> Backoff:
        return Backoff(cap=self._backoff_cap, rng=self._rng)

    # Heartbeats and command polling.

    async def _heartbeat_loop(self, scope: trio.CancelScope) -> None:
        backoff = self._new_backoff()
        while True:
            generation = self._generation
            next_beat = trio.current_time() + self.heartbeat_interval
            try:
                reply = await self._client.send_heartbeat(
                    m.SendHeartbeatRequest(node_id=self.node_id, metrics=self._metrics())
                )
            except (Unreachable, ApiError) as exc:
                # While the control plane is away, try at least once per heartbeat interval, so
                # the node is back on time when it returns.
                delay = await self._recover(exc, generation, backoff, cap=self.heartbeat_interval)
                await trio.sleep(delay)
                continue
            backoff.reset()
            self._link.ok()
            self.status = reply.status
            if reply.status is m.NodeStatus.NODE_STATUS_TERMINATED:
                # Terminated without a terminate command reaching us (by remediation, say):
                # there is nothing left for this agent to do.
                self.terminated = True
                scope.cancel()
                return
            self._offer(reply.commands)
            await trio.sleep_until(next_beat)

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

    async def _poll_loop(self) -> None:
        """Long-polls for commands, so a command arrives within moments, not a heartbeat later."""
        backoff = self._new_backoff()
        while True:
            generation = self._generation
            started = trio.current_time()
            try:
                reply = await self._client.get_node_commands(
                    m.GetNodeCommandsRequest(node_id=self.node_id, wait=self.command_poll_wait)
                )
            except (Unreachable, ApiError) as exc:
                await trio.sleep(await self._recover(exc, generation, backoff))
                continue
            backoff.reset()
            self._link.ok()
            self._offer(reply.commands)
            if not reply.commands:
                await trio.sleep_until(started + MIN_POLL_GAP)

    # Commands.

    def _offer(self, commands: Iterable[m.NodeCommand]) -> None:
        """Queues commands not already queued; finished ones are queued to be acknowledged again."""
        for command in commands:
            if command.command_id in self._queued:
                continue
            self._queued.add(command.command_id)
            self._send_command.send_nowait(command)

    async def _command_loop(self, scope: trio.CancelScope) -> None:
        async for command in self._receive_command:
            outcome = self._state.outcome(command.command_id)
            if outcome is None:
                outcome = await self._execute(command)
                await self._state.record(command.command_id, outcome)
            else:
                self._log.info(
                    "command %s arrived again; acknowledging its recorded result",
                    command.command_id,
                )
            await self._ack(command, outcome)
            self._queued.discard(command.command_id)
            if (
                command.type is m.CommandType.COMMAND_TYPE_TERMINATE
                and outcome.result is _SUCCEEDED
            ):
                self.terminated = True
                scope.cancel()
                return

    async def _execute(self, command: m.NodeCommand) -> Outcome:
        kind = command.type.value.removeprefix("COMMAND_TYPE_").lower()
        self._log.info("running %s command %s", kind, command.command_id)
        try:
            outcome = await self._run_command(command)
        except Exception as exc:
            self._log.exception("%s command %s failed", kind, command.command_id)
            outcome = Outcome(_FAILED, f"{kind} failed: {type(exc).__name__}: {exc}")
        self._log.info(
            "%s command %s %s: %s",
            kind,
            command.command_id,
            "succeeded" if outcome.result is _SUCCEEDED else "failed",
            outcome.message,
        )
        return outcome

    async def _run_command(self, command: m.NodeCommand) -> Outcome:
        t = m.CommandType
        if command.type is t.COMMAND_TYPE_DRAIN:
            return await self._run_drain(command)
        if command.type is t.COMMAND_TYPE_TERMINATE:
            return Outcome(_SUCCEEDED, "the node agent is stopping")
        if command.type is t.COMMAND_TYPE_RUN_DIAGNOSTIC:
            if not self._checks:
                return Outcome(_SUCCEEDED, "no health checks are installed on this node")
            events = await self._run_checks()
            self._queue_events(events)
            return Outcome(
                _SUCCEEDED, f"ran {len(self._checks)} health checks: {len(events)} events"
            )
        # Cordoning is the control plane's own bookkeeping; the node has nothing to change.
        word = "cordoned" if command.type is t.COMMAND_TYPE_CORDON else "uncordoned"
        return Outcome(_SUCCEEDED, f"node {word}")

    async def _run_drain(self, command: m.NodeCommand) -> Outcome:
        timeout = self.config.drain_timeout
        if "timeout" in command.parameters:
            try:
                timeout = parse_duration(command.parameters["timeout"])
            except ValueError:
                return Outcome(
                    _FAILED, f"drain: bad timeout parameter {command.parameters['timeout']!r}"
                )
        env = {
            "NAVARCH_NODE_ID": self.node_id,
            "NAVARCH_COMMAND_ID": command.command_id,
            "NAVARCH_DRAIN_REASON": command.reason,
        }
        done = await self._drain(timeout / timedelta(seconds=1), env)
        return Outcome(_SUCCEEDED if done.ok else _FAILED, done.message)

    async def _ack(self, command: m.NodeCommand, outcome: Outcome) -> None:
        """Delivers the outcome, retrying while the control plane is away."""
        request = m.AckCommandRequest(
            node_id=self.node_id,
            command_id=command.command_id,
            result=outcome.result,
            message=outcome.message,
        )
        backoff = self._new_backoff()
        while True:
            generation = self._generation
            try:
                await self._client.ack_command(request)
                self._link.ok()
                return
            except ApiError as exc:
                if exc.code in ("not_found", "failed_precondition", "invalid_argument"):
                    # The command is gone or already settled; there is no one left to tell.
                    self._log.warning(
                        "acknowledging command %s: %s (%s)",
                        command.command_id,
                        exc.message,
                        exc.code,
                    )
                    return
                delay = await self._recover(exc, generation, backoff)
            except Unreachable as exc:
                delay = await self._recover(exc, generation, backoff)
            await trio.sleep(delay)

    # Health.

    async def _gpu_events_loop(self) -> None:
        """Passes GPU events (XIDs, lost GPUs) on as they happen, not at the next check."""
        while True:
            try:
                await self._backend.watch_events(self._report_gpu_events)
                return
            except Exception as exc:
                # Health checks and heartbeats go on; the control plane hears why events stopped.
                self._log.exception("the GPU event stream failed; retrying in %gs", EVENTS_RETRY)
                self._queue_events(
                    [self._check_failed("gpu-events", "GPU event stream failed", exc)]
                )
            await trio.sleep(EVENTS_RETRY)

    async def _watch_loop(self, name: str, check: Any) -> None:
        node = NodeWatch(
            gpus=self._backend,
            inventory=self._inventory,
            state_dir=self.config.state_dir,
            report=self._queue_events,
            wall_clock=self._wall_clock,
        )
        while True:
            try:
                await check.watch(node)
                return
            except Exception as exc:
                self._log.exception(
                    "health check %s stopped watching; retrying in %gs", name, EVENTS_RETRY
                )
                self._queue_events([self._check_failed(name, f"health check {name} failed", exc)])
            await trio.sleep(EVENTS_RETRY)

    def _report_gpu_events(self, events: Sequence[GpuEvent]) -> None:
        uuids = {g.index: g.uuid for g in self._inventory}
        now = self._wall_clock()
        self._queue_events(
            [
                HealthEvent(
                    type=e.type,
                    time=now,
                    gpu_index=e.gpu_index,
                    gpu_uuid=uuids.get(e.gpu_index, ""),
                    xid=e.xid,
                    message=e.message or (f"XID {e.xid}" if e.xid else ""),
                    details=e.details,
                )
                for e in events
            ]
        )

    def _check_failed(self, check: str, what: str, exc: Exception) -> HealthEvent:
        """The event that tells the control plane a check, or what feeds the checks, raised."""
        return HealthEvent(
            type=HealthEventType.CHECK_FAILED,
            time=self._wall_clock(),
            message=f"{what}: {type(exc).__name__}: {exc}",
            details={"check": check},
        )

    def _queue_events(self, events: Sequence[HealthEvent]) -> None:
        if not events:
            return
        self._unsent.extend(events)
        if len(self._unsent) > MAX_UNSENT_EVENTS:
            dropped = len(self._unsent) - MAX_UNSENT_EVENTS
            del self._unsent[:dropped]
            self._log.warning("dropped %d unsent health events (the oldest)", dropped)
        self._events_arrived.set()

    async def _run_checks(self) -> list[HealthEvent]:
        try:
            samples = self._backend.sample()
        except Exception as exc:
            # A driver that stops answering must not stop the daemon; the control plane hears it.
            self._log.exception("sampling the GPUs failed")
            return [self._check_failed("gpu-sample", "sampling the GPUs failed", exc)]
        events: list[HealthEvent] = []
        for name, check in self._checks:
            if not hasattr(check, "run"):
                continue
            try:
                found = check.run(samples)
                if inspect.isawaitable(found):
                    found = await found
                events.extend(found)
            except Exception as exc:
                self._log.exception("health check %s failed", name)
                events.append(self._check_failed(name, f"health check {name} failed", exc))
        return events

    async def _health_loop(self) -> None:
        """Runs the health checks every interval and sends their events with any XIDs.

        With no health checks installed only XID events are sent, when they happen.
        """
        backoff = self._new_backoff()
        next_check = trio.current_time() if self._checks else math.inf
        retry_at = math.inf
        due = False  # a periodic report is owed even when it carries no events
        while True:
            with trio.move_on_at(min(next_check, retry_at)):
                await self._events_arrived.wait()
            self._events_arrived = trio.Event()
            now = trio.current_time()
            if now >= next_check:
                self._queue_events(await self._run_checks())
                next_check = now + self.health_check_interval
                due = True
            if not (due or self._unsent) or (now < retry_at < math.inf):
                continue
            batch = list(self._unsent)
            generation = self._generation
            try:
                reply = await self._client.report_health(
                    m.ReportHealthRequest(node_id=self.node_id, events=health_events_to_wire(batch))
                )
            except (Unreachable, ApiError) as exc:
                retry_at = trio.current_time() + await self._recover(exc, generation, backoff)
                continue
            del self._unsent[: len(batch)]
            due = False
            retry_at = math.inf
            backoff.reset()
            self._link.ok()
            self.status, self.health = reply.status, reply.health


class _NodeLog:
    """Log lines that start with the node id: many daemons may share one process."""

    def __init__(self, node_id: str) -> None:
        self._prefix = f"node {node_id}: "

    def info(self, message: str, *args: Any) -> None:
        log.info(self._prefix + message, *args)

    def warning(self, message: str, *args: Any) -> None:
        log.warning(self._prefix + message, *args)

    def exception(self, message: str, *args: Any) -> None:
        log.exception(self._prefix + message, *args)


class _Link:
    """Whether the control plane answers; logs each change once, not each retry."""

    def __init__(self, log: _NodeLog) -> None:
        self._log = log
        self.state = "up"

    def ok(self) -> None:
        if self.state != "up":
            self._log.info("the control plane answers again")
            self.state = "up"

    def failed(self, exc: Unreachable | ApiError) -> None:
        state = "unreachable" if isinstance(exc, Unreachable) else "failing"
        if state == self.state:
            return
        self.state = state
        if isinstance(exc, Unreachable):
            self._log.warning("%s; retrying with backoff", exc)
        else:
            self._log.warning(
                "the control plane returned an error: %s (%s); retrying with backoff",
                exc.message,
                exc.code,
            )

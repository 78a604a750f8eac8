"""Running the control plane's commands on the node, each once, and acknowledging each.

A command can arrive from a heartbeat and from the long poll, and again after the daemon
restarts; the daemon state records each outcome, so a command that arrives again is acknowledged
with the outcome it had, not run twice. An acknowledgement is retried until the control plane
hears it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import timedelta

import trio

from navarch.api import wire as m
from navarch.api.client import ControlPlaneClient, Unreachable
from navarch.api.codec import ApiError
from navarch.daemon.config import DaemonConfig
from navarch.daemon.drain import DrainAction
from navarch.daemon.health import HealthReporter
from navarch.daemon.link import Link
from navarch.daemon.nodelog import NodeLog
from navarch.daemon.state import DaemonState, Outcome
from navarch.durations import parse_duration

_SUCCEEDED = m.CommandResult.COMMAND_RESULT_SUCCEEDED
_FAILED = m.CommandResult.COMMAND_RESULT_FAILED


class CommandRunner:
    """Runs commands one at a time, in the order they arrive, and acknowledges each."""

    def __init__(
        self,
        client: ControlPlaneClient,
        link: Link,
        config: DaemonConfig,
        state: DaemonState,
        drain: DrainAction,
        health: HealthReporter,
        log: NodeLog,
    ) -> None:
        self._client = client
        self._link = link
        self._config = config
        self._state = state
        self._drain = drain
        self._health = health
        self._log = log
        self._queued: set[str] = set()
        self._send_command, self._receive_command = trio.open_memory_channel[m.NodeCommand](
            math.inf
        )

    def offer(self, commands: Iterable[m.NodeCommand]) -> None:
        """Queues commands not already queued; finished ones are queued to be acknowledged again."""
        for command in commands:
            if command.command_id in self._queued:
                continue
            self._queued.add(command.command_id)
            self._send_command.send_nowait(command)

    async def run(self) -> None:
        """Runs commands as they are offered; returns once a terminate command succeeded."""
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
            return Outcome(_SUCCEEDED, await self._health.diagnose())
        # Cordoning is the control plane's own bookkeeping; the node has nothing to change.
        word = "cordoned" if command.type is t.COMMAND_TYPE_CORDON else "uncordoned"
        return Outcome(_SUCCEEDED, f"node {word}")

    async def _run_drain(self, command: m.NodeCommand) -> Outcome:
        timeout = self._config.drain_timeout
        if "timeout" in command.parameters:
            try:
                timeout = parse_duration(command.parameters["timeout"])
            except ValueError:
                return Outcome(
                    _FAILED, f"drain: bad timeout parameter {command.parameters['timeout']!r}"
                )
        env = {
            "NAVARCH_NODE_ID": self._link.node_id,
            "NAVARCH_COMMAND_ID": command.command_id,
            "NAVARCH_DRAIN_REASON": command.reason,
        }
        done = await self._drain(timeout / timedelta(seconds=1), env)
        return Outcome(_SUCCEEDED if done.ok else _FAILED, done.message)

    async def _ack(self, command: m.NodeCommand, outcome: Outcome) -> None:
        """Delivers the outcome, retrying while the control plane is away."""
        link = self._link
        request = m.AckCommandRequest(
            node_id=link.node_id,
            command_id=command.command_id,
            result=outcome.result,
            message=outcome.message,
        )
        backoff = link.new_backoff()
        while True:
            generation = link.generation
            try:
                await self._client.ack_command(request)
                link.ok()
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
                delay = await link.recover(exc, generation, backoff)
            except Unreachable as exc:
                delay = await link.recover(exc, generation, backoff)
            await trio.sleep(delay)

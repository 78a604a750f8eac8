"""Running the control plane's commands on the node, each once, and acknowledging each.

A command can arrive from a heartbeat and from the long poll, and again after the daemon
restarts; the daemon state records each outcome, so a command that arrives again is acknowledged
with the outcome it had, not run twice. An acknowledgement is retried until the control plane
hears it.

A command the daemon was running when it stopped is not run again: the restarted daemon ends what
is left of its processes and reports it failed (`recover`). A parameter out of range fails the
command with a message that names it. A run_diagnostic command fails when a diagnostic found a
fault, timed out or could not run.

A reboot command is recorded and acknowledged as succeeded before the reboot starts
(`navarch.daemon.recovery`); the same command delivered again after the machine came back is
acknowledged again, never run a second time.
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
from navarch.daemon.processes import CommandProcesses
from navarch.daemon.recovery import BadParameter, GpuRecovery, NoReboot, RebootAction, StepFailed
from navarch.daemon.state import DaemonState, Outcome
from navarch.durations import format_duration, parse_duration

_SUCCEEDED = m.CommandResult.COMMAND_RESULT_SUCCEEDED
_FAILED = m.CommandResult.COMMAND_RESULT_FAILED
INTERRUPTED = "interrupted by a daemon restart"
# The longest a drain command's `timeout` parameter may ask for.
MAX_DRAIN_TIMEOUT = timedelta(days=7)

__all__ = ["INTERRUPTED", "MAX_DRAIN_TIMEOUT", "BadParameter", "CommandRunner"]


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
        processes: CommandProcesses,
        log: NodeLog,
        recovery: GpuRecovery,
        reboot: RebootAction,
    ) -> None:
        self._client = client
        self._link = link
        self._config = config
        self._state = state
        self._drain = drain
        self._health = health
        self._processes = processes
        self._log = log
        self._recovery = recovery
        self._reboot = reboot
        self._queued: set[str] = set()
        # A command this daemon found interrupted at start, to acknowledge once registered.
        self._interrupted: tuple[str, Outcome] | None = None
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

    async def recover(self) -> None:
        """Settles the command an earlier daemon was running when it stopped, if any.

        Ends what is left of the command's processes and records the command failed; `run`
        acknowledges it. Call it after loading the state and before running commands.
        """
        running = self._state.running
        if running is None:
            return
        left = await self._processes.end_leftover(running)
        message = INTERRUPTED + ("; the processes it left running were ended" if left else "")
        outcome = Outcome(_FAILED, message)
        self._log.warning("command %s was %s", running.command_id, message)
        await self._state.record(running.command_id, outcome)
        self._interrupted = (running.command_id, outcome)

    async def run(self) -> None:
        """Runs commands as they are offered; returns once a terminate command succeeded."""
        if self._interrupted is not None:
            await self._ack(*self._interrupted)
            self._interrupted = None
        async for command in self._receive_command:
            outcome = self._state.outcome(command.command_id)
            ran = outcome is None
            if outcome is None:
                await self._state.begin(command.command_id)
                outcome = await self._execute(command)
                await self._state.record(command.command_id, outcome)
            else:
                self._log.info(
                    "command %s arrived again; acknowledging its recorded result",
                    command.command_id,
                )
            await self._ack(command.command_id, outcome)
            self._queued.discard(command.command_id)
            if (
                ran
                and command.type is m.CommandType.COMMAND_TYPE_REBOOT
                and outcome.result is _SUCCEEDED
            ):
                await self._start_reboot(command.command_id)
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
        except (BadParameter, StepFailed) as exc:
            outcome = Outcome(_FAILED, f"{kind}: {exc}")
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
            level = _diagnostic_level(command.parameters.get("level"))
            diagnosis = await self._health.diagnose(level)
            return Outcome(_SUCCEEDED if diagnosis.ok else _FAILED, diagnosis.summary)
        if command.type is t.COMMAND_TYPE_RESET_GPU:
            env = {"NAVARCH_NODE_ID": self._link.node_id, "NAVARCH_COMMAND_ID": command.command_id}
            return Outcome(_SUCCEEDED, await self._recovery.reset_gpu(command.parameters, env))
        if command.type is t.COMMAND_TYPE_REBOOT:
            if isinstance(self._reboot, NoReboot):
                return Outcome(_FAILED, f"reboot: {self._reboot.why}")
            # Recorded and acknowledged first: `run` starts the reboot afterwards.
            return Outcome(_SUCCEEDED, f"rebooting with {self._reboot.description}")
        # Cordoning is the control plane's own bookkeeping; the node has nothing to change.
        word = "cordoned" if command.type is t.COMMAND_TYPE_CORDON else "uncordoned"
        return Outcome(_SUCCEEDED, f"node {word}")

    async def _run_drain(self, command: m.NodeCommand) -> Outcome:
        timeout = self._config.drain_timeout
        if "timeout" in command.parameters:
            timeout = _drain_timeout(command.parameters["timeout"])
        env = {
            "NAVARCH_NODE_ID": self._link.node_id,
            "NAVARCH_COMMAND_ID": command.command_id,
            "NAVARCH_DRAIN_REASON": command.reason,
        }
        done = await self._drain(timeout / timedelta(seconds=1), env)
        return Outcome(_SUCCEEDED if done.ok else _FAILED, done.message)

    async def _start_reboot(self, command_id: str) -> None:
        self._log.warning("rebooting the machine with %s", self._reboot.description)
        started = await self._reboot()
        if started.ok:
            self._log.info("reboot command %s: %s", command_id, started.message)
            return
        # The command is acknowledged already; the control plane hears of this as a health event.
        self._log.error(
            "reboot command %s: the reboot did not start: %s", command_id, started.message
        )
        self._health.report_problem("reboot", f"the reboot did not start: {started.message}")

    async def _ack(self, command_id: str, outcome: Outcome) -> None:
        """Delivers the outcome, retrying while the control plane is away."""
        link = self._link
        request = m.AckCommandRequest(
            node_id=link.node_id,
            command_id=command_id,
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
                        command_id,
                        exc.message,
                        exc.code,
                    )
                    return
                delay = await link.recover(exc, generation, backoff)
            except Unreachable as exc:
                delay = await link.recover(exc, generation, backoff)
            await trio.sleep(delay)


def _diagnostic_level(text: str | None) -> int | None:
    """A run_diagnostic's `level` parameter, 1 to 4; None when the command has none."""
    if text is None:
        return None
    if text.strip() not in ("1", "2", "3", "4"):
        raise BadParameter(f"parameters.level: expected 1, 2, 3 or 4, got {text[:40]!r}")
    return int(text)


def _drain_timeout(text: str) -> timedelta:
    """A drain's `timeout` parameter, more than nothing and at most `MAX_DRAIN_TIMEOUT`."""
    try:
        timeout = parse_duration(text)
    except ValueError as exc:
        raise BadParameter(f"parameters.timeout: {exc}") from None
    except OverflowError:
        timeout = None
    if timeout is None or not timedelta(0) < timeout <= MAX_DRAIN_TIMEOUT:
        raise BadParameter(
            "parameters.timeout: expected a duration more than 0s and at most "
            f"{format_duration(MAX_DRAIN_TIMEOUT)}, got {text[:40]!r}"
        )
    return timeout

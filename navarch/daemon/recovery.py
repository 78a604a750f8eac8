"""Bringing a node's hardware back without replacing it: a GPU reset, and a reboot.

The control plane sends `reset_gpu` to a drained node for a GPU that the health policy says a
reset fixes. The daemon checks that nothing holds the GPU any more, resets it (the `reset_command`
of the `[daemon]` table on hardware, the scripted outcome on simulated GPUs), waits for NVML to
see the GPU again by its UUID, and runs the health checks, whose events go to the control plane
as every report's do. The command succeeds only when every step did; otherwise its message says
which step failed.

A `reboot` command is acknowledged before the machine goes down, since a rebooting machine
cannot acknowledge anything afterwards; the command runner records and acknowledges it, then
runs the `RebootAction`. Embedders (the fake provider's machines) pass an action that restarts
their simulated machine instead of running `reboot_command`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Protocol

import trio
from attrs import frozen

from navarch.daemon.config import DaemonConfig
from navarch.daemon.health import HealthReporter
from navarch.daemon.nodelog import NodeLog
from navarch.daemon.processes import CommandProcesses, Finished
from navarch.durations import format_duration
from navarch.model import GpuInfo, HealthEvent
from navarch.plugins.health_check import GpuBackend
from navarch.telemetry.nvml import GpuSample, NVMLError, RecoveryAction, Return

# How often the daemon looks for a reset GPU while it waits for NVML to see it again.
RETURN_POLL = 1.0
# The most health-check messages quoted in a failed reset's message.
QUOTED_EVENTS = 3


class BadParameter(Exception):
    """A command's parameter that the daemon cannot follow; the message names it."""


class StepFailed(Exception):
    """A step of a recovery failed; the message is one line that names the step."""

    def __init__(self, step: str, why: str) -> None:
        super().__init__(f"{step}: {why}")


@frozen
class RecoveryOutcome:
    ok: bool
    message: str


class GpuRecovery:
    """Resets one GPU of the node and checks that it came back healthy."""

    def __init__(
        self,
        backend: GpuBackend,
        config: DaemonConfig,
        health: HealthReporter,
        processes: CommandProcesses,
        log: NodeLog,
    ) -> None:
        self._backend = backend
        self._config = config
        self._health = health
        self._processes = processes
        self._log = log

    async def reset_gpu(self, parameters: Mapping[str, str], env: Mapping[str, str]) -> str:
        """Runs every step; returns what was done, or raises `StepFailed` or `BadParameter`."""
        gpu = gpu_parameter(parameters, self._backend.inventory())
        if self._backend.hardware and not self._config.reset_command:
            raise StepFailed("reset", "no reset_command is configured on this node")
        self._check_processes(gpu.index)
        self._log.info("resetting GPU %d (%s)", gpu.index, gpu.uuid)

        async def command() -> None:
            await self._run_reset_command(gpu, env)

        try:
            await self._backend.reset(gpu.index, command)
        except StepFailed:
            raise
        except Exception as exc:
            raise StepFailed("reset", str(exc) or type(exc).__name__) from None
        back = await self._wait_for_return(gpu)
        await self._check_health(gpu, back)
        return f"GPU {gpu.index} ({gpu.uuid}) was reset and passes its health checks"

    def _check_processes(self, index: int) -> None:
        try:
            pids = self._backend.running_processes(index)
        except NVMLError as exc:
            raise StepFailed(
                "processes", f"cannot list the processes on GPU {index}: {exc}"
            ) from None
        if pids:
            listed = ", ".join(str(p) for p in sorted(set(pids)))
            raise StepFailed(
                "processes",
                f"GPU {index} is still in use by pids {listed}; the drain must end them first",
            )

    async def _run_reset_command(self, gpu: GpuInfo, env: Mapping[str, str]) -> None:
        command = self._config.reset_command.replace("{gpu}", str(gpu.index))
        timeout = self._config.reset_timeout
        environment = {
            **os.environ,
            **env,
            "NAVARCH_GPU_INDEX": str(gpu.index),
            "NAVARCH_GPU_UUID": gpu.uuid,
        }
        result: Finished | None = None
        with trio.move_on_after(timeout / timedelta(seconds=1)):
            try:
                result = await self._processes.run(["/bin/sh", "-c", command], environment)
            except OSError as exc:
                raise StepFailed(
                    "reset", f"the reset command could not start: {exc.strerror}"
                ) from None
        if result is None:
            raise StepFailed(
                "reset",
                f"the reset command timed out after {format_duration(timeout)} and was killed",
            )
        if result.returncode != 0:
            output = result.tail()
            raise StepFailed(
                "reset", f"the reset command {result.status()}" + (f": {output}" if output else "")
            )

    async def _wait_for_return(self, gpu: GpuInfo) -> GpuSample:
        """The GPU's first good sample after the reset, found by its UUID (its index may move)."""
        timeout = self._config.gpu_return_timeout
        with trio.move_on_after(timeout / timedelta(seconds=1)):
            while True:
                found = _find(self._backend.sample(), gpu)
                if found is not None and found.status == Return.SUCCESS:
                    return found
                await trio.sleep(RETURN_POLL)
        raise StepFailed(
            "return",
            f"GPU {gpu.index} ({gpu.uuid}) did not come back within {format_duration(timeout)}",
        )

    async def _check_health(self, gpu: GpuInfo, sample: GpuSample) -> None:
        events = await self._health.check_now()
        mine = [e for e in events if _about(e, gpu, sample.index)]
        if mine:
            quoted = "; ".join(e.message or e.type.value for e in mine[:QUOTED_EVENTS])
            more = f" (and {len(mine) - QUOTED_EVENTS} more)" if len(mine) > QUOTED_EVENTS else ""
            raise StepFailed(
                "checks", f"GPU {gpu.index} still fails its health checks: {quoted}{more}"
            )
        action = sample.recovery_action
        if action:
            try:
                name = RecoveryAction(action).name
            except ValueError:
                name = str(action)
            raise StepFailed("checks", f"the driver still asks for {name} on GPU {gpu.index}")


def gpu_parameter(parameters: Mapping[str, str], inventory: Sequence[GpuInfo]) -> GpuInfo:
    """The GPU that `parameters.gpu` names by its index."""
    text = parameters.get("gpu")
    indexes = ", ".join(str(g.index) for g in inventory) or "none"
    if text is None:
        raise BadParameter(f"parameters.gpu: required, the index of a GPU ({indexes})")
    try:
        index = int(text.strip())
    except ValueError:
        index = None
    gpu = next((g for g in inventory if g.index == index), None)
    if gpu is None:
        raise BadParameter(
            f"parameters.gpu: expected the index of a GPU of this node ({indexes}), "
            f"got {text[:40]!r}"
        )
    return gpu


def _find(samples: Sequence[GpuSample], gpu: GpuInfo) -> GpuSample | None:
    for sample in samples:
        if gpu.uuid and sample.uuid == gpu.uuid:
            return sample
    # A GPU that does not answer has no UUID in its sample; its index is all there is.
    return next((s for s in samples if s.index == gpu.index and s.uuid is None), None)


def _about(event: HealthEvent, gpu: GpuInfo, index: int) -> bool:
    if event.gpu_uuid:
        return event.gpu_uuid == gpu.uuid
    return event.gpu_index == index


class RebootAction(Protocol):
    """What a `reboot` command does once it is acknowledged."""

    # How the machine reboots, for the command's message: "rebooting with <description>".
    description: str

    async def __call__(self) -> RecoveryOutcome:
        """Starts the reboot; returns how starting it went (a reboot that starts may not return)."""
        ...


class ShellReboot:
    """Runs `/bin/sh -c COMMAND` (`reboot_command`, `systemctl reboot` by default)."""

    def __init__(self, command: str, processes: CommandProcesses) -> None:
        self.command = command
        self.description = command
        self._processes = processes

    async def __call__(self) -> RecoveryOutcome:
        try:
            result = await self._processes.run(["/bin/sh", "-c", self.command], dict(os.environ))
        except OSError as exc:
            return RecoveryOutcome(False, f"the reboot command could not start: {exc.strerror}")
        if result.returncode != 0:
            output = result.tail()
            return RecoveryOutcome(
                False, f"the reboot command {result.status()}" + (f": {output}" if output else "")
            )
        return RecoveryOutcome(True, f"{self.command} started the reboot")


class NoReboot:
    """The action where the daemon must not reboot: no command, or GPUs that are simulated."""

    def __init__(self, why: str) -> None:
        self.why = why
        self.description = ""

    async def __call__(self) -> RecoveryOutcome:
        return RecoveryOutcome(False, self.why)

"""Draining a node: moving its work off before it leaves service.

The daemon runs one drain action when the control plane sends a DRAIN command, and acknowledges
the command with the outcome. The usual action is the operator's own shell command (`drain_command`
in the `[daemon]` table); embedders (the fake provider, the simulator) pass any `DrainAction`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Protocol

import trio
from attrs import frozen

from navarch.daemon.nodelog import NodeLog
from navarch.daemon.processes import CommandProcesses, Finished
from navarch.daemon.state import DaemonState
from navarch.durations import format_duration


@frozen
class DrainOutcome:
    ok: bool
    message: str


class DrainAction(Protocol):
    async def __call__(self, timeout: float, env: Mapping[str, str]) -> DrainOutcome:
        """Drains the node within `timeout` seconds. `env` describes the command (node id...)."""
        ...


class NothingToDrain:
    """The action of a node with no drain command: there is no work to move."""

    async def __call__(self, timeout: float, env: Mapping[str, str]) -> DrainOutcome:
        return DrainOutcome(True, "no drain command is configured; nothing to drain")


class ShellDrain:
    """Runs `/bin/sh -c COMMAND`, ended when the timeout passes; exit status 0 is success.

    The command sees NAVARCH_NODE_ID, NAVARCH_COMMAND_ID and NAVARCH_DRAIN_REASON in its
    environment. It runs in a process group of its own, which ends with it (`processes`). A
    failure's message is the tail of its stderr (or stdout when stderr is empty).
    """

    def __init__(self, command: str, processes: CommandProcesses | None = None) -> None:
        self.command = command
        self._processes = processes or CommandProcesses(DaemonState(), NodeLog(""))

    async def __call__(self, timeout: float, env: Mapping[str, str]) -> DrainOutcome:
        result: Finished | None = None
        with trio.move_on_after(timeout):
            try:
                result = await self._processes.run(
                    ["/bin/sh", "-c", self.command], {**os.environ, **env}
                )
            except OSError as exc:
                return DrainOutcome(False, f"drain command could not start: {exc.strerror}")
        if result is None:
            return DrainOutcome(
                False,
                f"drain command timed out after {format_duration(timedelta(seconds=timeout))} "
                "and was killed",
            )
        output = result.tail()
        if result.returncode == 0:
            return DrainOutcome(True, output or "drain command succeeded")
        return DrainOutcome(
            False, f"drain command {result.status()}" + (f": {output}" if output else "")
        )

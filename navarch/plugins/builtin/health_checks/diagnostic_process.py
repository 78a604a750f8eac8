"""Running a diagnostic's program (dcgmi, an NCCL benchmark) with a timeout that ends it and
every process it started."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import trio


class DiagnosticTimedOut(Exception):
    """The program ran past its timeout; it and its children were killed."""


async def run_diagnostic_process(
    command: Sequence[str], seconds: float
) -> subprocess.CompletedProcess[bytes]:
    """Runs `command` in a session of its own and returns what it printed; raises
    `DiagnosticTimedOut` after `seconds`, and OSError when it cannot start."""
    import trio  # here, so that loading the plugins keeps every navarch command fast

    try:
        with trio.fail_after(seconds):
            return await trio.run_process(
                list(command),
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                start_new_session=True,
                deliver_cancel=_kill_group,
            )
    except trio.TooSlowError:
        raise DiagnosticTimedOut(
            f"{command[0]} did not finish within {seconds:g}s; it was killed"
        ) from None


async def _kill_group(process: trio.Process) -> None:
    # Diagnostics start children (dcgmi's nvvs and its tests, mpirun's ranks); they all go.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

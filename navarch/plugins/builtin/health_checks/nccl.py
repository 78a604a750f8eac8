"""The `nccl` health check: NCCL all-reduce bus bandwidth, measured when the control plane asks.

A configured command, such as nccl-tests' `all_reduce_perf -b 1G -e 1G -g 8`, runs on a
run_diagnostic command. Its output ends with the line `# Avg bus bandwidth : 390.031`, in GB/s;
a bandwidth below `min_bus_bandwidth_gbps`, a command that fails, and one that runs past its
timeout fail the diagnostic. Without a command the check runs nothing.
"""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from attrs import field, frozen

from navarch.plugins import Diagnosis, HealthEvent, HealthEventType, WallClock, validators
from navarch.plugins.builtin.health_checks.diagnostic_process import (
    DiagnosticTimedOut,
    run_diagnostic_process,
)

if TYPE_CHECKING:
    pass

_BUS_BANDWIDTH = re.compile(r"^#\s*Avg bus bandwidth\s*:\s*([0-9.]+)", re.MULTILINE)
TEST = "nccl_all_reduce"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@frozen(kw_only=True)
class NcclCheckSettings:
    # The all-reduce benchmark to run, split like a shell would split it; empty runs nothing.
    command: str = ""
    # The least average bus bandwidth, in GB/s, that passes.
    min_bus_bandwidth_gbps: float = field(default=0.0, validator=validators.at_least(0))
    timeout: timedelta = field(default=timedelta(minutes=10), validator=validators.positive)


class NcclCheck:
    """Runs an NCCL all-reduce benchmark on demand and compares its bus bandwidth."""

    Settings = NcclCheckSettings

    def __init__(self, settings: NcclCheckSettings, *, wall_clock: WallClock = _utc_now) -> None:
        self.settings = settings
        self._wall_clock = wall_clock

    async def diagnose(self, level: int | None) -> Diagnosis | None:
        if not self.settings.command:
            return None
        try:
            output = await self._run()
        except _Failed as exc:
            return self._diagnosis("fail", str(exc), {})
        found = _BUS_BANDWIDTH.findall(output)
        if not found:
            return self._diagnosis("fail", "its output has no '# Avg bus bandwidth' line", {})
        bandwidth = float(found[-1])
        least = self.settings.min_bus_bandwidth_gbps
        metrics = {"bus_bandwidth_gbps": bandwidth, "min_bus_bandwidth_gbps": least}
        if bandwidth < least:
            why = f"bus bandwidth {bandwidth:g} GB/s is below the minimum of {least:g} GB/s"
            return self._diagnosis("fail", why, metrics)
        return self._diagnosis("pass", f"bus bandwidth {bandwidth:g} GB/s", metrics)

    def _diagnosis(self, result: str, message: str, metrics: dict[str, float]) -> Diagnosis:
        event = HealthEvent(
            type=HealthEventType.DIAGNOSTIC,
            time=self._wall_clock(),
            message=f"NCCL all-reduce: {result}: {message}",
            metrics=metrics,
            details={"check": "nccl", "category": "NCCL", "test": TEST, "result": result},
        )
        return Diagnosis(ok=result != "fail", summary=f"nccl: {message}", events=(event,))

    async def _run(self) -> str:
        command = shlex.split(self.settings.command)
        try:
            done = await run_diagnostic_process(command, self.settings.timeout.total_seconds())
        except DiagnosticTimedOut as exc:
            raise _Failed(str(exc)) from None
        except OSError as exc:
            raise _Failed(f"cannot run {command[0]}: {exc}") from None
        if done.returncode != 0:
            said = done.stderr.decode(errors="replace").strip().splitlines()
            raise _Failed(
                f"{command[0]} exited with {done.returncode}" + (f": {said[-1]}" if said else "")
            )
        return str(done.stdout.decode(errors="replace"))


class _Failed(Exception):
    """The benchmark did not give a bandwidth."""

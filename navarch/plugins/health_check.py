"""The health-check contract: what a check on the node daemon gets and gives back.

A check has `run`, `watch`, `diagnose`, or several of them. The daemon calls `run` every
health-check interval with one sample of every GPU, starts `watch` once, as a task that reports
events as they happen, and calls `diagnose` only when the control plane asks the node to run its
diagnostics (a run_diagnostic command), since a diagnostic takes the GPUs for a while. A
check that has `watch` takes over the GPU backend's event stream (`NodeWatch.gpus.watch_events`):
while one is installed, the daemon no longer passes the backend's events on itself. Events use the
types, metric names and detail names that the default health policy reads (docs/health.md).

The GPU readings are NVML's own, whatever the backend: `navarch.plugins.telemetry.GpuSample`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from attrs import field, frozen

from navarch.model import GpuInfo, HealthEvent, HealthEventType

if TYPE_CHECKING:
    from navarch.telemetry.nvml import GpuSample


@frozen(kw_only=True)
class GpuEvent:
    """Something a GPU reported as it happened: an XID, a lost GPU, an uncorrectable error."""

    type: HealthEventType
    gpu_index: int
    xid: int = 0
    message: str = ""
    details: dict[str, str] = field(factory=dict)


ReportEvents = Callable[[Sequence[GpuEvent]], None]


class GpuBackend(Protocol):
    """The daemon's view of a machine's GPUs."""

    # True when the GPUs are the machine's own (NVML); False when they are simulated.
    hardware: bool

    def inventory(self) -> Sequence[GpuInfo]:
        """The GPUs present when the daemon starts, in index order."""
        ...

    def sample(self) -> Sequence[GpuSample]:
        """Current readings of every GPU; cheap enough to call every heartbeat."""
        ...

    async def watch_events(self, report: ReportEvents) -> None:
        """Calls `report` with each batch of events as they happen; runs until cancelled."""
        ...

    def running_processes(self, index: int) -> Sequence[int]:
        """The pids of the processes that hold GPU `index` now."""
        ...

    async def reset(self, index: int, command: Callable[[], Awaitable[None]]) -> None:
        """Resets GPU `index`. Hardware lets go of the GPU and awaits `command` (the node's reset
        command, which raises when it fails); a simulated machine plays its scripted outcome
        instead. Raises, with one line, when the reset itself failed. Whether the GPU came back
        is for `sample` to show."""
        ...


@frozen
class NodeWatch:
    """What a watching health check gets: `async def watch(self, node: NodeWatch) -> None`.

    `watch` runs until cancelled; when it raises, the daemon reports a CHECK_FAILED event and
    starts it again after a minute.
    """

    gpus: GpuBackend
    inventory: tuple[GpuInfo, ...]
    # Empty when the daemon keeps no state across restarts.
    state_dir: str
    report: Callable[[Sequence[HealthEvent]], None]
    wall_clock: Callable[[], datetime]


@runtime_checkable
class HealthCheck(Protocol):
    """A check that the daemon runs every health-check interval."""

    def run(
        self, gpus: Sequence[GpuSample]
    ) -> Iterable[HealthEvent] | Awaitable[Iterable[HealthEvent]]:
        """The problems found in one sample of every GPU; may be a coroutine function."""
        ...


@runtime_checkable
class WatchingHealthCheck(Protocol):
    """A check that reports events as they happen."""

    async def watch(self, node: NodeWatch) -> None: ...


@frozen(kw_only=True)
class Diagnosis:
    """What one on-demand diagnostic found."""

    # False when the diagnostic found a fault, timed out or could not run: the run_diagnostic
    # command fails.
    ok: bool
    # One line for the command's result ("level 1: 11 passed, 1 warned").
    summary: str
    # Sent to the control plane, which judges them with the health policy.
    events: tuple[HealthEvent, ...] = ()


@runtime_checkable
class DiagnosingHealthCheck(Protocol):
    """A check with an expensive diagnostic that runs only when the control plane asks."""

    async def diagnose(self, level: int | None) -> Diagnosis | None:
        """Runs the diagnostic at `level` (1 to 4; None: the check's configured level); None
        when the check has nothing to run on this node."""
        ...


# Any one of the contracts above; the daemon sorts its checks by the ones they meet.
AnyHealthCheck = HealthCheck | WatchingHealthCheck | DiagnosingHealthCheck

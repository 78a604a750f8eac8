"""The `boot` health check: a GPU machine has the GPUs it should."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import attrs
from attrs import field, frozen

from navarch.plugins import HealthEvent, HealthEventType, WallClock, validators
from navarch.plugins.builtin.health_checks.repeats import Repeats

if TYPE_CHECKING:
    from navarch.plugins.telemetry import GpuSample


def _utc_now() -> datetime:
    return datetime.now(UTC)


@frozen(kw_only=True)
class BootCheckSettings:
    # GPUs this machine should have; unset means as many as the daemon found when it started.
    expected_gpus: int | None = field(
        default=None, validator=attrs.validators.optional(validators.at_least(0))
    )
    repeat_every: timedelta = field(default=timedelta(minutes=5), validator=validators.positive)


class BootCheck:
    """A GPU machine whose driver shows no GPUs, or not the GPUs it should have, is not healthy.

    Runs at the daemon's first health check, and on every one after it.
    """

    Settings = BootCheckSettings

    def __init__(self, settings: BootCheckSettings, *, wall_clock: WallClock = _utc_now) -> None:
        self._expected = settings.expected_gpus
        self._repeats = Repeats(settings.repeat_every.total_seconds())
        self._wall_clock = wall_clock

    def run(self, gpus: Sequence[GpuSample]) -> list[HealthEvent]:
        count = len(gpus)
        if self._expected is None and count:
            self._expected = count
        if count == 0:
            message = "NVML loaded but found no GPUs"
        elif count != self._expected:
            message = f"NVML found {count} GPUs; this machine should have {self._expected}"
        else:
            message = ""
        if not self._repeats.due(("boot",), ongoing=bool(message), news=False, signature=count):
            return []
        metrics = {"gpu_count": float(count)}
        if self._expected is not None:
            metrics["expected_gpus"] = float(self._expected)
        return [
            HealthEvent(
                type=HealthEventType.BOOT,
                time=self._wall_clock(),
                message=message,
                metrics=metrics,
            )
        ]

"""Day and hour windows in a time zone, for the `scheduled` autoscaler.

A window is compared with the local wall-clock time of its zone, so "08:00" stays 08:00 across
daylight-saving changes. A window whose end is earlier than its start crosses midnight and
belongs to the day it starts on: `days = ["fri"]`, 22:00 to 06:00 covers Friday night until
Saturday 06:00.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo

import attrs
from attrs import field, frozen

from navarch.plugins import ConfigValueError

_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAYS: dict[str, int] = {
    **{name: i for i, name in enumerate(_DAY_NAMES)},
    **{name[:3]: i for i, name in enumerate(_DAY_NAMES)},
}
_CLOCK = re.compile(r"(\d{2}):(\d{2})")


def clock_minutes(text: str) -> int:
    """Minutes after midnight of "HH:MM"; "24:00" is the end of the day."""
    match = _CLOCK.fullmatch(text)
    if not match:
        raise ValueError(text)
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise ValueError(text)
    return hours * 60 + minutes


def _check_days(
    _inst: object, _attribute: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]
) -> None:
    for day in value:
        if day.lower() not in DAYS:
            raise ConfigValueError(
                f'days: expected day names such as "mon" or "monday", got "{day}"'
            )


def _check_clock(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    last = "24:00" if attribute.name == "end" else "23:59"
    try:
        minutes = clock_minutes(value)
    except ValueError:
        minutes = -1
    if not 0 <= minutes <= clock_minutes(last):
        raise ConfigValueError(
            f'{attribute.name}: expected a time from "00:00" to "{last}", got "{value}"'
        )


def _check_count(_inst: object, attribute: attrs.Attribute[int | None], value: int | None) -> None:
    if value is not None and value < 0:
        raise ConfigValueError(f"{attribute.name}: expected at least 0, got {value}")


@frozen(kw_only=True)
class ScheduleWindow:
    start: str = field(validator=_check_clock)
    end: str = field(validator=_check_clock)
    # Empty means every day.
    days: tuple[str, ...] = field(default=(), validator=_check_days)
    # Bounds while the window is active; empty means the pool's own.
    min_nodes: int | None = field(default=None, validator=_check_count)
    max_nodes: int | None = field(default=None, validator=_check_count)

    @end.validator
    def _not_start(self, _attribute: attrs.Attribute[str], value: str) -> None:
        if clock_minutes(value) == clock_minutes(self.start):
            raise ConfigValueError(
                f'end: expected a time other than start ("{self.start}"); '
                'a whole day is "00:00" to "24:00"'
            )

    @max_nodes.validator
    def _above_min(self, _attribute: attrs.Attribute[int | None], value: int | None) -> None:
        if value is not None and self.min_nodes is not None and value < self.min_nodes:
            raise ConfigValueError(
                f"max_nodes: expected at least min_nodes ({self.min_nodes}), got {value}"
            )

    def contains(self, local: datetime) -> bool:
        """Whether the window is active at `local`, a time in the window's zone."""
        weekdays = {DAYS[d.lower()] for d in self.days} or set(range(7))
        start, end = clock_minutes(self.start), clock_minutes(self.end)
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        if start < end:
            return day in weekdays and start <= minute < end
        return (day in weekdays and minute >= start) or ((day - 1) % 7 in weekdays and minute < end)

    def describe(self) -> str:
        days = ",".join(d.lower()[:3] for d in self.days) or "every day"
        return f"{days} {self.start}-{self.end}"


def active_window(
    windows: Sequence[ScheduleWindow], now: datetime, zone: tzinfo
) -> ScheduleWindow | None:
    """The first window active at `now` in `zone`; a naive `now` is read as UTC."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    local = now.astimezone(zone)
    return next((w for w in windows if w.contains(local)), None)

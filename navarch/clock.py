"""The two kinds of time navarch uses, owned by one `Clock`.

Deadlines, timeouts and "how long since" come from `trio.current_time()`, so tests and the
simulator can run on `trio.testing.MockClock`. Timestamps that people read (a node's last
heartbeat, an event's time) come from the wall clock. A service owns one `Clock` and hands it to
everything it runs; the simulator gives it one whose wall clock follows virtual time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

WallClock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Clock:
    """trio's clock for deadlines, and a wall clock for timestamps."""

    def __init__(self, wall: WallClock = utc_now) -> None:
        self._wall = wall

    def now(self) -> datetime:
        """The wall-clock time, for timestamps people read."""
        return self._wall()

    @staticmethod
    def monotonic() -> float:
        """trio's time, for deadlines and ages."""
        import trio

        return trio.current_time()


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, fractions of a second only where there are any."""
    value = value.astimezone(UTC)
    # strftime's %Y does not pad years before 1000 to four digits, which RFC 3339 requires.
    text = f"{value.year:04d}-{value:%m-%dT%H:%M:%S}"
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"

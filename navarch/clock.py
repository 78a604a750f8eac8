"""The two kinds of time navarch uses.

Deadlines, timeouts and "how long since" come from `trio.current_time()`, so tests and the simulator
can run on `trio.testing.MockClock`. Timestamps that people read (a node's last heartbeat, an
event's time) come from `utc_now()`. Code that needs both takes a `WallClock` so that the simulator
can make its timestamps follow virtual time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

WallClock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, fractions of a second only where there are any."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"

"""How values read on the report page: counts, clocks, latencies and notes.

A value the report does not have (a failure with no XID code, a latency never measured) reads as
a dash, the same way in every chart and table.
"""

from __future__ import annotations

from html import escape

NONE = "\u2013"


def number(value: float | None) -> str:
    if value is None:
        return NONE
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def optional(value: object) -> str:
    return NONE if value is None else escape(str(value))


def clock(seconds: float) -> str:
    """m:ss under an hour, h:mm:ss from then on."""
    return clock_long(seconds) if seconds >= 3600 else clock_short(seconds)


def clock_short(seconds: float) -> str:
    """m:ss for any time, so that a run of exactly an hour ends at 60:00 on its axis."""
    total = round(seconds)
    return f"{total // 60}:{total % 60:02d}"


def clock_long(seconds: float) -> str:
    total = round(seconds)
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def secs(seconds: float | None) -> str:
    """A latency: seconds with one decimal under a minute, a clock from then on."""
    if seconds is None:
        return NONE
    if seconds < 60:
        return f"{seconds:.1f} s" if not float(seconds).is_integer() else f"{seconds:.0f} s"
    return clock(seconds)


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'

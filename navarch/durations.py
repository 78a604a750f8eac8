"""Durations as people write them in configuration: "500ms", "30s", "5m", "1h30m", "1d"."""

from __future__ import annotations

import json
import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: object) -> timedelta:
    """Parses a duration string; a bare number is refused because its unit would be a guess."""
    if isinstance(text, bool) or not isinstance(text, str):
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            raise ValueError(f'a duration needs a unit, like "{text}s"; got {text}')
        raise ValueError(f'expected a duration such as "30s", got {json.dumps(text)}')
    s = text.strip()
    pos = 0
    total = 0.0
    for match in _PART.finditer(s):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not s or pos != len(s):
        raise ValueError(
            'expected a duration such as "500ms", "30s", "5m", "1h30m" or "1d", '
            f"got {json.dumps(text)}"
        )
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    """The shortest string that `parse_duration` turns back into `value`."""
    ms = round(value.total_seconds() * 1000)
    if ms == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)

"""`--set KEY=VALUE` overrides, applied to a scenario's raw table before any check.

A value set here meets the same checks as one written in the file, which is how the test suite runs
the stress scenarios at a reduced size and how `navarch sim run --seed` changes a run's seed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from typing import Any


def apply_overrides(
    data: dict[str, Any], overrides: Sequence[str], problems: list[str]
) -> dict[str, Any]:
    """Applies `KEY.PATH=VALUE` overrides; VALUE is TOML (`100`, `"5m"`, `true`).

    A number in the path indexes an array: `events.1.min=300` is the second event's `min`.
    """
    for override in overrides:
        key, sep, raw = override.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"--set {override!r}: expected KEY=VALUE")
            continue
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            # A bare word is a string, as people write `--set duration=5m`.
            value = raw.strip()
        problem = _set_path(data, key.split("."), value)
        if problem:
            problems.append(f"--set {key}: {problem}")
    return data


def _set_path(data: dict[str, Any], parts: list[str], value: Any) -> str:
    container: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[:depth]) or "the scenario"
        if isinstance(container, list):
            if not part.isdigit() or int(part) >= len(container):
                return f"{where} has no item {part} (it has {len(container)})"
            index: Any = int(part)
        elif isinstance(container, dict):
            index = part
            if not last and index not in container:
                container[index] = {}
        else:
            return f"{where} is not a table or an array"
        if last:
            container[index] = value
        else:
            container = container[index]
    return ""

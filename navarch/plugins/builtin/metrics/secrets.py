"""Secrets of the metrics sources, read from the environment variables their settings name."""

from __future__ import annotations

import os

from navarch.plugins import NavarchError


def from_env(source: str, key: str, variable: str) -> str:
    """The value of `variable` (named by the setting `key` of `source`); "" when no variable is
    named. A named variable that is unset or empty is an error that says so."""
    if not variable:
        return ""
    value = os.environ.get(variable, "")
    if not value:
        raise NavarchError(f"{source}: {key}: the environment variable {variable} is not set")
    return value

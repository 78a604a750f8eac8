"""attrs validators for settings classes, with the messages navarch uses everywhere.

Each raises `ConfigValueError` with a message that starts with the attribute's name, so a problem
reads `pools.training.autoscaler.scale_up_at: expected a number from 0 to 100, got 150` wherever
the class is used:

    @frozen(kw_only=True)
    class MySettings:
        url: str = field(validator=validators.url)
        timeout: timedelta = field(default=timedelta(seconds=5), validator=validators.positive)
        retries: int = field(default=3, validator=validators.at_least(0))
"""

from __future__ import annotations

from collections.abc import Callable, Sized
from datetime import timedelta
from typing import Any

import attrs

from navarch.durations import format_duration
from navarch.errors import ConfigValueError
from navarch.hints import show_toml

# What attrs calls: (the instance, the attribute, the value). Any: attrs types the attribute by
# the value it holds, which each validator narrows for itself.
Validator = Callable[[object, "attrs.Attribute[Any]", Any], None]


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def at_least(minimum: float) -> Validator:
    """The value is `minimum` or more."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
        if value < minimum:
            raise ConfigValueError(
                f"{attribute.name}: expected at least {_number(minimum)}, got {_number(value)}"
            )

    return check


def between(low: float, high: float) -> Validator:
    """The value is a number from `low` to `high`, both included."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
        if not low <= value <= high:
            raise ConfigValueError(
                f"{attribute.name}: expected a number from {_number(low)} to {_number(high)}, "
                f"got {_number(value)}"
            )

    return check


percent = between(0, 100)
fraction = between(0, 1)


def positive(_inst: object, attribute: attrs.Attribute[Any], value: timedelta | None) -> None:
    """A duration above zero (None, for an optional duration, passes)."""
    if value is not None and value <= timedelta(0):
        raise ConfigValueError(
            f'{attribute.name}: expected a positive duration, got "{format_duration(value)}"'
        )


def not_negative(_inst: object, attribute: attrs.Attribute[Any], value: timedelta) -> None:
    """A duration of zero or more."""
    if value < timedelta(0):
        raise ConfigValueError(f"{attribute.name}: expected a duration of 0s or more")


def one_of(*choices: str) -> Validator:
    """The value is one of `choices`."""
    listed = ", ".join(f'"{c}"' for c in choices[:-1]) + f' or "{choices[-1]}"'

    def check(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
        if value not in choices:
            raise ConfigValueError(f"{attribute.name}: expected {listed}, got {show_toml(value)}")

    return check


def url(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    """An http:// or https:// URL with a host."""
    scheme, sep, rest = value.partition("://")
    if scheme not in ("http", "https") or not sep or not rest:
        raise ConfigValueError(
            f"{attribute.name}: expected an http:// or https:// URL, got {show_toml(value)}"
        )


def optional_url(inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    """Empty, or an http:// or https:// URL with a host."""
    if value:
        url(inst, attribute, value)


def not_empty(what: str) -> Validator:
    """A list or table with at least one `what` in it."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: Sized) -> None:
        if not len(value):
            raise ConfigValueError(f"{attribute.name}: expected at least one {what}, got none")

    return check

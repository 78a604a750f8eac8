"""The checks a scenario's classes run on their own values.

Each raises `ConfigValueError` with a message that starts with the key's name; `structure` puts
the path of the table in front of it, so a problem reads `chaos.cascade.probability: expected a
number from 0 to 1, got 2`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from navarch.errors import ConfigValueError


def at_least(low: float) -> Any:
    def check(_inst: Any, attribute: attrs.Attribute, value: float | None) -> None:
        if value is not None and value < low:
            raise ConfigValueError(f"{attribute.name}: expected {low:g} or more, got {value:g}")

    return check


def fraction(_inst: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0 <= value <= 1:
        raise ConfigValueError(f"{attribute.name}: expected a number from 0 to 1, got {value:g}")


def one_of(choices: Sequence[str]) -> Any:
    """A key that takes one of `choices`; None stands for a key that was not given."""

    def check(_inst: Any, attribute: attrs.Attribute, value: str | None) -> None:
        if value is not None and value not in choices:
            raise ConfigValueError(
                f"{attribute.name}: expected one of {', '.join(choices)}, got {value!r}"
            )

    return check


def weights(_inst: Any, attribute: attrs.Attribute, value: Mapping[str, float]) -> None:
    for key, weight in value.items():
        if weight < 0:
            raise ConfigValueError(f"{attribute.name}.{key}: expected 0 or more, got {weight:g}")
    if value and not any(value.values()):
        raise ConfigValueError(f"{attribute.name}: at least one weight must be above 0")

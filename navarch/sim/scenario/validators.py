"""Validators of scenario keys: navarch's own, where a key left out is None rather than a default.

Every message is the one `navarch.plugins.validators` gives, so a scenario reads like the
configuration it embeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from navarch.errors import ConfigValueError
from navarch.plugins import validators
from navarch.plugins.validators import Validator

fraction = validators.fraction
not_negative = validators.not_negative


def at_least(low: float) -> Validator:
    """The value, when given, is `low` or more."""
    return attrs.validators.optional(validators.at_least(low))


def between(low: float, high: float) -> Validator:
    """The value, when given, is from `low` to `high`."""
    return attrs.validators.optional(validators.between(low, high))


def one_of(choices: Sequence[str]) -> Validator:
    """The value, when given, is one of `choices` (so an empty string is refused)."""
    return attrs.validators.optional(validators.one_of(*choices))


def weights(_inst: object, attribute: attrs.Attribute[Any], value: Mapping[str, float]) -> None:
    for key, weight in value.items():
        if weight < 0:
            raise ConfigValueError(f"{attribute.name}.{key}: expected 0 or more, got {weight:g}")
    if value and not any(value.values()):
        raise ConfigValueError(f"{attribute.name}: at least one weight must be above 0")

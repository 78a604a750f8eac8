"""Secrets of the Slack and PagerDuty notifiers, read from the environment variables that their
tables name, so that a configuration file never holds them."""

from __future__ import annotations

import os
import re
from typing import Any

import attrs

from navarch.plugins import ConfigValueError, NavarchError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def env_name(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    """The name of an environment variable, never the secret itself."""
    if _NAME.match(value):
        return
    what = "a URL" if "://" in value else "an empty string" if not value else "not a variable name"
    raise ConfigValueError(
        f"{attribute.name}: expected the name of an environment variable that holds the "
        f"secret, got {what}; keep the secret out of the file, in that variable"
    )


def read_secret(notifier: str, key: str, variable: str, what: str) -> str:
    """The value of `variable`, which the table `notifiers.NOTIFIER` names with `key`; an
    unset or empty variable is an error that says what to put in it."""
    value = os.environ.get(variable, "").strip()
    if not value:
        raise NavarchError(
            f"notifiers.{notifier}.{key}: the environment variable {variable} is not set; "
            f"set it to {what}"
        )
    return value

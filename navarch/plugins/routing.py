"""Routing: which events a notifier sends, by kind and by severity.

Every built-in notifier's settings class derives from `NotifierSettings`, so each
`[notifiers.NAME]` table takes `kinds` and `min_severity`; a third-party notifier gets the same
keys, checked the same way, by deriving its own settings class from it:

    @frozen(kw_only=True)
    class PagerSettings(NotifierSettings):
        number: str
        # Overriding a default keeps the key's checks.
        min_severity: str = min_severity_setting("critical")

    class Pager:
        Settings = PagerSettings

        def notify(self, event):
            if self.settings.admits(event):
                ...
"""

from __future__ import annotations

from typing import Any

import attrs
from attrs import field, frozen

from navarch.errors import ConfigValueError
from navarch.hints import did_you_mean, show_toml
from navarch.model import Event
from navarch.plugins.severity import EVENT_SEVERITIES, Severity, severity_of

SEVERITY_NAMES = tuple(s.value for s in Severity)

# "remediation.*" and the like: every family of kinds, by the part before the dot.
KIND_PATTERNS = tuple(
    sorted(EVENT_SEVERITIES) + sorted({k.split(".")[0] + ".*" for k in EVENT_SEVERITIES})
)


def _kinds(_inst: object, _attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    for i, pattern in enumerate(value):
        if pattern not in KIND_PATTERNS:
            raise ConfigValueError(
                f"kinds[{i}]: unknown event kind {show_toml(pattern)}"
                f"{did_you_mean(pattern, KIND_PATTERNS)}; docs/notifications.md lists them"
            )


def _severity(_inst: object, _attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in SEVERITY_NAMES:
        listed = ", ".join(f'"{s}"' for s in SEVERITY_NAMES)
        raise ConfigValueError(
            f"min_severity: expected one of {listed}, got {show_toml(value)}"
            f"{did_you_mean(value, SEVERITY_NAMES)}"
        )


def kind_matches(kind: str, patterns: tuple[str, ...]) -> bool:
    """Whether `kind` is one of `patterns` or in a family of them (`remediation.*`); no
    patterns match every kind."""
    return not patterns or any(
        kind == p or (p.endswith(".*") and kind.startswith(p[:-1])) for p in patterns
    )


def kinds_setting(default: tuple[str, ...] = ()) -> Any:
    """The `kinds` key, for a settings class that sends other kinds by default."""
    return field(default=default, validator=_kinds)


def min_severity_setting(default: str = "info") -> Any:
    """The `min_severity` key, for a settings class that sends other severities by default."""
    return field(default=default, validator=_severity)


@frozen(kw_only=True)
class NotifierSettings:
    """The routing keys of every notifier table."""

    # Event kinds to send, or families of them (`remediation.*`); empty sends every kind.
    kinds: tuple[str, ...] = kinds_setting()
    # The least severity an event needs to be sent.
    min_severity: str = min_severity_setting()

    @property
    def floor(self) -> Severity:
        return Severity(self.min_severity)

    def admits_kind(self, event: Event) -> bool:
        return kind_matches(event.kind, self.kinds)

    def admits(self, event: Event) -> bool:
        """Whether the event passes both `kinds` and `min_severity`."""
        return self.admits_kind(event) and severity_of(event).rank >= self.floor.rank

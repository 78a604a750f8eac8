"""The health checks a daemon runs: every health-check plugin installed, with its settings."""

from __future__ import annotations

from typing import Any, cast

from navarch.daemon.config import DaemonConfig
from navarch.errors import ConfigError, NavarchError
from navarch.plugins.health_check import (
    AnyHealthCheck,
    DiagnosingHealthCheck,
    HealthCheck,
    WatchingHealthCheck,
)
from navarch.plugins.manager import Plugins

# A check runs every interval (`run`), reports events as they happen (`watch`), or runs a
# diagnostic when the control plane asks (`diagnose`).
_CONTRACTS: tuple[type[Any], ...] = (HealthCheck, WatchingHealthCheck, DiagnosingHealthCheck)


def load_health_checks(
    plugins: Plugins, config: DaemonConfig, source: str = "navarch.toml"
) -> list[tuple[str, AnyHealthCheck]]:
    """Builds one object per registered health check, with its `[daemon.health_checks.NAME]`.

    Raises ConfigError naming every table that is wrong or names a check no plugin registered.
    """
    registry = plugins.registry("health_check")
    problems: list[str] = []
    for name in sorted(set(config.health_checks) - set(registry)):
        listed = ", ".join(sorted(registry)) or "none"
        problems.append(
            f'daemon.health_checks.{name}: no health check plugin named "{name}" '
            f"(registered: {listed})"
        )
    checks: list[tuple[str, AnyHealthCheck]] = []
    for name, registration in sorted(registry.items()):
        path = f"daemon.health_checks.{name}"
        before = len(problems)
        settings = registration.structure_settings(
            config.health_checks.get(name, {}), path, problems
        )
        if len(problems) > before:
            continue
        try:
            check = registration.create(_CONTRACTS, settings, path=path)
        except NavarchError as exc:  # a plugin's own error, or a broken plugin named: one line each
            problems.append(str(exc))
            continue
        checks.append((name, cast(AnyHealthCheck, check)))
    if problems:
        raise ConfigError(source, problems)
    return checks

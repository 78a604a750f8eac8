"""The health checks a daemon runs: every health-check plugin installed, with its settings."""

from __future__ import annotations

from navarch.daemon.config import DaemonConfig
from navarch.errors import ConfigError
from navarch.plugins.health_check import HealthCheck
from navarch.plugins.manager import Plugins


def load_health_checks(
    plugins: Plugins, config: DaemonConfig, source: str = "navarch.toml"
) -> list[tuple[str, HealthCheck]]:
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
    checks: list[tuple[str, HealthCheck]] = []
    for name, registration in sorted(registry.items()):
        path = f"daemon.health_checks.{name}"
        before = len(problems)
        settings = registration.structure_settings(
            config.health_checks.get(name, {}), path, problems
        )
        if len(problems) > before:
            continue
        try:
            checks.append((name, registration.create(settings)))
        except Exception as exc:  # a broken plugin is named, not a traceback
            problems.append(
                f"{path}: plugin {registration.plugin!r} could not create the check: "
                f"{type(exc).__name__}: {exc}"
            )
    if problems:
        raise ConfigError(source, problems)
    return checks

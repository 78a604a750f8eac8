"""The provider objects of a configuration, and what they say keeps them from working."""

from __future__ import annotations

from collections.abc import Mapping

from navarch.config import Config
from navarch.plugins import CheckedProvider, Provider


def build_providers(
    config: Config, made: Mapping[str, Provider] | None = None
) -> dict[str, Provider]:
    """One provider object per `[providers.NAME]` table; `made` stands in for some of them (the
    simulator's)."""
    made = made or {}
    return {
        name: made[name] if name in made else table.create(Provider)
        for name, table in config.providers.items()
    }


def provider_problems(providers: Mapping[str, Provider]) -> list[str]:
    """Each provider's own word on what keeps it from working (a missing credential), as
    `providers.NAME: problem` lines; a provider whose check fails says so."""
    problems: list[str] = []
    for name, provider in providers.items():
        if not isinstance(provider, CheckedProvider):
            continue
        try:
            found = list(provider.check())
        except Exception as exc:  # a plugin's bug must not hide the other problems
            found = [f"its check failed: {type(exc).__name__}: {exc}"]
        problems.extend(f"providers.{name}: {problem}" for problem in found)
    return problems
